//! The stats API: time series, totals, unique visitors and top-N breakdowns, per link and for
//! a workspace, read from the rollups only (the CSV export of raw clicks is in
//! `export.rs`).

use axum::Json;
use axum::extract::State;
use shortlink::stats::{Breakdowns, Counts, Point, Ranked, Stats, TopLink};
use shortlink::workspace::Permission;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::range::{Range, StatsQuery};
use super::rollup::Part;
use crate::caller::{Caller, WorkspaceId};
use crate::error::Error;
use crate::extract::{ApiQuery, CodePath};
use crate::links::store;

pub(crate) fn routes() -> axum::Router<crate::State> {
    use axum::routing::get;
    axum::Router::new()
        .route("/stats", get(workspace_stats))
        .route("/links/{code}/stats", get(link_stats))
        .route("/links/{code}/clicks.csv", get(super::export::export_csv))
}

/// Checks a query ([`Range::new`]) and its time zone, which PostgreSQL knows.
async fn check(db: &PgPool, query: StatsQuery) -> Result<Range, Error> {
    let range = Range::new(query, OffsetDateTime::now_utc())?;
    // Asking PostgreSQL to convert a time costs one round trip; the pg_timezone_names view
    // would read every zone file (tens of milliseconds).
    if let Err(err) = sqlx::query("SELECT now() AT TIME ZONE $1")
        .bind(&range.tz)
        .execute(db)
        .await
    {
        return Err(match &err {
            sqlx::Error::Database(db_err) if db_err.code().as_deref() == Some("22023") => {
                Error::invalid(
                    "tz",
                    format!(
                        "{:?} is not an IANA time zone such as Europe/Berlin",
                        range.tz
                    ),
                )
            }
            _ => err.into(),
        });
    }
    Ok(range)
}

/// `GET /api/v1/links/{code}/stats`.
#[utoipa::path(
    get, path = "/api/v1/links/{code}/stats", tag = "stats",
    params(("code" = shortlink::ShortCode, Path, description = "The link's short code."), shortlink::query::StatsQuery),
    responses((status = 200, description = "The link's clicks in the range.", body = shortlink::stats::Stats), crate::openapi::Refusals),
)]
pub(crate) async fn link_stats(
    State(state): State<crate::State>,
    caller: Caller,
    CodePath(code): CodePath,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, Error> {
    let workspace = caller.may(Permission::ReadStats)?;
    // The counts may lag on a read replica; the link is found on the primary, so that a link
    // created a moment ago has (empty) stats rather than a 404.
    let reads = state.reads();
    let range = reads.read(|db| check(db, query.clone())).await?;
    let link_id = store::find_id(state.db(), workspace, &code).await?;
    Ok(Json(
        reads
            .read(|db| stats(db, Of::Link(link_id), &range))
            .await?,
    ))
}

/// `GET /api/v1/stats`: the caller's workspace.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "stats",
    params(shortlink::query::StatsQuery),
    responses((status = 200, description = "The workspace's clicks in the range.", body = shortlink::stats::Stats), crate::openapi::Refusals),
)]
pub(crate) async fn workspace_stats(
    State(state): State<crate::State>,
    caller: Caller,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, Error> {
    let workspace = caller.may(Permission::ReadStats)?;
    let reads = state.reads();
    let range = reads.read(|db| check(db, query.clone())).await?;
    Ok(Json(
        reads
            .read(|db| stats(db, Of::Workspace(workspace), &range))
            .await?,
    ))
}

/// Whose statistics: each has rollup tables of its own (`rollup.rs`).
#[derive(Debug, Clone, Copy)]
enum Of {
    Link(i64),
    Workspace(WorkspaceId),
}

impl Of {
    fn key(self) -> i64 {
        match self {
            Self::Link(id) => id,
            Self::Workspace(workspace) => workspace.get(),
        }
    }

    fn part(self) -> Part {
        match self {
            Self::Link(_) => Part::Links,
            Self::Workspace(_) => Part::Workspaces,
        }
    }
}

async fn stats(db: &PgPool, of: Of, range: &Range) -> Result<Stats, Error> {
    let tables = of.part().tables();
    let interval = range.interval.as_str();
    // Buckets are made in local time and turned back into instants, so days and weeks
    // follow the zone's midnight, clock changes included.
    let rows: Vec<(OffsetDateTime, i64, i64, i64, i64)> = sqlx::query_as(&format!(
        "WITH buckets AS (
             SELECT b AT TIME ZONE $5 AS t
             FROM generate_series(date_trunc($4, $2 AT TIME ZONE $5),
                                  ($3 AT TIME ZONE $5) - interval '1 microsecond',
                                  ('1 ' || $4)::interval) AS b
         ), data AS (
             SELECT date_trunc($4, hour AT TIME ZONE $5) AT TIME ZONE $5 AS t,
                    sum(clicks)::int8 AS clicks, sum(qr_scans)::int8 AS qr_scans,
                    sum(bots)::int8 AS bots, sum(uniques)::int8 AS uniques
             FROM {stats}
             WHERE {key} = $1 AND hour >= $2 AND hour < $3
             GROUP BY 1
         )
         SELECT buckets.t, coalesce(clicks, 0), coalesce(qr_scans, 0), coalesce(bots, 0),
                coalesce(uniques, 0)
         FROM buckets LEFT JOIN data USING (t)
         ORDER BY buckets.t",
        stats = tables.stats,
        key = tables.key,
    ))
    .bind(of.key())
    .bind(range.from)
    .bind(range.to)
    .bind(interval)
    .bind(&range.tz)
    .fetch_all(db)
    .await?;
    let counts = |clicks: i64, qr_scans: i64, bots: i64, uniques: i64| Counts {
        total: clicks + qr_scans + if range.bots { bots } else { 0 },
        clicks,
        qr_scans,
        bots,
        uniques,
    };
    let series: Vec<Point> = rows
        .into_iter()
        .map(|(t, c, q, b, u)| Point {
            t,
            counts: counts(c, q, b, u),
        })
        .collect();
    let sum = |f: fn(&Counts) -> i64| series.iter().map(|p| f(&p.counts)).sum::<i64>();
    let totals = counts(
        sum(|c| c.clicks),
        sum(|c| c.qr_scans),
        sum(|c| c.bots),
        sum(|c| c.uniques),
    );
    let mut top = breakdowns(db, of, range).await?;
    let top_links = match of {
        Of::Workspace(workspace) => {
            top.tag = top_tags(db, workspace, range).await?;
            Some(top_links(db, workspace, range).await?)
        }
        Of::Link(_) => None,
    };
    Ok(Stats {
        from: range.from,
        to: range.to,
        interval: range.interval,
        tz: range.tz.clone(),
        bots: range.bots,
        totals,
        series,
        top,
        top_links,
    })
}

