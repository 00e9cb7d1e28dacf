//! Where clicks are counted: the hourly rollups and breakdowns the stats API reads.
//!
//! Ingest (`store.rs`) leaves each new click of a link in `clicks_pending` twice (for its
//! link, `workspace_id` NULL, and for its workspace; both rows carry the link's workspace in
//! `link_workspace_id`, which keys every rollup first), in the transaction that stores it. A
//! click whose link does not exist is stored raw and counted nowhere. Here one counter at a
//! time for each of the two halves ([`Part`]; an advisory lock, across origins) takes a batch of pending
//! clicks, adds them to the rollups and deletes them, in one transaction. The rollups
//! plus the pending clicks therefore always equal a `GROUP BY` over the raw clicks, and no
//! click is counted twice or lost; plus, in the hourly stats and the links' days and totals only, the
//! origin's clicks counted without a raw event when its recorder's queue was full
//! (`overflow.rs`, which takes the links' lock too). Concurrent ingests share no rows and never wait on each
//! other; under load each batch holds everything that arrived during the last one, so the
//! many clicks of a busy link and hour cost one rollup row write, not one per ingest.
//!
//! The daily breakdowns are the exception to "a batch adds to every rollup": a UTC day's are
//! summed from its hourly rows once the day is over (`closed_days.rs`, a step before each
//! batch), and batches add only the late clicks of days already over. Until its day is
//! summed, the stats read a day from the hourly rows. A batch of the current day's clicks
//! thus writes half the breakdown rows (on the analytics bench's live workload, 6.1 → 3.5 s
//! per 100,000 clicks in psql).

use std::time::Duration;

use shortlink::stats::OTHER_VALUES;
use sqlx::PgPool;

use super::{closed_days, tags};

/// Most pending clicks counted in one transaction. A batch writes a rollup row per (link,
/// bucket, value) it touches, however many of its clicks share it: while a backlog lasts,
/// bigger batches write fewer rows per click (on the analytics bench's live workload, 78 µs
/// of PostgreSQL time per click at 50,000, 57 µs at 100,000, 46 µs at 200,000, same run),
/// but hold the part's lock longer (the overflow's writer waits for the links' lock).
const BATCH: i64 = 100_000;
/// How often a counter looks for clicks stored by other origins (its own wake it at once).
const POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// After a batch of fewer than [`SMALL_BATCH`] clicks, the least time from its start to the
/// next one's: a small batch costs about as much as a bigger one (the statement's fixed work,
/// and a click of a link and hour already in the batch adds no row, [`count_pending_sql`]).
/// Under the origin bench's recording load, counters woken by every store counted ~700 clicks
/// a batch and took two thirds of the machine. Bigger batches, like a backlog, are counted
/// back to back.
const GATHER: Duration = Duration::from_millis(250);
const SMALL_BATCH: u64 = 10_000;

/// The advisory lock of the links' counter, also taken by the writer of overflowing clicks'
/// counts (`overflow.rs`), which adds to the same rollups and 7-day window.
pub(crate) const LINKS_LOCK: &str = "kurz rollups: links";

/// The two halves of the pending clicks, counted by two counters in parallel. Ingest queues
/// every click of a link twice, once for the link (`workspace_id` NULL) and once for its
/// workspace, both with the link's workspace in `link_workspace_id`;
/// each half has rollup tables of its own, so their counters never wait on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Workspaces,
    Links,
}

/// The rollup tables of a [`Part`], and the column their rows are keyed by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tables {
    /// The columns a row's owner is known by, leading every table's primary key: a
    /// workspace's `workspace_id`, or a link's `workspace_id, link_id` (0036; every table is
    /// keyed by its workspace first, to be distributed by it, docs/scaling.md).
    pub(crate) key: &'static str,
    pub(crate) stats: &'static str,
    pub(crate) breakdown_hourly: &'static str,
    pub(crate) breakdown_daily: &'static str,
    pub(crate) visitors: &'static str,
}

