//! The parsers behind [`parse`] and [`detect`] (the `import` feature): a file's bytes into
//! [`Row`]s, one format per child module.

mod bitly;
mod date;
mod json;
mod kurz;
mod kutt;
mod plain;
mod shlink;
mod table;
mod yourls;
mod yourls_sql;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use crate::api::CreateLink;
use crate::rules::{MAX_NOTE_LEN, MAX_TITLE_LEN, Note, Tag, Tags, Title};
use crate::{Destination, ShortCode};

use super::{Format, MAX_FILE_BYTES, MAX_ROWS};

/// One record of the file: the link it becomes, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Where the record starts: its line in the file (1-based); for a JSON document (Shlink,
    /// Kutt), the record's position among the document's records (1-based).
    pub line: u64,
    /// The record's code or short URL as the source wrote it, for people to find it again.
    pub source: String,
    pub link: Result<CreateLink, RowError>,
    /// What the row imports without (a password, a click limit): the link is made anyway.
    pub warnings: Vec<String>,
}

/// Why one record cannot become a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The [`CreateLink`] field at fault (`destination`, `code`, `tags`, `created_at`, ...),
    /// as the API's errors name them; `None` when the record as a whole is malformed.
    pub field: Option<String>,
    pub message: String,
}

impl RowError {
    fn new(field: &str, message: impl fmt::Display) -> Self {
        Self {
            field: Some(field.to_owned()),
            message: message.to_string(),
        }
    }

    fn whole(message: impl fmt::Display) -> Self {
        Self {
            field: None,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why the whole file cannot be read as the chosen format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is larger than {max} bytes", max = MAX_FILE_BYTES)]
    TooLarge,
    /// More rows than [`MAX_ROWS`], or than the caller of [`parse_at_most`] takes.
    #[error("the file holds more than {max} rows")]
    TooManyRows { max: usize },
    #[error("the file is not UTF-8 text (line {line}); save it as UTF-8 and try again")]
    NotUtf8 { line: u64 },
    #[error("the file is empty")]
    Empty,
    /// The file is not in the chosen format: `expected` says what was missing.
    #[error("not a {format} file: {expected}")]
    NotThisFormat {
        format: &'static str,
        expected: String,
    },
    #[error("line {line}: {message}")]
    Syntax { line: u64, message: String },
    /// kurz's CSV export (`?format=csv`): its rules are one JSON cell and it lacks the clicks
    /// used against a limit, so reading it as a CSV source would lose them quietly.
    #[error(
        "kurz's CSV export is for spreadsheets; import the JSON lines export (format kurz) \
         instead — it keeps every field"
    )]
    KurzCsv,
}

/// Reads `bytes` as `format`: one [`Row`] per record, in the file's order.
pub fn parse(format: Format, bytes: &[u8]) -> Result<Vec<Row>, FileError> {
    parse_at_most(format, bytes, MAX_ROWS)
}

/// [`parse`], refusing a file of more than `max_rows` rows (at most [`MAX_ROWS`]) as soon as
/// it finds one more, so what a caller holds in memory is bounded by its own figure.
pub fn parse_at_most(format: Format, bytes: &[u8], max_rows: usize) -> Result<Vec<Row>, FileError> {
    let max = max_rows.min(MAX_ROWS);
    let text = text(bytes)?;
    // Whatever format was picked: a CSV source would read its columns and lose the rest.
    if table::first_record(text).is_some_and(|header| is_kurz_csv(&header)) {
        return Err(FileError::KurzCsv);
    }
    let mut rows = match format {
        Format::Kurz => kurz::parse(text, max)?,
        Format::Bitly => bitly::parse(text, max)?,
        Format::YourlsCsv => yourls::parse(text, max)?,
        Format::YourlsSql => yourls_sql::parse(text, max)?,
        Format::ShlinkJson => shlink::parse_json(text, max)?,
        Format::ShlinkCsv => shlink::parse_csv(text, max)?,
        Format::KuttJson => kutt::parse(text, max)?,
        Format::Csv => plain::parse(text, max)?,
    };
    if rows.is_empty() {
        return Err(FileError::Empty);
    }
    refuse_codes_not_free(format, &mut rows);
    Ok(rows)
}

/// The first columns of kurz's own CSV export (`origin/src/links/export.rs`, `CSV_HEADER`).
const KURZ_CSV: [&str; 5] = ["code", "short_url", "destination", "title", "tags"];

