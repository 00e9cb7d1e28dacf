//! Where a click is stored: enriched, inserted idempotently on the event id into its month's
//! partition, and queued in `clicks_pending` in the same transaction, for `rollup.rs` to
//! count into the rollups. The edge's clicks of limited links are counted against their
//! limits in that transaction too (`links::limit`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use shortlink::edge::{ClickEvent, ClickSource};
use sqlx::{PgConnection, PgPool};
use time::{Date, Duration, Month, OffsetDateTime, UtcOffset};

use super::enrich::{Enriched, enrich, referrer_host};
use crate::webhooks::clicks::{ClickHooks, Listed};
/// Events dated further ahead than this are refused (a wrong clock, or a forgery).
const MAX_FUTURE: Duration = Duration::hours(1);
/// Events are taken this long at least, whatever the retention: the edge's queue holds the
/// clicks of an origin outage up to 4 days. Raw clicks are kept as long
/// (`retention::drop_expired`), so a late click's second delivery is known as one.
pub(crate) const LATE_CLICKS: Duration = Duration::days(7);

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Stored {
    /// Events new to the database (the rest were already stored, or refused).
    pub(crate) inserted: u64,
    /// Events refused for their time: too far ahead, or older than the retention.
    pub(crate) refused: u64,
    /// Codes of links whose click limit the edge's clicks used up: exhausted in the same
    /// transaction, to be announced (`links::limit::announce`).
    pub(crate) exhausted: Vec<String>,
}

/// One event, enriched.
struct Row<'a> {
    event: &'a ClickEvent,
    enriched: Enriched,
}

/// Stores the new ones of `events` and queues them for counting (and for `link.clicked`
/// webhooks, see `webhooks/clicks.rs`), in one transaction; counts the new ones of the edge
/// against their links' click limits (exhausting those that reach it, with an outbox row when
/// `edge_outbox`).
pub(crate) async fn store(
    db: &PgPool,
    partitions: &Partitions,
    events: &[ClickEvent],
    retention: Duration,
    now: OffsetDateTime,
    edge_outbox: bool,
    hooks: &ClickHooks<'_>,
) -> Result<Stored, sqlx::Error> {
    let oldest = now - retention.max(LATE_CLICKS);
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
            let agent = (event.user_agent.as_deref(), event.head);
            let mut enriched = agents
                .entry(agent)
                .or_insert_with(|| enrich(agent.0, None, agent.1))
                .clone();
            enriched.referrer_host = referrer_host(event.referrer.as_deref());
            Row { event, enriched }
        })
        .collect();
    if rows.is_empty() {
        return Ok(Stored {
            refused,
            ..Stored::default()
        });
    }

    let months: HashSet<(i32, u8)> = rows
        .iter()
        .map(|r| r.event.at.to_offset(UtcOffset::UTC))
        .map(|at| (at.year(), at.month() as u8))
        .collect();
    let (inserted, exhausted) =
        match store_rows(db, partitions, &rows, &months, edge_outbox, hooks).await {
            // A partition this origin knew is gone (dropped by hand, or lost to a failover or a
            // restore): made again, once. Left to the caller, every click of its month would be
            // refused as the events' fault and parked until a restart.
            Err(err) if is_missing_partition(&err) => {
                tracing::warn!(error = %err, "a partition of clicks is gone: made again");
                months.iter().for_each(|&month| partitions.forget(month));
                store_rows(db, partitions, &rows, &months, edge_outbox, hooks).await?
            }
            stored => stored?,
        };
    Ok(Stored {
        inserted,
        refused,
        exhausted,
    })
}