/// The columns of `key` ([`Tables::key`]) of the row named `alias`, as a list:
/// `r.workspace_id, r.link_id`. Compare two rows' keys as `(list) = (list)`, which
/// PostgreSQL takes column by column.
pub(crate) fn key_of(key: &str, alias: &str) -> String {
    key.split(", ")
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Part {
    pub(crate) const ALL: [Self; 2] = [Self::Workspaces, Self::Links];

    pub(crate) fn tables(self) -> Tables {
        match self {
            Self::Workspaces => Tables {
                key: "workspace_id",
                stats: "workspace_stats_hourly",
                breakdown_hourly: "workspace_breakdown_hourly",
                breakdown_daily: "workspace_breakdown_daily",
                visitors: "workspace_visitors_daily",
            },
            Self::Links => Tables {
                key: "workspace_id, link_id",
                stats: "link_stats_hourly",
                breakdown_hourly: "link_breakdown_hourly",
                breakdown_daily: "link_breakdown_daily",
                visitors: "visitors_daily",
            },
        }
    }

    /// The condition on the row `row` (a prefix: `r.`, or none) of a table of this part that
    /// picks the rows of one owner: the workspace `workspace`, or its link `link` (SQL
    /// expressions; a workspace's condition ignores `link`).
    pub(crate) fn owner_is(self, row: &str, workspace: &str, link: &str) -> String {
        match self {
            Self::Workspaces => format!("{row}workspace_id = {workspace}"),
            Self::Links => {
                format!("{row}workspace_id = {workspace} AND {row}link_id = {link}")
            }
        }
    }

    /// The part's row in `daily_breakdown_progress`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Workspaces => "workspaces",
            Self::Links => "links",
        }
    }

    /// The most values per breakdown, bucket and link or workspace ([`LINK_VALUES`]).
    pub(crate) fn max_values(self) -> i64 {
        match self {
            Self::Workspaces => WORKSPACE_VALUES,
            Self::Links => LINK_VALUES,
        }
    }

    /// The advisory lock that lets one counter of this part run at a time, across origins.
    fn lock_key(self) -> &'static str {
        match self {
            Self::Workspaces => "kurz rollups: workspaces",
            Self::Links => LINKS_LOCK,
        }
    }

    /// The statement that counts a batch of this part ([`count_pending_sql`]).
    fn sql(self) -> &'static str {
        static SQL: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
            [
                count_pending_sql(Part::Workspaces),
                count_pending_sql(Part::Links),
            ]
        });
        match self {
            Self::Workspaces => &SQL[0],
            Self::Links => &SQL[1],
        }
    }
}

/// The most values one breakdown (referrer, country, device, browser, OS) keeps rows for,
/// per link and bucket (UTC hour, UTC day); clicks of any further value are summed into
/// [`OTHER_VALUES`]. Referrers are free text a visitor chooses, so without a bound a flood of
/// made-up ones would add rows forever and slow every top-N read. The stats API shows at most
/// 100 values, so a link loses nothing it could show in a bucket with up to 100 values.
const LINK_VALUES: i64 = 100;
/// The same for a workspace, which sees the values of all its links at once; a workspace is
/// one row set, so a wider bound costs little.
const WORKSPACE_VALUES: i64 = 1_000;

/// A click can add a unique visitor only while its UTC day is at most `VISITOR_DAYS` days
/// before today (UTC): `visitors_daily` keeps the visitor keys of those days, and retention
/// drops older ones a day later (`retention.rs`). A click dated further back counts as a
/// click, never as a new visitor, so a late retry or replay cannot count a visitor again once
/// the key that recorded them is gone. Such days' uniques undercount instead of overcounting.
pub(crate) const VISITOR_DAYS: i32 = 7;

