//! A plain CSV of `destination,code,tags`, for lists made by hand or by a script.
//!
//! The header row is optional: a first row naming a `destination` (or `url`) column, and
//! holding no URL, is one,
//! and then the columns may come in any order (`code` may also be called `slug`); without it
//! the columns are destination, code, tags in that order. An empty code lets the origin
//! generate one. Tags in one cell are separated by `|`, `;` or `,` (a tag may hold spaces).
//! Further columns are ignored.

use super::table::{self, Header, cell};
use super::{Draft, FileError, Format, Row, push};

const DESTINATION: &[&str] = &["destination", "url", "long url"];
const CODE: &[&str] = &["code", "slug", "short code"];
const TAGS: &[&str] = &["tags"];

struct Columns {
    destination: Option<usize>,
    code: Option<usize>,
    tags: Option<usize>,
}

const WITHOUT_HEADER: Columns = Columns {
    destination: Some(0),
    code: Some(1),
    tags: Some(2),
};

pub(super) fn detect(header: &Header) -> Option<Format> {
    (header.has(DESTINATION) || is_url(header.raw(0))).then_some(Format::Csv)
}

/// Whether a first row is a header: it names a destination column and holds no URL. A row
/// of data whose code or tag is `url` (say `https://example.com/a,url,`) is a link, not a
/// header that would drop it and read the codes as destinations.
fn is_header(header: &Header, record: &csv::StringRecord) -> bool {
    header.has(DESTINATION) && !record.iter().any(is_url)
}

fn is_url(cell: &str) -> bool {
    let cell = cell.trim().to_ascii_lowercase();
    cell.starts_with("http://") || cell.starts_with("https://")
}

pub(super) fn parse(text: &str, max: usize) -> Result<Vec<Row>, FileError> {
    let mut columns: Option<Columns> = None;
    let mut rows = Vec::new();
    table::for_each_record(text, |line, record| {
        let columns = match &columns {
            Some(columns) => columns,
            None => {
                let header = Header::new(record);
                if is_header(&header, record) {
                    columns = Some(Columns {
                        destination: header.find(DESTINATION),
                        code: header.find(CODE),
                        tags: header.find(TAGS),
                    });
                    return Ok(());
                }
                columns.insert(WITHOUT_HEADER)
            }
        };
        let code = cell(record, columns.code);
        let draft = Draft {
            destination: cell(record, columns.destination),
            code: Some(code),
            tags: vec![cell(record, columns.tags)],
            ..Draft::default()
        };
        let mut warnings = Vec::new();
        let link = draft.build(&mut warnings);
        push(
            &mut rows,
            Row {
                line,
                source: code.to_owned(),
                link,
                warnings,
            },
            max,
        )
    })?;
    Ok(rows)
}
