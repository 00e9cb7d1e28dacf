//! YOURLS as CSV: the YOURLS Import/Export plugin's export (`source,target,hits`, the code
//! written `/keyword/`: GautamGupta/YOURLS-Import-Export `fileio/csv.php`), or the `yourls_url`
//! table exported as CSV with its column names (`keyword,url,title,timestamp,ip,clicks`, as
//! YOURLS `includes/functions-install.php` creates it; phpMyAdmin and `mysql` write this).
//! The `ip` column is not kept. Timestamps have no zone and are read as UTC.

use super::table::{self, Header, cell};
use super::{Clicks, Draft, FileError, Format, Row};

const CODE: &[&str] = &["keyword", "source"];
const DESTINATION: &[&str] = &["url", "target"];

struct Columns {
    code: usize,
    destination: usize,
    title: Option<usize>,
    created: Option<usize>,
    clicks: Option<usize>,
}

pub(super) fn detect(header: &Header) -> Option<Format> {
    (header.has(CODE) && header.has(DESTINATION)).then_some(Format::YourlsCsv)
}

pub(super) fn parse(text: &str, max: usize) -> Result<Vec<Row>, FileError> {
    table::parse_with_header(text, max, columns, |columns, line, record| {
        let source = cell(record, Some(columns.code));
        let draft = Draft {
            destination: cell(record, Some(columns.destination)),
            // The plugin writes `/keyword/`; the table's column is the keyword itself.
            code: Some(source.trim_matches('/')),
            code_required: true,
            // A NULL title (YOURLS allows one) is the word itself in the table's CSV.
            title: Some(cell(record, columns.title)).filter(|title| title.trim() != "NULL"),
            created_at: Some(cell(record, columns.created)),
            clicks: Clicks::Text(cell(record, columns.clicks)),
            ..Draft::default()
        };
        let mut warnings = Vec::new();
        let link = draft.build(&mut warnings);
        Row {
            line,
            source: source.to_owned(),
            link,
            warnings,
        }
    })
}

fn columns(header: &Header) -> Result<Columns, FileError> {
    Ok(Columns {
        code: header.require(Format::YourlsCsv, CODE)?,
        destination: header.require(Format::YourlsCsv, DESTINATION)?,
        title: header.find(&["title"]),
        created: header.find(&["timestamp"]),
        clicks: header.find(&["clicks", "hits"]),
    })
}
