//! What this isolate read from KV in the last second. A hot link then costs one KV read per
//! second per isolate instead of one per visit, and a flood of one unknown code one read.
//!
//! An entry is served for at most [`FRESH_MS`] after it was read, so a write to KV reaches a
//! visitor at most that long after KV itself has it. The isolate that receives a sync forgets
//! the codes it wrote; a read that was under way during the forget is not remembered (see
//! [`Memo::generation`]), so it cannot bring back what the sync replaced; nor does a read that
//! returns an older version than the one remembered (a KV cache lagging behind). The memo
//! holds no clock: callers pass the time in milliseconds.

use std::collections::HashMap;

use shortlink::ShortCode;

use crate::entry::Entry;

/// How long an entry read from KV (or fetched from the origin) is served from memory.
pub const FRESH_MS: u64 = 1_000;
/// Most entries kept. When full, stale entries are dropped; if over half are still fresh, all
/// are, so a scan of random codes costs O(1) per visit.
pub const CAPACITY: usize = 4_096;
/// Most bytes the entries may hold (their codes, destinations and rules), held to the same way:
/// a record with rules can hold dozens of 4 KiB destinations, and an isolate has 128 MB.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Memo {
    entries: HashMap<ShortCode, (u64, Entry)>,
    /// What the entries weigh ([`weight`]).
    bytes: usize,
    /// Counts forgets: a read that began before one must not be remembered after it.
    generation: u64,
}

/// What an entry holds: its code, the record's destination and rules, and a fixed part.
fn weight(code: &ShortCode, entry: &Entry) -> usize {
    let record = match entry {
        Entry::Link(record) => record.destination.as_str().len() + record.rules().heap_bytes(),
        _ => 0,
    };
    64 + code.as_str().len() + record
}

impl Memo {
    /// The entry for `code` if it was remembered less than [`FRESH_MS`] ago.
    pub fn get(&self, code: &ShortCode, now_ms: u64) -> Option<&Entry> {
        self.entries
            .get(code)
            .filter(|(at, _)| fresh(*at, now_ms))
            .map(|(_, entry)| entry)
    }

    /// The entry for `code`, however long ago it was remembered (until the memo drops it to
    /// make room): whether the origin was asked for the code before, not what to serve.
    pub fn held(&self, code: &ShortCode) -> Option<&Entry> {
        self.entries.get(code).map(|(_, entry)| entry)
    }

    /// Take this before reading KV and pass it to [`Memo::remember`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Remembers an entry read when the memo was at `generation`, unless a forget came since
    /// or a newer entry for the code is still fresh. Unreadable entries are not worth keeping.
    pub fn remember(&mut self, code: ShortCode, entry: Entry, generation: u64, now_ms: u64) {
        if matches!(entry, Entry::Unreadable(_)) || generation != self.generation {
            return;
        }
        if let Some((at, held)) = self.entries.get(&code)
            && fresh(*at, now_ms)
            && held.is_newer_than(&entry)
        {
            return;
        }
        let added = weight(&code, &entry);
        if let Some((_, held)) = self.entries.remove(&code) {
            self.bytes -= weight(&code, &held);
        }
        if self.entries.len() >= CAPACITY || self.bytes + added > MAX_BYTES {
            self.entries.retain(|_, (at, _)| fresh(*at, now_ms));
            self.bytes = self.entries.iter().map(|(c, (_, e))| weight(c, e)).sum();
            if self.entries.len() >= CAPACITY / 2 || self.bytes + added > MAX_BYTES / 2 {
                self.entries.clear();
                self.bytes = 0;
            }
        }
        if added <= MAX_BYTES {
            self.bytes += added;
            self.entries.insert(code, (now_ms, entry));
        }
    }

    pub fn forget(&mut self, code: &ShortCode) {
        if let Some((_, held)) = self.entries.remove(code) {
            self.bytes -= weight(code, &held);
        }
        self.generation += 1;
    }

    /// What the entries weigh, in bytes (at most [`MAX_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

fn fresh(at_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(at_ms) < FRESH_MS
}

#[cfg(test)]
mod tests {
    use shortlink::redirect::LinkRecord;
    use shortlink::{Destination, RedirectStatus};

    use super::*;

    fn code(text: &str) -> ShortCode {
        ShortCode::parse(text).expect("valid")
    }

    fn link(id: i64) -> Entry {
        versioned(id, 1)
    }

    fn versioned(id: i64, version: u64) -> Entry {
        Entry::Link(LinkRecord::new(
            id,
            version,
            Destination::parse("https://example.com/").expect("valid"),
            RedirectStatus::Found,
            None,
        ))
    }

