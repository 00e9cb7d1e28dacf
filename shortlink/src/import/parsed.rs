//! `POST /api/v1/links/import/parse`: the origin reads an uploaded file with the importers
//! (so the dashboard's wasm does not carry them) and answers the rows it would import, ready
//! for `POST /api/v1/links/bulk` in chunks, with the rows that failed and each row's warnings.

use serde::{Deserialize, Serialize};

use super::{Failure, Format};
use crate::api::CreateLink;

/// The largest file the parse route reads (bytes; 413 beyond): a larger one is imported with
/// the `kurz` command-line client, which parses on the caller's machine.
pub const MAX_PARSE_BYTES: usize = 16 * 1024 * 1024;

/// The most rows the parse route reads from one file: a file with more is refused whole
/// (422, field `file`), not cut short, so no import silently stops in the middle.
pub const MAX_PARSE_ROWS: usize = 100_000;

/// The most characters of a row's `source` an answer carries, cut with "…": a code or short
/// URL is far shorter, and a cell of megabytes would otherwise come back in the answer once
/// for its row and once for each of its warnings, the answer many times its file.
#[cfg(feature = "import")]
const MAX_SOURCE_CHARS: usize = 200;

/// The query of `POST /api/v1/links/import/parse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct ParseQuery {
    /// The file's format; absent: guessed from its content, as `kurz import` guesses it (422
    /// with field `format` when nothing fits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub format: Option<Format>,
    /// The file's name, which only breaks ties when guessing (a `.sql` file is never read as
    /// a CSV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A file read for an import. Nothing was written: the links are created by sending them to
/// `POST /api/v1/links/bulk`, which may still refuse some (a code taken meanwhile, a
/// destination that loops to this deployment). `L` is [`CreateLink`]; the dashboard, which only
/// passes the links on, reads them as JSON values (its wasm need not carry their parsing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParsedFile<L = CreateLink> {
    /// The format the file was read as: the one asked for, or the one guessed.
    pub format: Format,
    /// The rows that became links, in the file's order.
    pub links: Vec<ParsedLink<L>>,
    /// The rows that did not, in the file's order, each with its error.
    pub failures: Vec<Failure>,
    /// What rows are imported without (a password, a visit limit) or changed (a title cut
    /// to its limit), in the file's order; a row may have several.
    pub warnings: Vec<Warning>,
}

/// A row of the file that became a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParsedLink<L = CreateLink> {
    /// Its line in the file (1-based); in a Shlink or Kutt JSON document, its record's position.
    pub line: u64,
    /// Its code or short URL as the file wrote it, for people to find it again.
    pub source: String,
    /// What `POST /api/v1/links/bulk` takes.
    pub link: L,
}

/// Something a row is imported without, or with changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Warning {
    pub line: u64,
    pub source: String,
    pub message: String,
}

#[cfg(feature = "import")]
impl ParsedFile {
    /// The rows as the two clients report them.
    pub fn of(format: Format, rows: Vec<super::Row>) -> Self {
        let mut parsed = Self {
            format,
            links: Vec::new(),
            failures: Vec::new(),
            warnings: Vec::new(),
        };
        for mut row in rows {
            if let Some((cut, _)) = row.source.char_indices().nth(MAX_SOURCE_CHARS) {
                row.source.truncate(cut);
                row.source.push('…');
            }
            parsed
                .warnings
                .extend(row.warnings.into_iter().map(|message| Warning {
                    line: row.line,
                    source: row.source.clone(),
                    message,
                }));
            match row.link {
                Ok(link) => parsed.links.push(ParsedLink {
                    line: row.line,
                    source: row.source,
                    link,
                }),
                Err(error) => parsed.failures.push(Failure {
                    line: row.line,
                    source: row.source,
                    field: error.field,
                    message: error.message,
                }),
            }
        }
        parsed
    }
}
