//! Reading a code's KV entry: a link record, the "no such link" marker, or something this
//! build cannot read (then the origin is asked, as on a miss).

use shortlink::edge::KV_MISSING;
use shortlink::redirect::LinkRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Link(LinkRecord),
    Missing,
    Unreadable(String),
}

pub fn parse(text: &str) -> Entry {
    if text == KV_MISSING {
        return Entry::Missing;
    }
    match serde_json::from_str(text) {
        Ok(record) => Entry::Link(record),
        Err(err) => Entry::Unreadable(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use shortlink::{Destination, RedirectStatus};

    use super::*;

    #[test]
    fn entries() {
        let record = LinkRecord::new(
            7,
            Destination::parse("https://example.com/").expect("valid"),
            RedirectStatus::Found,
            None,
        );
        let json = serde_json::to_string(&record).expect("serialises");
        assert_eq!(parse(&json), Entry::Link(record));
        assert_eq!(parse(KV_MISSING), Entry::Missing);
        for bad in ["", "{}", "null", r#"{"v":2,"link_id":1}"#, "<html>"] {
            assert!(matches!(parse(bad), Entry::Unreadable(_)), "{bad:?}");
        }
    }
}