/// The rows of one breakdown table after a batch: the batch's values per (link, bucket,
/// dimension), capped so that a bucket holds at most `$2` values of its own plus `$3`.
/// `{source}` has the columns ({key}..., dimension, t, value, hits, bots), one row per value,
/// `t` being the table's `{time}` column. A value that already has its row keeps adding to
/// it; new values take the free places, the most visited of the batch first; the rest go to
/// `$3`. So the values a bucket keeps are those that came first, not the top ones of the whole
/// bucket: an exact top-N would have to move counts out of rows already written. The totals
/// stay exact. Only the holder of the part's lock writes these rows, so counting them here is
/// safe.
///
/// Most batches crowd no bucket: then the batch's rows are written as they are. Whether one
/// could is told from counts alone: per (key, bucket, dimension), the batch's values plus the
/// rows the table holds, read as one range of its primary key per (key, bucket) of the batch
/// (`OFFSET 0` keeps it a parameterised index scan, whatever the planner estimates). Only then
/// are the held values read and merged with the batch's by one aggregation (no probe per
/// value, no join of two CTEs, whose row estimates are guesses, so a nested loop over both
/// would be quadratic), and the new values ranked; a CTE no branch reads is never run. A
/// value both held and new counts twice in the test, which can only send a batch to the
/// ranking, where it keeps all its values if they fit. (The spread workload of the analytics
/// bench: 20-35 % less time per batch than ranking always, and 19 % less again than merging
/// the held values into every batch to tell, same data in psql.)
fn capped_insert(source: &str, table: &str, time: &str, key: &str) -> String {
    let (b_key, r_key) = (key_of(key, "b"), key_of(key, "r"));
    format!(
        "{table}_buckets AS (
    SELECT DISTINCT {key}, t FROM {source}
), {table}_held AS (
    -- How many values each bucket of the batch holds already, per dimension.
    SELECT {b_key}, b.t, r.dimension, r.held
    FROM {table}_buckets AS b,
         LATERAL (SELECT dimension, count(*) AS held FROM {table} r
                  WHERE ({r_key}) = ({b_key}) AND r.{time} = b.t
                  GROUP BY dimension OFFSET 0) AS r
), {table}_crowded AS (
    -- Whether some bucket may get more values, held and new, than it may keep: one hash
    -- aggregation.
    SELECT EXISTS (SELECT FROM (SELECT {key}, t, dimension, 1 AS n FROM {source}
                                UNION ALL
                                SELECT {key}, t, dimension, held FROM {table}_held) AS c
                   GROUP BY {key}, t, dimension HAVING sum(n) > $2) AS crowded
), {table}_all AS (
    -- Read only when crowded: the batch's values with those the buckets hold.
    SELECT {key}, dimension, t, value, sum(hits) AS hits, sum(bots) AS bots,
           bool_or(known) AS known, bool_or(NOT known) AS counted
    FROM (
        SELECT {key}, dimension, t, value, hits, bots, false AS known FROM {source}
        UNION ALL
        SELECT {b_key}, r.dimension, b.t, r.value, 0, 0, true
        FROM {table}_buckets AS b,
             LATERAL (SELECT dimension, value FROM {table} r
                      WHERE ({r_key}) = ({b_key}) AND r.{time} = b.t OFFSET 0) AS r
    ) AS v
    GROUP BY {key}, dimension, t, value
), {table}_capped AS (
    SELECT {key}, dimension, t, value, hits, bots FROM {source}
    WHERE NOT (SELECT crowded FROM {table}_crowded)
    UNION ALL
    -- New values are ranked within their bucket, after the values it already holds.
    SELECT {key}, dimension, t, value, sum(hits), sum(bots)
    FROM (
        SELECT {key}, dimension, t,
               CASE WHEN known THEN value
                    WHEN row_number() OVER (PARTITION BY {key}, t, dimension, known
                                            ORDER BY hits + bots DESC, value)
                         + count(*) FILTER (WHERE known AND value <> $3)
                               OVER (PARTITION BY {key}, t, dimension) <= $2
                    THEN value ELSE $3 END AS value,
               hits, bots, counted
        FROM {table}_all WHERE (SELECT crowded FROM {table}_crowded)
    ) AS ranked
    WHERE counted GROUP BY {key}, dimension, t, value
), {table}_written AS (
    INSERT INTO {table} ({key}, dimension, {time}, value, hits, bots)
    SELECT {key}, dimension, t, value, hits::bigint, bots::bigint FROM {table}_capped
    ORDER BY {key}, t, dimension, value
    ON CONFLICT ({key}, {time}, dimension, value) DO UPDATE SET
        hits = {table}.hits + EXCLUDED.hits,
        bots = {table}.bots + EXCLUDED.bots
)"
    )
}

