//! CSV files: the delimiter, the header row and its columns found by name, the records with
//! their lines. Shared by every CSV source.

use csv::StringRecord;

use super::{FileError, Format, Row, push};

/// Most cells a row may have: far more than any export's columns. A file of one row of
/// millions of cells would otherwise hold tens of bytes a cell in the header's names.
pub(super) const MAX_COLUMNS: usize = 1_000;

/// Reads every record that is not blank, with the line it starts on.
pub(super) fn for_each_record(
    text: &str,
    mut each: impl FnMut(u64, &StringRecord) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let delimiter = delimiter(text);
    let mut widths = Widths::new(text, delimiter);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut record = StringRecord::new();
    let mut lines = LineCounter::default();
    loop {
        if let Some(start) = widths.next_too_wide() {
            return Err(FileError::Syntax {
                line: lines.line_at(text, start),
                message: format!(
                    "a row of over {MAX_COLUMNS} cells; a row of links has at most {MAX_COLUMNS}"
                ),
            });
        }
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                return Err(FileError::Syntax {
                    line: e.position().map_or(0, csv::Position::line),
                    message: e.to_string(),
                });
            }
        }
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let start = record.position().map_or(0, |position| {
            usize::try_from(position.byte()).unwrap_or(usize::MAX)
        });
        let line = lines.line_at(text, start);
        if record.len() > MAX_COLUMNS {
            return Err(FileError::Syntax {
                line,
                message: format!(
                    "a row of {} cells; a row of links has at most {MAX_COLUMNS}",
                    record.len()
                ),
            });
        }
        each(line, &record)?;
    }
}

/// The records' widths, read a record ahead of the `csv` crate: it keeps every cell's bounds
/// (8 bytes each, in a buffer it doubles) until the row ends, so a file of nothing but commas
/// (one row of millions of cells) took 10 to 20 times its size before the row's check. This
/// reads the same records with `csv_core` (the reader underneath, with the same settings)
/// into fixed buffers, dropping each cell's text as it is read.
struct Widths<'a> {
    reader: csv_core::Reader,
    input: &'a [u8],
    /// Bytes read so far.
    read: usize,
}

impl<'a> Widths<'a> {
    fn new(text: &'a str, delimiter: u8) -> Self {
        Self {
            reader: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            input: text.as_bytes(),
            read: 0,
        }
    }

    /// Reads the next record: the offset it starts at if it has over [`MAX_COLUMNS`] + 1
    /// cells (the `csv` reader's record says exactly how many it has).
    fn next_too_wide(&mut self) -> Option<usize> {
        use csv_core::ReadRecordResult;
        let (mut output, mut ends) = ([0_u8; 4096], [0_usize; MAX_COLUMNS + 1]);
        let (start, mut cells) = (self.read, 0);
        loop {
            let (result, taken, _, ended) =
                self.reader
                    .read_record(self.input, &mut output, &mut ends[cells..]);
            self.input = &self.input[taken..];
            self.read += taken;
            cells += ended;
            match result {
                // More input, or room for the cell's text (whose bytes are not needed).
                ReadRecordResult::InputEmpty | ReadRecordResult::OutputFull => {}
                ReadRecordResult::OutputEndsFull => return Some(start),
                ReadRecordResult::Record | ReadRecordResult::End => return None,
            }
        }
    }
}

/// Lines of records, counted from their byte offsets: the `csv` crate's own line count is one
/// short after each `\r\n` (it ends a record at the `\r`), and Windows tools write `\r\n`.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: u64,
}

impl LineCounter {
    /// The 1-based line of the record starting at `offset` (offsets only grow).
    fn line_at(&mut self, text: &str, offset: usize) -> u64 {
        let bytes = text.as_bytes();
        // A record found at a line break (the `\n` of a `\r\n`) starts after it.
        let mut start = offset.min(bytes.len());
        while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            start += 1;
        }
        if start >= self.offset {
            self.newlines += bytes[self.offset..start]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            self.offset = start;
        }
        self.newlines + 1
    }
}

/// The first record (for [`super::detect`]), its cells normalised like a header's.
pub(super) fn first_record(text: &str) -> Option<Header> {
    let mut header = None;
    for_each_record(text, |_, record| {
        header = Some(Header::new(record));
        // Stop at once: an error is the cheapest way out of the loop.
        Err(FileError::Empty)
    })
    .ok();
    header
}

