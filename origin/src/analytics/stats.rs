//! The stats API: time series, totals, unique visitors and top-N breakdowns, per link and for
//! a workspace, read from the rollups only (the CSV export of raw clicks is in
//! `export.rs`).

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use shortlink::stats::{Breakdowns, Counts, Interval, Point, Ranked, Stats};
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
    let range = Range::new(query, OffsetDateTime::now_utc())?;
    // The counts may lag on a read replica; the link is found on the primary, so that a link
    // created a moment ago has (empty) stats rather than a 404.
    let link_id = store::find_id(state.db(), workspace, &code).await?;
    Ok(Json(
        state
            .reads()
            .read(|db| stats(db, Of::Link(workspace, link_id), &range))
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
    let range = Range::new(query, OffsetDateTime::now_utc())?;
    Ok(Json(
        state
            .reads()
            .read(|db| stats(db, Of::Workspace(workspace), &range))
            .await?,
    ))
}

/// Whose statistics: each has rollup tables of its own (`rollup.rs`).
#[derive(Debug, Clone, Copy)]
enum Of {
    Link(WorkspaceId, i64),
    Workspace(WorkspaceId),
}

impl Of {
    /// The workspace, and the link's id (the workspace's own for a workspace): the
    /// parameters of [`Part::owner_is`].
    fn ids(self) -> (i64, i64) {
        match self {
            Self::Link(workspace, id) => (workspace.get(), id),
            Self::Workspace(workspace) => (workspace.get(), workspace.get()),
        }
    }

    fn part(self) -> Part {
        match self {
            Self::Link(..) => Part::Links,
            Self::Workspace(_) => Part::Workspaces,
        }
    }
}

/// A stats answer. Its queries run side by side, each on a connection of its own: the
/// series, the breakdowns and, for a workspace, its top tags and its top links (the latter
/// a few queries in turn, [`super::top_links`]). The answer takes as long as the longest, not
/// their sum (the analytics bench's account query: p50 4.4 → 3.9 ms, runs alternated on one
/// database), for up to four of the pool's connections at once, a few milliseconds each (the
/// stats budget, `rate_limit.rs`, bounds how often a caller asks). Only the series uses the
/// time zone, and PostgreSQL checks it there ([`series`]): no round trip of its own. Each
/// part is as of its own moment: a batch counted meanwhile may show in the totals and not yet
/// in the breakdowns, until the next read (the dashboard reads every 5 s).
async fn stats(db: &PgPool, of: Of, range: &Range) -> Result<Stats, Error> {
    check_zone(db, &range.tz).await?;
    let tops = async {
        match of {
            Of::Workspace(workspace) => Ok::<_, Error>(Some(tokio::try_join!(
                top_tags(db, workspace, range),
                super::top_links::top_links(db, workspace, range),
            )?)),
            Of::Link(..) => Ok(None),
        }
    };
    let (rows, mut top, tops) =
        tokio::try_join!(series(db, of, range), breakdowns(db, of, range), tops)?;
    let top_links = tops.map(|(tags, links)| {
        top.tag = tags;
        links
    });
    let counts = |(clicks, qr_scans, bots, uniques, details_shed): Sums| Counts {
        total: clicks + qr_scans + if range.bots { bots } else { 0 },
        clicks,
        qr_scans,
        bots,
        uniques,
        details_shed,
    };
    let series: Vec<Point> = rows
        .into_iter()
        .map(|(t, c, q, b, u, d)| Point {
            t,
            counts: counts((c, q, b, u, d)),
        })
        .collect();
    let sum = |f: fn(&Counts) -> i64| series.iter().map(|p| f(&p.counts)).sum::<i64>();
    let totals = counts((
        sum(|c| c.clicks),
        sum(|c| c.qr_scans),
        sum(|c| c.bots),
        sum(|c| c.uniques),
        sum(|c| c.details_shed),
    ));
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

/// A bucket's clicks, QR scans, bots, unique visitors and visits counted without details.
type Sums = (i64, i64, i64, i64, i64);

/// The time zones a range may name, lowercase (PostgreSQL's names are not case-sensitive):
/// those of PostgreSQL's zone database, read once, less the abbreviations PostgreSQL reads
/// first as fixed offsets (`CET` is a zone with summer time, but `AT TIME ZONE 'CET'` is
/// +01:00 all year; `WET`, +00:00), but for the names of UTC itself (`UTC`, `GMT`, `Zulu`).
/// A POSIX rule (`UTC+3`, whose sign is the reverse of ISO's) is not a name there either.
/// Either was answered with buckets in an offset the caller did not mean, and no error.
static ZONES: tokio::sync::OnceCell<HashSet<String>> = tokio::sync::OnceCell::const_new();

async fn check_zone(db: &PgPool, tz: &str) -> Result<(), Error> {
    let zones = ZONES
        .get_or_try_init(|| async {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT lower(name) FROM pg_timezone_names
                 EXCEPT
                 SELECT lower(abbrev) FROM pg_timezone_abbrevs
                 WHERE lower(abbrev) NOT IN ('utc', 'gmt', 'uct', 'ut', 'zulu', 'z')",
            )
            .fetch_all(db)
            .await?;
            Ok::<_, Error>(names.into_iter().collect())
        })
        .await?;
    if zones.contains(&tz.to_lowercase()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "tz",
            format!(
                "{tz:?} is not an IANA time zone such as Europe/Berlin (abbreviations such as CET or EST are not: name the region)"
            ),
        ))
    }
}

