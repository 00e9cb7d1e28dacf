//! The stats API: time series, totals, unique visitors and top-N breakdowns, per link and for
//! the whole account, read from the rollups only; and CSV export of a link's raw clicks.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Deserialize;
use shortlink::ShortCode;
use shortlink::stats::{Breakdowns, Counts, Point, Ranked, Stats, TopLink};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::range::{Range, StatsQuery};
use super::rollup::ACCOUNT;
use crate::error::Error;
use crate::extract::{ApiQuery, CodePath};

pub(crate) fn routes() -> axum::Router<crate::State> {
    use axum::routing::get;
    axum::Router::new()
        .route("/stats", get(account_stats))
        .route("/links/{code}/stats", get(link_stats))
        .route("/links/{code}/clicks.csv", get(export_csv))
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
pub(crate) async fn link_stats(
    State(state): State<crate::State>,
    CodePath(code): CodePath,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, Error> {
    let range = check(state.db(), query).await?;
    let link_id = link_id(state.db(), &code).await?;
    Ok(Json(stats(state.db(), link_id, &range, false).await?))
}

/// `GET /api/v1/stats`: the whole account.
pub(crate) async fn account_stats(
    State(state): State<crate::State>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, Error> {
    let range = check(state.db(), query).await?;
    Ok(Json(stats(state.db(), ACCOUNT, &range, true).await?))
}

/// The live link with this code (statistics of deleted links are not reachable by code).
async fn link_id(db: &PgPool, code: &ShortCode) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT id FROM links WHERE code = $1 AND deleted_at IS NULL")
        .bind(code.as_str())
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::LinkNotFound(code.to_string()))
}

async fn stats(db: &PgPool, link_id: i64, range: &Range, account: bool) -> Result<Stats, Error> {
    let interval = range.interval.as_str();
    // Buckets are made in local time and turned back into instants, so days and weeks
    // follow the zone's midnight, clock changes included.
    let rows: Vec<(OffsetDateTime, i64, i64, i64, i64)> = sqlx::query_as(
        "WITH buckets AS (
             SELECT b AT TIME ZONE $5 AS t
             FROM generate_series(date_trunc($4, $2 AT TIME ZONE $5),
                                  ($3 AT TIME ZONE $5) - interval '1 microsecond',
                                  ('1 ' || $4)::interval) AS b
         ), data AS (
             SELECT date_trunc($4, hour AT TIME ZONE $5) AT TIME ZONE $5 AS t,
                    sum(clicks)::int8 AS clicks, sum(qr_scans)::int8 AS qr_scans,
                    sum(bots)::int8 AS bots, sum(uniques)::int8 AS uniques
             FROM link_stats_hourly
             WHERE link_id = $1 AND hour >= $2 AND hour < $3
             GROUP BY 1
         )
         SELECT buckets.t, coalesce(clicks, 0), coalesce(qr_scans, 0), coalesce(bots, 0),
                coalesce(uniques, 0)
         FROM buckets LEFT JOIN data USING (t)
         ORDER BY buckets.t",
    )
    .bind(link_id)
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
    let top = breakdowns(db, link_id, range).await?;
    let top_links = if account {
        Some(top_links(db, range).await?)
    } else {
        None
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
async fn breakdowns(db: &PgPool, link_id: i64, range: &Range) -> Result<Breakdowns, Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "WITH bounds AS (
             SELECT ceil_day, greatest(ceil_day, floor_day) AS floor_day
             FROM (SELECT date_trunc('day', $2 AT TIME ZONE 'UTC' + interval '1 day' - interval '1 microsecond') AT TIME ZONE 'UTC' AS ceil_day,
                          date_trunc('day', $3 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS floor_day) AS d
         ), parts AS (
             SELECT dimension, value, hits, bots FROM link_breakdown_daily, bounds
             WHERE link_id = $1 AND day >= (ceil_day AT TIME ZONE 'UTC')::date
               AND day < (floor_day AT TIME ZONE 'UTC')::date
             UNION ALL
             SELECT dimension, value, hits, bots FROM link_breakdown_hourly, bounds
             WHERE link_id = $1 AND hour >= $2 AND hour < least($3, ceil_day)
             UNION ALL
             SELECT dimension, value, hits, bots FROM link_breakdown_hourly, bounds
             WHERE link_id = $1 AND hour >= greatest($2, floor_day) AND hour < $3
         ), ranked AS (
             SELECT dimension, value, sum(hits + CASE WHEN $4 THEN bots ELSE 0 END)::int8 AS count,
                    row_number() OVER (PARTITION BY dimension
                                       ORDER BY sum(hits + CASE WHEN $4 THEN bots ELSE 0 END) DESC, value) AS rank
             FROM parts GROUP BY dimension, value
         )
         SELECT dimension, value, count FROM ranked
         WHERE rank <= $5 AND count > 0
         ORDER BY dimension, rank",
    )
    .bind(link_id)
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
            _ => continue,
        };
        list.push(Ranked { value, count });
    }
    Ok(top)
}

/// The most visited live links. Deleted ones are left out (their clicks still count in the
/// account's totals): they can no longer be opened, and their code may name another link now.
async fn top_links(db: &PgPool, range: &Range) -> Result<Vec<TopLink>, Error> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT s.link_id, l.code, s.count FROM (
             SELECT link_id, sum(clicks + qr_scans + CASE WHEN $3 THEN bots ELSE 0 END)::int8 AS count
             FROM link_stats_hourly
             WHERE hour >= $1 AND hour < $2 AND link_id <> 0
             GROUP BY link_id
         ) AS s JOIN links l ON l.id = s.link_id
         WHERE s.count > 0 AND l.deleted_at IS NULL
         ORDER BY s.count DESC, l.code
         LIMIT $4",
    )
    .bind(range.from)
    .bind(range.to)
    .bind(range.bots)
    .bind(range.top)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(link_id, code, count)| TopLink {
            code,
            link_id,
            count,
        })
        .collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    #[serde(default, with = "shortlink::timestamp::rfc3339::option")]
    from: Option<OffsetDateTime>,
    #[serde(default, with = "shortlink::timestamp::rfc3339::option")]
    to: Option<OffsetDateTime>,
}