/// Takes up to `$1` pending clicks of the part, the oldest first, and adds them to the
/// rollups, all in the database (the clicks never travel to the origin and back). The batch
/// is found through the part's partial index on `clicks_pending (at)` (0044, 0045): a
/// sequential scan would read every page the queue ever filled, and a queue's heap is as
/// large as its longest backlog, full of deleted rows (under the origin bench's recording
/// load, 45 % of the counters' time went to scanning it). Every click counts in its UTC hour:
/// - `link_stats_hourly` (or the workspace's tables, keyed by `workspace_id`): clicks, QR scans and bots; and the uniques of the visitors new
///   that UTC day for that link (those `visitors_daily` did not hold yet), in the hour of
///   their first visit in this batch, for days no older than `$4` days ([`VISITOR_DAYS`]);
/// - `link_breakdown_hourly`, and `link_breakdown_daily` for days that are over (late
///   clicks; the other days are summed once over, [`closed_days`]): hits and bots per
///   value of each dimension (one pass over the batch for all five, each click unnested into its values
///   and grouped once; for links also the A/B `variant`, its id in the split), at most `$2`
///   values per link, bucket and dimension plus `$3` ([`capped_insert`]). Bots' referrers
///   are left out: a bot can claim any referrer, and bots are what would flood them. Bots
///   still count in the other dimensions and as bots;
/// - for links, `link_click_totals` (the links list's counts and sorts): each link's people's
///   clicks in all and, for those from `link_clicks_window.start` on, in the last 7 days; one
///   row update per link of the batch ([`move_recent_window`] moves that start first);
/// - for links, `workspace_link_daily` (the workspace's top links): each link's hits
///   and bots per UTC day, keyed by its workspace;
/// - for links, `workspace_tag_hourly` and `workspace_tag_daily` (the workspace's top tags):
///   hits and bots per tag of each link ([`tags::count_sql`]).
///
/// Only the holder of the part's advisory lock writes its `visitors_daily` rows, so new
/// visitors are found by an anti-join and inserted plainly, which is cheaper than
/// `ON CONFLICT`; their uniques are counted from that same set of new visitors, in the
/// aggregation of the hourly stats (a join of the inserted rows back to the batch's visits
/// was planned as a nested loop over two CTEs: quadratic, 7 minutes for 50,000 clicks).
///
/// The pending table has no key: a batch is the range of rows up to the `$1`-th oldest by
/// (time, physical position), which is stable because rows are never updated and only the
/// lock holder deletes them. A range, not a list of positions (`ctid = ANY(ARRAY(...))`):
/// the statement is prepared once per connection, and a generic plan made while the queue was
/// small read it sequentially, searching the list for every row: with a backlog of 1 M rows, a
/// batch ran for minutes and counting stopped (the origin bench found it, #16).
/// Returns how many clicks were counted.
fn count_pending_sql(part: Part) -> String {
    let Tables {
        key,
        stats,
        breakdown_hourly,
        breakdown_daily,
        visitors,
    } = part.tables();
    // A/B variants are a link's own (their ids mean nothing across links): a breakdown of
    // the links' half only. A click without a split has no variant, so no row of it.
    let variant = match part {
        Part::Links => "('variant', variant),",
        Part::Workspaces => "",
    };
    // The links list's counts (0029): one UPDATE of each link's row per batch. A link deleted
    // meanwhile has no row, and gets none back.
    let link_totals = match part {
        Part::Links => format!(
            "link_totals AS (
    UPDATE link_click_totals t
    SET total = t.total + c.total, recent = t.recent + c.recent
    FROM (SELECT workspace_id, link_id, count(*) FILTER (WHERE NOT bot) AS total,
                 count(*) FILTER (WHERE NOT bot
                                  AND hour >= (SELECT start FROM link_clicks_window)) AS recent
          FROM clicks GROUP BY workspace_id, link_id) AS c
    WHERE (t.workspace_id, t.link_id) = (c.workspace_id, c.link_id) AND c.total > 0
), workspace_link_days AS (
    -- Each link's visits per UTC day for its workspace's top links and tags (0030).
    INSERT INTO workspace_link_daily (workspace_id, day, link_id, hits, bots)
    SELECT workspace_id, day, link_id, count(*) FILTER (WHERE NOT bot),
           count(*) FILTER (WHERE bot)
    FROM clicks GROUP BY workspace_id, day, link_id
    ORDER BY workspace_id, day, link_id
    ON CONFLICT (workspace_id, day, link_id) DO UPDATE SET
        hits = workspace_link_daily.hits + EXCLUDED.hits,
        bots = workspace_link_daily.bots + EXCLUDED.bots
), {tags}, ",
            tags = tags::count_sql(
                "(SELECT workspace_id, link_id, hour, count(*) FILTER (WHERE NOT bot) AS hits,
                         count(*) FILTER (WHERE bot) AS bots
                  FROM clicks GROUP BY 1, 2, 3)"
            ),
        ),
        Part::Workspaces => String::new(),
    };
    let (v_key, f_key) = (key_of(key, "v"), key_of(key, "f"));
    // Written out, not a parameter: the planner picks a partial index only for a condition
    // it can see implies the index's.
    let half = match part {
        Part::Workspaces => "workspace_id IS NOT NULL",
        Part::Links => "workspace_id IS NULL",
    };
    format!(
        "
WITH batch AS (
    -- The oldest $1 as a range up to the last of them (by time, then place): one comparison
    -- a row, whatever the plan (see `count_pending_sql`).
    DELETE FROM clicks_pending
    WHERE {half} AND (at, ctid) <= (
        SELECT at, ctid FROM (
            SELECT at, ctid FROM clicks_pending WHERE {half} ORDER BY at, ctid LIMIT $1
        ) AS oldest
        ORDER BY at DESC, ctid DESC LIMIT 1
    )
    RETURNING *
), clicks AS MATERIALIZED (
    -- Both halves key their rollups by the link's workspace first.
    SELECT link_workspace_id AS workspace_id, link_id, date_trunc('hour', at, 'UTC') AS hour,
           (at AT TIME ZONE 'UTC')::date AS day, coalesce(country, 'unknown') AS country,
           CASE WHEN bot THEN NULL ELSE referrer_host END AS referrer_host,
           device, browser, os, bot, qr, visitor, variant::text AS variant
    FROM batch
), fresh AS MATERIALIZED (
    -- The visitors new that UTC day (for the link, or the workspace), with the hour of their
    -- first visit in this batch.
    SELECT * FROM (
        SELECT {key}, day, visitor, min(hour) AS hour
        FROM clicks
        WHERE NOT bot AND visitor IS NOT NULL
          AND day >= (now() AT TIME ZONE 'UTC')::date - $4::int
        GROUP BY {key}, day, visitor
    ) AS f
    WHERE NOT EXISTS (SELECT FROM {visitors} v
                      WHERE ({v_key}, v.day, v.visitor) = ({f_key}, f.day, f.visitor))
), new_visitors AS (
    INSERT INTO {visitors} ({key}, day, visitor)
    SELECT {key}, day, visitor FROM fresh ORDER BY {key}, day, visitor
), stats AS (
    INSERT INTO {stats} ({key}, hour, clicks, qr_scans, bots, uniques)
    SELECT {key}, hour, sum(clicks)::bigint, sum(qr_scans)::bigint, sum(bots)::bigint,
           sum(uniques)::bigint
    FROM (
        SELECT {key}, hour,
               count(*) FILTER (WHERE NOT bot AND NOT qr) AS clicks,
               count(*) FILTER (WHERE NOT bot AND qr) AS qr_scans,
               count(*) FILTER (WHERE bot) AS bots, 0 AS uniques
        FROM clicks GROUP BY {key}, hour
        UNION ALL
        SELECT {key}, hour, 0, 0, 0, count(*) FROM fresh GROUP BY {key}, hour
    ) AS c
    GROUP BY {key}, hour ORDER BY {key}, hour
    ON CONFLICT ({key}, hour) DO UPDATE SET
        clicks = {stats}.clicks + EXCLUDED.clicks,
        qr_scans = {stats}.qr_scans + EXCLUDED.qr_scans,
        bots = {stats}.bots + EXCLUDED.bots,
        uniques = {stats}.uniques + EXCLUDED.uniques
), breakdown AS MATERIALIZED (
    -- Each click's value of every dimension, grouped once. A bot's referrer is NULL (above),
    -- and so is the variant of a click without a split: left out.
    SELECT {key}, d.dimension, hour AS t, d.value,
           count(*) FILTER (WHERE NOT bot) AS hits, count(*) FILTER (WHERE bot) AS bots
    FROM clicks,
         LATERAL (VALUES ('referrer', referrer_host), ('country', country), ('device', device),
                         ('browser', browser), {variant} ('os', os)) AS d (dimension, value)
    WHERE d.value IS NOT NULL
    GROUP BY {key}, d.dimension, hour, d.value
), breakdown_days AS (
    -- Only the late clicks of days that are over: the days from `open_from` on are summed
    -- from their hourly rows once they are over (closed_days.rs).
    SELECT {key}, dimension, t, value, sum(hits) AS hits, sum(bots) AS bots
    FROM (SELECT {key}, dimension, (t AT TIME ZONE 'UTC')::date AS t, value, hits, bots
          FROM breakdown) AS b
    WHERE t < (SELECT open_from FROM daily_breakdown_progress WHERE part = '{name}')
    GROUP BY {key}, dimension, t, value
), {link_totals}{hourly}, {daily}
SELECT count(*) FROM batch",
        hourly = capped_insert("breakdown", breakdown_hourly, "hour", key),
        daily = capped_insert("breakdown_days", breakdown_daily, "day", key),
        variant = variant,
        link_totals = link_totals,
        name = part.name(),
    )
}