/// Top values of each dimension: whole UTC days inside the range from the daily table, the
/// hours before the first and after the last whole day from the hourly one.
async fn breakdowns(db: &PgPool, of: Of, range: &Range) -> Result<Breakdowns, Error> {
    let tables = of.part().tables();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "WITH bounds AS (
             SELECT ceil_day, greatest(ceil_day, floor_day) AS floor_day
             FROM (SELECT date_trunc('day', $2 AT TIME ZONE 'UTC' + interval '1 day' - interval '1 microsecond') AT TIME ZONE 'UTC' AS ceil_day,
                          date_trunc('day', $3 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS floor_day) AS d
         ), parts AS (
             SELECT dimension, value, hits, bots FROM {daily}, bounds
             WHERE {key} = $1 AND day >= (ceil_day AT TIME ZONE 'UTC')::date
               AND day < (floor_day AT TIME ZONE 'UTC')::date
             UNION ALL
             SELECT dimension, value, hits, bots FROM {hourly}, bounds
             WHERE {key} = $1 AND hour >= $2 AND hour < least($3, ceil_day)
             UNION ALL
             SELECT dimension, value, hits, bots FROM {hourly}, bounds
             WHERE {key} = $1 AND hour >= greatest($2, floor_day) AND hour < $3
         ), ranked AS (
             SELECT dimension, value, sum(hits + CASE WHEN $4 THEN bots ELSE 0 END)::int8 AS count,
                    row_number() OVER (PARTITION BY dimension
                                       ORDER BY sum(hits + CASE WHEN $4 THEN bots ELSE 0 END) DESC, value) AS rank
             FROM parts GROUP BY dimension, value
         )
         SELECT dimension, value, count FROM ranked
         WHERE rank <= $5 AND count > 0
         ORDER BY dimension, rank",
        daily = tables.breakdown_daily,
        hourly = tables.breakdown_hourly,
        key = tables.key,
    ))
    .bind(of.key())
    .bind(range.from)
    .bind(range.to)
    .bind(range.bots)
    .bind(range.top)
    .fetch_all(db)
    .await?;
    let mut top = Breakdowns::default();
    for (dimension, value, count) in rows {
        let list = match dimension.as_str() {
            "referrer" => &mut top.referrer,
            "country" => &mut top.country,
            "device" => &mut top.device,
            "browser" => &mut top.browser,
            "os" => &mut top.os,
            "variant" => &mut top.variant,
            _ => continue,
        };
        list.push(Ranked { value, count });
    }
    Ok(top)
}

/// Most tags the workspace's stats rank.
const TOP_TAGS: i64 = 20;

/// The workspace's visits in the range by the tags of their links (a link with two tags counts
/// under both; one without, under none), at most [`TOP_TAGS`]: from the links' hourly rollups,
/// so a link's later tags count for its earlier clicks. Deleted links count, as they do in
/// the totals.
async fn top_tags(
    db: &PgPool,
    workspace: WorkspaceId,
    range: &Range,
) -> Result<Vec<Ranked>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tag, sum(s.clicks + s.qr_scans + CASE WHEN $3 THEN s.bots ELSE 0 END)::int8 AS count
         FROM links l CROSS JOIN LATERAL unnest(l.tags) AS tag
         JOIN link_stats_hourly s ON s.link_id = l.id AND s.hour >= $1 AND s.hour < $2
         WHERE l.workspace_id = $4 AND l.tags <> '{}'
         GROUP BY tag
         HAVING sum(s.clicks + s.qr_scans + CASE WHEN $3 THEN s.bots ELSE 0 END) > 0
         ORDER BY count DESC, tag
         LIMIT $5",
    )
    .bind(range.from)
    .bind(range.to)
    .bind(range.bots)
    .bind(workspace.get())
    .bind(TOP_TAGS)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(value, count)| Ranked { value, count })
        .collect())
}

/// The workspace's most visited live links in the range.
async fn top_links(
    db: &PgPool,
    workspace: WorkspaceId,
    range: &Range,
) -> Result<Vec<TopLink>, Error> {
    let rows =
        store::most_visited(db, workspace, (range.from, range.to), range.bots, range.top).await?;
    Ok(rows
        .into_iter()
        .map(|(link_id, code, count)| TopLink {
            code,
            link_id,
            count,
        })
        .collect())
}
