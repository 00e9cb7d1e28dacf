//! Where clicks are counted: the hourly rollups and breakdowns the stats API reads.
//!
//! Ingest (`store.rs`) leaves each new click in `clicks_pending`, in the transaction that
//! stores it. Here one counter at a time (an advisory lock, across origins) takes a batch of
//! pending clicks, adds them to the rollups and deletes them, in one transaction. The rollups
//! plus the pending clicks therefore always equal a `GROUP BY` over the raw clicks, and no
//! click is counted twice or lost. Concurrent ingests share no rows and never wait on each
//! other; under load each batch holds everything that arrived during the last one, so the
//! many clicks of a busy link and hour cost one rollup row write, not one per ingest.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use time::{Date, OffsetDateTime, Time, UtcOffset};

/// The `link_id` of the rollup rows that count the whole account.
pub(crate) const ACCOUNT: i64 = 0;
/// Most pending clicks counted in one transaction.
pub(crate) const BATCH: i64 = 50_000;
/// How often a counter looks for clicks stored by other origins (its own wake it at once).
const POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A stored click waiting to be counted: what the rollups need of it.
#[derive(Debug, sqlx::FromRow)]
struct Pending {
    link_id: i64,
    at: OffsetDateTime,
    country: Option<String>,
    referrer_host: String,
    device: String,
    browser: String,
    os: String,
    bot: bool,
    qr: bool,
    visitor: Option<String>,
}

/// Counts up to `limit` pending clicks into the rollups; returns how many, or `None` when
/// another counter is at work.
pub(crate) async fn count_pending(db: &PgPool, limit: i64) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let ours: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('kurz rollups'))")
            .fetch_one(&mut *tx)
            .await?;
    if !ours {
        return Ok(None);
    }
    // The table has no key: rows are taken by physical position, which is stable because
    // they are never updated, and only the lock holder deletes.
    let pending: Vec<Pending> = sqlx::query_as(
        "DELETE FROM clicks_pending
         WHERE ctid = ANY(ARRAY(SELECT ctid FROM clicks_pending LIMIT $1))
         RETURNING link_id, at, country, referrer_host, device, browser, os, bot, qr, visitor",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if !pending.is_empty() {
        update_rollups(&mut tx, &pending).await?;
    }
    tx.commit().await?;
    Ok(Some(pending.len() as u64))
}

/// Counts pending clicks until none are left (or another counter is at work).
pub(crate) async fn count_all_pending(db: &PgPool) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    while let Some(counted) = count_pending(db, BATCH).await? {
        total += counted;
        if counted < BATCH as u64 {
            break;
        }
    }
    Ok(total)
}

