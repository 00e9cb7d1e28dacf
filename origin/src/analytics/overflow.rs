//! Clicks of the origin's redirects that found the recorder's queue full: counted, not
//! stored. The queue holds raw events, which cost memory and a row each; when it is full (or
//! the shutdown closed it), a click is added to a bounded map of counters keyed by link and
//! UTC hour instead, and the recorder's storing task writes the map into the rollups about
//! once a second. So the totals stay exact at any load, and only the click's details are shed.
//!
//! What an overflowing click still counts for, and what not:
//! - **Counted**: the hour's clicks, QR scans and bots in `link_stats_hourly` and the
//!   workspace's `workspace_stats_hourly`, and the links list's `link_click_totals` (in all
//!   and in the 7-day window, by the window's start as `rollup.rs` keeps it). These are what
//!   the redirect knows cheaply: the link, the time, the `qr` flag and the bot flag
//!   (`shortlink::agent::classify` of the user agent, or a HEAD request: the classification
//!   ingest makes, `enrich.rs`), so such a click lands in the same column it would have.
//! - **Shed with the details**: the breakdowns (referrer, country, device, browser, OS,
//!   variant), whose sums fall short of the totals by the clicks shed this way; the unique
//!   visitors (a visitor key would have to be held per click to tell a new visitor from one
//!   seen, so a visitor whose only clicks of the day overflowed is not counted as unique);
//!   the raw event in `clicks` (the CSV export); and its `link.clicked` webhook, which is a
//!   copy of a stored raw event (`webhooks/clicks.rs`).
//! - **Click limits are not affected**: the origin takes a limited link's click in
//!   PostgreSQL before it redirects (`links/limit.rs`), never from stored clicks, and only the
//!   edge's clicks are counted against limits at ingest (they never pass through this map).
//!
//! The map is bounded ([`Overflow::new`]): a click of a new (link, hour) once the map is full
//! is lost and counted as shed. A flush takes the map out whole under its lock; if PostgreSQL
//! refuses or cannot be reached, the counts are merged back and written by the next flush.
//! The buckets held and those out being written are at most twice the bound together, so
//! however many flushes fail in a row the map never holds more. A flush whose commit got no
//! answer may have committed: its clicks are counted in doubt, never written twice. The writer
//! takes the links' rollup lock, so the 7-day window cannot move under it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Mutex, MutexGuard, PoisonError};

use shortlink::edge::ClickEvent;
use sqlx::PgPool;

use super::rollup;

/// The counters of one link and UTC hour, as `link_stats_hourly` keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// People's clicks (not QR scans).
    pub(crate) clicks: u64,
    /// People's QR scans.
    pub(crate) qr_scans: u64,
    /// Bots' clicks and scans, and HEAD requests.
    pub(crate) bots: u64,
}

impl Counts {
    fn add(&mut self, other: Self) {
        self.clicks += other.clicks;
        self.qr_scans += other.qr_scans;
        self.bots += other.bots;
    }

    /// The one click `click` is.
    fn of(click: &Click<'_>) -> Self {
        let bot = click.head || shortlink::agent::classify(click.user_agent).bot;
        Self {
            clicks: u64::from(!bot && !click.qr),
            qr_scans: u64::from(!bot && click.qr),
            bots: u64::from(bot),
        }
    }
}

/// What the map counts of a click: all a redirect needs to know of it when its raw event is
/// not made (the recorder's queue is full).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Click<'a> {
    pub(crate) link_id: i64,
    pub(crate) at: time::OffsetDateTime,
    /// A HEAD request: counted as a bot's.
    pub(crate) head: bool,
    pub(crate) qr: bool,
    pub(crate) user_agent: Option<&'a str>,
}

impl<'a> Click<'a> {
    pub(crate) fn of(event: &'a ClickEvent) -> Self {
        Self {
            link_id: event.link_id,
            at: event.at,
            head: event.head,
            qr: event.qr,
            user_agent: event.user_agent.as_deref(),
        }
    }
}

/// A link and a UTC hour (hours since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Bucket {
    link_id: i64,
    hour: i64,
}

/// Counts taken out of the map by a flush.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    counts: HashMap<Bucket, Counts>,
    /// The clicks they hold.
    pub(crate) clicks: u64,
}

impl Taken {
    pub(crate) fn is_empty(&self) -> bool {
        self.clicks == 0
    }
}