fn is_kurz_csv(header: &table::Header) -> bool {
    KURZ_CSV
        .iter()
        .enumerate()
        .all(|(column, name)| header.find(&[name]) == Some(column))
}

/// Makes a row's error of a code that [`ShortCode`] takes but a new link may not: one naming a
/// route of the links API, or one an earlier row of the file took. The API would refuse the
/// repeat as well, but only when both rows are sent in one chunk: sent in two, the second
/// row's failure would come after the dry run said the file was fine.
fn refuse_codes_not_free(format: Format, rows: &mut [Row]) {
    // Shlink's and Kutt's rows are numbered by record, not by line.
    let unit = match format {
        Format::ShlinkJson | Format::KuttJson => "record",
        _ => "line",
    };
    let mut first_use: HashMap<ShortCode, u64> = HashMap::new();
    for row in rows {
        let Some(code) = row.link.as_ref().ok().and_then(|link| link.code.clone()) else {
            continue;
        };
        let error = if code.names_api_route() {
            RowError::new(
                "code",
                crate::Error::CodeReserved {
                    code: code.to_string(),
                },
            )
        } else {
            match first_use.entry(code) {
                Entry::Vacant(entry) => {
                    entry.insert(row.line);
                    continue;
                }
                Entry::Occupied(entry) => RowError::new(
                    "code",
                    format_args!(
                        "code {} is already used on {unit} {} of this file",
                        entry.key(),
                        entry.get()
                    ),
                ),
            }
        };
        row.link = Err(error);
    }
}

/// Guesses the format from the file's content (its header row, its JSON shape, its SQL), the
/// name only breaking ties; `None` when nothing fits, so the person picks one.
pub fn detect(file_name: &str, bytes: &[u8]) -> Option<Format> {
    let text = text(bytes).ok()?;
    let start = text.trim_start();
    if start.starts_with('{') || start.starts_with('[') {
        return kurz::detect(start).or_else(|| json::detect(start));
    }
    if yourls_sql::detect(text) {
        return Some(Format::YourlsSql);
    }
    if file_name.to_ascii_lowercase().ends_with(".sql") {
        return None;
    }
    let header = table::first_record(text)?;
    if is_kurz_csv(&header) {
        // Its columns would pass for Bitly's; as kurz's, `parse` says which file to take.
        return Some(Format::Kurz);
    }
    // Bitly's "Short URL" and "Long URL" pass for Shlink's names: a Bitly column is Bitly's.
    shlink::detect_csv(&header)
        .filter(|_| !bitly::has_own_columns(&header))
        .or_else(|| yourls::detect(&header))
        .or_else(|| bitly::detect(&header))
        .or_else(|| plain::detect(&header))
}