/// Counts pending clicks as they come: at once when `wake` is notified (this origin stored
/// some), at least every second (other origins did), back to back while a backlog lasts.
pub(crate) async fn count_forever(db: PgPool, wake: std::sync::Arc<tokio::sync::Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match count_pending(&db, BATCH).await {
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

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    clicks: i64,
    qr_scans: i64,
    bots: i64,
    uniques: i64,
}

type BreakdownKey<'a> = (i64, &'static str, OffsetDateTime, &'a str);

/// Adds `clicks` to the hourly rollups and breakdowns, for their link and the account. Rows
/// are written table by table, links before the account, keys sorted.
async fn update_rollups(tx: &mut PgConnection, clicks: &[Pending]) -> Result<(), sqlx::Error> {
    let mut stats: BTreeMap<(i64, OffsetDateTime), Counts> = BTreeMap::new();
    let mut breakdown: BTreeMap<BreakdownKey<'_>, (i64, i64)> = BTreeMap::new();
    // Each (link, day, visitor) with the hour of its first visit in this batch.
    let mut visitors: HashMap<(i64, Date, &str), OffsetDateTime> = HashMap::new();
    for click in clicks {
        let at = click.at.to_offset(UtcOffset::UTC);
        let hour = at.replace_time(Time::from_hms(at.hour(), 0, 0).unwrap_or(Time::MIDNIGHT));
        let country = click.country.as_deref().unwrap_or("unknown");
        for link in [click.link_id, ACCOUNT] {
            let counts = stats.entry((link, hour)).or_default();
            match (click.bot, click.qr) {
                (true, _) => counts.bots += 1,
                (false, true) => counts.qr_scans += 1,
                (false, false) => counts.clicks += 1,
            }
            for (dimension, value) in [
                ("referrer", click.referrer_host.as_str()),
                ("country", country),
                ("device", click.device.as_str()),
                ("browser", click.browser.as_str()),
                ("os", click.os.as_str()),
            ] {
                let entry = breakdown.entry((link, dimension, hour, value)).or_default();
                if click.bot {
                    entry.1 += 1;
                } else {
                    entry.0 += 1;
                }
            }
            if let (false, Some(visitor)) = (click.bot, click.visitor.as_deref()) {
                let first = visitors.entry((link, at.date(), visitor)).or_insert(hour);
                *first = (*first).min(hour);
            }
        }
    }
    count_new_visitors(&mut *tx, &visitors, &mut stats).await?;
    upsert_breakdowns(&mut *tx, breakdown).await?;
    upsert_stats(&mut *tx, stats).await?;
    Ok(())
}

/// Records the visitors of `visitors` (each with the hour of its first visit in this batch)
/// as seen on their day; those new that day count as uniques of that hour in `stats`.
async fn count_new_visitors(
    tx: &mut PgConnection,
    visitors: &HashMap<(i64, Date, &str), OffsetDateTime>,
    stats: &mut BTreeMap<(i64, OffsetDateTime), Counts>,
) -> Result<(), sqlx::Error> {
    if visitors.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<_> = visitors.keys().copied().collect();
    keys.sort_unstable();
    let new: Vec<(i64, Date, String)> = sqlx::query_as(
        "INSERT INTO visitors_daily (link_id, day, visitor)
         SELECT * FROM UNNEST($1::bigint[], $2::date[], $3::text[])
         ON CONFLICT DO NOTHING
         RETURNING link_id, day, visitor",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    for (link, day, visitor) in &new {
        if let Some(hour) = visitors.get(&(*link, *day, visitor.as_str())) {
            stats.entry((*link, *hour)).or_default().uniques += 1;
        }
    }
    Ok(())
}

/// Adds counts to the hourly stats rollup.
async fn upsert_stats(
    tx: &mut PgConnection,
    rows: BTreeMap<(i64, OffsetDateTime), Counts>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (mut links, mut hours, mut clicks, mut qr_scans, mut bots, mut uniques) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for ((link, hour), counts) in rows {
        links.push(link);
        hours.push(hour);
        clicks.push(counts.clicks);
        qr_scans.push(counts.qr_scans);
        bots.push(counts.bots);
        uniques.push(counts.uniques);
    }
    sqlx::query(
        "INSERT INTO link_stats_hourly (link_id, hour, clicks, qr_scans, bots, uniques)
         SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[],
                              $5::bigint[], $6::bigint[])
         ON CONFLICT (link_id, hour) DO UPDATE SET
             clicks = link_stats_hourly.clicks + EXCLUDED.clicks,
             qr_scans = link_stats_hourly.qr_scans + EXCLUDED.qr_scans,
             bots = link_stats_hourly.bots + EXCLUDED.bots,
             uniques = link_stats_hourly.uniques + EXCLUDED.uniques",
    )
    .bind(&links)
    .bind(&hours)
    .bind(&clicks)
    .bind(&qr_scans)
    .bind(&bots)
    .bind(&uniques)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds counts to both breakdown rollups (hourly, and daily summing the hours of each day).
async fn upsert_breakdowns(
    tx: &mut PgConnection,
    rows: BTreeMap<BreakdownKey<'_>, (i64, i64)>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (mut links, mut dimensions, mut hours, mut values, mut hits, mut bots) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for ((link, dimension, hour, value), (h, b)) in rows {
        links.push(link);
        dimensions.push(dimension);
        hours.push(hour);
        values.push(value);
        hits.push(h);
        bots.push(b);
    }
    sqlx::query(
        "WITH input AS (
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::text[],
                                  $5::bigint[], $6::bigint[])
                 AS t(link_id, dimension, hour, value, hits, bots)
         ), hourly AS (
             INSERT INTO link_breakdown_hourly (link_id, dimension, hour, value, hits, bots)
             SELECT * FROM input
             ON CONFLICT (link_id, dimension, hour, value) DO UPDATE SET
                 hits = link_breakdown_hourly.hits + EXCLUDED.hits,
                 bots = link_breakdown_hourly.bots + EXCLUDED.bots
         )
         INSERT INTO link_breakdown_daily (link_id, dimension, day, value, hits, bots)
         SELECT link_id, dimension, (hour AT TIME ZONE 'UTC')::date, value, sum(hits), sum(bots)
         FROM input
         GROUP BY 1, 2, 3, 4
         ORDER BY 1, 2, 3, 4
         ON CONFLICT (link_id, dimension, day, value) DO UPDATE SET
             hits = link_breakdown_daily.hits + EXCLUDED.hits,
             bots = link_breakdown_daily.bots + EXCLUDED.bots",
    )
    .bind(&links)
    .bind(&dimensions)
    .bind(&hours)
    .bind(&values)
    .bind(&hits)
    .bind(&bots)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
