//! The in-process redirect cache: code → link record, or "no such code".
//!
//! Unknown codes are cached too (for a shorter time), so a flood of random codes costs one
//! query per code per few seconds rather than one per request. Concurrent misses for the same
//! code share one query. The cache is bounded by the bytes it holds, not by its entries: a
//! destination may be a few KiB long, and a link with rules holds up to 20 targeting rules
//! and 10 split destinations. Every change of a link, by any instance, drops its
//! entry here within moments (`invalidation.rs`); the TTL is only the safety net for a
//! notification that never arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use moka::Expiry;
use moka::future::Cache;
use shortlink::redirect::{LinkRecord, Location};

use crate::error::Error;

/// What an entry costs beyond the heap bytes of its code, destination and rules: moka's
/// bookkeeping (the hash table slot, the access and expiry queues, the entry's metadata; about
/// 128 bytes), the key's `String`, the `Arc`'s counts and the cached link's fixed fields (a
/// plain record holds no rules; a link's rules are boxed and weighed by [`Rules::heap_bytes`]). An
/// estimate on the generous side, so the real memory stays under the configured bound.
const ENTRY_OVERHEAD: usize = 128
    + std::mem::size_of::<String>()
    + 2 * std::mem::size_of::<usize>()
    + std::mem::size_of::<CachedLink>();

/// A cached link: its record (every destination a visit can be sent to is in there, so the
/// redirect decides from it alone), and the `Location` header of its own destination (with
/// its UTM parameters) built once, for the visits that go there (every visit of a link
/// without targeting rules or an A/B split) without an allocation.
#[derive(Debug)]
pub(crate) struct CachedLink {
    pub(crate) record: LinkRecord,
    location: HeaderValue,
}

impl CachedLink {
    /// `None` only for a record no valid link has (its location is not a header value).
    pub(crate) fn new(record: LinkRecord) -> Option<Self> {
        let location = record.rules().utm.apply(record.destination.as_str());
        let location = HeaderValue::try_from(location.into_owned()).ok()?;
        Some(Self { record, location })
    }

    /// The `Location` header for a decided `location`: the prepared one when it is the link's
    /// own destination, else a new one (a targeting rule's or an A/B variant's). `None` only
    /// for a value no valid destination has.
    pub(crate) fn location_header(&self, location: Location<'_>) -> Option<HeaderValue> {
        // The very destination of the record, and so the very UTM parameters.
        if std::ptr::eq(location.destination, &self.record.destination) {
            Some(self.location.clone())
        } else {
            HeaderValue::try_from(location.to_str().into_owned()).ok()
        }
    }
}

type Entry = Option<Arc<CachedLink>>;

#[derive(Debug, Clone)]
pub(crate) struct LinkCache {
    /// `None` when configured with 0 bytes: every visit reads PostgreSQL.
    cache: Option<Cache<String, Entry>>,
    /// Grows with every invalidation. A load that saw it change while it read PostgreSQL may
    /// have read the link before the change: its entry is dropped after it is stored.
    generation: Arc<AtomicU64>,
    /// The codes changed in the last [`CHANGED_LATELY`], at most [`CHANGED_CODES`]: a read
    /// replica may not have replayed their change yet, so they are read from the primary
    /// (else the stale link would be cached until the TTL).
    changed: Cache<String, ()>,
    /// When every code was last taken for changed ([`LinkCache::invalidate_all`], or more
    /// changes than `changed` holds), in ms after `epoch` (0: never).
    all_changed_ms: Arc<AtomicU64>,
    /// How many codes changed lately, to tell when `changed` may no longer hold them all.
    changes: Arc<std::sync::Mutex<Changes>>,
    epoch: Instant,
    /// How long a thread's copy of an entry is served: [`front::FOR`], or the cache's TTL
    /// when that is shorter.
    copy_for: Duration,
    /// The most bytes of links a thread's copies hold ([`front::bytes_for`]).
    copies_bytes: usize,
    /// Tells this cache's entries in the threads' [`front`] copies from other caches' (tests
    /// run many origins in one process).
    id: u64,
}