/// Rows per page of the CSV export: each page is one query, so a long export holds no
/// connection between pages.
const EXPORT_PAGE: i64 = 5_000;

type ClickRow = (
    String,
    OffsetDateTime,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
    String,
    String,
    bool,
    bool,
    String,
);

/// `GET /api/v1/links/{code}/clicks.csv`: the raw clicks still kept, oldest first, streamed
/// page by page.
pub(crate) async fn export_csv(
    State(state): State<crate::State>,
    CodePath(code): CodePath,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, Error> {
    let link_id = link_id(state.db(), &code).await?;
    let from = query.from.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let to = query
        .to
        .unwrap_or_else(|| OffsetDateTime::now_utc() + Duration::DAY);
    let db = state.db().clone();

    // State of the stream: where the next page starts; None once the last page was sent.
    let start = Some((from, String::new(), true));
    let pages = futures_util::stream::try_unfold(start, move |cursor| {
        let db = db.clone();
        async move {
            let Some((after_at, after_id, first)) = cursor else {
                return Ok::<_, Error>(None);
            };
            let rows: Vec<ClickRow> = sqlx::query_as(
                "SELECT id, at, country, referrer, referrer_host, user_agent, device, browser, os,
                        bot, qr, source
                 FROM clicks
                 WHERE link_id = $1 AND (at, id) > ($2, $3) AND at < $4
                 ORDER BY at, id
                 LIMIT $5",
            )
            .bind(link_id)
            .bind(after_at)
            .bind(&after_id)
            .bind(to)
            .bind(EXPORT_PAGE)
            .fetch_all(&db)
            .await?;
            let next = rows
                .last()
                .filter(|_| rows.len() as i64 == EXPORT_PAGE)
                .map(|row| (row.1, row.0.clone(), false));
            let chunk = csv_chunk(&rows, first).map_err(|err| Error::Internal(err.into()))?;
            Ok(Some((chunk, next)))
        }
    });
    let filename = format!("attachment; filename=\"{code}-clicks.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        Body::from_stream(pages.map_err(|err| std::io::Error::other(err.to_string()))),
    )
        .into_response())
}

fn csv_chunk(rows: &[ClickRow], with_header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if with_header {
        writer.write_record([
            "id",
            "at",
            "country",
            "referrer",
            "referrer_host",
            "user_agent",
            "device",
            "browser",
            "os",
            "bot",
            "qr",
            "source",
        ])?;
    }
    for (
        id,
        at,
        country,
        referrer,
        referrer_host,
        user_agent,
        device,
        browser,
        os,
        bot,
        qr,
        source,
    ) in rows
    {
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        // Every text cell, not only the ones visitors send today: a cell that cannot start
        // with a formula character costs nothing, and a new field cannot forget it.
        let cells = [
            id.as_str(),
            &at,
            country.as_deref().unwrap_or_default(),
            referrer.as_deref().unwrap_or_default(),
            referrer_host,
            user_agent.as_deref().unwrap_or_default(),
            device,
            browser,
            os,
            if *bot { "true" } else { "false" },
            if *qr { "true" } else { "false" },
            source,
        ]
        .map(inert_cell);
        writer.write_record(cells.iter().map(|cell| cell.as_bytes()))?;
    }
    writer.into_inner().map_err(|err| err.into_error().into())
}

/// A cell a spreadsheet shows as text instead of running it as a formula (CSV injection):
/// a visitor chooses their `Referer` and `User-Agent`, and `=HYPERLINK(...)` in one would run
/// when the export is opened. OWASP's recommendation: a leading `'` before a cell that starts
/// with `=`, `+`, `-`, `@`, a tab or a carriage return (spreadsheets hide the `'`), the cell
/// then quoted by the CSV writer as usual.
fn inert_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_would_run_as_formulas_are_made_text() {
        for (cell, written) in [
            (
                "=HYPERLINK(\"https://evil.example\",\"x\")",
                "'=HYPERLINK(\"https://evil.example\",\"x\")",
            ),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "'\r=1+1"),
            // Harmless cells are left as they are, formula characters inside them too.
            ("https://news.example/a=b", "https://news.example/a=b"),
            (
                "Mozilla/5.0 (X11; Linux x86_64)",
                "Mozilla/5.0 (X11; Linux x86_64)",
            ),
            ("a-b@c", "a-b@c"),
            (" =1", " =1"),
            ("", ""),
        ] {
            assert_eq!(inert_cell(cell), written, "{cell:?}");
        }
    }

    #[test]
    fn an_export_row_holds_no_formula() {
        let row: ClickRow = (
            "ev1".to_owned(),
            OffsetDateTime::UNIX_EPOCH,
            Some("DE".to_owned()),
            Some("=cmd|' /C calc'!A0".to_owned()),
            "direct".to_owned(),
            Some("@SUM(1+1)".to_owned()),
            "bot".to_owned(),
            "Other".to_owned(),
            "Other".to_owned(),
            true,
            false,
            "edge".to_owned(),
        );
        let csv = String::from_utf8(csv_chunk(&[row], false).expect("csv")).expect("utf-8");
        assert_eq!(
            csv,
            "ev1,1970-01-01T00:00:00Z,DE,'=cmd|' /C calc'!A0,direct,'@SUM(1+1),bot,Other,Other,true,false,edge\n"
        );
    }
}