    #[test]
    fn serves_an_entry_for_one_second() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), link(1), 0, 10_000);
        assert_eq!(memo.get(&code("abc"), 10_000), Some(&link(1)));
        assert_eq!(memo.get(&code("abc"), 10_999), Some(&link(1)));
        assert_eq!(memo.get(&code("abc"), 11_000), None);
        assert_eq!(memo.get(&code("abd"), 10_000), None);
        // A clock that steps back does not make an entry live forever.
        assert_eq!(memo.get(&code("abc"), 9_000), Some(&link(1)));
    }

    #[test]
    fn remembers_unknown_codes_but_not_unreadable_entries() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), Entry::Missing, 0, 0);
        memo.remember(code("abd"), Entry::Unreadable("bad".into()), 0, 0);
        assert_eq!(memo.get(&code("abc"), 1), Some(&Entry::Missing));
        assert_eq!(memo.get(&code("abd"), 1), None);
    }

    #[test]
    fn a_newer_entry_and_forget_replace_the_old() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), link(1), 0, 0);
        memo.remember(code("abc"), link(2), 0, 500);
        assert_eq!(memo.get(&code("abc"), 1_400), Some(&link(2)));
        memo.forget(&code("abc"));
        assert_eq!(memo.get(&code("abc"), 1_400), None);
    }

    #[test]
    fn a_read_under_way_during_a_forget_is_not_remembered() {
        let mut memo = Memo::default();
        let before_read = memo.generation();
        // A sync writes the code and forgets it while the read is still waiting for KV.
        memo.forget(&code("abc"));
        memo.remember(code("abc"), link(1), before_read, 0);
        assert_eq!(memo.get(&code("abc"), 1), None);
        // A read begun after the forget is remembered.
        memo.remember(code("abc"), link(2), memo.generation(), 0);
        assert_eq!(memo.get(&code("abc"), 1), Some(&link(2)));
    }

    #[test]
    fn an_older_version_read_later_does_not_replace_a_newer_one() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), versioned(1, 5), 0, 0);
        // A read that was served from a KV cache still holding the link before its edit, or
        // the marker of a miss from before the link existed.
        memo.remember(code("abc"), versioned(1, 4), 0, 100);
        memo.remember(code("abc"), Entry::Missing, 0, 200);
        assert_eq!(memo.get(&code("abc"), 300), Some(&versioned(1, 5)));
        // A tombstone newer than the link replaces it, and the link does not come back.
        memo.remember(code("abc"), Entry::Deleted(6), 0, 400);
        memo.remember(code("abc"), versioned(1, 5), 0, 500);
        assert_eq!(memo.get(&code("abc"), 600), Some(&Entry::Deleted(6)));
        // The same version read again keeps the entry fresh.
        memo.remember(code("abc"), Entry::Deleted(6), 0, 1_300);
        assert_eq!(memo.get(&code("abc"), 2_000), Some(&Entry::Deleted(6)));
        // Once stale, the newer entry no longer holds: what KV says now is remembered.
        memo.remember(code("abc"), versioned(1, 5), 0, 2_400);
        assert_eq!(memo.get(&code("abc"), 2_401), Some(&versioned(1, 5)));
    }

    #[test]
    fn stays_bounded() {
        let mut memo = Memo::default();
        // Twice the capacity of distinct codes within one second: everything is fresh.
        for i in 0..2 * CAPACITY {
            memo.remember(code(&format!("c{i}")), link(1), 0, 0);
            assert!(memo.entries.len() <= CAPACITY);
        }
        // Stale entries make room first; the fresh ones are kept.
        let mut memo = Memo::default();
        for i in 0..CAPACITY - 10 {
            memo.remember(code(&format!("old{i}")), link(1), 0, 0);
        }
        for i in 0..10 {
            memo.remember(code(&format!("new{i}")), link(2), 0, 5_000);
        }
        memo.remember(code("newest"), link(3), 0, 5_000);
        assert_eq!(memo.entries.len(), 11);
        assert_eq!(memo.get(&code("new3"), 5_001), Some(&link(2)));
    }

    #[test]
    fn records_with_many_long_destinations_stay_within_the_bytes() {
        let long = |n: usize| format!("https://example.com/{n}/{}", "a".repeat(4_000));
        let targets: Vec<_> = (0..20)
            .map(|n| serde_json::json!({"when": {"os": ["ios"]}, "destination": long(n)}))
            .collect();
        let rules: shortlink::redirect::Rules =
            serde_json::from_value(serde_json::json!({ "targets": targets })).expect("valid");
        let big = Entry::Link(
            LinkRecord::new(
                1,
                1,
                Destination::parse(&long(99)).expect("valid"),
                RedirectStatus::Found,
                None,
            )
            .with_rules(rules),
        );
        let mut memo = Memo::default();
        // 500 such records (about 40 MB) within one second, and forgets along the way.
        for i in 0..500 {
            memo.remember(code(&format!("big{i}")), big.clone(), memo.generation(), 0);
            assert!(memo.bytes() <= MAX_BYTES, "{}", memo.bytes());
            let summed: usize = memo.entries.iter().map(|(c, (_, e))| weight(c, e)).sum();
            assert_eq!(memo.bytes(), summed);
            if i % 7 == 0 {
                memo.forget(&code(&format!("big{i}")));
            }
        }
        assert!(!memo.entries.is_empty());
    }
}