/// How long a changed link is read from the primary rather than a read replica: a replica
/// that lags more than this can serve (and the cache keep) the link as it was.
pub(crate) const CHANGED_LATELY: Duration = Duration::from_secs(30);
/// The most codes remembered as changed lately (about 100 bytes each). Past half of it in
/// [`CHANGED_LATELY`] (a bulk import, a sweep of the blocklist), the set may drop codes (its
/// expired entries still take room until evicted, and it refuses newcomers once full), so
/// every code counts as changed instead, and every miss reads the primary for that long.
const CHANGED_CODES: u64 = 65_536;

/// The codes changed in the window of [`CHANGED_LATELY`] begun at `started` (ms after the
/// cache's epoch) and in the one before it: together, at least those still remembered.
#[derive(Debug, Default)]
struct Changes {
    started: u64,
    now: u64,
    before: u64,
}

impl Changes {
    /// Counts a change at `at`; whether the codes changed lately are too many to remember.
    fn count(&mut self, at: u64) -> bool {
        let window = u64::try_from(CHANGED_LATELY.as_millis()).unwrap_or(u64::MAX);
        if at >= self.started.saturating_add(window) {
            let next = at < self.started.saturating_add(window.saturating_mul(2));
            self.before = if next { self.now } else { 0 };
            self.now = 0;
            self.started = at;
        }
        self.now += 1;
        self.now + self.before > CHANGED_CODES / 2
    }
}

/// How much the cache holds (after pending evictions ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    pub entries: u64,
    /// The estimated bytes of the entries, which the configured bound applies to.
    pub bytes: u64,
}

