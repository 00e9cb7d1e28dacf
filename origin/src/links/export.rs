//! `GET /api/v1/links/export`: every live link of the workspace, as JSON lines (one
//! `shortlink::api::ExportedLink` a line, which `POST /api/v1/links/bulk` takes back) or CSV
//! (for spreadsheets, cells made inert), streamed by keyset pages so that the memory an export
//! takes does not grow with the workspace.
//!
//! Each page is its own query, keyed by id, outside any transaction: a long export holds no
//! snapshot (which would keep vacuum from cleaning up after every write meanwhile) and no
//! connection between pages. So an export is not one instant's view: a link created while it
//! runs may be missing from it (its id can be below the page already sent, as ids are drawn
//! before the insert commits), an edit meanwhile shows in a link not yet sent, and a link
//! deleted meanwhile may still be in it.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use shortlink::api::{ExportedLink, Link};
use shortlink::query::{ExportFormat, LinkExportQuery};
use shortlink::spreadsheet::inert_cell;
use shortlink::workspace::Permission;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::store;
use crate::caller::{Caller, WorkspaceId};
use crate::error::Error;
use crate::extract::ApiQuery;

/// Links per page: each page is one query (its clicks included), so a long export holds no
/// connection between pages, and memory holds one page. A link may hold up to ~170 KiB of
/// rules and text, so a page of the largest is ~35 MB, held three times over while encoded.
const PAGE: i64 = 200;
/// Exports one instance streams at once, half of them at most one workspace's; more are told
/// it is busy (503, `Retry-After`). The cap is held until the answer's last page is sent (or the client goes away, or stops
/// reading for [`crate::streamed::STALL`]), not only while the handler runs, as the API's concurrency cap is.
pub(crate) const AT_ONCE: usize = 4;
/// The answer's `Content-Type`.
fn content_type(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Jsonl => "application/jsonl; charset=utf-8",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    }
}

