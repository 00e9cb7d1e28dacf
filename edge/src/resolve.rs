//! The miss path: a code's link record from this isolate's memo, KV, or the origin (behind the
//! visitor's budget of origin requests, the isolate's bound on resolves and the circuit
//! breaker: [`crate::limits`]), and what the origin said written back to KV for the next
//! visitor.
//!
//! An unknown code is written to KV as such only when this isolate asked the origin for it
//! once already (its memo still holds the earlier answer): a code visited again and again
//! then costs the origin one resolve a minute, while a scan of distinct random codes costs no
//! KV write at all.
//!
//! KV and the origin come in through two small traits, so that the whole path runs on the
//! host in tests; `lib.rs` implements them over the Workers runtime.

use std::cell::RefCell;

use shortlink::ShortCode;
use shortlink::edge::{KV_MISSING, kv_key};
use shortlink::redirect::LinkRecord;

use crate::breaker::Breaker;
use crate::entry::{self, Entry, Writer};
use crate::limits::{self, OriginGate};
use crate::memo::{Memo, Memoed};

/// Seconds a record fetched from the origin stays in KV. Sync keeps records current, so this
/// only bounds the damage of a lost sync or of a fill that lost its race with one ([`fill`]).
pub const FETCHED_RECORD_TTL: u64 = 3600;
/// Seconds an unknown code is remembered as unknown (60 is KV's minimum expiry).
pub const MISSING_TTL: u64 = 60;

/// Why KV or the origin could not answer: a message for the log.
pub type Failure = String;

/// The link entries in Workers KV.
pub trait Kv {
    /// The text under `key`, as the data centre's cache may hold it for up to 30 s: KV has no
    /// read past its cache (a read without `cacheTtl` is cached for KV's default, 60 s), so
    /// a writer's check just before it writes takes the shortest, as visits do.
    async fn get(&self, key: &str) -> Result<Option<String>, Failure>;
    /// Writes `value` under `key`, expiring after `ttl` seconds.
    async fn put(&self, key: &str, value: &str, ttl: u64) -> Result<(), Failure>;
}

/// The origin's `/_edge/resolve`.
pub trait Origin {
    /// What the origin answered for the code, or why it could not answer.
    async fn resolve(&self, code: &ShortCode) -> Result<Resolved, Failure>;

    /// Milliseconds after which a resolve still under way was abandoned: its timeout and a
    /// margin (the gate's and the breaker's probe's expiry).
    fn give_up_after_ms(&self) -> u64;
}

/// An answer of the origin to a resolve.
#[derive(Debug)]
pub enum Resolved {
    /// The code's record, with its JSON (to store in KV as is).
    Link(LinkRecord, String),
    /// The origin has no such link.
    NoLink,
    /// A record this edge cannot read: an origin deployed with a newer record format before
    /// its edge; or a 404 that is not the origin's "no link" (`origin.rs`). The origin
    /// answered, so this is no failure of the origin's for the breaker
    /// (one such code must not shut out every other miss); the visitor gets a 503, and
    /// nothing is remembered or written to KV.
    Unreadable(Failure),
}

/// The visitor's budget of requests to the origin (the `ORIGIN_LIMIT` binding).
pub trait Budget {
    /// Takes one request from the budget: `false` once it is spent for now.
    async fn take(&self) -> bool;
}

/// What the miss path found for a code.
// Nearly every answer is a link: boxing it would add an allocation to every visit.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Found {
    Link(LinkRecord),
    /// No link with this code (unknown, or deleted): 404.
    NoLink,
    /// The origin is down or refused for now (the breaker): 503 with `Retry-After`.
    Unavailable {
        retry_after_secs: u64,
        /// Why, when the origin was asked and failed (for the log).
        failure: Option<Failure>,
    },
    /// The visitor spent its budget of origin requests: 429 with `Retry-After`.
    Limited {
        retry_after_secs: u64,
    },
}

/// What the origin said, to write to KV after the answer is sent ([`fill`]).
#[derive(Debug)]
pub struct Fill {
    pub code: ShortCode,
    pub entry: Entry,
    pub value: String,
    pub ttl: u64,
}

/// Per isolate: what it read from KV lately, what it knows of the origin's health, and its
/// resolves under way.
#[derive(Debug, Default)]
pub struct Cache {
    pub memo: RefCell<Memo>,
    pub breaker: RefCell<Breaker>,
    pub gate: RefCell<OriginGate>,
}