impl LinkCache {
    pub(crate) fn new(max_bytes: u64, ttl: Duration, negative_ttl: Duration) -> Self {
        let cache = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|code: &String, entry: &Entry| weight(code, entry))
                .expire_after(Ttl { ttl, negative_ttl })
                .build()
        });
        Self {
            cache,
            generation: Arc::default(),
            changed: Cache::builder()
                .max_capacity(CHANGED_CODES)
                .time_to_live(CHANGED_LATELY)
                .build(),
            all_changed_ms: Arc::default(),
            changes: Arc::default(),
            epoch: Instant::now(),
            copy_for: front::FOR.min(ttl),
            copies_bytes: front::bytes_for(
                max_bytes,
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            ),
            id: front::new_id(),
        }
    }

    /// Whether `code` (or every code) changed in the last [`CHANGED_LATELY`].
    pub(crate) fn changed_lately(&self, code: &str) -> bool {
        let all = self.all_changed_ms.load(Ordering::Acquire);
        (all != 0 && self.epoch.elapsed() < CHANGED_LATELY + Duration::from_millis(all))
            || self.changed.contains_key(code)
    }

    fn ms_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// The cached entry for `code`, or what the look-up that `load` makes finds (then cached).
    /// Errors are not cached.
    pub(crate) async fn get_or_load<F>(
        &self,
        code: &str,
        load: impl FnOnce() -> F,
    ) -> Result<Entry, Error>
    where
        F: Future<Output = Result<Option<LinkRecord>, Error>>,
    {
        // Read before the look-ups: a copy kept below under it is of no use once an
        // invalidation came after it.
        let generation = self.generation.load(Ordering::Acquire);
        if self.cache.is_some()
            && let Some(link) = front::get(self.id, code, generation)
        {
            metrics::counter!("kurz_redirect_cache_total", "result" => "hit").increment(1);
            return Ok(Some(link));
        }
        // Boxed, and the look-up made only here: the futures of moka and of the batched query
        // are some KiB, and would otherwise be part of every visit's, moved with it per
        // request, where most visits are answered by the thread's copy above.
        Box::pin(self.get_or_load_shared(code, load, generation)).await
    }

    /// [`Self::get_or_load`] past the thread's copies: the cache itself, else the look-up.
    async fn get_or_load_shared<F>(
        &self,
        code: &str,
        load: impl FnOnce() -> F,
        generation: u64,
    ) -> Result<Entry, Error>
    where
        F: Future<Output = Result<Option<LinkRecord>, Error>>,
    {
        let Some(cache) = &self.cache else {
            metrics::counter!("kurz_redirect_cache_total", "result" => "miss").increment(1);
            return entry_of(load()).await;
        };
        if let Some(entry) = cache.get(code).await {
            let result = if let Some(link) = &entry {
                let keeping = (self.copy_for, self.copies_bytes);
                front::keep(self.id, generation, keeping, code, link);
                "hit"
            } else {
                "negative_hit"
            };
            metrics::counter!("kurz_redirect_cache_total", "result" => result).increment(1);
            return Ok(entry);
        }
        // Visits that wait on another's load of the same code count as misses too.
        metrics::counter!("kurz_redirect_cache_total", "result" => "miss").increment(1);
        let entry = cache
            .try_get_with(code.to_owned(), entry_of(load()))
            .await
            .map_err(|err: Arc<Error>| {
                Arc::try_unwrap(err).unwrap_or_else(|err| shared_error(&err))
            })?;
        // An invalidation while the query ran may be of a change it did not see: that entry
        // would be served stale until the TTL. It was right a moment ago, so this answer may
        // use it; the next visit reads again.
        // Around the drop, as in `invalidate`: another visit may have taken a copy of it from
        // the cache meanwhile, under the newer generation.
        if self.generation.load(Ordering::Acquire) != generation {
            self.generation.fetch_add(1, Ordering::AcqRel);
            cache.invalidate(code).await;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(entry)
    }

    /// Whether anything is cached at all (else there is nothing to invalidate).
    pub(crate) fn is_on(&self) -> bool {
        self.cache.is_some()
    }

    /// Drops the entry of `code` (a link with this code changed, here or elsewhere).
    pub(crate) async fn invalidate(&self, code: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let now = self.ms_since_epoch();
        let too_many = self
            .changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .count(now);
        if too_many {
            self.all_changed_ms.store(now, Ordering::Release);
        } else {
            self.changed.insert(code.to_owned(), ()).await;
        }
        if let Some(cache) = &self.cache {
            cache.invalidate(code).await;
        }
        // Again: a visit between the first and the cache's drop may have kept a copy of the
        // old entry under the new generation.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops every entry: changes may have been missed (the notifications' connection was
    /// lost, or a whole-table change).
    pub(crate) fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.all_changed_ms
            .store(self.ms_since_epoch(), Ordering::Release);
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) async fn usage(&self) -> CacheUsage {
        let Some(cache) = &self.cache else {
            return CacheUsage {
                entries: 0,
                bytes: 0,
            };
        };
        cache.run_pending_tasks().await;
        CacheUsage {
            entries: cache.entry_count(),
            bytes: cache.weighted_size(),
        }
    }
}

/// Each thread's copies of the links it served from the cache lately, in front of moka: a
/// hit there costs a hash and a compare in one cache line, where moka's own read costs
/// several times that (its hash table, and the bookkeeping of every read for its eviction
/// order). A copy is served only while no invalidation came since it was taken from the cache
/// (any invalidation, of any code, makes every copy useless: the generation), and for
/// [`front::FOR`] at most, so it never outlives its cache entry by more than that.
/// Direct-mapped slots, a fixed number per thread (the runtime's workers): a copy holds its
/// link alive after the cache dropped it for room (or an invalidation made it useless), so the
/// copies of a thread hold at most [`front::bytes_for`] the cache's bound of links, counted as
/// the cache counts them: past it, a link is not copied and the copy in its slot goes. Only links: unknown
/// codes are answered by the cache itself.
mod front {
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use super::CachedLink;

