//! Bitly's CSV export of links.
//!
//! Bitly names its columns differently in the web app's export (`Link`, `Custom Link`,
//! `Destination URL`, `Title`, `Tags`, `Date Created`) and in its API's fields, which API-based
//! exports keep (`link`, `custom_bitlinks`, `long_url`, `title`, `tags`, `created_at`): both
//! are read. A short link carries its domain (`bit.ly/abc123`); the code is its path. A link
//! with a custom back-half keeps that one (the back-half people were given), else its generated
//! one. Click totals are read when the export has them (`Clicks`, `Engagements`).

use super::table::{self, Header, cell};
use super::{Clicks, Draft, FileError, Format, Row, code_of_short_link};

const LINK: &[&str] = &["link", "bitlink", "short link", "short url"];
const CUSTOM: &[&str] = &[
    "custom link",
    "custom bitlink",
    "custom bitlinks",
    "custom back-half",
];
const DESTINATION: &[&str] = &["long url", "destination url", "destination", "original url"];
const TITLE: &[&str] = &["title"];
const CREATED: &[&str] = &["created at", "date created", "created", "creation date"];
const TAGS: &[&str] = &["tags"];
const CLICKS: &[&str] = &["clicks", "total clicks", "engagements", "total engagements"];

struct Columns {
    link: Option<usize>,
    custom: Option<usize>,
    destination: usize,
    title: Option<usize>,
    created: Option<usize>,
    tags: Option<usize>,
    clicks: Option<usize>,
}

/// Whether the header has columns only Bitly's exports have: a custom back-half, clicks.
pub(super) fn has_own_columns(header: &Header) -> bool {
    header.has(CUSTOM) || header.has(CLICKS)
}

pub(super) fn detect(header: &Header) -> Option<Format> {
    (header.has(DESTINATION) && (header.has(LINK) || header.has(CUSTOM))).then_some(Format::Bitly)
}

pub(super) fn parse(text: &str, max: usize) -> Result<Vec<Row>, FileError> {
    table::parse_with_header(text, max, columns, |columns, line, record| {
        let custom = cell(record, columns.custom)
            .split([',', ' ', '|'])
            .find(|link| !link.is_empty())
            .unwrap_or_default();
        let short_link = if custom.is_empty() {
            cell(record, columns.link)
        } else {
            custom
        };
        let draft = Draft {
            destination: cell(record, Some(columns.destination)),
            code: Some(code_of_short_link(short_link)),
            code_required: true,
            title: Some(cell(record, columns.title)),
            created_at: Some(cell(record, columns.created)),
            tags: vec![cell(record, columns.tags)],
            clicks: Clicks::Text(cell(record, columns.clicks)),
            ..Draft::default()
        };
        let mut warnings = Vec::new();
        let link = draft.build(&mut warnings);
        Row {
            line,
            source: short_link.to_owned(),
            link,
            warnings,
        }
    })
}

fn columns(header: &Header) -> Result<Columns, FileError> {
    let link = header.find(LINK);
    let custom = header.find(CUSTOM);
    if link.is_none() && custom.is_none() {
        header.require(Format::Bitly, &["link", "custom link", "bitlink"])?;
    }
    Ok(Columns {
        link,
        custom,
        destination: header.require(Format::Bitly, DESTINATION)?,
        title: header.find(TITLE),
        created: header.find(CREATED),
        tags: header.find(TAGS),
        clicks: header.find(CLICKS),
    })
}