/// The file as text: bounded, UTF-8, without a byte-order mark (spreadsheets write one).
fn text(bytes: &[u8]) -> Result<&str, FileError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| FileError::NotUtf8 {
        line: line_at(bytes, e.valid_up_to()),
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The 1-based line of a byte offset.
fn line_at(bytes: &[u8], offset: usize) -> u64 {
    let newlines = bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    u64::try_from(newlines)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// One record's values as the source gave them, before kurz's rules.
#[derive(Debug, Default)]
struct Draft<'a> {
    destination: &'a str,
    /// `None` (or empty): the origin generates a code, unless `code_required`.
    code: Option<&'a str>,
    /// The source always has a code: a missing one is the row's error (never a new code).
    code_required: bool,
    title: Option<&'a str>,
    created_at: Option<&'a str>,
    expires_at: Option<&'a str>,
    /// Cells of tags, each split at [`TAG_SEPARATORS`] (a JSON source's list: a tag a cell).
    tags: Vec<&'a str>,
    note: Option<&'a str>,
    clicks: Clicks<'a>,
}

/// A click total: a cell of text (CSV, SQL) or a JSON number.
#[derive(Debug, Default)]
enum Clicks<'a> {
    #[default]
    None,
    Text(&'a str),
    Number(u64),
}

impl Draft<'_> {
    /// The link, by the same rules as the API; the first value that fails is the row's error.
    /// A title or note too long for kurz is cut to fit, said in `warnings`.
    fn build(&self, warnings: &mut Vec<String>) -> Result<CreateLink, RowError> {
        let destination =
            Destination::parse(self.destination).map_err(|e| RowError::new("destination", e))?;
        let code = non_empty(self.code);
        if code.is_none() && self.code_required {
            return Err(RowError::new("code", "the record has no short code"));
        }
        let code = code
            .map(ShortCode::parse)
            .transpose()
            .map_err(|e| RowError::new("code", e))?;
        let title = non_empty(self.title)
            .map(|title| Title::parse(cut(title, "title", MAX_TITLE_LEN, warnings)))
            .transpose()
            .map_err(|e| RowError::new("title", e))?;
        let note = non_empty(self.note)
            .map(|note| Note::parse(cut(note, "note", MAX_NOTE_LEN, warnings)))
            .transpose()
            .map_err(|e| RowError::new("note", e))?;
        let created_at = non_empty(self.created_at)
            .map(date::parse)
            .transpose()
            .map_err(|e| RowError::new("created_at", e))?;
        let expires_at = non_empty(self.expires_at)
            .map(date::parse)
            .transpose()
            .map_err(|e| RowError::new("expires_at", e))?;
        // Read as they come: a cell of millions of separators holds no more than the tags kept.
        let tags = self
            .tags
            .iter()
            .flat_map(|cell| cell.split(TAG_SEPARATORS))
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(Tag::parse);
        let tags = Tags::gather(tags).map_err(|e| RowError::new("tags", e))?;
        let imported_clicks = match self.clicks {
            Clicks::None => 0,
            Clicks::Number(n) => n,
            Clicks::Text(text) => parse_count(text)?,
        };
        Ok(CreateLink {
            destination,
            code,
            status: Default::default(),
            expires_at,
            disabled: false,
            max_clicks: None,
            fallback_url: None,
            password: None,
            targets: Default::default(),
            split: Default::default(),
            utm: Default::default(),
            tags,
            note,
            title,
            created_at,
            imported_clicks,
            clicks_used: 0,
        })
    }
}

/// A click total, also as spreadsheets write large ones (`1,234,567`). Only whole groups of
/// three digits are read so: `1,23` is a typo, not 123.
fn parse_count(text: &str) -> Result<u64, RowError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    let mut groups = text.split(',');
    let first = groups.next().unwrap_or_default();
    let grouped = text.contains(',')
        && (1..=3).contains(&first.len())
        && groups.all(|group| group.len() == 3);
    let digits = if grouped {
        text.replace(',', "")
    } else {
        text.to_owned()
    };
    digits.parse().map_err(|_| {
        RowError::new(
            "imported_clicks",
            format_args!("click total {text:?} is not a whole number"),
        )
    })
}

/// `value` cut to its first `max` characters (a title or a note: what a link looks like, not
/// where it leads, so too long a one is no reason to lose the link), with a warning saying so.
fn cut<'a>(value: &'a str, what: &str, max: usize, warnings: &mut Vec<String>) -> &'a str {
    match value.char_indices().nth(max) {
        Some((end, _)) => {
            warnings.push(format!(
                "its {what} had {} characters: it is cut to the first {max}",
                value.chars().count()
            ));
            &value[..end]
        }
        None => value,
    }
}

/// `None` for an absent or blank value: sources write `""` or `NULL` for "none".
fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

/// What separates tags in one cell: none may be part of a tag, so the split is never
/// ambiguous; spaces may, so they do not separate.
const TAG_SEPARATORS: [char; 3] = ['|', ';', ','];