    /// Slots per thread (a power of two).
    pub(super) const SLOTS: usize = 1 << 15;
    /// The most bytes of links a thread's copies hold (as the cache weighs them), whatever
    /// the cache's size: ~150,000 plain links, ~30,000 with five targeting rules and UTM.
    /// Without a bound, 32,768 copies of links with rules of ~130 KiB each held 4 GiB per
    /// thread beyond the cache's bound.
    pub(super) const MAX_BYTES: usize = 32 << 20;

    /// The most bytes of links a thread's copies hold for a cache of `cache_bytes` on
    /// `threads` worker threads (the runtime's, one per core): the copies of all of them
    /// together a quarter of the cache, each at most [`MAX_BYTES`] (256 MiB on 2 cores: 32 MiB
    /// a thread). A fixed 4 MiB (~20,000 plain links, ~3,500 ruled) sent most visits of a hot
    /// set of 10,000 ruled links past the copies to moka: the bench's ruled links ran at 0.86×
    /// of plain ones, 0.93× with 32 MiB (one run each, 20,000 links).
    pub(super) fn bytes_for(cache_bytes: u64, threads: usize) -> usize {
        let threads = u64::try_from(threads.max(1)).unwrap_or(u64::MAX);
        usize::try_from(cache_bytes / 4 / threads).map_or(MAX_BYTES, |bytes| bytes.min(MAX_BYTES))
    }
    /// How long a copy is served at most (the cache's TTL, when that is shorter). The longer,
    /// the more visits skip moka's bookkeeping; but a change whose notification never arrived
    /// is served from a copy until the TTL, and then this much longer.
    /// 1 s sent one visit in seven of a link visited 14 times a second to moka; 5 s, one
    /// in 35 (cache-hit redirects +5 %).
    pub(super) const FOR: Duration = Duration::from_secs(5);
    /// The longest code a copy is kept for (longer codes are answered by the cache itself):
    /// the code fits in the slot's cache line, so a hit compares it there rather than
    /// behind two more pointers.
    const CODE_BYTES: usize = 23;

    /// One cache line: what a look-up reads before the link itself.
    #[repr(align(64))]
    struct Slot {
        cache: u64,
        generation: u64,
        until: Instant,
        link: Arc<CachedLink>,
        code_len: u8,
        code: [u8; CODE_BYTES],
    }

    impl Slot {
        fn code(&self) -> &[u8] {
            &self.code[..usize::from(self.code_len)]
        }
    }

    /// A thread's slots, and the bytes of the links they hold.
    struct Copies {
        slots: Vec<Option<Slot>>,
        bytes: usize,
    }

    thread_local! {
        static COPIES: RefCell<Copies> = const {
            RefCell::new(Copies {
                slots: Vec::new(),
                bytes: 0,
            })
        };
    }

    /// The bytes a copy of `link` under `code` counts for.
    fn bytes_of(code_len: usize, link: &CachedLink) -> usize {
        super::ENTRY_OVERHEAD + code_len + super::link_bytes(link)
    }