/// Moves the start of the links' 7-day counts (`link_clicks_window`, 0029) to 7 days before
/// the current UTC hour, taking off each link's clicks of the hours it passed. Run by the
/// holder of the links' lock before it counts a batch, so a batch's clicks are added to the
/// 7-day counts by the window they will be taken off by. Costs one indexed read of the
/// rollups of the hours passed: nothing most runs, an hour's clicked links once an hour.
pub(crate) async fn move_recent_window(tx: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    let moved: Option<(time::OffsetDateTime, time::OffsetDateTime)> = sqlx::query_as(
        "UPDATE link_clicks_window w SET start = date_trunc('hour', now(), 'UTC') - interval '7 days'
         FROM link_clicks_window old
         WHERE w.start < date_trunc('hour', now(), 'UTC') - interval '7 days'
         RETURNING old.start, w.start",
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((from, to)) = moved {
        sqlx::query(
            "UPDATE link_click_totals t SET recent = greatest(t.recent - p.clicks, 0)
             FROM (SELECT workspace_id, link_id, sum(clicks + qr_scans) AS clicks
                   FROM link_stats_hourly
                   WHERE hour >= $1 AND hour < $2 GROUP BY workspace_id, link_id) AS p
             WHERE (t.workspace_id, t.link_id) = (p.workspace_id, p.link_id) AND p.clicks > 0",
        )
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// What a counter does when another one of its part is at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Leave it the work (the background counters of several origins).
    GiveWay,
    /// Wait for it to finish, then count what is left.
    Wait,
}

/// Takes the advisory lock of `part` for the transaction; false when another counter holds
/// it and `busy` says to give way.
pub(crate) async fn take_lock(
    tx: &mut sqlx::PgConnection,
    part: Part,
    busy: Busy,
) -> Result<bool, sqlx::Error> {
    let lock = match busy {
        Busy::GiveWay => "SELECT pg_try_advisory_xact_lock(hashtext($1))",
        Busy::Wait => "SELECT pg_advisory_xact_lock(hashtext($1)) IS NOT NULL",
    };
    sqlx::query_scalar(lock)
        .bind(part.lock_key())
        .fetch_one(&mut *tx)
        .await
}

/// Counts up to [`BATCH`] pending clicks of `part` into the rollups; returns how many, or
/// `None` when another counter of the part is at work and `busy` says to give way.
async fn count_pending(db: &PgPool, part: Part, busy: Busy) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = db.begin().await?;
    if !take_lock(&mut tx, part, busy).await? {
        return Ok(None);
    }
    // The batch's commit need not wait for its WAL to reach the disk: a crash can lose only
    // a whole transaction, its pending clicks' deletion with their rollup rows, so they are
    // counted again; no click is lost or counted twice, and nothing outside the database
    // learns of the batch. Every ingest still commits synchronously.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    if part == Part::Links {
        move_recent_window(&mut tx).await?;
    }
    let counted: i64 = sqlx::query_scalar(part.sql())
        .bind(BATCH)
        .bind(part.max_values())
        .bind(OTHER_VALUES)
        .bind(VISITOR_DAYS)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(counted.unsigned_abs()))
}