#[derive(Debug, Default)]
struct Held {
    counts: HashMap<Bucket, Counts>,
    clicks: u64,
    /// Clicks taken out by a write not yet settled ([`Overflow::settled`]).
    writing: u64,
    /// The buckets of those clicks: they may come back ([`Overflow::merge_back`]).
    writing_buckets: usize,
    /// Set by the shutdown's last flush: nothing is added after it.
    closed: bool,
}

/// The bounded map of overflowing clicks.
#[derive(Debug)]
pub(crate) struct Overflow {
    held: Mutex<Held>,
    /// The most (link, hour) buckets held; a click of a new one beyond it is lost.
    max_buckets: usize,
}

impl Overflow {
    pub(crate) fn new(max_buckets: usize) -> Self {
        Self {
            held: Mutex::new(Held::default()),
            max_buckets,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `click`; `false` when it cannot be (the map is full of other buckets, or
    /// closed), and the click is lost.
    pub(crate) fn add(&self, click: &Click<'_>) -> bool {
        // Outside the lock: the user agent's classification is the costly part.
        let counts = Counts::of(click);
        let bucket = Bucket {
            link_id: click.link_id,
            hour: click.at.unix_timestamp().div_euclid(3600),
        };
        let mut held = self.lock();
        if held.closed {
            return false;
        }
        let full = held.counts.len() >= self.max_buckets
            || held.counts.len() + held.writing_buckets >= 2 * self.max_buckets;
        match held.counts.entry(bucket) {
            Entry::Occupied(mut entry) => entry.get_mut().add(counts),
            Entry::Vacant(_) if full => return false,
            Entry::Vacant(entry) => {
                entry.insert(counts);
            }
        }
        held.clicks += 1;
        true
    }

    /// Clicks counted here and not yet written (held, or being written).
    pub(crate) fn waiting(&self) -> u64 {
        let held = self.lock();
        held.clicks + held.writing
    }

    /// (Link, hour) buckets held now.
    pub(crate) fn buckets(&self) -> usize {
        self.lock().counts.len()
    }

    /// Takes every count out, for writing.
    pub(crate) fn take(&self) -> Taken {
        let mut held = self.lock();
        let clicks = std::mem::take(&mut held.clicks);
        held.writing += clicks;
        held.writing_buckets += held.counts.len();
        Taken {
            counts: std::mem::take(&mut held.counts),
            clicks,
        }
    }

    /// Takes every count out for the last time: what is added after is lost.
    pub(crate) fn close(&self) -> Taken {
        let mut held = self.lock();
        held.closed = true;
        let clicks = std::mem::take(&mut held.clicks);
        held.writing += clicks;
        held.writing_buckets += held.counts.len();
        Taken {
            counts: std::mem::take(&mut held.counts),
            clicks,
        }
    }

    /// Gives back counts a flush could not write, beyond the bound if need be (they are
    /// counted already; at most the bound more, see [`Self::add`]).
    pub(crate) fn merge_back(&self, taken: Taken) {
        let mut held = self.lock();
        held.writing_buckets = held.writing_buckets.saturating_sub(taken.counts.len());
        if held.counts.is_empty() {
            held.counts = taken.counts;
        } else {
            for (bucket, counts) in taken.counts {
                held.counts.entry(bucket).or_default().add(counts);
            }
        }
        held.clicks += taken.clicks;
        held.writing -= taken.clicks;
    }

    /// Forgets the clicks of a write under way that is given up on (it will not settle);
    /// returns how many.
    pub(crate) fn abandon_writing(&self) -> u64 {
        let mut held = self.lock();
        held.writing_buckets = 0;
        std::mem::take(&mut held.writing)
    }

    /// The write of `taken` is over: written, in doubt or given up.
    pub(crate) fn settled(&self, taken: &Taken) {
        let mut held = self.lock();
        held.writing -= taken.clicks;
        held.writing_buckets = held.writing_buckets.saturating_sub(taken.counts.len());
    }
}

/// Why counts were not written.
#[derive(Debug)]
pub(crate) enum Unwritten {
    /// Certainly not committed: they can be written again.
    NotWritten(sqlx::Error),
    /// The commit got no answer: PostgreSQL may have committed them.
    InDoubt(sqlx::Error),
}

/// Adds `taken` to the rollups, in one transaction. `committing` is set once the commit is
/// sent, for a caller that cuts the write off to tell whether it may have committed.
pub(crate) async fn write(
    db: &PgPool,
    taken: &Taken,
    committing: &std::sync::atomic::AtomicBool,
) -> Result<(), Unwritten> {
    let mut link_ids = Vec::with_capacity(taken.counts.len());
    let mut hours = Vec::with_capacity(taken.counts.len());
    let mut clicks = Vec::with_capacity(taken.counts.len());
    let mut qr_scans = Vec::with_capacity(taken.counts.len());
    let mut bots = Vec::with_capacity(taken.counts.len());
    for (bucket, counts) in &taken.counts {
        link_ids.push(bucket.link_id);
        hours.push(bucket.hour);
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        clicks.push(as_i64(counts.clicks));
        qr_scans.push(as_i64(counts.qr_scans));
        bots.push(as_i64(counts.bots));
    }
    let mut tx = db.begin().await.map_err(Unwritten::NotWritten)?;
    // One writer of the links' rollups at a time (the counter's lock): the 7-day window is
    // moved first, so these clicks are added to it by the start they will be taken off by.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(rollup::LINKS_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(Unwritten::NotWritten)?;
    rollup::move_recent_window(&mut tx)
        .await
        .map_err(Unwritten::NotWritten)?;
    sqlx::query(&WRITE)
        .bind(&link_ids)
        .bind(&hours)
        .bind(&clicks)
        .bind(&qr_scans)
        .bind(&bots)
        .execute(&mut *tx)
        .await
        .map_err(Unwritten::NotWritten)?;
    committing.store(true, std::sync::atomic::Ordering::Relaxed);
    tx.commit().await.map_err(|err| match err {
        // PostgreSQL answered: it did not commit.
        sqlx::Error::Database(_) => Unwritten::NotWritten(err),
        other => Unwritten::InDoubt(other),
    })
}

/// The counts of (link, hour) buckets, each once, into the link's and its workspace's hourly
/// stats, the link's day for its workspace, its tags' hours and days and the link's totals, as
/// `rollup.rs` counts them (uniques excepted). A bucket of a
/// link that does not exist counts for nothing, as at ingest.
static WRITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "
WITH overflow AS MATERIALIZED (
    SELECT l.workspace_id, o.link_id, to_timestamp(o.hour * 3600) AS hour, o.clicks,
           o.qr_scans, o.bots
    FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
             AS o(link_id, hour, clicks, qr_scans, bots)
         JOIN links l ON l.id = o.link_id
), link_stats AS (
    INSERT INTO link_stats_hourly (workspace_id, link_id, hour, clicks, qr_scans, bots,
                                   uniques, details_shed)
    SELECT workspace_id, link_id, hour, clicks, qr_scans, bots, 0, clicks + qr_scans + bots
    FROM overflow
    ORDER BY 1, 2, 3
    ON CONFLICT (workspace_id, link_id, hour) DO UPDATE SET
        clicks = link_stats_hourly.clicks + EXCLUDED.clicks,
        qr_scans = link_stats_hourly.qr_scans + EXCLUDED.qr_scans,
        bots = link_stats_hourly.bots + EXCLUDED.bots,
        details_shed = link_stats_hourly.details_shed + EXCLUDED.details_shed
), workspace_stats AS (
    INSERT INTO workspace_stats_hourly (workspace_id, hour, clicks, qr_scans, bots, uniques,
                                        details_shed)
    SELECT workspace_id, hour, sum(clicks), sum(qr_scans), sum(bots), 0,
           sum(clicks + qr_scans + bots)
    FROM overflow
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (workspace_id, hour) DO UPDATE SET
        clicks = workspace_stats_hourly.clicks + EXCLUDED.clicks,
        qr_scans = workspace_stats_hourly.qr_scans + EXCLUDED.qr_scans,
        bots = workspace_stats_hourly.bots + EXCLUDED.bots,
        details_shed = workspace_stats_hourly.details_shed + EXCLUDED.details_shed
), workspace_link_days AS (
    INSERT INTO workspace_link_daily (workspace_id, day, link_id, hits, bots)
    SELECT workspace_id, (hour AT TIME ZONE 'UTC')::date, link_id,
           sum(clicks + qr_scans), sum(bots)
    FROM overflow
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (workspace_id, day, link_id) DO UPDATE SET
        hits = workspace_link_daily.hits + EXCLUDED.hits,
        bots = workspace_link_daily.bots + EXCLUDED.bots
), {tags}
UPDATE link_click_totals t SET total = t.total + c.total, recent = t.recent + c.recent
FROM (
    SELECT workspace_id, link_id, sum(clicks + qr_scans) AS total,
           coalesce(sum(clicks + qr_scans) FILTER (
               WHERE hour >= (SELECT start FROM link_clicks_window)), 0) AS recent
    FROM overflow GROUP BY 1, 2
) AS c
WHERE (t.workspace_id, t.link_id) = (c.workspace_id, c.link_id) AND c.total > 0",
        tags = super::tags::count_sql(
            "(SELECT workspace_id, link_id, hour, clicks + qr_scans AS hits, bots FROM overflow)"
        ),
    )
});