    pub(super) fn new_id() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// FNV-1a: codes are short, and nobody chooses which slot a code takes to any effect but
    /// a miss here (the cache answers).
    fn slot_of(cache: u64, code: &str) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ cache;
        for byte in code.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // The top bits: FNV mixes the low ones least.
        usize::try_from(hash >> 40).unwrap_or_default() & (SLOTS - 1)
    }

    pub(super) fn get(cache: u64, code: &str, generation: u64) -> Option<Arc<CachedLink>> {
        COPIES.with_borrow(|copies| {
            let slot = copies.slots.get(slot_of(cache, code))?.as_ref()?;
            (slot.cache == cache
                && slot.generation == generation
                && slot.code() == code.as_bytes()
                && Instant::now() < slot.until)
                .then(|| slot.link.clone())
        })
    }

    /// Keeps a copy of `link` under `code` for `keep_for`, unless the thread's copies would
    /// then hold more than `max_bytes`: `keeping` is the two.
    pub(super) fn keep(
        cache: u64,
        generation: u64,
        (keep_for, max_bytes): (Duration, usize),
        code: &str,
        link: &Arc<CachedLink>,
    ) {
        let mut kept = [0; CODE_BYTES];
        let (Some(prefix), Ok(code_len)) = (kept.get_mut(..code.len()), u8::try_from(code.len()))
        else {
            return;
        };
        prefix.copy_from_slice(code.as_bytes());
        let bytes = bytes_of(code.len(), link);
        COPIES.with_borrow_mut(|copies| {
            if copies.slots.is_empty() {
                copies.slots.resize_with(SLOTS, || None);
            }
            let Some(slot) = copies.slots.get_mut(slot_of(cache, code)) else {
                return;
            };
            // The copy this one replaces goes in any case: over the bound, room is made a
            // slot at a time.
            if let Some(old) = slot.take() {
                copies.bytes -= bytes_of(usize::from(old.code_len), &old.link);
            }
            if copies.bytes + bytes > max_bytes {
                return;
            }
            copies.bytes += bytes;
            *slot = Some(Slot {
                cache,
                generation,
                until: Instant::now() + keep_for,
                link: link.clone(),
                code_len,
                code: kept,
            });
        });
    }

    /// The bytes this thread's copies hold.
    #[cfg(test)]
    pub(super) fn held() -> usize {
        COPIES.with_borrow(|copies| copies.bytes)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The thread's bound in these tests: a cache of 32 MiB on 2 threads.
        const BYTES: usize = 4 << 20;

        #[test]
        fn the_threads_copies_hold_a_quarter_of_the_cache_at_most_32_mib_each() {
            assert_eq!(bytes_for(32 << 20, 2), BYTES);
            assert_eq!(bytes_for(256 << 20, 2), MAX_BYTES);
            assert_eq!(bytes_for(256 << 20, 16), 4 << 20);
            assert_eq!(bytes_for(u64::MAX, 1), MAX_BYTES);
            assert_eq!(bytes_for(1 << 20, 0), 256 << 10);
            assert_eq!(bytes_for(0, 2), 0);
        }

        #[test]
        fn a_slot_is_one_cache_line() {
            assert_eq!(std::mem::size_of::<Option<Slot>>(), 64);
        }

        /// A burst of copies of large links: the thread's copies stay within their bytes, and
        /// room comes back a slot at a time as copies are replaced.
        #[test]
        fn copies_hold_at_most_their_bytes() {
            let link = |destination: String| {
                Arc::new(CachedLink::new(super::super::tests::record(&destination)).expect("valid"))
            };
            let cache = new_id();
            let large = link(format!("https://example.com/{}", "a".repeat(3_900)));
            let codes: Vec<String> = (0..4_000).map(|i| format!("c{i}")).collect();
            for code in &codes {
                keep(cache, 1, (FOR, BYTES), code, &large);
                assert!(held() <= BYTES, "{} bytes held", held());
            }
            let kept = codes
                .iter()
                .filter(|code| get(cache, code, 1).is_some())
                .count();
            assert!(kept > 0 && kept < codes.len(), "{kept} copies");
            let small = link("https://example.com/s".to_owned());
            for code in &codes {
                keep(cache, 1, (FOR, BYTES), code, &small);
            }
            // Every copy but those whose code shares its slot with a later one.
            let kept = codes
                .iter()
                .filter(|code| get(cache, code, 1).is_some())
                .count();
            assert!(kept > codes.len() * 9 / 10, "{kept} copies");
            assert!(held() < BYTES / 2, "{} bytes held", held());
        }

        #[test]
        fn codes_that_fit_are_kept_and_told_apart() {
            let link = |destination: &'static str| {
                Arc::new(CachedLink::new(super::super::tests::record(destination)).expect("valid"))
            };
            let cache = new_id();
            let longest = "a".repeat(CODE_BYTES);
            let too_long = "a".repeat(CODE_BYTES + 1);
            keep(
                cache,
                7,
                (FOR, BYTES),
                &longest,
                &link("https://example.com/a"),
            );
            keep(
                cache,
                7,
                (FOR, BYTES),
                &too_long,
                &link("https://example.com/b"),
            );
            let found = get(cache, &longest, 7).expect("kept");
            assert_eq!(found.record.destination.as_str(), "https://example.com/a");
            // Not kept, so not confused with the code it starts with.
            assert!(get(cache, &too_long, 7).is_none());
            assert!(get(cache, &longest[..CODE_BYTES - 1], 7).is_none());
            // Another generation (an invalidation) or cache: no copy.
            assert!(get(cache, &longest, 8).is_none());
            assert!(get(new_id(), &longest, 7).is_none());
            // Past its time.
            keep(
                cache,
                7,
                (Duration::ZERO, BYTES),
                &longest,
                &link("https://example.com/a"),
            );
            assert!(get(cache, &longest, 7).is_none());
        }
    }
}