/// Counts pending clicks until none are left, waiting for any other counter to finish, then
/// moves the counts of the links whose tags changed ([`tags::move_all`]; so the clicks of
/// such a link are counted under its old tags first, and moved). Sums no day:
/// [`closed_days::sum_closed_days_step`] does.
pub(crate) async fn count_all_pending(db: &PgPool) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    for part in Part::ALL {
        while let Some(counted) = count_pending(db, part, Busy::Wait).await? {
            // The workspaces' copies are not clicks of their own.
            if part == Part::Links {
                total += counted;
            }
            if counted < BATCH as u64 {
                break;
            }
        }
    }
    tags::move_all(db).await?;
    Ok(total)
}

/// Counts the pending clicks of `part` as they come: at once when `wake` is notified (this
/// origin stored some), at least every second (other origins did), back to back while a
/// backlog lasts, a day that is over is being summed or links' tags are being moved.
pub(crate) async fn count_forever(
    db: PgPool,
    part: Part,
    wake: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = tokio::time::Instant::now();
        let days_left = match closed_days::sum_step(&db, part, Busy::GiveWay, None).await {
            Ok(more) => more == Some(true),
            Err(err) => {
                tracing::warn!(error = %err, "cannot sum the daily breakdowns of a day that is over");
                false
            }
        };
        let moves_left = part == Part::Links
            && match tags::move_step(&db, Busy::GiveWay).await {
                Ok(moved) => moved == Some(tags::MOVE_LINKS as u64),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot move the counts of links whose tags changed");
                    false
                }
            };
        match count_pending(&db, part, Busy::GiveWay).await {
            Ok(Some(counted)) if counted == BATCH as u64 || days_left || moves_left => continue,
            Ok(counted) => {
                backoff = Duration::from_millis(100);
                // Clicks are coming, a few at a time: let them gather before the next batch.
                if counted.is_some_and(|counted| counted > 0 && counted < SMALL_BATCH) {
                    tokio::time::sleep_until(started + GATHER).await;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch is a range of the queue, up to its `$1`-th oldest row, never a list of row
    /// places: a list (`ctid = ANY(ARRAY(...))`) under a plan made while the queue was small
    /// is searched once per row of the queue, which stopped counting under a backlog
    /// ([`count_pending_sql`]).
    #[test]
    fn a_batch_is_taken_as_a_range_of_the_queue_not_a_list_of_places() {
        for part in Part::ALL {
            let sql = count_pending_sql(part);
            assert!(!sql.contains("ctid = ANY"), "{sql}");
            assert!(sql.contains("AND (at, ctid) <= ("), "{sql}");
        }
    }
}