#[cfg(test)]
mod tests {
    use shortlink::ShortCode;
    use shortlink::edge::ClickSource;
    use time::OffsetDateTime;

    use super::*;

    fn click(link_id: i64, user_agent: Option<&str>, qr: bool, head: bool) -> ClickEvent {
        ClickEvent {
            id: "x".to_owned(),
            link_id,
            code: ShortCode::parse("abc").expect("code"),
            at: OffsetDateTime::now_utc(),
            country: None,
            referrer: None,
            user_agent: user_agent.map(str::to_owned),
            qr,
            head,
            source: ClickSource::Origin,
            visitor: None,
            variant: None,
        }
    }

    const FIREFOX: Option<&str> = Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0");

    #[test]
    fn a_click_counts_where_ingest_would_count_it() {
        let cases = [
            (click(1, FIREFOX, false, false), (1, 0, 0)),
            (click(1, FIREFOX, true, false), (0, 1, 0)),
            (click(1, FIREFOX, false, true), (0, 0, 1)),
            (click(1, Some("Googlebot/2.1"), true, false), (0, 0, 1)),
            (click(1, None, false, false), (0, 0, 1)),
        ];
        for (event, (clicks, qr_scans, bots)) in cases {
            let want = Counts {
                clicks,
                qr_scans,
                bots,
            };
            assert_eq!(Counts::of(&Click::of(&event)), want, "{event:?}");
        }
    }

