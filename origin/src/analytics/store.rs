//! Where a click is stored: enriched, inserted idempotently on the event id, and counted into
//! the rollups in the same transaction, so the rollups always equal a `GROUP BY` over the raw
//! clicks that were ever stored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use shortlink::edge::{ClickEvent, ClickSource};
use sqlx::{PgConnection, PgPool};
use time::{Date, Duration, Month, OffsetDateTime, Time, UtcOffset};

use super::enrich::{Enriched, enrich, referrer_host};

/// The `link_id` of the rollup rows that count the whole account.
pub(crate) const ACCOUNT: i64 = 0;
/// Events dated further ahead than this are refused (a wrong clock, or a forgery).
const MAX_FUTURE: Duration = Duration::hours(1);

/// Months whose partition is known to exist, so that only a new month costs DDL.
#[derive(Debug, Default)]
pub(crate) struct Partitions {
    known: Mutex<HashSet<(i32, u8)>>,
}

impl Partitions {
    fn missing(&self, months: &HashSet<(i32, u8)>) -> Vec<(i32, u8)> {
        let known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        months
            .iter()
            .filter(|m| !known.contains(m))
            .copied()
            .collect()
    }

    fn learn(&self, months: &[(i32, u8)]) {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(months);
    }

    pub(crate) fn forget(&self, month: (i32, u8)) {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&month);
    }
}

/// What one ingest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stored {
    /// Events new to the database (the rest were already stored, or refused).
    pub(crate) inserted: u64,
    /// Events refused for their time: too far ahead, or older than the retention.
    pub(crate) refused: u64,
}

/// One event, enriched, with the UTC hour and day it counts in.
struct Row<'a> {
    event: &'a ClickEvent,
    enriched: Enriched,
    hour: OffsetDateTime,
    day: Date,
}

/// Stores `events` and updates the rollups, in one transaction.
pub(crate) async fn store(
    db: &PgPool,
    partitions: &Partitions,
    events: &[ClickEvent],
    retention: Duration,
    now: OffsetDateTime,
) -> Result<Stored, sqlx::Error> {
    let oldest = now - retention;
    let mut seen = HashSet::new();
    // User agents repeat: a batch parses each distinct one once.
    let mut agents: HashMap<(Option<&str>, bool), Enriched> = HashMap::new();
    let mut refused = 0;
    let rows: Vec<Row<'_>> = events
        .iter()
        .filter(|event| {
            let in_range = event.at <= now + MAX_FUTURE && event.at > oldest;
            refused += u64::from(!in_range);
            in_range
        })
        // A batch may repeat an event; the first one counts.
        .filter(|event| seen.insert((event.id.as_str(), event.at)))
        .map(|event| {
            let at = event.at.to_offset(UtcOffset::UTC);
            let agent = (event.user_agent.as_deref(), event.head);
            let mut enriched = agents
                .entry(agent)
                .or_insert_with(|| enrich(agent.0, None, agent.1))
                .clone();
            enriched.referrer_host = referrer_host(event.referrer.as_deref());
            Row {
                event,
                enriched,
                hour: at.replace_time(Time::from_hms(at.hour(), 0, 0).unwrap_or(Time::MIDNIGHT)),
                day: at.date(),
            }
        })
        .collect();
    if rows.is_empty() {
        return Ok(Stored {
            inserted: 0,
            refused,
        });
    }

    let mut tx = db.begin().await?;
    let months: HashSet<(i32, u8)> = rows
        .iter()
        .map(|r| (r.day.year(), r.day.month() as u8))
        .collect();
    let created = partitions.missing(&months);
    if !created.is_empty() {
        create_partitions(&mut tx, &created).await?;
    }
    let inserted_ids = insert_clicks(&mut tx, &rows).await?;
    let new_rows: Vec<&Row<'_>> = rows
        .iter()
        .filter(|row| inserted_ids.contains(row.event.id.as_str()))
        .collect();
    if !new_rows.is_empty() {
        update_rollups(&mut tx, &new_rows).await?;
    }
    tx.commit().await?;
    partitions.learn(&created);
    Ok(Stored {
        inserted: new_rows.len() as u64,
        refused,
    })
}

/// The partition of clicks for a month: `clicks_2026_11`.
pub(crate) fn partition_name((year, month): (i32, u8)) -> String {
    format!("clicks_{year:04}_{month:02}")
}

fn month_start((year, month): (i32, u8)) -> Option<Date> {
    Date::from_calendar_date(year, Month::try_from(month).ok()?, 1).ok()
}

pub(crate) fn next_month((year, month): (i32, u8)) -> (i32, u8) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