/// The record for `code`, looked up at `started_ms`: from the memo, KV, or the origin; with
/// the KV fill to run after the answer when the origin was asked. `now_ms` reads the clock
/// again after a wait. Before the origin is asked: the visitor's `budget`, then the isolate's
/// gate, then the breaker (last, since letting a request through changes its state).
pub async fn find(
    cache: &Cache,
    kv: &impl Kv,
    origin: &impl Origin,
    budget: &impl Budget,
    code: &ShortCode,
    started_ms: u64,
    now_ms: impl Fn() -> u64,
) -> Result<(Found, Option<Fill>), Failure> {
    let (memo_hit, generation) = {
        let mut memo = cache.memo.borrow_mut();
        let hit = match memo.get(code, started_ms) {
            Memoed::Serve(entry) => Some(entry.clone()),
            Memoed::Read => None,
        };
        (hit, memo.generation())
    };
    // What this request learns is remembered as of its start, which errs towards fresher.
    let remember = |entry: &Entry| {
        cache
            .memo
            .borrow_mut()
            .remember(code.clone(), entry.clone(), generation, started_ms);
    };
    let known = match memo_hit {
        Some(entry) => Some(entry),
        None => {
            let stored = kv.get(&kv_key(code)).await?;
            let entry = stored.as_deref().map(entry::parse);
            if let Some(entry) = &entry {
                remember(entry);
            }
            entry
        }
    };
    match known {
        Some(Entry::Link(record)) => return Ok((Found::Link(record), None)),
        Some(Entry::Missing | Entry::Deleted(_)) => return Ok((Found::NoLink, None)),
        Some(Entry::Unreadable(_)) | None => {}
    }
    if !budget.take().await {
        return Ok((
            Found::Limited {
                retry_after_secs: limits::PERIOD_SECS,
            },
            None,
        ));
    }
    let now = now_ms();
    let unavailable = |retry_after_secs| {
        Ok((
            Found::Unavailable {
                retry_after_secs,
                failure: None,
            },
            None,
        ))
    };
    let give_up_after_ms = origin.give_up_after_ms();
    let Some(_pass) = limits::enter(&cache.gate, now, give_up_after_ms) else {
        return unavailable(1);
    };
    if !cache.breaker.borrow_mut().allow(now, give_up_after_ms) {
        let retry_after_secs = cache.breaker.borrow().retry_after_secs(now);
        return unavailable(retry_after_secs);
    }
    match origin.resolve(code).await {
        Ok(Resolved::Link(record, json)) => {
            cache.breaker.borrow_mut().succeeded();
            let entry = Entry::Link(record.clone());
            remember(&entry);
            let fill = Fill {
                code: code.clone(),
                entry,
                value: json,
                ttl: FETCHED_RECORD_TTL,
            };
            Ok((Found::Link(record), Some(fill)))
        }
        Ok(Resolved::NoLink) => {
            cache.breaker.borrow_mut().succeeded();
            let asked_before = cache.memo.borrow().held(code) == Some(&Entry::Missing);
            remember(&Entry::Missing);
            let fill = asked_before.then(|| Fill {
                code: code.clone(),
                entry: Entry::Missing,
                value: KV_MISSING.to_owned(),
                ttl: MISSING_TTL,
            });
            Ok((Found::NoLink, fill))
        }
        Ok(Resolved::Unreadable(failure)) => {
            cache.breaker.borrow_mut().succeeded();
            Ok((
                Found::Unavailable {
                    retry_after_secs: 1,
                    failure: Some(failure),
                },
                None,
            ))
        }
        Err(failure) => {
            let now = now_ms();
            let mut breaker = cache.breaker.borrow_mut();
            breaker.failed(now);
            Ok((
                Found::Unavailable {
                    retry_after_secs: breaker.retry_after_secs(now),
                    failure: Some(failure),
                },
                None,
            ))
        }
    }
}

