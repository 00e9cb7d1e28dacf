//! Reading a code's KV entry (a link record, a tombstone, the "no such link" marker, or
//! something this build cannot read, which is then asked of the origin as on a miss), and
//! which of two entries a writer of KV keeps.
//!
//! Every writer of KV (sync, the miss fill, by [`replaces`]) and the memo (by
//! [`Entry::is_newer_than`]) keep the newer of two entries: link records and tombstones carry
//! the version of the link state they hold, so a late write of an older state leaves a newer
//! one in place.

use shortlink::edge::{KV_MISSING, Tombstone};
use shortlink::redirect::LinkRecord;

// Nearly every entry is a link: boxing it would add an allocation to every read.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Link(LinkRecord),
    /// The code's links were deleted; the version of that delete.
    Deleted(u64),
    /// The origin had no link with this code when asked (a short-lived negative entry).
    Missing,
    Unreadable(String),
}

pub fn parse(text: &str) -> Entry {
    if text == KV_MISSING {
        return Entry::Missing;
    }
    match serde_json::from_str::<LinkRecord>(text) {
        Ok(record) => Entry::Link(record),
        Err(err) => match serde_json::from_str::<Tombstone>(text) {
            Ok(tombstone) => Entry::Deleted(tombstone.version),
            Err(_) => Entry::Unreadable(err.to_string()),
        },
    }
}

impl Entry {
    /// The version of the link state this entry holds; `None` for the "no such link" marker,
    /// which holds no state of any link, and for what cannot be read.
    pub fn version(&self) -> Option<u64> {
        match self {
            Self::Link(record) => Some(record.version),
            Self::Deleted(version) => Some(*version),
            Self::Missing | Self::Unreadable(_) => None,
        }
    }

    /// Whether this entry holds a newer state than `other`. A link record or tombstone is
    /// newer than the "no such link" marker, which is as old as anything.
    pub fn is_newer_than(&self, other: &Self) -> bool {
        match (self.version(), other.version()) {
            (Some(version), Some(other)) => version > other,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Who writes a KV entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// `POST /_edge/sync`: the origin's committed state, kept without expiry.
    Sync,
    /// The miss fill: what the origin answered a visit, cached with an expiry.
    Fill,
}

/// Whether `writer`, holding `incoming`, may overwrite `current`: what KV holds for the code,
/// read just before. Only a newer state may, except that a sync also writes the state KV
/// already has, so that a record a fill cached (with an expiry) becomes a lasting one.
///
/// An entry of version 0 comes from an origin that predates versions (or was written by one);
/// such a writer always overwrote, and keeps doing so until its origin is upgraded.
pub fn replaces(writer: Writer, incoming: &Entry, current: Option<&Entry>) -> bool {
    match current {
        None | Some(Entry::Unreadable(_)) => !matches!(incoming, Entry::Unreadable(_)),
        Some(_) if incoming.version() == Some(0) => true,
        Some(current) => match writer {
            Writer::Sync => incoming.version().is_some() && !current.is_newer_than(incoming),
            Writer::Fill => incoming.is_newer_than(current),
        },
    }
}

#[cfg(test)]
mod tests {
    use shortlink::{Destination, RedirectStatus};

    use super::*;

    fn link(version: u64) -> Entry {
        Entry::Link(LinkRecord::new(
            7,
            version,
            Destination::parse("https://example.com/").expect("valid"),
            RedirectStatus::Found,
            None,
        ))
    }

    #[test]
    fn entries() {
        let Entry::Link(record) = link(3) else {
            unreachable!("a link")
        };
        let json = serde_json::to_string(&record).expect("serialises");
        assert_eq!(parse(&json), Entry::Link(record));
        assert_eq!(parse(KV_MISSING), Entry::Missing);
        let tombstone = serde_json::to_string(&Tombstone { version: 9 }).expect("serialises");
        assert_eq!(parse(&tombstone), Entry::Deleted(9));
        // Written before versions: version 0.
        assert_eq!(
            parse(
                r#"{"v":1,"link_id":7,"destination":"https://example.com/","status":302,"expires_at":null}"#
            ),
            link(0)
        );
        for bad in [
            "",
            "{}",
            "null",
            r#"{"v":2,"link_id":1}"#,
            // A format this build does not know (a newer origin's): asked of the origin.
            r#"{"v":3,"version":9,"link_id":1,"destination":"https://example.com/","status":302}"#,
            r#"{"v":1,"version":9,"deleted":false}"#,
            r#"{"v":3,"version":9,"deleted":true}"#,
            "<html>",
        ] {
            assert!(matches!(parse(bad), Entry::Unreadable(_)), "{bad:?}");
        }
    }

    #[test]
    fn a_writer_keeps_the_newer_entry() {
        use Writer::{Fill, Sync};
        let unreadable = Entry::Unreadable("bad".into());
        let cases = [
            // Nothing (or nothing readable) there: any entry goes in.
            (Fill, link(5), None, true),
            (Sync, Entry::Deleted(5), None, true),
            (Fill, Entry::Missing, None, true),
            (Sync, link(5), Some(&unreadable), true),
            (Fill, Entry::Missing, Some(&unreadable), true),
            (Fill, unreadable.clone(), None, false),
            // Versions decide.
            (Sync, link(6), Some(&link(5)), true),
            (Fill, link(6), Some(&link(5)), true),
            (Sync, link(4), Some(&link(5)), false),
            (Fill, link(4), Some(&link(5)), false),
            (Sync, Entry::Deleted(6), Some(&link(5)), true),
            // The same state again: a sync rewrites it (dropping a fill's expiry), a fill not.
            (Sync, link(5), Some(&link(5)), true),
            (Fill, link(5), Some(&link(5)), false),
            (Sync, Entry::Deleted(5), Some(&Entry::Deleted(5)), true),
            // A late fill or sync of the state before a delete does not bring the link back.
            (Fill, link(5), Some(&Entry::Deleted(6)), false),
            (Sync, link(5), Some(&Entry::Deleted(6)), false),
            // A new link on a deleted code: its version is above the delete's.
            (Sync, link(7), Some(&Entry::Deleted(6)), true),
            (Fill, link(7), Some(&Entry::Deleted(6)), true),
            // The "no such link" marker gives way to any state, and never replaces one.
            (Fill, link(1), Some(&Entry::Missing), true),
            (Sync, Entry::Deleted(1), Some(&Entry::Missing), true),
            (Fill, Entry::Missing, Some(&link(5)), false),
            (Fill, Entry::Missing, Some(&Entry::Deleted(5)), false),
            (Fill, Entry::Missing, Some(&Entry::Missing), false),
            // Writers from before versions overwrite, as they did.
            (Sync, link(0), Some(&link(5)), true),
            (Sync, Entry::Deleted(0), Some(&link(5)), true),
            (Fill, link(0), Some(&link(5)), true),
            (Sync, link(1), Some(&link(0)), true),
        ];
        for (writer, incoming, current, expected) in cases {
            assert_eq!(
                replaces(writer, &incoming, current),
                expected,
                "{writer:?}: {incoming:?} over {current:?}"
            );
        }
    }
}