/// Lines [`delimiter`] reads.
const SNIFFED_LINES: usize = 20;

/// Spreadsheets in many locales write `;`, some tools tabs: of the separators that every one
/// of the first lines with any has, the one the first line uses most (on a tie, the comma),
/// and of those, first the ones every line has as often. A separator some lines lack is a
/// cell's text, not the file's: a URL's `;jsessionid=`, tags split by `;` (a spreadsheet
/// writes every row's separators, even for empty cells); so is one whose count changes from
/// line to line while another's stays (a row's tags: `q4;emea;paid`, then `q4;apac`).
fn delimiter(text: &str) -> u8 {
    const SEPARATORS: [u8; 3] = [b'\t', b';', b','];
    // Outside quoted cells: a quoted URL's commas are its own.
    let count = |line: &str, sep: u8| {
        let mut quoted = false;
        line.bytes()
            .filter(|b| {
                quoted ^= *b == b'"';
                !quoted && *b == sep
            })
            .count()
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| SEPARATORS.iter().any(|sep| count(line, *sep) > 0))
        .take(SNIFFED_LINES)
        .collect();
    let first = lines.first().copied().unwrap_or_default();
    let everywhere: Vec<u8> = SEPARATORS
        .into_iter()
        .filter(|sep| lines.iter().all(|line| count(line, *sep) > 0))
        .collect();
    let steady: Vec<u8> = everywhere
        .iter()
        .copied()
        .filter(|sep| {
            lines
                .iter()
                .all(|line| count(line, *sep) == count(first, *sep))
        })
        .collect();
    let candidates = if steady.is_empty() {
        everywhere
    } else {
        steady
    };
    // On a tie the last maximum wins: the comma.
    candidates
        .into_iter()
        .max_by_key(|sep| count(first, *sep))
        .unwrap_or(b',')
}

/// A header row, its names compared without case, spaces, `_` or `-` (`Long URL`, `long_url`
/// and `longUrl` are one name).
#[derive(Debug)]
pub(super) struct Header {
    names: Vec<String>,
    raw: Vec<String>,
}

impl Header {
    pub(super) fn new(record: &StringRecord) -> Self {
        Self {
            names: record.iter().map(normalise).collect(),
            raw: record
                .iter()
                .map(|cell| cell.trim_start_matches('\u{feff}').trim().to_owned())
                .collect(),
        }
    }

