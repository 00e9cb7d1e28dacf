//! A sync request's body, built change by change so that its size is known before it grows
//! past its limit.

use shortlink::edge::SyncChange;

/// The JSON of a `shortlink::edge::SyncBatch` without its nonce, which
/// `crate::edge_client` adds when it sends the body.
#[derive(Debug)]
pub(super) struct Batch {
    body: Vec<u8>,
    pub(super) codes: Vec<String>,
    limit: usize,
}

impl Batch {
    const START: &'static [u8] = br#"{"changes":["#;
    const END: &'static [u8] = b"]}";

    pub(super) fn new(limit: usize) -> Self {
        Self {
            body: Self::START.to_vec(),
            codes: Vec::new(),
            limit,
        }
    }

    /// Adds the change unless it would make the body larger than the limit (the first change
    /// is always added); false when it did not fit.
    pub(super) fn add(&mut self, code: &str, change: &SyncChange) -> serde_json::Result<bool> {
        let json = serde_json::to_vec(change)?;
        let separator = usize::from(!self.codes.is_empty());
        let size = self.body.len() + separator + json.len() + Self::END.len();
        if !self.codes.is_empty() && size > self.limit {
            return Ok(false);
        }
        if separator == 1 {
            self.body.push(b',');
        }
        self.body.extend(json);
        self.codes.push(code.to_owned());
        Ok(true)
    }

    /// The body, and the codes whose changes it holds.
    pub(super) fn finish(mut self) -> (Vec<u8>, Vec<String>) {
        self.body.extend(Self::END);
        (self.body, self.codes)
    }
}

#[cfg(test)]
mod tests {
    use shortlink::edge::SyncBatch;
    use shortlink::redirect::LinkRecord;
    use shortlink::{Destination, RedirectStatus, ShortCode};

    use super::*;
    use crate::outbox::MAX_BATCH_BYTES;

    fn change(code: &str, destination: &str) -> SyncChange {
        let record = LinkRecord::new(
            1,
            5,
            Destination::parse(destination).expect("valid"),
            RedirectStatus::Found,
            None,
        );
        SyncChange {
            code: ShortCode::parse(code).expect("valid"),
            version: 5,
            record: Some(record),
        }
    }

    #[test]
    fn batches_are_sync_batches_bounded_by_bytes() {
        let parse = |body: &[u8]| -> SyncBatch { serde_json::from_slice(body).expect("a batch") };
        assert_eq!(parse(&Batch::new(MAX_BATCH_BYTES).finish().0).changes, []);

        // Backslashes double in JSON: a 4 KiB destination of them is ~8 KiB encoded.
        let heavy = format!("https://example.com/?q={}", "\\".repeat(4000));
        let mut batch = Batch::new(MAX_BATCH_BYTES);
        let mut added = Vec::new();
        for i in 0..200 {
            let change = change(&format!("c{i}"), &heavy);
            if !batch.add(&format!("c{i}"), &change).expect("serialises") {
                break;
            }
            added.push(change);
        }
        assert!((25..40).contains(&added.len()), "{}", added.len());
        let (body, codes) = batch.finish();
        assert_eq!(codes.len(), added.len());
        assert!(body.len() <= MAX_BATCH_BYTES, "{}", body.len());
        assert!(body.len() > MAX_BATCH_BYTES - 9_000, "{}", body.len());
        assert_eq!(parse(&body).changes, added);

        // A change larger than the limit still goes, alone.
        let mut batch = Batch::new(100);
        assert!(
            batch
                .add("big", &change("big", &heavy))
                .expect("serialises")
        );
        let small = change("small", "https://example.com/");
        assert!(!batch.add("small", &small).expect("serialises"));
        let (body, codes) = batch.finish();
        assert_eq!(codes, ["big"]);
        assert_eq!(parse(&body).changes.len(), 1);
    }
}