/// Stores `rows`, of `months`, in one transaction: see [`store`].
async fn store_rows(
    db: &PgPool,
    partitions: &Partitions,
    rows: &[Row<'_>],
    months: &HashSet<(i32, u8)>,
    edge_outbox: bool,
    hooks: &ClickHooks<'_>,
) -> Result<(u64, Vec<String>), sqlx::Error> {
    let mut tx = db.begin().await?;
    let created = partitions.missing(months);
    if !created.is_empty() {
        create_partitions(&mut tx, &created).await?;
    }
    let (inserted, counted) = insert_clicks(&mut tx, rows, &hooks.clicked).await?;
    let exhausted =
        crate::links::limit::add_edge_clicks(&mut tx, &counted, edge_outbox, hooks.public_url)
            .await?;
    tx.commit().await?;
    partitions.learn(&created);
    Ok((inserted, exhausted))
}

/// Whether PostgreSQL found no partition of `clicks` for a row (SQLSTATE 23514, the class of
/// a value's refusal, but the fault of a partition gone missing, not of the event). Told by
/// the function that raised it, which PostgreSQL never translates: the message is in the
/// server's `lc_messages`, and a German server's was taken for the events' fault, every click
/// of the month parked until a restart.
fn is_missing_partition(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .is_some_and(|db| db.code() == "23514" && db.routine() == Some("ExecFindPartition"))
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

/// Makes the partitions of the month of `now` and of the next one, where missing, so that a
/// month's first clicks find theirs made. Making one locks the whole of `clicks` (an existing
/// one costs no lock): a store that made it behind a long reader of the table (a dump) would
/// hold every other store behind it ([`create_partitions`] takes turns). Made ahead, the
/// making gives up after 2 s instead, and is tried again (`retention::run_forever`).
pub(crate) async fn make_ahead(
    db: &PgPool,
    partitions: &Partitions,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let now = now.to_offset(UtcOffset::UTC);
    let this = (now.year(), now.month() as u8);
    let missing = partitions.missing(&HashSet::from([this, next_month(this)]));
    if missing.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *tx)
        .await?;
    create_partitions(&mut tx, &missing).await?;
    tx.commit().await?;
    partitions.learn(&missing);
    Ok(())
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

/// Inserts the rows that are new, and queues those for counting; returns how many, and the
/// new clicks of the edge that use up a limited link's clicks (people's GETs), per link:
/// (link id, clicks), whether the link is limited or not.
async fn insert_clicks<'a>(
    tx: &mut PgConnection,
    rows: &'a [Row<'_>],
    clicked: &Listed,
) -> Result<(u64, Vec<(i64, i64)>), sqlx::Error> {
    let column =
        |f: &dyn Fn(&'a Row<'_>) -> Option<&'a str>| rows.iter().map(f).collect::<Vec<_>>();
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
    let countries = column(&|r| r.event.country.as_deref());
    let referrers = column(&|r| r.event.referrer.as_deref());
    let referrer_hosts: Vec<&str> = rows
        .iter()
        .map(|r| r.enriched.referrer_host.as_str())
        .collect();
    let user_agents = column(&|r| r.event.user_agent.as_deref());
    let devices: Vec<&str> = rows.iter().map(|r| r.enriched.device.as_str()).collect();
    let browsers: Vec<&str> = rows.iter().map(|r| r.enriched.browser.as_str()).collect();
    let oses: Vec<&str> = rows.iter().map(|r| r.enriched.os).collect();
    let bots: Vec<bool> = rows.iter().map(|r| r.enriched.bot).collect();
    let qrs: Vec<bool> = rows.iter().map(|r| r.event.qr).collect();
    let heads: Vec<bool> = rows.iter().map(|r| r.event.head).collect();
    let visitors = column(&|r| r.event.visitor.as_deref());
    let variants: Vec<Option<i16>> = rows
        .iter()
        .map(|r| r.event.variant.map(i16::from))
        .collect();
    let (inserted, counted_links, counted_clicks): (i64, Vec<i64>, Vec<i64>) = sqlx::query_as(
        "WITH new AS (
             INSERT INTO clicks (id, at, link_id, code, source, country, referrer, referrer_host,
                                 user_agent, device, browser, os, bot, qr, head, visitor,
                                 variant)
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::bigint[], $4::text[],
                                  $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                                  $10::text[], $11::text[], $12::text[], $13::bool[],
                                  $14::bool[], $15::bool[], $16::text[], $17::smallint[])
             ON CONFLICT (id, at) DO NOTHING
             RETURNING id, link_id, code, at, source, country, referrer_host, device, browser,
                       os, bot, qr, head, visitor, variant
         ), hooked AS (
             -- For `link.clicked` webhooks (webhooks/clicks.rs): only when some workspace
             -- wants them ($18, checked once for the statement), of those listed in $19 (NULL:
             -- too many to list, look each up).
             INSERT INTO webhook_clicks_pending (workspace_id, click_id, link_id, code, at,
                                                 country, referrer_host, device, browser, os,
                                                 variant, qr, bot)
             SELECT l.workspace_id, new.id, new.link_id, new.code, new.at, new.country,
                    new.referrer_host, new.device, new.browser, new.os, new.variant, new.qr,
                    new.bot
             FROM new JOIN links l ON l.id = new.link_id
             WHERE $18::bool AND (l.workspace_id = ANY($19::bigint[]) OR ($19 IS NULL AND EXISTS (
                 SELECT 1 FROM webhook_endpoints e WHERE e.workspace_id = l.workspace_id
                 AND webhook_wants(e.enabled, e.events, 'link.clicked'))))
         ), queued AS (
             -- Once for the link and once for its workspace, both keyed by the link's
             -- workspace first: see rollup.rs. A click of a link that does not exist counts
             -- for nothing. (The one read of `links` outside links/store.rs: a part of this
             -- one statement.)
             INSERT INTO clicks_pending (link_id, workspace_id, link_workspace_id, at, country,
                                         referrer_host, device, browser, os, bot, qr, visitor,
                                         variant)
             SELECT new.link_id, half.workspace_id, l.workspace_id, at, country,
                    referrer_host, device, browser, os, bot, qr, visitor, variant
             FROM new JOIN links l ON l.id = new.link_id,
                  LATERAL (VALUES (NULL::bigint), (l.workspace_id)) AS half (workspace_id)
         ), limited AS (
             -- The edge's new clicks that use up a click of a limited link: people's GETs
             -- (a HEAD is a bot's too). The origin counted its own before it redirected.
             SELECT link_id, count(*) AS clicks FROM new
             WHERE source = 'edge' AND NOT bot AND NOT head
             GROUP BY link_id
         )
         SELECT (SELECT count(*) FROM new),
                ARRAY(SELECT link_id FROM limited ORDER BY link_id),
                ARRAY(SELECT clicks FROM limited ORDER BY link_id)",
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
    .bind(&variants)
    .bind(clicked.as_params().0)
    .bind(clicked.as_params().1)
    .fetch_one(&mut *tx)
    .await?;
    let counted = counted_links.into_iter().zip(counted_clicks).collect();
    Ok((inserted.unsigned_abs(), counted))
}