    /// The first column named like one of `names` (in `names`' order of preference).
    pub(super) fn find(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|wanted| {
            let wanted = normalise(wanted);
            self.names.iter().position(|name| *name == wanted)
        })
    }

    /// A cell of the row as written (trimmed).
    pub(super) fn raw(&self, column: usize) -> &str {
        self.raw.get(column).map_or("", String::as_str)
    }

    pub(super) fn has(&self, names: &[&str]) -> bool {
        self.find(names).is_some()
    }

    /// The column, or the file's error naming it.
    pub(super) fn require(&self, format: Format, names: &[&str]) -> Result<usize, FileError> {
        self.find(names).ok_or_else(|| FileError::NotThisFormat {
            format: format.name(),
            expected: format!(
                "the header row needs a column {} (found: {})",
                names
                    .iter()
                    .map(|name| format!("{name:?}"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.raw.join(", ")
            ),
        })
    }
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\u{feff}'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A trimmed cell; `""` for a column the file lacks or a short record.
pub(super) fn cell(record: &StringRecord, column: Option<usize>) -> &str {
    column
        .and_then(|column| record.get(column))
        .map_or("", str::trim)
}

/// A CSV file whose first record is a header: `columns` finds what the source needs in it
/// (or refuses the file), `row` makes each later record a [`Row`].
pub(super) fn parse_with_header<C>(
    text: &str,
    max: usize,
    columns: impl Fn(&Header) -> Result<C, FileError>,
    row: impl Fn(&C, u64, &StringRecord) -> Row,
) -> Result<Vec<Row>, FileError> {
    let mut found: Option<C> = None;
    let mut rows = Vec::new();
    for_each_record(text, |line, record| match &found {
        None => {
            found = Some(columns(&Header::new(record))?);
            Ok(())
        }
        Some(columns) => push(&mut rows, row(columns, line, record), max),
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_whatever_the_spelling() {
        let header = Header::new(&StringRecord::from(vec![
            "\u{feff}Title",
            "Long URL",
            "created_at",
            "shortUrl",
        ]));
        assert_eq!(header.find(&["long_url"]), Some(1));
        assert_eq!(header.find(&["Created At"]), Some(2));
        assert_eq!(header.find(&["short-url"]), Some(3));
        assert_eq!(header.find(&["title"]), Some(0));
        assert_eq!(header.find(&["tags", "title"]), Some(0));
        assert_eq!(header.find(&["tags"]), None);
        let err = header
            .require(Format::Bitly, &["tags", "labels"])
            .expect_err("no tags");
        assert!(
            err.to_string()
                .contains(r#""tags" or "labels" (found: Title, Long URL"#),
            "{err}"
        );
    }

    #[test]
    fn lines_of_records_whatever_the_line_ends() {
        for text in [
            "h\na\n\nb\n\"multi\nline\"\nc",
            "h\r\na\r\n\r\nb\r\n\"multi\r\nline\"\r\nc",
        ] {
            let mut lines = Vec::new();
            for_each_record(text, |line, _| {
                lines.push(line);
                Ok(())
            })
            .expect("reads");
            assert_eq!(lines, [1, 2, 4, 5, 7], "{text:?}");
        }
    }

    #[test]
    fn a_row_of_more_cells_than_any_export_is_the_files_error() {
        let wide = format!("a{}\nb", ",".repeat(MAX_COLUMNS));
        let err = for_each_record(&wide, |_, _| Ok(())).expect_err("too wide");
        assert!(matches!(err, FileError::Syntax { line: 1, .. }), "{err:?}");
        let widest = format!("a{}\nb", ",".repeat(MAX_COLUMNS - 1));
        assert!(for_each_record(&widest, |_, _| Ok(())).is_ok());
        // Millions of cells: refused at their row, read a record at a time (the header
        // before it is still the file's, for telling its format).
        let flood = format!(
            "destination,code\r\nhttps://x.example/a,a\r\n{}",
            ",".repeat(3_000_000)
        );
        let err = for_each_record(&flood, |_, _| Ok(())).expect_err("too wide");
        assert!(matches!(err, FileError::Syntax { line: 3, .. }), "{err:?}");
        assert!(first_record(&flood).is_some_and(|header| header.has(&["code"])));
    }

    #[test]
    fn delimiters_are_sniffed_from_the_first_lines() {
        assert_eq!(delimiter("a,b,c\n"), b',');
        assert_eq!(delimiter("a;b;c\nx;y,z"), b';');
        // A row of one cell (no separator at all) says nothing.
        assert_eq!(
            delimiter("https://x.example/a;code\nhttps://x.example/b\n"),
            b';'
        );
        // Semicolons in the first row's cells (tags, a URL), not in the next row's.
        assert_eq!(
            delimiter("https://x.example/a,launch,q4;emea;paid\nhttps://x.example/b,promo\n"),
            b','
        );
        assert_eq!(
            delimiter("https://x.example/a;jsessionid=1;x=2,code\nhttps://x.example/b,c2\n"),
            b','
        );
        // Tags split by `;` on every line, as many as a row has: the comma's count holds.
        assert_eq!(
            delimiter(
                "https://example.com/a,spring-a,q4;emea;paid;social\nhttps://example.com/b,spring-b,q4;apac\n"
            ),
            b','
        );
        // A file in `;` whose cells hold commas, as many on each line, stays in `;`.
        assert_eq!(delimiter("a;b,c;d\ne;f,g;h\n"), b';');
        // A quoted cell's commas are not counted.
        assert_eq!(
            delimiter(
                "\"https://e.example/?ids=1,2\",a,spring;email\nhttps://e.example/b,b,spring;email\n"
            ),
            b','
        );
        // Neither steady: the first line's most, as before.
        assert_eq!(delimiter("a;b;c,d\ne;f,g,h,i\n"), b';');
        assert_eq!(delimiter("a\tb\n"), b'\t');
        assert_eq!(delimiter("https://x.example\n"), b',');
        assert_eq!(delimiter("https://x.example/?a;b,code\n"), b',');
        assert_eq!(delimiter(""), b',');
    }
}
