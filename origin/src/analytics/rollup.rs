//! Where clicks are counted: the hourly rollups and breakdowns the stats API reads.
//!
//! Ingest (`store.rs`) leaves each new click in `clicks_pending` twice (for its link and for
//! the account), in the transaction that stores it. Here one counter at a time for each of
//! the two halves ([`Part`]; an advisory lock, across origins) takes a batch of pending
//! clicks, adds them to the rollups and deletes them, in one transaction. The rollups
//! plus the pending clicks therefore always equal a `GROUP BY` over the raw clicks, and no
//! click is counted twice or lost. Concurrent ingests share no rows and never wait on each
//! other; under load each batch holds everything that arrived during the last one, so the
//! many clicks of a busy link and hour cost one rollup row write, not one per ingest.

use std::time::Duration;

use sqlx::PgPool;

/// The `link_id` of the rollup rows that count the whole account.
pub(crate) const ACCOUNT: i64 = 0;
/// Most pending clicks counted in one transaction.
const BATCH: i64 = 50_000;
/// How often a counter looks for clicks stored by other origins (its own wake it at once).
const POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The two halves of the pending clicks, counted by two counters in parallel. Ingest queues
/// every click twice, once for its link and once for the account (link 0); the halves touch
/// different rollup rows (every rollup key starts with the link), so their counters never
/// wait on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Account,
    Links,
}

impl Part {
    pub(crate) const ALL: [Self; 2] = [Self::Account, Self::Links];

    /// The advisory lock that lets one counter of this part run at a time, across origins.
    fn lock_key(self) -> &'static str {
        match self {
            Self::Account => "kurz rollups: account",
            Self::Links => "kurz rollups: links",
        }
    }
}

/// Takes up to `$1` pending clicks of the account (`$2` true; `$3` is [`ACCOUNT`]) or of the
/// links (false), and
/// adds them to the rollups, all in the database (the clicks never travel to the origin and
/// back). Every click counts in its UTC hour:
/// - `link_stats_hourly`: clicks, QR scans and bots; and the uniques of the visitors new
///   that UTC day for that link (those `visitors_daily` did not hold yet), in the hour of
///   their first visit in this batch;
/// - `link_breakdown_hourly` and `link_breakdown_daily`: hits and bots per value of each
///   dimension (one pass over the batch for all five, with grouping sets).
///
/// Only the holder of the part's advisory lock writes its `visitors_daily` rows, so new
/// visitors are found by an anti-join and inserted plainly, which is cheaper than
/// `ON CONFLICT`. The pending table has no key: rows are taken by physical position, which
/// is stable because they are never updated, and only the lock holder deletes them.
/// Returns how many clicks were counted.
const COUNT_PENDING: &str = "
WITH batch AS (
    DELETE FROM clicks_pending
    WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM clicks_pending WHERE (link_id = $3) = $2 LIMIT $1
    ))
    RETURNING *
), clicks AS (
    SELECT link_id, date_trunc('hour', at, 'UTC') AS hour,
           (at AT TIME ZONE 'UTC')::date AS day, coalesce(country, 'unknown') AS country,
           referrer_host, device, browser, os, bot, qr, visitor
    FROM batch
), first_visits AS (
    SELECT link_id, day, visitor, min(hour) AS hour
    FROM clicks
    WHERE NOT bot AND visitor IS NOT NULL
    GROUP BY 1, 2, 3
), new_visitors AS (
    INSERT INTO visitors_daily (link_id, day, visitor)
    SELECT link_id, day, visitor FROM first_visits f
    WHERE NOT EXISTS (SELECT FROM visitors_daily v
                      WHERE (v.link_id, v.day, v.visitor) = (f.link_id, f.day, f.visitor))
    ORDER BY 1, 2, 3
    RETURNING link_id, day, visitor
), uniques AS (
    SELECT f.link_id, f.hour, count(*) AS uniques
    FROM new_visitors JOIN first_visits f USING (link_id, day, visitor)
    GROUP BY 1, 2
), stats AS (
    INSERT INTO link_stats_hourly (link_id, hour, clicks, qr_scans, bots, uniques)
    SELECT c.link_id, c.hour, c.clicks, c.qr_scans, c.bots, coalesce(u.uniques, 0)
    FROM (
        SELECT link_id, hour,
               count(*) FILTER (WHERE NOT bot AND NOT qr) AS clicks,
               count(*) FILTER (WHERE NOT bot AND qr) AS qr_scans,
               count(*) FILTER (WHERE bot) AS bots
        FROM clicks GROUP BY 1, 2
    ) AS c LEFT JOIN uniques u USING (link_id, hour)
    ORDER BY 1, 2
    ON CONFLICT (link_id, hour) DO UPDATE SET
        clicks = link_stats_hourly.clicks + EXCLUDED.clicks,
        qr_scans = link_stats_hourly.qr_scans + EXCLUDED.qr_scans,
        bots = link_stats_hourly.bots + EXCLUDED.bots,
        uniques = link_stats_hourly.uniques + EXCLUDED.uniques
), breakdown AS (
    SELECT link_id, hour,
           CASE WHEN grouping(referrer_host) = 0 THEN 'referrer'
                WHEN grouping(country) = 0 THEN 'country'
                WHEN grouping(device) = 0 THEN 'device'
                WHEN grouping(browser) = 0 THEN 'browser'
                ELSE 'os' END AS dimension,
           coalesce(referrer_host, country, device, browser, os) AS value,
           count(*) FILTER (WHERE NOT bot) AS hits, count(*) FILTER (WHERE bot) AS bots
    FROM clicks
    GROUP BY link_id, hour, GROUPING SETS ((referrer_host), (country), (device), (browser), (os))
), breakdown_hourly AS (
    INSERT INTO link_breakdown_hourly (link_id, dimension, hour, value, hits, bots)
    SELECT link_id, dimension, hour, value, hits, bots FROM breakdown ORDER BY 1, 2, 3, 4
    ON CONFLICT (link_id, hour, dimension, value) DO UPDATE SET
        hits = link_breakdown_hourly.hits + EXCLUDED.hits,
        bots = link_breakdown_hourly.bots + EXCLUDED.bots
), breakdown_daily AS (
    INSERT INTO link_breakdown_daily (link_id, dimension, day, value, hits, bots)
    SELECT link_id, dimension, (hour AT TIME ZONE 'UTC')::date, value, sum(hits), sum(bots)
    FROM breakdown GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (link_id, day, dimension, value) DO UPDATE SET
        hits = link_breakdown_daily.hits + EXCLUDED.hits,
        bots = link_breakdown_daily.bots + EXCLUDED.bots
)
SELECT count(*) FROM batch";

