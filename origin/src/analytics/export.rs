//! CSV export of a link's raw clicks (`GET /api/v1/links/{code}/clicks.csv`): streamed page
//! by page (`crate::streamed`), every cell made inert for spreadsheets.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;
use time::OffsetDateTime;

use shortlink::spreadsheet::inert_cell;
use shortlink::workspace::Permission;

use crate::caller::Caller;
use crate::error::Error;
use crate::extract::{ApiQuery, CodePath};
use crate::links::store;

pub(crate) use shortlink::query::ExportQuery;

/// Rows per page of the CSV export: each page is one query, so a long export holds no
/// connection between pages. A click's row may hold a few KB (its referrer and agent), so a
/// page may be ~20 MB.
const EXPORT_PAGE: i64 = 5_000;
/// Click exports one instance streams at once (half of them at most one workspace's), each
/// holding a page while its answer streams; more are told it is busy (503, `Retry-After`).
pub(crate) const AT_ONCE: usize = 4;

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
    Option<i16>,
);

/// `GET /api/v1/links/{code}/clicks.csv`: the raw clicks still kept, oldest first, streamed
/// page by page.
#[utoipa::path(
    get, path = "/api/v1/links/{code}/clicks.csv", tag = "stats",
    params(("code" = shortlink::ShortCode, Path, description = "The link's short code."), shortlink::query::ExportQuery),
    responses((status = 200, description = "The raw clicks kept, oldest first.", content_type = "text/csv", body = String), crate::openapi::Refusals),
)]
pub(crate) async fn export_csv(
    State(state): State<crate::State>,
    caller: Caller,
    CodePath(code): CodePath,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, Error> {
    crate::auth::works_in(&caller, query.workspace)?;
    let workspace = caller.may(Permission::ReadStats)?;
    let link_id = store::find_id(state.db(), workspace, &code).await?;
    let from = query.from.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // Now, as documented: an export that runs for long does not take the clicks that come
    // meanwhile (its end would move, and a link busy enough would never end).
    let to = query.to.unwrap_or_else(OffsetDateTime::now_utc);
    let place = state.inner.gate.click_exports.take(workspace)?;
    let db = state.db().clone();
    let body = crate::streamed::pages(
        place,
        state.export_stall(),
        (from, String::new(), true),
        move |(after_at, after_id, first)| page(db.clone(), link_id, to, after_at, after_id, first),
    );
    let filename = format!("attachment; filename=\"{code}-clicks.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        body,
    )
        .into_response())
}

/// Where a page of the export starts: after the click at this time and of this id; whether it
/// is the first (the CSV's header).
type Cursor = (OffsetDateTime, String, bool);

/// The page of `link_id`'s clicks after the cursor's and before `to`, as CSV; where the next
/// starts, or None if this is the last.
async fn page(
    db: PgPool,
    link_id: i64,
    to: OffsetDateTime,
    after_at: OffsetDateTime,
    after_id: String,
    first: bool,
) -> Result<(Vec<u8>, Option<Cursor>), Error> {
    let rows: Vec<ClickRow> = sqlx::query_as(
        "SELECT id, at, country, referrer, referrer_host, user_agent, device, browser, os,
                bot, qr, source, variant
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
    Ok((chunk, next))
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
            "variant",
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
        variant,
    ) in rows
    {
        // The A/B variant's id in the link's split (`Variant::id`); empty for a link without one.
        let variant = variant.map(|v| v.to_string()).unwrap_or_default();
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
            &variant,
        ]
        .map(inert_cell);
        writer.write_record(cells.iter().map(|cell| cell.as_bytes()))?;
    }
    writer.into_inner().map_err(|err| err.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Some(1),
        );
        let csv = String::from_utf8(csv_chunk(&[row], false).expect("csv")).expect("utf-8");
        assert_eq!(
            csv,
            "ev1,1970-01-01T00:00:00Z,DE,'=cmd|' /C calc'!A0,direct,'@SUM(1+1),bot,Other,Other,true,false,edge,1\n"
        );
    }
}