#[utoipa::path(
    get, path = "/api/v1/links/export", tag = "links",
    params(LinkExportQuery),
    responses(
        (status = 200, description = "Every live link of the workspace, oldest first: JSON lines of `ExportedLink` (the link and its clicks, imported and counted; without them for a key lacking `stats:read`), or CSV (code, short_url, destination, title, tags joined by `|`, note, created_at, clicks, status, expires_at, disabled, max_clicks, fallback_url, and rules: targets, split and utm as one JSON cell).",
            content(
                (shortlink::api::ExportedLink = "application/jsonl"),
                (String = "text/csv"),
            )),
        crate::openapi::Refusals,
    ),
)]
pub(crate) async fn export(
    State(state): State<crate::State>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LinkExportQuery>,
) -> Result<Response, Error> {
    crate::auth::works_in(&caller, query.workspace)?;
    let workspace = caller.may(Permission::ReadLinks)?;
    // Clicks are statistics: a key without `stats:read` exports links without them.
    let with_clicks = caller.may(Permission::ReadStats).is_ok();
    let place = state.inner.gate.link_exports.take(workspace)?;
    let format = query.format;
    let filename = format!(
        "attachment; filename=\"kurz-links-{}-{}.{}\"",
        workspace.get(),
        OffsetDateTime::now_utc().date(),
        format.id()
    );
    let stall = state.export_stall();
    let body = crate::streamed::pages(place, stall, (0, true), move |(after, first)| {
        page(state.clone(), workspace, format, with_clicks, after, first)
    });
    Ok((
        [
            (header::CONTENT_TYPE, content_type(format).to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        body,
    )
        .into_response())
}

/// The page of links after id `after`, encoded (`first`: the CSV's header too); where the
/// next page starts, or None if this is the last.
async fn page(
    state: crate::State,
    workspace: WorkspaceId,
    format: ExportFormat,
    with_clicks: bool,
    after: i64,
    first: bool,
) -> Result<(Vec<u8>, Option<(i64, bool)>), Error> {
    let rows = store::export_page(state.db(), workspace, after, PAGE).await?;
    let next = rows
        .last()
        .filter(|_| rows.len() as i64 == PAGE)
        .map(|row| (row.link.id, false));
    let links = rows
        .into_iter()
        .map(|row| {
            Ok(ExportedLink {
                link: row.link.into_link(&state.inner.public_url)?,
                clicks: with_clicks
                    .then(|| u64::try_from(row.clicks))
                    .transpose()
                    .map_err(|e| Error::Internal(e.into()))?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let chunk = match format {
        ExportFormat::Jsonl => jsonl_chunk(&links),
        ExportFormat::Csv => csv_chunk(&links, first),
    }
    .map_err(Error::Internal)?;
    Ok((chunk, next))
}

fn jsonl_chunk(links: &[ExportedLink]) -> anyhow::Result<Vec<u8>> {
    let mut chunk = Vec::new();
    for link in links {
        serde_json::to_writer(&mut chunk, link)?;
        chunk.push(b'\n');
    }
    Ok(chunk)
}

/// The CSV's columns, in order.
const CSV_HEADER: [&str; 14] = [
    "code",
    "short_url",
    "destination",
    "title",
    "tags",
    "note",
    "created_at",
    "clicks",
    "status",
    "expires_at",
    "disabled",
    "max_clicks",
    "fallback_url",
    "rules",
];

fn csv_chunk(links: &[ExportedLink], with_header: bool) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if with_header {
        writer.write_record(CSV_HEADER)?;
    }
    for exported in links {
        let cells = csv_row(&exported.link, exported.clicks)?;
        // Every cell, not only the ones people type: a title or note starting with `=` would
        // run as a formula when the file is opened.
        writer.write_record(cells.iter().map(|cell| inert_cell(cell).into_owned()))?;
    }
    Ok(writer.into_inner().map_err(|err| err.into_error())?)
}

fn csv_row(link: &Link, clicks: Option<u64>) -> anyhow::Result<[String; 14]> {
    let time = |at: Option<OffsetDateTime>| -> anyhow::Result<String> {
        Ok(at
            .map(|at| at.format(&Rfc3339))
            .transpose()?
            .unwrap_or_default())
    };
    let tags: Vec<&str> = link
        .tags
        .as_slice()
        .iter()
        .map(|tag| tag.as_str())
        .collect();
    Ok([
        link.code.to_string(),
        link.short_url.clone(),
        link.destination.as_str().to_owned(),
        link.title
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        // A tag cannot contain `|` (`shortlink::rules::Tag`).
        tags.join("|"),
        link.note
            .as_ref()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        time(Some(link.created_at))?,
        clicks.map(|clicks| clicks.to_string()).unwrap_or_default(),
        link.status.code().to_string(),
        time(link.expires_at)?,
        link.disabled.to_string(),
        link.max_clicks
            .map(|m| m.get().to_string())
            .unwrap_or_default(),
        link.fallback_url
            .as_ref()
            .map(|f| f.as_str().to_owned())
            .unwrap_or_default(),
        rules_cell(link)?,
    ])
}

/// The rules a CSV row has no column for, as one JSON object of those the link has (empty
/// when it has none): `targets`, `split`, `utm`, as the API writes them.
fn rules_cell(link: &Link) -> anyhow::Result<String> {
    let mut rules = serde_json::Map::new();
    if !link.targets.is_empty() {
        rules.insert("targets".to_owned(), serde_json::to_value(&link.targets)?);
    }
    if !link.split.is_empty() {
        rules.insert("split".to_owned(), serde_json::to_value(&link.split)?);
    }
    if !link.utm.is_empty() {
        rules.insert("utm".to_owned(), serde_json::to_value(&link.utm)?);
    }
    if rules.is_empty() {
        return Ok(String::new());
    }
    Ok(serde_json::Value::Object(rules).to_string())
}
