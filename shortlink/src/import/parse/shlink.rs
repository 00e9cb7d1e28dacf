//! Shlink: its REST API's short URLs as JSON, and shlink-web-client's CSV export.
//!
//! JSON: `GET /rest/v3/short-urls` answers `{"shortUrls": {"data": [...], "pagination": ...}}`,
//! each short URL as shlinkio/shlink's `ShortUrlDataTransformer` writes it: `shortCode`,
//! `shortUrl`, `longUrl`, `dateCreated` (ISO 8601), `tags`, `title`, `domain`,
//! `visitsSummary.total` (older versions: `visitsCount`; `originalUrl` before `longUrl`) and
//! `meta` (`validSince`, `validUntil`, `maxVisits`). `validUntil` becomes the expiry; a visit
//! limit or a start date is not imported (kurz counts a limit's clicks from zero) and is
//! reported on the row.
//!
//! CSV: shlink-web-client's `ExportShortUrlsBtn.tsx` writes `createdAt`, `shortUrl`, `longUrl`,
//! `title`, `tags` (joined with `,`) and `visits`; the code is the short URL's path.

use serde::Deserialize;

use super::table::{self, Header, cell};
use super::{Clicks, Draft, FileError, Format, Row, code_of_short_link, json, push};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShortUrl {
    #[serde(default)]
    short_code: Option<String>,
    #[serde(default)]
    short_url: Option<String>,
    #[serde(default, alias = "originalUrl")]
    long_url: Option<String>,
    #[serde(default)]
    date_created: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    visits_summary: Option<VisitsSummary>,
    #[serde(default)]
    visits_count: Option<u64>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Debug, Deserialize)]
struct VisitsSummary {
    #[serde(default)]
    total: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    valid_since: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default)]
    max_visits: Option<u64>,
}

pub(super) fn parse_json(text: &str, max: usize) -> Result<Vec<Row>, FileError> {
    let mut rows = Vec::new();
    for (index, short_url) in json::records::<ShortUrl>(text, Format::ShlinkJson, max)?
        .iter()
        .enumerate()
    {
        let meta = short_url.meta.as_ref();
        let mut warnings = Vec::new();
        if let Some(max) = meta.and_then(|meta| meta.max_visits) {
            warnings.push(format!("the limit of {max} visits is not imported"));
        }
        if let Some(since) = meta.and_then(|meta| meta.valid_since.as_deref()) {
            warnings.push(format!("the start date {since} is not imported"));
        }
        let clicks = short_url
            .visits_summary
            .as_ref()
            .and_then(|summary| summary.total)
            .or(short_url.visits_count);
        let draft = Draft {
            destination: short_url.long_url.as_deref().unwrap_or_default(),
            code: short_url.short_code.as_deref(),
            code_required: true,
            title: short_url.title.as_deref(),
            created_at: short_url.date_created.as_deref(),
            expires_at: meta.and_then(|meta| meta.valid_until.as_deref()),
            tags: short_url
                .tags
                .iter()
                .flatten()
                .map(String::as_str)
                .collect(),
            clicks: clicks.map_or(Clicks::None, Clicks::Number),
            ..Draft::default()
        };
        let source = short_url
            .short_url
            .as_deref()
            .or(short_url.short_code.as_deref())
            .unwrap_or_default();
        push(
            &mut rows,
            Row {
                line: index as u64 + 1,
                source: source.to_owned(),
                link: draft.build(&mut warnings),
                warnings,
            },
            max,
        )?;
    }
    Ok(rows)
}

const SHORT_URL: &[&str] = &["shortUrl"];
const LONG_URL: &[&str] = &["longUrl"];

struct Columns {
    short_url: usize,
    long_url: usize,
    created: Option<usize>,
    title: Option<usize>,
    tags: Option<usize>,
    visits: Option<usize>,
}

pub(super) fn detect_csv(header: &Header) -> Option<Format> {
    (header.has(SHORT_URL) && header.has(LONG_URL)).then_some(Format::ShlinkCsv)
}

pub(super) fn parse_csv(text: &str, max: usize) -> Result<Vec<Row>, FileError> {
    table::parse_with_header(text, max, columns, |columns, line, record| {
        let short_url = cell(record, Some(columns.short_url));
        let draft = Draft {
            destination: cell(record, Some(columns.long_url)),
            code: Some(code_of_short_link(short_url)),
            code_required: true,
            title: Some(cell(record, columns.title)),
            created_at: Some(cell(record, columns.created)),
            tags: vec![cell(record, columns.tags)],
            clicks: Clicks::Text(cell(record, columns.visits)),
            ..Draft::default()
        };
        let mut warnings = Vec::new();
        let link = draft.build(&mut warnings);
        Row {
            line,
            source: short_url.to_owned(),
            link,
            warnings,
        }
    })
}

fn columns(header: &Header) -> Result<Columns, FileError> {
    Ok(Columns {
        short_url: header.require(Format::ShlinkCsv, SHORT_URL)?,
        long_url: header.require(Format::ShlinkCsv, LONG_URL)?,
        created: header.find(&["createdAt", "dateCreated"]),
        title: header.find(&["title"]),
        tags: header.find(&["tags"]),
        visits: header.find(&["visits", "visitsCount"]),
    })
}