/// What a counter does when another one of its part is at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    /// Leave it the work (the background counters of several origins).
    GiveWay,
    /// Wait for it to finish, then count what is left.
    Wait,
}

/// Counts up to [`BATCH`] pending clicks of `part` into the rollups; returns how many, or
/// `None` when another counter of the part is at work and `busy` says to give way.
async fn count_pending(db: &PgPool, part: Part, busy: Busy) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let lock = match busy {
        Busy::GiveWay => "SELECT pg_try_advisory_xact_lock(hashtext($1))",
        Busy::Wait => "SELECT pg_advisory_xact_lock(hashtext($1)) IS NOT NULL",
    };
    let ours: bool = sqlx::query_scalar(lock)
        .bind(part.lock_key())
        .fetch_one(&mut *tx)
        .await?;
    if !ours {
        return Ok(None);
    }
    let counted: i64 = sqlx::query_scalar(COUNT_PENDING)
        .bind(BATCH)
        .bind(part == Part::Account)
        .bind(ACCOUNT)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(counted.unsigned_abs()))
}

/// Counts pending clicks until none are left, waiting for any other counter to finish.
pub(crate) async fn count_all_pending(db: &PgPool) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    for part in Part::ALL {
        while let Some(counted) = count_pending(db, part, Busy::Wait).await? {
            // The account's copies are not clicks of their own.
            if part == Part::Links {
                total += counted;
            }
            if counted < BATCH as u64 {
                break;
            }
        }
    }
    Ok(total)
}

/// Counts the pending clicks of `part` as they come: at once when `wake` is notified (this
/// origin stored some), at least every second (other origins did), back to back while a
/// backlog lasts.
pub(crate) async fn count_forever(
    db: PgPool,
    part: Part,
    wake: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match count_pending(&db, part, Busy::GiveWay).await {
            Ok(Some(counted)) if counted == BATCH as u64 => continue,
            Ok(_) => {
                backoff = Duration::from_millis(100);
                let _ = tokio::time::timeout(POLL, wake.notified()).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "cannot count clicks into the rollups");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