/// The entry for what `load` finds: a link with its `Location` header made once.
async fn entry_of(
    load: impl Future<Output = Result<Option<LinkRecord>, Error>>,
) -> Result<Entry, Error> {
    let record = load.await?;
    // A stored destination is a valid URL, and UTM values are encoded into it: a valid header
    // value.
    Ok(record.and_then(CachedLink::new).map(Arc::new))
}

/// The bytes an entry holds: its code (the key's), the record's destination, the prepared
/// `Location` header (the destination with the link's UTM parameters), what its rules hold
/// on the heap, plus the fixed [`ENTRY_OVERHEAD`].
fn weight(code: &str, entry: &Entry) -> u32 {
    let link = entry.as_deref().map_or(0, link_bytes);
    u32::try_from(ENTRY_OVERHEAD + code.len() + link).unwrap_or(u32::MAX)
}

/// What a link holds on the heap, as the cache counts it.
fn link_bytes(link: &CachedLink) -> usize {
    link.record.destination.as_str().len() + link.location.len() + link.record.rules().heap_bytes()
}

/// Several waiters got the same failed load; each answers with its kind of failure.
fn shared_error(err: &Error) -> Error {
    match err {
        Error::Unavailable(_) => Error::Unavailable(sqlx::Error::PoolTimedOut),
        other => Error::Internal(anyhow::anyhow!("loading a link failed: {other}")),
    }
}

struct Ttl {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<String, Entry> for Ttl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(if value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        })
    }
}

#[cfg(test)]
mod tests {
    use shortlink::{Destination, RedirectStatus};

    use super::*;

    pub(super) fn record(destination: &str) -> LinkRecord {
        let destination = Destination::parse(destination).expect("destination");
        LinkRecord::new(1, 1, destination, RedirectStatus::Found, None)
    }

    fn destination(entry: &Entry) -> Option<&str> {
        entry.as_ref().map(|link| link.record.destination.as_str())
    }

    /// More changes than the set of changed codes holds (a bulk import behind a lagging
    /// replica): every one of them still counts as changed lately, so none is read from the
    /// replica as it was.
    #[tokio::test]
    async fn a_flood_of_changes_leaves_none_taken_for_unchanged() {
        let cache = LinkCache::new(1 << 20, Duration::from_secs(300), Duration::from_secs(300));
        let codes = CHANGED_CODES + 4_000;
        for n in 0..codes {
            cache.invalidate(&format!("code-{n}")).await;
        }
        cache.changed.run_pending_tasks().await;
        let forgotten: Vec<u64> = (0..codes)
            .filter(|n| !cache.changed_lately(&format!("code-{n}")))
            .collect();
        assert!(
            forgotten.is_empty(),
            "{} taken for unchanged",
            forgotten.len()
        );
    }