/// The code of a short link as the source wrote it: `bit.ly/abc123`, `https://s.test/abc123`,
/// `/abc123/` or `abc123` are all `abc123`. The whole path is the code, so a path kurz cannot
/// hold (`a/b`) is refused by [`ShortCode`] rather than cut short.
fn code_of_short_link(link: &str) -> &str {
    let link = link.trim();
    let without_scheme = link.split_once("://").map_or(link, |(_, rest)| rest);
    let path = if link.contains("://") || looks_like_host(without_scheme) {
        without_scheme.split_once('/').map_or("", |(_, path)| path)
    } else {
        without_scheme
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.trim_matches('/')
}

/// `bit.ly/abc` starts with a host; `/abc/` and `abc` do not.
fn looks_like_host(text: &str) -> bool {
    let first = text.split('/').next().unwrap_or_default();
    first.contains('.') && !first.is_empty()
}

/// Counts rows against `max`.
fn push(rows: &mut Vec<Row>, row: Row, max: usize) -> Result<(), FileError> {
    if rows.len() >= max {
        return Err(FileError::TooManyRows { max });
    }
    rows.push(row);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_short_links() {
        let cases = [
            ("bit.ly/abc123", "abc123"),
            ("https://bit.ly/abc123", "abc123"),
            ("http://s.test/abc123/", "abc123"),
            ("https://s.test/abc123?utm=x", "abc123"),
            ("/abc123/", "abc123"),
            ("abc123", "abc123"),
            (" go.brand.example/Launch-2024 ", "Launch-2024"),
            ("https://s.test/a/b", "a/b"),
            ("https://s.test", ""),
            ("bit.ly", ""),
        ];
        for (link, code) in cases {
            assert_eq!(code_of_short_link(link), code, "{link}");
        }
    }

    #[test]
    fn draft_errors_name_their_field() {
        let base = || Draft {
            destination: "https://example.com/a",
            ..Draft::default()
        };
        let long_code = "a".repeat(65);
        let cases: Vec<(Draft<'_>, &str, &str)> = vec![
            (
                Draft {
                    destination: "ftp://x.example",
                    ..base()
                },
                "destination",
                "http or https",
            ),
            (
                Draft {
                    code: Some(&long_code),
                    ..base()
                },
                "code",
                "at most 64",
            ),
            (
                Draft {
                    code: Some("admin"),
                    ..base()
                },
                "code",
                "reserved",
            ),
            (
                Draft {
                    code: Some("a.b"),
                    ..base()
                },
                "code",
                "only contain",
            ),
            (
                Draft {
                    tags: vec!["ok", "no/slash"],
                    ..base()
                },
                "tags",
                "no/slash",
            ),
            (
                Draft {
                    created_at: Some("9999-01-01T00:00:00Z"),
                    ..base()
                },
                "created_at",
                "between 1970",
            ),
            (
                Draft {
                    created_at: Some("yesterday"),
                    ..base()
                },
                "created_at",
                "date",
            ),
            (
                Draft {
                    clicks: Clicks::Text("-4"),
                    ..base()
                },
                "imported_clicks",
                "whole number",
            ),
            (
                Draft {
                    title: Some("bell \u{7}"),
                    ..base()
                },
                "title",
                "control",
            ),
            (
                Draft {
                    code: Some(""),
                    code_required: true,
                    ..base()
                },
                "code",
                "no short code",
            ),
        ];
        for (draft, field, mentions) in cases {
            let err = draft.build(&mut Vec::new()).expect_err(mentions);
            assert_eq!(err.field.as_deref(), Some(field), "{err}");
            assert!(err.message.contains(mentions), "{err}");
        }
        let ok = Draft {
            code: Some(" "),
            title: Some(""),
            tags: vec!["", " Launch "],
            clicks: Clicks::Text(" 12 "),
            ..base()
        }
        .build(&mut Vec::new())
        .expect("valid");
        assert_eq!(ok.code, None);
        assert_eq!(ok.title, None);
        assert_eq!(ok.tags.as_slice().len(), 1);
        assert_eq!(ok.imported_clicks, 12);
    }

    /// A cell's tags are read one by one: millions of separators or repeats hold no more
    /// than the tags kept (before, every piece was kept twice over: ~1 GB for a 16 MiB cell).
    #[test]
    fn a_cell_of_millions_of_tags_is_read_as_it_comes() {
        let base = |tags| Draft {
            destination: "https://example.com/a",
            tags,
            ..Draft::default()
        };
        let repeats = "launch|".repeat(1_000_000);
        let separators = "|;,".repeat(1_000_000);
        let link = base(vec![&repeats, &separators])
            .build(&mut Vec::new())
            .expect("one tag");
        assert_eq!(link.tags.as_slice().len(), 1);
        let many: String = (0..1_000).map(|n| format!("t{n},")).collect();
        let err = base(vec![&many])
            .build(&mut Vec::new())
            .expect_err("too many");
        assert_eq!(err.field.as_deref(), Some("tags"));
        assert!(
            err.message.contains("at most 20 entries (got 1000)"),
            "{err}"
        );
        // A JSON source's list is a tag a cell, split alike.
        let link = base(vec!["a", "b;c", " a "])
            .build(&mut Vec::new())
            .expect("valid");
        assert_eq!(link.tags.as_slice().len(), 3);
    }

    #[test]
    fn long_titles_and_notes_are_cut_not_refused() {
        let base = || Draft {
            destination: "https://example.com/a",
            ..Draft::default()
        };
        // `é` is two bytes: a cut by bytes would split it.
        let title = format!("{}é tail", "t".repeat(MAX_TITLE_LEN - 1));
        let note = "é".repeat(MAX_NOTE_LEN + 1);
        let fitting = "t".repeat(MAX_TITLE_LEN);
        /// The draft, its title, its note, a part of each warning.
        type Case<'a> = (Draft<'a>, Option<String>, Option<String>, &'a [&'a str]);
        let cases: Vec<Case<'_>> = vec![
            (
                Draft {
                    title: Some(&title),
                    ..base()
                },
                Some(format!("{}é", "t".repeat(MAX_TITLE_LEN - 1))),
                None,
                &["title had 505 characters: it is cut to the first 500"],
            ),
            (
                Draft {
                    note: Some(&note),
                    ..base()
                },
                None,
                Some("é".repeat(MAX_NOTE_LEN)),
                &["note had 2001 characters: it is cut to the first 2000"],
            ),
            (
                Draft {
                    title: Some(&title),
                    note: Some(&note),
                    ..base()
                },
                Some(format!("{}é", "t".repeat(MAX_TITLE_LEN - 1))),
                Some("é".repeat(MAX_NOTE_LEN)),
                &["title had 505", "note had 2001"],
            ),
            (
                Draft {
                    title: Some(&fitting),
                    ..base()
                },
                Some(fitting.clone()),
                None,
                &[],
            ),
        ];
        for (draft, want_title, want_note, mentions) in cases {
            let mut warnings = Vec::new();
            let link = draft.build(&mut warnings).expect("cut, not refused");
            assert_eq!(
                link.title.as_ref().map(|t| t.as_str().to_owned()),
                want_title
            );
            assert_eq!(link.note.as_ref().map(|n| n.as_str().to_owned()), want_note);
            assert_eq!(warnings.len(), mentions.len(), "{warnings:?}");
            for (warning, mentions) in warnings.iter().zip(mentions) {
                assert!(warning.contains(mentions), "{warning}");
            }
        }
    }

    #[test]
    fn click_totals_with_thousands_separators() {
        let cases: &[(&str, Option<u64>)] = &[
            ("1,234", Some(1_234)),
            (" 12,345,678 ", Some(12_345_678)),
            ("999", Some(999)),
            ("1,23", None),
            ("1234,567", None),
            (",123", None),
            ("1,,234", None),
            ("1.234", None),
            ("12 clicks", None),
        ];
        for (text, want) in cases {
            let got = parse_count(text);
            match want {
                Some(want) => assert_eq!(got, Ok(*want), "{text}"),
                None => {
                    let err = got.expect_err(text);
                    assert_eq!(err.field.as_deref(), Some("imported_clicks"));
                    assert!(err.message.contains("whole number"), "{err}");
                }
            }
        }
    }

    #[test]
    fn files_refused_as_a_whole() {
        assert_eq!(
            parse(Format::Csv, &[b'a', 0xff, b'\n']),
            Err(FileError::NotUtf8 { line: 1 })
        );
        assert_eq!(
            parse(Format::Csv, b"https://a.example\n\xc3"),
            Err(FileError::NotUtf8 { line: 2 })
        );
        assert_eq!(parse(Format::Csv, b""), Err(FileError::Empty));
        assert_eq!(parse(Format::Kurz, b"\n\n"), Err(FileError::Empty));
        let huge = vec![b' '; MAX_FILE_BYTES + 1];
        assert_eq!(parse(Format::Csv, &huge), Err(FileError::TooLarge));
        assert_eq!(detect("x.csv", &huge), None);
    }

    #[test]
    fn row_count_is_bounded() {
        // Rows that fail fast: the bound holds for errors too.
        let rows = "x\n".repeat(MAX_ROWS + 1);
        assert_eq!(
            parse(Format::Csv, rows.as_bytes()),
            Err(FileError::TooManyRows { max: MAX_ROWS })
        );
        // A caller's own bound, for every format's way of counting.
        let csv = "x\n".repeat(11);
        let json = format!("[{}{{}}]", "{},".repeat(10));
        for (format, file) in [(Format::Csv, &csv), (Format::KuttJson, &json)] {
            assert_eq!(
                parse_at_most(format, file.as_bytes(), 10),
                Err(FileError::TooManyRows { max: 10 })
            );
            assert_eq!(
                parse_at_most(format, file.as_bytes(), 11).map(|rows| rows.len()),
                Ok(11)
            );
        }
    }
}