async fn create_partitions(tx: &mut PgConnection, months: &[(i32, u8)]) -> Result<(), sqlx::Error> {
    // Two origins seeing a new month at once would race on the catalogue: take turns.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('kurz clicks partitions'))")
        .execute(&mut *tx)
        .await?;
    for &month in months {
        let (Some(from), Some(to)) = (month_start(month), month_start(next_month(month))) else {
            continue;
        };
        // Names and bounds are made here from numbers, never from input text.
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF clicks FOR VALUES FROM ('{from} 00:00:00+00') TO ('{to} 00:00:00+00')",
            partition_name(month)
        );
        sqlx::query(&ddl).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Inserts the rows that are new; returns their ids.
async fn insert_clicks(
    tx: &mut PgConnection,
    rows: &[Row<'_>],
) -> Result<HashSet<String>, sqlx::Error> {
    let column = |f: &dyn Fn(&Row<'_>) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<&str> = rows.iter().map(|r| r.event.id.as_str()).collect();
    let ats: Vec<OffsetDateTime> = rows.iter().map(|r| r.event.at).collect();
    let link_ids: Vec<i64> = rows.iter().map(|r| r.event.link_id).collect();
    let codes: Vec<&str> = rows.iter().map(|r| r.event.code.as_str()).collect();
    let sources: Vec<&str> = rows
        .iter()
        .map(|r| match r.event.source {
            ClickSource::Edge => "edge",
            ClickSource::Origin => "origin",
        })
        .collect();
    let countries = column(&|r| r.event.country.clone());
    let referrers = column(&|r| r.event.referrer.clone());
    let referrer_hosts: Vec<&str> = rows
        .iter()
        .map(|r| r.enriched.referrer_host.as_str())
        .collect();
    let user_agents = column(&|r| r.event.user_agent.clone());
    let devices: Vec<&str> = rows.iter().map(|r| r.enriched.device.as_str()).collect();
    let browsers: Vec<&str> = rows.iter().map(|r| r.enriched.browser.as_str()).collect();
    let oses: Vec<&str> = rows.iter().map(|r| r.enriched.os.as_str()).collect();
    let bots: Vec<bool> = rows.iter().map(|r| r.enriched.bot).collect();
    let qrs: Vec<bool> = rows.iter().map(|r| r.event.qr).collect();
    let heads: Vec<bool> = rows.iter().map(|r| r.event.head).collect();
    let visitors = column(&|r| r.event.visitor.clone());
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO clicks (id, at, link_id, code, source, country, referrer, referrer_host,
                             user_agent, device, browser, os, bot, qr, head, visitor)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::bigint[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                              $11::text[], $12::text[], $13::bool[], $14::bool[], $15::bool[],
                              $16::text[])
         ON CONFLICT (id, at) DO NOTHING
         RETURNING id",
    )
    .bind(&ids)
    .bind(&ats)
    .bind(&link_ids)
    .bind(&codes)
    .bind(&sources)
    .bind(&countries)
    .bind(&referrers)
    .bind(&referrer_hosts)
    .bind(&user_agents)
    .bind(&devices)
    .bind(&browsers)
    .bind(&oses)
    .bind(&bots)
    .bind(&qrs)
    .bind(&heads)
    .bind(&visitors)
    .fetch_all(&mut *tx)
    .await?;
    Ok(inserted.into_iter().collect())
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    clicks: i64,
    qr_scans: i64,
    bots: i64,
    uniques: i64,
}

/// Adds the new rows to the hourly rollups and breakdowns, for their link and the account.
/// Every ingest writes its rows in one global order (table by table, links before the
/// account, keys sorted), so concurrent ingests cannot deadlock.
async fn update_rollups(tx: &mut PgConnection, rows: &[&Row<'_>]) -> Result<(), sqlx::Error> {
    let mut stats: BTreeMap<(i64, OffsetDateTime), Counts> = BTreeMap::new();
    let mut breakdown: BTreeMap<BreakdownKey<'_>, (i64, i64)> = BTreeMap::new();
    // Each (link, day, visitor) with the hour of its first visit in this batch.
    let mut visitors: HashMap<(i64, Date, &str), OffsetDateTime> = HashMap::new();
    for row in rows {
        let bot = row.enriched.bot;
        let country = row
            .event
            .country
            .clone()
            .unwrap_or_else(|| "unknown".to_owned());
        for link in [row.event.link_id, ACCOUNT] {
            let counts = stats.entry((link, row.hour)).or_default();
            match (bot, row.event.qr) {
                (true, _) => counts.bots += 1,
                (false, true) => counts.qr_scans += 1,
                (false, false) => counts.clicks += 1,
            }
            for (dimension, value) in [
                ("referrer", row.enriched.referrer_host.clone()),
                ("country", country.clone()),
                ("device", row.enriched.device.as_str().to_owned()),
                ("browser", row.enriched.browser.clone()),
                ("os", row.enriched.os.clone()),
            ] {
                let entry = breakdown
                    .entry((link, dimension, row.hour, value))
                    .or_default();
                if bot { entry.1 += 1 } else { entry.0 += 1 }
            }
            if let (false, Some(visitor)) = (bot, row.event.visitor.as_deref()) {
                let first = visitors.entry((link, row.day, visitor)).or_insert(row.hour);
                *first = (*first).min(row.hour);
            }
        }
    }

    // Visitors new today (for that link) make the uniques of the hour they were first seen.
    if !visitors.is_empty() {
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
    }

    // The account's rows are in every batch: written last, so concurrent ingests wait for
    // each other only for the few rows of this tail, not for the whole transaction. The
    // order (links, then the account; sorted within each) is the same for every ingest, so
    // they cannot deadlock.
    let (account_breakdown, link_breakdown): (Vec<_>, Vec<_>) = breakdown
        .into_iter()
        .partition(|((link, ..), _)| *link == ACCOUNT);
    let (account_stats, link_stats): (Vec<_>, Vec<_>) = stats
        .into_iter()
        .partition(|((link, _), _)| *link == ACCOUNT);
    upsert_breakdowns(&mut *tx, link_breakdown).await?;
    upsert_stats(&mut *tx, link_stats).await?;
    upsert_breakdowns(&mut *tx, account_breakdown).await?;
    upsert_stats(&mut *tx, account_stats).await?;
    Ok(())
}

type BreakdownKey<'a> = (i64, &'a str, OffsetDateTime, String);

/// Adds counts to the hourly stats rollup; `rows` sorted by key.
async fn upsert_stats(
    tx: &mut PgConnection,
    rows: Vec<((i64, OffsetDateTime), Counts)>,
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

/// Adds counts to both breakdown rollups (hourly, and daily summing the hours of each day);
/// `rows` sorted by key.
async fn upsert_breakdowns(
    tx: &mut PgConnection,
    rows: Vec<(BreakdownKey<'_>, (i64, i64))>,
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
