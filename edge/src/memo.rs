//! What this isolate read from KV in the last second. A hot link then costs one KV read per
//! second per isolate instead of one per visit, and a flood of one unknown code one read.
//!
//! An entry is fresh for [`FRESH_MS`] after it was read. When it lapses, the next visit reads
//! KV again and the visits that come while that read is under way are served the entry just
//! lapsed, for at most [`STALE_MS`] more ([`Memo::get`]): one read per lapse, not one per
//! visit waiting on it (a hot link's visits would otherwise all wait for KV at once, every
//! second). A write to KV thus reaches a visitor at most [`FRESH_MS`] + [`STALE_MS`] after KV
//! itself has it. The isolate that receives a sync forgets
//! the codes it wrote; a read that was under way during the forget is not remembered (see
//! [`Memo::generation`]), so it cannot bring back what the sync replaced; nor does a read that
//! returns an older version than the one remembered (a KV cache lagging behind). The memo
//! holds no clock: callers pass the time in milliseconds.

use std::collections::HashMap;

use shortlink::ShortCode;

use crate::entry::Entry;

/// How long an entry read from KV (or fetched from the origin) is served from memory.
pub const FRESH_MS: u64 = 1_000;
/// How long after it lapsed an entry may still be served while one visit reads it again. A
/// read that failed or never came back leaves the entry to lapse at the end of it: then every
/// visit reads KV, as before any read.
pub const STALE_MS: u64 = 1_000;
/// Most entries kept. When full, stale entries are dropped; if over half are still fresh, all
/// are, so a scan of random codes costs O(1) per visit.
pub const CAPACITY: usize = 4_096;
/// Most bytes the entries may hold (their codes, destinations and rules), held to the same way:
/// a record with rules can hold dozens of 4 KiB destinations, and an isolate has 128 MB.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// What to do for a code, from [`Memo::get`].
#[derive(Debug, PartialEq, Eq)]
pub enum Memoed<'a> {
    /// Serve this entry: fresh, or lapsed while another visit reads it again.
    Serve(&'a Entry),
    /// Read KV and [`Memo::remember`] what it says. When the entry lapsed, the visits that
    /// come meanwhile are served it ([`STALE_MS`]).
    Read,
}

#[derive(Debug)]
struct Held {
    /// When it was read (the reading visit's start).
    at_ms: u64,
    entry: Entry,
    /// A visit reads it again since it lapsed.
    refreshing: bool,
}