/// The counts per bucket of the range, in the range's time zone, which PostgreSQL knows
/// ([`Range::new`] checked the rest): a zone it does not know is the caller's mistake (422),
/// told by the query that uses it (checking it in a query of its own cost every stats request
/// a round trip before the others could start).
async fn series(
    db: &PgPool,
    of: Of,
    range: &Range,
) -> Result<Vec<(OffsetDateTime, i64, i64, i64, i64, i64)>, Error> {
    let tables = of.part().tables();
    let interval = range.interval.as_str();
    // Buckets are made in local time and turned back into instants, so days and weeks
    // follow the zone's midnight, clock changes included. Every hour of the range falls in
    // one bucket. Hourly, each hour of the range ($3, a whole hour) makes its bucket as the
    // data's hours do: local time can run backwards across the range (by two hours in
    // Antarctica/Troll). Days and weeks run in local time from the first hour's bucket to the
    // last hour's (a range's hours, one a bucket, would cost a 90-day range 2,160 of them),
    // and a local time the clocks skip names the same instant as the next one (DISTINCT).
    let buckets = match range.interval {
        Interval::Hour => {
            "SELECT DISTINCT date_trunc($4, h AT TIME ZONE $5) AT TIME ZONE $5 AS t
             FROM generate_series($2, $3 - interval '1 hour', interval '1 hour') AS h"
        }
        Interval::Day | Interval::Week => {
            "SELECT DISTINCT b AT TIME ZONE $5 AS t
             FROM generate_series(date_trunc($4, $2 AT TIME ZONE $5),
                                  ($3 - interval '1 hour') AT TIME ZONE $5,
                                  ('1 ' || $4)::interval) AS b"
        }
    };
    let rows: Vec<(OffsetDateTime, i64, i64, i64, i64, i64)> = sqlx::query_as(&format!(
        "WITH buckets AS ({buckets}), data AS (
             SELECT date_trunc($4, hour AT TIME ZONE $5) AT TIME ZONE $5 AS t,
                    sum(clicks)::int8 AS clicks, sum(qr_scans)::int8 AS qr_scans,
                    sum(bots)::int8 AS bots, sum(uniques)::int8 AS uniques,
                    sum(details_shed)::int8 AS details_shed
             FROM {stats}
             WHERE {owner} AND hour >= $2 AND hour < $3
             GROUP BY 1
         )
         SELECT buckets.t, coalesce(clicks, 0), coalesce(qr_scans, 0), coalesce(bots, 0),
                coalesce(uniques, 0), coalesce(details_shed, 0)
         FROM buckets LEFT JOIN data USING (t)
         ORDER BY buckets.t",
        stats = tables.stats,
        owner = of.part().owner_is("", "$1", "$6"),
    ))
    .bind(of.ids().0)
    .bind(range.from)
    .bind(range.to)
    .bind(interval)
    .bind(&range.tz)
    .bind(of.ids().1)
    .fetch_all(db)
    .await
    .map_err(|err| match &err {
        // invalid_parameter_value: here only the zone can be (the interval's unit is one of
        // `Interval`'s, its step one of it).
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
    })?;
    Ok(rows)
}

/// Top values of each dimension: whole UTC days inside the range from the daily table, the
/// hours before the first and after the last whole day from the hourly one. Days not summed
/// yet (the current one, [`super::closed_days::sum_closed_days`]) count as hours after the last
/// whole day. The query is the SQL function `link_breakdowns` or `workspace_breakdowns`
/// (`0047_stats_breakdowns.sql`, which says why: a plan that reads ranges of the rollups'
/// keys for an owner of most rows too), in each dimension most counted first (a function's rows
/// come in no promised order).
async fn breakdowns(db: &PgPool, of: Of, range: &Range) -> Result<Breakdowns, Error> {
    let query = match of {
        Of::Link(workspace, link) => sqlx::query_as(
            "SELECT * FROM link_breakdowns($1, $2, $3, $4, $5, $6)
             ORDER BY dimension, count DESC, value",
        )
        .bind(workspace.get())
        .bind(link),
        Of::Workspace(workspace) => sqlx::query_as(
            "SELECT * FROM workspace_breakdowns($1, $2, $3, $4, $5)
             ORDER BY dimension, count DESC, value",
        )
        .bind(workspace.get()),
    };
    let rows: Vec<(String, String, i64)> = query
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

/// The workspace's top tags in the range, at most [`TOP_TAGS`]: the visits of its links by
/// their tags now (`analytics/tags.rs`: a link with two tags counts under both, one without
/// under none, a deleted link under its tags), whole UTC days from `workspace_tag_daily` and
/// the hours at either end from `workspace_tag_hourly`.
async fn top_tags(
    db: &PgPool,
    workspace: WorkspaceId,
    range: &Range,
) -> Result<Vec<Ranked>, Error> {
    let days = range.utc_days();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tag, sum(n)::int8 AS count
         FROM (SELECT tag, hits + CASE WHEN $2 THEN bots ELSE 0 END AS n
               FROM workspace_tag_daily
               WHERE workspace_id = $1 AND day >= $3 AND day < $4
               UNION ALL
               SELECT tag, hits + CASE WHEN $2 THEN bots ELSE 0 END
               FROM workspace_tag_hourly
               WHERE workspace_id = $1 AND hour >= $5 AND hour < $6
               UNION ALL
               SELECT tag, hits + CASE WHEN $2 THEN bots ELSE 0 END
               FROM workspace_tag_hourly
               WHERE workspace_id = $1 AND hour >= $7 AND hour < $8) AS p
         GROUP BY tag
         HAVING sum(n) > 0
         ORDER BY count DESC, tag
         LIMIT $9",
    )
    .bind(workspace.get())
    .bind(range.bots)
    .bind(days.whole.0)
    .bind(days.whole.1)
    .bind(days.head.0)
    .bind(days.head.1)
    .bind(days.tail.0)
    .bind(days.tail.1)
    .bind(TOP_TAGS)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(value, count)| Ranked { value, count })
        .collect())
}