    #[test]
    fn changes_are_counted_over_this_window_and_the_last() {
        let window = u64::try_from(CHANGED_LATELY.as_millis()).expect("ms");
        let mut changes = Changes::default();
        let half = CHANGED_CODES / 2;
        assert!(!(0..half).any(|_| changes.count(1)));
        // The next window still counts the last one's; the one after that does not.
        assert!(changes.count(window + 1) && changes.count(window + 2));
        assert!(!changes.count(3 * window + 1));
    }

    #[tokio::test]
    async fn a_load_that_overlapped_an_invalidation_is_not_kept() {
        let cache = LinkCache::new(1 << 20, Duration::from_secs(300), Duration::from_secs(300));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        // The load read the link before a change; the change's invalidation lands while it
        // is still under way, before it stores what it read.
        let loading = cache.get_or_load("code", || async {
            released.await.ok();
            Ok(Some(record("https://example.com/old")))
        });
        let invalidating = async {
            cache.invalidate("code").await;
            release.send(()).ok();
            cache.generation.load(Ordering::Acquire)
        };
        let (loaded, after_invalidation) = tokio::join!(loading, invalidating);
        let loaded = loaded.expect("loaded");
        assert_eq!(destination(&loaded), Some("https://example.com/old"));
        // Another visit, begun after the invalidation, read the old entry from the cache
        // before the load dropped it, and kept a copy on its thread: not served either.
        let old = loaded.as_ref().expect("a link");
        let keeping = (cache.copy_for, cache.copies_bytes);
        front::keep(cache.id, after_invalidation, keeping, "code", old);

        let reloaded = cache
            .get_or_load("code", || async {
                Ok(Some(record("https://example.com/new")))
            })
            .await
            .expect("loaded");
        assert_eq!(destination(&reloaded), Some("https://example.com/new"));
        // Without an invalidation meanwhile, a load is kept.
        let kept = cache
            .get_or_load("code", || async {
                Ok(Some(record("https://example.com/newer")))
            })
            .await
            .expect("cached");
        assert_eq!(destination(&kept), Some("https://example.com/new"));
    }

    #[tokio::test]
    async fn a_link_served_from_the_cache_is_copied_in_front_and_served_from_there() {
        let cache = LinkCache::new(1 << 20, Duration::from_secs(300), Duration::from_secs(300));
        assert!(cache.copies_bytes > 0 && cache.copies_bytes <= 1 << 18);
        let load = || async { Ok(Some(record("https://example.com/a"))) };
        let loaded = cache.get_or_load("front", load).await.expect("loaded");
        let held = front::held();
        let cached = cache.get_or_load("front", load).await.expect("a hit");
        assert!(front::held() > held, "the hit was copied");
        let copied = front::get(cache.id, "front", cache.generation.load(Ordering::Acquire));
        let (Some(cached), Some(copied)) = (cached, copied) else {
            panic!("no copy");
        };
        assert!(Arc::ptr_eq(&cached, &copied));
        assert!(loaded.is_some_and(|loaded| Arc::ptr_eq(&loaded, &copied)));
        assert!(front::held() <= cache.copies_bytes);
    }

    #[tokio::test]
    async fn a_copy_in_front_is_not_served_after_an_invalidation() {
        let cache = LinkCache::new(1 << 20, Duration::from_secs(300), Duration::from_secs(300));
        let load = |destination: &'static str| async move { Ok(Some(record(destination))) };
        let first = cache
            .get_or_load("code", || load("https://example.com/old"))
            .await;
        assert_eq!(
            destination(&first.expect("loaded")),
            Some("https://example.com/old")
        );
        // Served again (from the cache, then from this thread's copy), not loaded.
        for _ in 0..3 {
            let again = cache
                .get_or_load("code", || load("https://example.com/unused"))
                .await;
            assert_eq!(
                destination(&again.expect("hit")),
                Some("https://example.com/old")
            );
        }
        // Another cache in the same thread has copies of its own.
        let other = LinkCache::new(1 << 20, Duration::from_secs(300), Duration::from_secs(300));
        let theirs = other
            .get_or_load("code", || load("https://example.com/theirs"))
            .await;
        assert_eq!(
            destination(&theirs.expect("loaded")),
            Some("https://example.com/theirs")
        );

        cache.invalidate("code").await;
        let new = cache
            .get_or_load("code", || load("https://example.com/new"))
            .await;
        assert_eq!(
            destination(&new.expect("loaded")),
            Some("https://example.com/new")
        );
        cache.invalidate_all();
        let newer = cache
            .get_or_load("code", || load("https://example.com/newer"))
            .await;
        assert_eq!(
            destination(&newer.expect("loaded")),
            Some("https://example.com/newer")
        );
    }