#[derive(Debug, Default)]
pub struct Memo {
    entries: HashMap<ShortCode, Held>,
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
    /// The entry for `code` if it was remembered less than [`FRESH_MS`] ago, or lapsed less
    /// than [`STALE_MS`] ago while another visit reads it again. Otherwise [`Memoed::Read`];
    /// the first visit after the lapse is the one that reads it again.
    pub fn get(&mut self, code: &ShortCode, now_ms: u64) -> Memoed<'_> {
        let Some(held) = self.entries.get_mut(code) else {
            return Memoed::Read;
        };
        let age = now_ms.saturating_sub(held.at_ms);
        if age < FRESH_MS {
            return Memoed::Serve(&held.entry);
        }
        if age >= FRESH_MS + STALE_MS {
            return Memoed::Read;
        }
        if held.refreshing {
            return Memoed::Serve(&held.entry);
        }
        held.refreshing = true;
        Memoed::Read
    }

    /// The entry for `code`, however long ago it was remembered (until the memo drops it to
    /// make room): whether the origin was asked for the code before, not what to serve.
    pub fn held(&self, code: &ShortCode) -> Option<&Entry> {
        self.entries.get(code).map(|held| &held.entry)
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
        if let Some(held) = self.entries.get(&code)
            && fresh(held.at_ms, now_ms)
            && held.entry.is_newer_than(&entry)
        {
            return;
        }
        let added = weight(&code, &entry);
        if let Some(held) = self.entries.remove(&code) {
            self.bytes -= weight(&code, &held.entry);
        }
        if self.entries.len() >= CAPACITY || self.bytes + added > MAX_BYTES {
            self.entries.retain(|_, held| fresh(held.at_ms, now_ms));
            self.bytes = self.entries.iter().map(|(c, h)| weight(c, &h.entry)).sum();
            if self.entries.len() >= CAPACITY / 2 || self.bytes + added > MAX_BYTES / 2 {
                self.entries.clear();
                self.bytes = 0;
            }
        }
        if added <= MAX_BYTES {
            self.bytes += added;
            self.entries.insert(
                code,
                Held {
                    at_ms: now_ms,
                    entry,
                    refreshing: false,
                },
            );
        }
    }

    /// Drops the code's entry, fresh or lapsed: nothing of it is served again, and no read
    /// under way is remembered ([`Memo::generation`]).
    pub fn forget(&mut self, code: &ShortCode) {
        if let Some(held) = self.entries.remove(code) {
            self.bytes -= weight(code, &held.entry);
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

    /// What a visit at `now` is served from the memo; `None` when it reads KV.
    fn served(memo: &mut Memo, code: &ShortCode, now: u64) -> Option<Entry> {
        match memo.get(code, now) {
            Memoed::Serve(entry) => Some(entry.clone()),
            Memoed::Read => None,
        }
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
        assert_eq!(served(&mut memo, &code("abc"), 10_000), Some(link(1)));
        assert_eq!(served(&mut memo, &code("abc"), 10_999), Some(link(1)));
        assert_eq!(served(&mut memo, &code("abc"), 11_000), None);
        assert_eq!(served(&mut memo, &code("abd"), 10_000), None);
        // A clock that steps back does not make an entry live forever.
        assert_eq!(served(&mut memo, &code("abc"), 9_000), Some(link(1)));
    }

    #[test]
    fn a_lapsed_entry_is_served_while_one_visit_reads_it_again() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), link(1), 0, 10_000);
        // The first visit after the lapse reads KV; the visits during its read are served the
        // lapsed entry instead of reading KV too.
        assert_eq!(memo.get(&code("abc"), 11_000), Memoed::Read);
        let generation = memo.generation();
        for now in [11_000, 11_500, 11_999] {
            assert_eq!(served(&mut memo, &code("abc"), now), Some(link(1)));
        }
        // The read remembers what KV holds now; fresh from the read's start.
        memo.remember(code("abc"), versioned(1, 2), generation, 11_000);
        assert_eq!(
            served(&mut memo, &code("abc"), 11_999),
            Some(versioned(1, 2))
        );
        // Lapsed again: again one visit reads.
        assert_eq!(served(&mut memo, &code("abc"), 12_000), None);
        assert_eq!(
            served(&mut memo, &code("abc"), 12_001),
            Some(versioned(1, 2))
        );
    }

    #[test]
    fn a_lapsed_entry_is_served_at_most_one_more_second() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), link(1), 0, 10_000);
        // A read that fails or never comes back: the entry is served until FRESH + STALE
        // after it was read, then every visit reads KV.
        assert_eq!(served(&mut memo, &code("abc"), 11_500), None);
        assert_eq!(served(&mut memo, &code("abc"), 11_999), Some(link(1)));
        assert_eq!(served(&mut memo, &code("abc"), 12_000), None);
        assert_eq!(served(&mut memo, &code("abc"), 12_001), None);
        // Nor is an entry served stale that lapsed more than STALE_MS ago when first asked.
        memo.remember(code("abd"), link(2), 0, 10_000);
        assert_eq!(served(&mut memo, &code("abd"), 12_000), None);
        assert_eq!(served(&mut memo, &code("abd"), 12_001), None);
    }

    #[test]
    fn a_forget_during_a_lapsed_entry_read_leaves_nothing_to_serve() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), link(1), 0, 10_000);
        assert_eq!(memo.get(&code("abc"), 11_000), Memoed::Read);
        let generation = memo.generation();
        // A sync wrote the code while the read was under way: the lapsed entry is not served
        // again, and the read (which may hold what the sync replaced) is not remembered.
        memo.forget(&code("abc"));
        assert_eq!(served(&mut memo, &code("abc"), 11_100), None);
        memo.remember(code("abc"), link(1), generation, 11_000);
        assert_eq!(served(&mut memo, &code("abc"), 11_200), None);
        // A read begun after the forget is remembered as usual.
        memo.remember(code("abc"), versioned(1, 2), memo.generation(), 11_200);
        assert_eq!(
            served(&mut memo, &code("abc"), 11_300),
            Some(versioned(1, 2))
        );
    }

    #[test]
    fn remembers_unknown_codes_but_not_unreadable_entries() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), Entry::Missing, 0, 0);
        memo.remember(code("abd"), Entry::Unreadable("bad".into()), 0, 0);
        assert_eq!(served(&mut memo, &code("abc"), 1), Some(Entry::Missing));
        assert_eq!(served(&mut memo, &code("abd"), 1), None);
    }

    #[test]
    fn a_newer_entry_and_forget_replace_the_old() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), link(1), 0, 0);
        memo.remember(code("abc"), link(2), 0, 500);
        assert_eq!(served(&mut memo, &code("abc"), 1_400), Some(link(2)));
        memo.forget(&code("abc"));
        assert_eq!(served(&mut memo, &code("abc"), 1_400), None);
    }

    #[test]
    fn a_read_under_way_during_a_forget_is_not_remembered() {
        let mut memo = Memo::default();
        let before_read = memo.generation();
        // A sync writes the code and forgets it while the read is still waiting for KV.
        memo.forget(&code("abc"));
        memo.remember(code("abc"), link(1), before_read, 0);
        assert_eq!(served(&mut memo, &code("abc"), 1), None);
        // A read begun after the forget is remembered.
        memo.remember(code("abc"), link(2), memo.generation(), 0);
        assert_eq!(served(&mut memo, &code("abc"), 1), Some(link(2)));
    }

    #[test]
    fn an_older_version_read_later_does_not_replace_a_newer_one() {
        let mut memo = Memo::default();
        memo.remember(code("abc"), versioned(1, 5), 0, 0);
        // A read that was served from a KV cache still holding the link before its edit, or
        // the marker of a miss from before the link existed.
        memo.remember(code("abc"), versioned(1, 4), 0, 100);
        memo.remember(code("abc"), Entry::Missing, 0, 200);
        assert_eq!(served(&mut memo, &code("abc"), 300), Some(versioned(1, 5)));
        // A tombstone newer than the link replaces it, and the link does not come back.
        memo.remember(code("abc"), Entry::Deleted(6), 0, 400);
        memo.remember(code("abc"), versioned(1, 5), 0, 500);
        assert_eq!(
            served(&mut memo, &code("abc"), 600),
            Some(Entry::Deleted(6))
        );
        // The same version read again keeps the entry fresh.
        memo.remember(code("abc"), Entry::Deleted(6), 0, 1_300);
        assert_eq!(
            served(&mut memo, &code("abc"), 2_000),
            Some(Entry::Deleted(6))
        );
        // Once stale, the newer entry no longer holds: what KV says now is remembered.
        memo.remember(code("abc"), versioned(1, 5), 0, 2_400);
        assert_eq!(
            served(&mut memo, &code("abc"), 2_401),
            Some(versioned(1, 5))
        );
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
        assert_eq!(served(&mut memo, &code("new3"), 5_001), Some(link(2)));
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
            let summed: usize = memo.entries.iter().map(|(c, h)| weight(c, &h.entry)).sum();
            assert_eq!(memo.bytes(), summed);
            if i % 7 == 0 {
                memo.forget(&code(&format!("big{i}")));
            }
        }
        assert!(!memo.entries.is_empty());
    }
}