    #[test]
    fn the_map_is_bounded_in_buckets_but_not_in_clicks_of_known_ones() {
        let overflow = Overflow::new(3);
        for link in 0..10 {
            let counted = overflow.add(&Click::of(&click(link, FIREFOX, false, false)));
            assert_eq!(counted, link < 3, "link {link}");
        }
        for _ in 0..100 {
            assert!(overflow.add(&Click::of(&click(2, FIREFOX, false, false))));
        }
        assert_eq!((overflow.buckets(), overflow.waiting()), (3, 103));
    }

    #[test]
    fn counts_merged_back_add_up_with_those_counted_meanwhile() {
        let overflow = Overflow::new(10);
        overflow.add(&Click::of(&click(1, FIREFOX, false, false)));
        overflow.add(&Click::of(&click(2, FIREFOX, true, false)));
        let taken = overflow.take();
        assert_eq!(
            (taken.clicks, overflow.waiting(), overflow.buckets()),
            (2, 2, 0)
        );
        overflow.add(&Click::of(&click(1, FIREFOX, false, false)));
        overflow.merge_back(taken);
        let again = overflow.take();
        assert_eq!(again.clicks, 3);
        let total: u64 = again
            .counts
            .values()
            .map(|c| c.clicks + c.qr_scans + c.bots)
            .sum();
        assert_eq!(total, 3);
        assert_eq!(
            again.counts.values().map(|c| c.clicks).sum::<u64>(),
            2,
            "{again:?}"
        );
    }

    #[test]
    fn flushes_failing_in_a_row_keep_the_map_within_twice_its_bound() {
        let overflow = Overflow::new(2);
        let add = |link| overflow.add(&Click::of(&click(link, FIREFOX, false, false)));
        let mut links = 0..;
        let mut add_new = || add(links.next().expect("endless"));
        assert!(
            add_new() && add_new() && !add_new(),
            "the bound while nothing is written"
        );
        for failure in 1..=5 {
            let taken = overflow.take();
            // While a write is out, new buckets up to twice the bound in all.
            while add_new() {}
            overflow.merge_back(taken);
            assert_eq!(overflow.buckets(), 4, "after failed flush {failure}");
        }
        // Known buckets still count, whatever the bound.
        assert!(add(0));
        let taken = overflow.take();
        overflow.settled(&taken);
        assert!(
            add_new() && add_new() && !add_new(),
            "the bound once written"
        );
    }

    #[test]
    fn a_closed_map_counts_nothing_more() {
        let overflow = Overflow::new(10);
        assert!(overflow.add(&Click::of(&click(1, FIREFOX, false, false))));
        let taken = overflow.close();
        assert_eq!(taken.clicks, 1);
        assert!(!overflow.add(&Click::of(&click(1, FIREFOX, false, false))));
        overflow.settled(&taken);
        assert_eq!(overflow.waiting(), 0);
    }
}