    #[tokio::test]
    async fn the_bound_is_in_bytes() {
        let cache = LinkCache::new(
            64 * 1024,
            Duration::from_secs(300),
            Duration::from_secs(300),
        );
        let long = format!("https://example.com/{}", "a".repeat(4_000));
        for n in 0..100 {
            let code = format!("code{n}");
            cache
                .get_or_load(&code, || async { Ok(Some(record(&long))) })
                .await
                .expect("loaded");
        }
        let usage = cache.usage().await;
        assert!(usage.bytes <= 64 * 1024, "{usage:?}");
        // Each entry holds the destination twice: at most 8 fit in 64 KiB.
        assert!((1..=8).contains(&usage.entries), "{usage:?}");
    }

    #[test]
    fn the_own_location_is_prepared_with_its_utm_parameters() {
        let rules: shortlink::redirect::Rules = serde_json::from_value(serde_json::json!({
            "targets": [{"when": {"language": ["de"]}, "destination": "https://example.com/de#top"}],
            "utm": {"source": "news letter", "campaign": "x"},
        }))
        .expect("valid rules");
        let link =
            CachedLink::new(record("https://example.com/x?a=1").with_rules(rules)).expect("valid");
        let rules = link.record.rules();
        let own = Location {
            destination: &link.record.destination,
            utm: &rules.utm,
        };
        let target = Location {
            destination: &rules.targets.as_slice()[0].destination,
            utm: &rules.utm,
        };
        let header = |location| {
            link.location_header(location)
                .expect("a header")
                .to_str()
                .expect("text")
                .to_owned()
        };
        assert_eq!(
            header(own),
            "https://example.com/x?a=1&utm_source=news+letter&utm_campaign=x"
        );
        assert_eq!(header(own), own.to_str());
        assert_eq!(
            header(target),
            "https://example.com/de?utm_source=news+letter&utm_campaign=x#top"
        );
        // An equal destination that is not the record's own is built, and comes out the same.
        let copy = link.record.destination.clone();
        let same = Location {
            destination: &copy,
            utm: &rules.utm,
        };
        assert_eq!(header(same), header(own));
    }

    #[test]
    fn rules_are_weighed() {
        let plain = CachedLink::new(record("https://example.com/x")).map(Arc::new);
        let long = format!("https://example.com/{}", "a".repeat(2_000));
        let rules: shortlink::redirect::Rules = serde_json::from_value(serde_json::json!({
            "targets": [{"when": {"language": ["de", "fr"]}, "destination": long}],
            "split": (0..10)
                .map(|_| serde_json::json!({"destination": long, "weight": 10}))
                .collect::<Vec<_>>(),
            "fallback": long,
            "utm": {"source": "s".repeat(200)},
        }))
        .expect("valid rules");
        let ruled =
            CachedLink::new(record("https://example.com/x").with_rules(rules)).map(Arc::new);
        let (plain, ruled) = (weight("c", &plain), weight("c", &ruled));
        // Twelve long destinations, and then some.
        assert!(ruled >= plain + 12 * 2_000 + 200, "{plain} {ruled}");
        assert!(
            plain as usize >= std::mem::size_of::<CachedLink>(),
            "{plain}"
        );
    }
}