/// Stores what the origin said in KV (run after the answer is sent), unless KV holds the same
/// state or a newer one by then ([`entry::replaces`]): a sync that deleted or changed the code
/// while the origin was answering is kept. Whether it wrote.
///
/// KV has no compare-and-swap, so KV is read again right before the write. What remains is a
/// sync whose write lands between that read and this write, or that the read did not see
/// (KV's cache holds a read for 30 s at least, and a write elsewhere takes up to a minute to
/// reach this data centre): this older entry then overwrites it, until
/// `ttl` expires or the code changes again. ARCHITECTURE.md states this window among the
/// invariants.
pub async fn fill(kv: &impl Kv, fill: &Fill) -> Result<bool, Failure> {
    let key = kv_key(&fill.code);
    let current = kv.get(&key).await?.map(|text| entry::parse(&text));
    if !entry::replaces(Writer::Fill, &fill.entry, current.as_ref()) {
        return Ok(false);
    }
    kv.put(&key, &fill.value, fill.ttl).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;

    use futures_util::FutureExt;
    use shortlink::edge::Tombstone;
    use shortlink::{Destination, RedirectStatus};

    use super::*;

    #[derive(Default)]
    struct FakeKv {
        entries: RefCell<HashMap<String, (String, u64)>>,
        reads: Cell<u32>,
        down: Cell<bool>,
        /// Reads wait while set.
        slow: Cell<bool>,
    }

    impl Kv for FakeKv {
        async fn get(&self, key: &str) -> Result<Option<String>, Failure> {
            self.reads.set(self.reads.get() + 1);
            std::future::poll_fn(|_| {
                if self.slow.get() {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            })
            .await;
            if self.down.get() {
                return Err("KV is down".into());
            }
            Ok(self.entries.borrow().get(key).map(|(text, _)| text.clone()))
        }

        async fn put(&self, key: &str, value: &str, ttl: u64) -> Result<(), Failure> {
            self.entries
                .borrow_mut()
                .insert(key.to_owned(), (value.to_owned(), ttl));
            Ok(())
        }
    }

    impl FakeKv {
        fn set(&self, code: &str, text: &str) {
            self.entries
                .borrow_mut()
                .insert(format!("link:{code}"), (text.to_owned(), 0));
        }

        fn held(&self, code: &str) -> Option<(String, u64)> {
            self.entries.borrow().get(&format!("link:{code}")).cloned()
        }
    }

    /// The origin: a record per code, 404 for the others; `down` makes it fail; the codes of
    /// `unreadable` get a record this edge cannot read.
    #[derive(Default)]
    struct FakeOrigin {
        records: HashMap<String, LinkRecord>,
        unreadable: Vec<String>,
        asked: Cell<u32>,
        down: Cell<bool>,
    }

    impl Origin for FakeOrigin {
        async fn resolve(&self, code: &ShortCode) -> Result<Resolved, Failure> {
            self.asked.set(self.asked.get() + 1);
            if self.down.get() {
                return Err("connection refused".into());
            }
            if self.unreadable.iter().any(|c| c == code.as_str()) {
                return Ok(Resolved::Unreadable("a record from the future".into()));
            }
            Ok(match self.records.get(code.as_str()) {
                Some(record) => {
                    let json = serde_json::to_string(record).expect("serialises");
                    Resolved::Link(record.clone(), json)
                }
                None => Resolved::NoLink,
            })
        }

        fn give_up_after_ms(&self) -> u64 {
            3_000
        }
    }

    /// A visitor's budget of origin requests: `left` more.
    struct FakeBudget {
        left: Cell<u32>,
    }

    impl Default for FakeBudget {
        fn default() -> Self {
            Self {
                left: Cell::new(u32::MAX),
            }
        }
    }

    impl Budget for FakeBudget {
        async fn take(&self) -> bool {
            let left = self.left.get();
            self.left.set(left.saturating_sub(1));
            left > 0
        }
    }

    fn record(version: u64) -> LinkRecord {
        LinkRecord::new(
            7,
            version,
            Destination::parse("https://example.com/").expect("valid"),
            RedirectStatus::Found,
            None,
        )
    }

    fn json(record: &LinkRecord) -> String {
        serde_json::to_string(record).expect("serialises")
    }

    fn code(text: &str) -> ShortCode {
        ShortCode::parse(text).expect("valid")
    }

    /// Runs the lookup of `text` at `now` (the fakes never wait).
    fn find_now(
        cache: &Cache,
        kv: &FakeKv,
        origin: &FakeOrigin,
        text: &str,
        now: u64,
    ) -> (Found, Option<Fill>) {
        find_with(cache, kv, origin, &FakeBudget::default(), text, now)
    }

    fn find_with(
        cache: &Cache,
        kv: &FakeKv,
        origin: &FakeOrigin,
        budget: &FakeBudget,
        text: &str,
        now: u64,
    ) -> (Found, Option<Fill>) {
        find(cache, kv, origin, budget, &code(text), now, || now)
            .now_or_never()
            .expect("the fakes never wait")
            .expect("KV answers")
    }

    fn fill_now(kv: &FakeKv, fill: &Fill) -> bool {
        super::fill(kv, fill)
            .now_or_never()
            .expect("the fakes never wait")
            .expect("KV answers")
    }

    #[test]
    fn a_memo_hit_reads_nothing() {
        let (cache, kv, origin) = (Cache::default(), FakeKv::default(), FakeOrigin::default());
        kv.set("abc", &json(&record(3)));
        let (first, fill) = find_now(&cache, &kv, &origin, "abc", 1_000);
        assert!(matches!(first, Found::Link(ref r) if r.version == 3) && fill.is_none());
        assert_eq!(kv.reads.get(), 1);
        // Within the memo's second: no KV read; after it, KV again.
        let (again, _) = find_now(&cache, &kv, &origin, "abc", 1_999);
        assert!(matches!(again, Found::Link(_)));
        assert_eq!(kv.reads.get(), 1);
        find_now(&cache, &kv, &origin, "abc", 2_000);
        assert_eq!(kv.reads.get(), 2);
        assert_eq!(origin.asked.get(), 0);
    }

    #[test]
    fn visits_while_a_lapsed_entry_is_read_again_are_served_it_without_reading_kv() {
        let (cache, kv, origin) = (Cache::default(), FakeKv::default(), FakeOrigin::default());
        kv.set("abc", &json(&record(3)));
        find_now(&cache, &kv, &origin, "abc", 1_000);
        // The link changes in KV; its entry lapses and the next visit's read waits on KV.
        kv.set("abc", &json(&record(4)));
        kv.slow.set(true);
        let (budget, hot) = (FakeBudget::default(), code("abc"));
        let mut read = Box::pin(find(&cache, &kv, &origin, &budget, &hot, 2_000, || 2_000));
        assert!(read.as_mut().now_or_never().is_none());
        assert_eq!(kv.reads.get(), 2);
        // A hot link's other visits meanwhile: the lapsed entry, no read of their own.
        for now in [2_000, 2_500, 2_999] {
            let (found, _) = find_now(&cache, &kv, &origin, "abc", now);
            assert!(matches!(found, Found::Link(ref r) if r.version == 3));
        }
        assert_eq!(kv.reads.get(), 2);
        // The read comes back: its visit and the next ones get what KV holds now.
        kv.slow.set(false);
        let (found, _) = read
            .as_mut()
            .now_or_never()
            .expect("KV answered")
            .expect("KV answers");
        assert!(matches!(found, Found::Link(ref r) if r.version == 4));
        let (found, _) = find_now(&cache, &kv, &origin, "abc", 2_999);
        assert!(matches!(found, Found::Link(ref r) if r.version == 4));
        assert_eq!((kv.reads.get(), origin.asked.get()), (2, 0));
    }

    #[test]
    fn kv_hits_missing_and_deleted_codes_never_ask_the_origin() {
        let (cache, kv, origin) = (Cache::default(), FakeKv::default(), FakeOrigin::default());
        kv.set("link1", &json(&record(3)));
        kv.set("gone", KV_MISSING);
        let tombstone = serde_json::to_string(&Tombstone { version: 9 }).expect("serialises");
        kv.set("deleted", &tombstone);
        assert!(matches!(
            find_now(&cache, &kv, &origin, "link1", 0),
            (Found::Link(_), None)
        ));
        assert!(matches!(
            find_now(&cache, &kv, &origin, "gone", 0),
            (Found::NoLink, None)
        ));
        assert!(matches!(
            find_now(&cache, &kv, &origin, "deleted", 0),
            (Found::NoLink, None)
        ));
        assert_eq!(origin.asked.get(), 0);
    }

    #[test]
    fn absent_or_unreadable_entries_ask_the_origin_and_fill_kv() {
        let cache = Cache::default();
        let kv = FakeKv::default();
        let mut origin = FakeOrigin::default();
        origin.records.insert("fresh".into(), record(5));
        origin.records.insert("odd".into(), record(6));
        // An entry of a format this build does not read (a newer edge's) is asked again.
        kv.set("odd", r#"{"v":3,"version":6}"#);

        let (found, fill) = find_now(&cache, &kv, &origin, "fresh", 0);
        assert!(matches!(found, Found::Link(ref r) if r.version == 5));
        let fill = fill.expect("a fill");
        assert_eq!(fill.ttl, FETCHED_RECORD_TTL);
        assert!(fill_now(&kv, &fill));
        assert_eq!(
            kv.held("fresh"),
            Some((json(&record(5)), FETCHED_RECORD_TTL))
        );
        // The next visit within the second is served from the memo.
        assert!(matches!(
            find_now(&cache, &kv, &origin, "fresh", 10),
            (Found::Link(_), None)
        ));
        assert_eq!(origin.asked.get(), 1);

        let (found, fill) = find_now(&cache, &kv, &origin, "odd", 0);
        assert!(matches!(found, Found::Link(ref r) if r.version == 6));
        assert!(fill_now(&kv, &fill.expect("a fill")));
        assert_eq!(kv.held("odd").map(|(text, _)| text), Some(json(&record(6))));
    }

    #[test]
    fn a_fill_keeps_what_a_sync_wrote_meanwhile() {
        let cache = Cache::default();
        let kv = FakeKv::default();
        let mut origin = FakeOrigin::default();
        origin.records.insert("raced".into(), record(5));
        let (_, fill) = find_now(&cache, &kv, &origin, "raced", 0);
        let fill = fill.expect("a fill");
        // A sync of a newer state (an edit, or the delete) lands before the fill runs.
        let tombstone = serde_json::to_string(&Tombstone { version: 6 }).expect("serialises");
        kv.set("raced", &tombstone);
        assert!(!fill_now(&kv, &fill));
        assert_eq!(kv.held("raced").map(|(text, _)| text), Some(tombstone));
        // The same state again is not rewritten either (a sync's lasting entry keeps no TTL).
        kv.set("raced", &json(&record(5)));
        assert!(!fill_now(&kv, &fill));
        assert_eq!(kv.held("raced"), Some((json(&record(5)), 0)));
        // An older state is replaced.
        kv.set("raced", &json(&record(4)));
        assert!(fill_now(&kv, &fill));
        assert_eq!(
            kv.held("raced"),
            Some((json(&record(5)), FETCHED_RECORD_TTL))
        );
    }

    #[test]
    fn an_unknown_code_is_filled_as_missing_when_asked_again() {
        let (cache, kv, origin) = (Cache::default(), FakeKv::default(), FakeOrigin::default());
        // The first answer is only remembered for the memo's second: no KV write.
        let (found, fill) = find_now(&cache, &kv, &origin, "nope", 0);
        assert!(matches!(found, Found::NoLink) && fill.is_none());
        assert!(matches!(
            find_now(&cache, &kv, &origin, "nope", 999),
            (Found::NoLink, None)
        ));
        assert_eq!(origin.asked.get(), 1);
        // Asked again after it: now it is worth a KV entry.
        let (found, fill) = find_now(&cache, &kv, &origin, "nope", 1_000);
        assert!(matches!(found, Found::NoLink));
        assert_eq!(origin.asked.get(), 2);
        let fill = fill.expect("a fill");
        assert_eq!(
            (fill.entry.clone(), fill.ttl),
            (Entry::Missing, MISSING_TTL)
        );
        assert!(fill_now(&kv, &fill));
        assert_eq!(kv.held("nope"), Some((KV_MISSING.to_owned(), MISSING_TTL)));
        // A flood of the unknown code then costs the origin nothing until KV forgets it.
        for now in (1_000..60_000).step_by(500) {
            assert!(matches!(
                find_now(&cache, &kv, &origin, "nope", now),
                (Found::NoLink, None)
            ));
        }
        assert_eq!(origin.asked.get(), 2);
        // The marker never replaces a link that a sync wrote meanwhile.
        kv.set("nope", &json(&record(8)));
        assert!(!fill_now(&kv, &fill));
    }

    #[test]
    fn distinct_unknown_codes_cost_no_kv_write_and_at_most_the_bounds() {
        let (cache, kv, origin) = (Cache::default(), FakeKv::default(), FakeOrigin::default());
        // One visitor with a budget of 20: the rest of its 300 codes never reach the origin.
        let budget = FakeBudget {
            left: Cell::new(20),
        };
        let mut answers = HashMap::new();
        for i in 0..300 {
            let (found, fill) = find_with(&cache, &kv, &origin, &budget, &format!("scan{i}"), 0);
            assert!(fill.is_none(), "no KV write for a distinct unknown code");
            let name = match found {
                Found::NoLink => "404",
                Found::Limited {
                    retry_after_secs: limits::PERIOD_SECS,
                } => "429",
                Found::Unavailable {
                    retry_after_secs: 1,
                    failure: None,
                } => "503",
                other => panic!("{other:?}"),
            };
            *answers.entry(name).or_insert(0) += 1;
        }
        assert_eq!(origin.asked.get(), 20);
        assert_eq!(answers.get("404"), Some(&20));
        assert_eq!(answers.get("429"), Some(&280));
        assert!(kv.entries.borrow().is_empty());
        // Many visitors within budget: the isolate starts at most its bound in a second.
        let cache = Cache::default();
        let origin = FakeOrigin::default();
        for i in 0..300 {
            find_now(&cache, &kv, &origin, &format!("many{i}"), 5_000 + i);
        }
        assert_eq!(origin.asked.get(), limits::MAX_RESOLVES_PER_SECOND);
        // A known link in KV is served all along, without the origin.
        kv.set("known", &json(&record(3)));
        assert!(matches!(
            find_now(&cache, &kv, &origin, "known", 5_500),
            (Found::Link(_), None)
        ));
        assert_eq!(cache.gate.borrow().in_flight(), 0, "every pass ended");
    }

    #[test]
    fn a_dead_origin_opens_the_breaker_and_answers_503() {
        let (cache, kv, origin) = (Cache::default(), FakeKv::default(), FakeOrigin::default());
        origin.down.set(true);
        for attempt in 1..=3 {
            let (found, fill) = find_now(&cache, &kv, &origin, "abc", 0);
            let Found::Unavailable {
                retry_after_secs,
                failure,
            } = found
            else {
                panic!("{found:?}");
            };
            assert!(fill.is_none());
            assert_eq!(failure.as_deref(), Some("connection refused"));
            // The third failure in a row opens the breaker for five seconds.
            assert_eq!(retry_after_secs, if attempt == 3 { 5 } else { 1 });
        }
        assert_eq!(origin.asked.get(), 3);
        // Open: answered at once, without asking.
        let (found, _) = find_now(&cache, &kv, &origin, "abc", 2_100);
        assert!(matches!(
            found,
            Found::Unavailable {
                retry_after_secs: 3,
                failure: None
            }
        ));
        assert_eq!(origin.asked.get(), 3);
        // After the pause one probe goes; a success closes the breaker again.
        origin.down.set(false);
        let (found, _) = find_now(&cache, &kv, &origin, "abc", 5_000);
        assert!(matches!(found, Found::NoLink));
        assert_eq!(origin.asked.get(), 4);
        assert_eq!(*cache.breaker.borrow(), Breaker::Closed);
    }

    /// An origin newer than its edge answers a code with a record the edge cannot read: that
    /// visitor gets a 503 each time, and every other miss still reaches the origin.
    #[test]
    fn an_unreadable_record_does_not_open_the_breaker() {
        let (cache, kv) = (Cache::default(), FakeKv::default());
        let origin = FakeOrigin {
            records: HashMap::from([("known".to_owned(), record(1))]),
            unreadable: vec!["future".to_owned()],
            ..FakeOrigin::default()
        };
        for _ in 0..5 {
            let (found, fill) = find_now(&cache, &kv, &origin, "future", 0);
            let Found::Unavailable {
                retry_after_secs,
                failure,
            } = found
            else {
                panic!("{found:?}");
            };
            assert_eq!(retry_after_secs, 1);
            assert_eq!(failure.as_deref(), Some("a record from the future"));
            assert!(fill.is_none(), "nothing is written to KV");
        }
        assert_eq!(origin.asked.get(), 5, "asked each time: nothing remembered");
        assert_eq!(*cache.breaker.borrow(), Breaker::Closed);
        assert!(kv.held("future").is_none());
        assert!(matches!(
            find_now(&cache, &kv, &origin, "known", 0),
            (Found::Link(_), Some(_))
        ));
    }

    #[test]
    fn a_kv_failure_is_an_error() {
        let (cache, kv, origin) = (Cache::default(), FakeKv::default(), FakeOrigin::default());
        kv.down.set(true);
        let budget = FakeBudget::default();
        let result = find(&cache, &kv, &origin, &budget, &code("abc"), 0, || 0)
            .now_or_never()
            .expect("the fakes never wait");
        assert!(result.is_err());
        assert_eq!(origin.asked.get(), 0);
    }
}
