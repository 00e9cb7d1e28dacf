//! The rows of an import that did not become links, as both clients report them: the
//! dashboard's "Download errors (CSV)" and the CLI's `--errors FILE` (or stderr) are the same
//! file, `line,source,field,message`.

use serde::{Deserialize, Serialize};

use crate::spreadsheet::inert_cell;

/// A row that was not created (or, in a dry run, would not be): it did not parse, or the
/// origin refused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Failure {
    /// The row's line in the file (see [`ParsedLink::line`](super::ParsedLink::line)).
    pub line: u64,
    /// The row's code or short URL as the file wrote it, for people to find it again.
    pub source: String,
    /// The field at fault (of the importer's error, or of the origin's); `None` when the row
    /// as a whole is at fault.
    pub field: Option<String>,
    pub message: String,
}

/// One list in file order of the two each client keeps in file order: the rows that did not
/// parse, and those the origin refused (sent, and answered, in file order). A merge rather
/// than a sort, whose code would cost the dashboard's download several KB; on the same line,
/// the row that did not parse comes first.
pub fn in_file_order(parse_errors: Vec<Failure>, refused: Vec<Failure>) -> Vec<Failure> {
    let mut merged = Vec::with_capacity(parse_errors.len() + refused.len());
    let mut parse_errors = parse_errors.into_iter().peekable();
    for failure in refused {
        while let Some(earlier) = parse_errors.next_if(|p| p.line <= failure.line) {
            merged.push(earlier);
        }
        merged.push(failure);
    }
    merged.extend(parse_errors);
    merged
}

/// The failed rows as CSV: a `line,source,field,message` header, then a record per row, each
/// ending in `\n` like the origin's exports. The source is the imported file's, anybody's, so
/// every cell is made inert for spreadsheets ([`inert_cell`]). Written by hand rather than by
/// the `csv` crate's writer, which the dashboard's wasm would carry only for this.
pub fn failures_csv(failures: &[Failure]) -> String {
    let mut csv = String::from("line,source,field,message\n");
    for failure in failures {
        let cells = [
            failure.line.to_string(),
            field(&failure.source),
            field(failure.field.as_deref().unwrap_or_default()),
            field(&failure.message),
        ];
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    csv
}

/// One CSV field: inert, and quoted (RFC 4180: `"` doubled) when it holds a separator, a
/// quote or a line break.
fn field(text: &str) -> String {
    let inert = inert_cell(text);
    if inert.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", inert.replace('"', "\"\""))
    } else {
        inert.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(line: u64, source: &str, field: Option<&str>, message: &str) -> Failure {
        Failure {
            line,
            source: source.to_owned(),
            field: field.map(str::to_owned),
            message: message.to_owned(),
        }
    }

    /// A CSV reader reads back every cell, inert, whatever it holds.
    #[test]
    fn failures_csv_reads_back() {
        let failures = [
            failure(3, "two", Some("destination"), "must be http or https"),
            failure(4, "=HYPERLINK(\"x\")", Some("code"), "a, \"b\"\nc"),
            failure(7, "", None, "\r-1"),
        ];
        let csv = failures_csv(&failures);
        assert!(
            csv.starts_with("line,source,field,message\n3,two,destination,must be http or https\n"),
            "{csv}"
        );
        let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
        let records: Vec<Vec<String>> = reader
            .records()
            .map(|record| {
                record
                    .expect("a record")
                    .iter()
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        assert_eq!(
            records,
            [
                ["3", "two", "destination", "must be http or https"],
                ["4", "'=HYPERLINK(\"x\")", "code", "a, \"b\"\nc"],
                ["7", "", "", "'\r-1"],
            ]
        );
        assert_eq!(failures_csv(&[]), "line,source,field,message\n");
    }

    #[test]
    fn failures_merge_in_file_order() {
        let at = |line| failure(line, "", None, "");
        let lines =
            |failures: Vec<Failure>| -> Vec<u64> { failures.iter().map(|f| f.line).collect() };
        let cases: [(&[u64], &[u64], &[u64]); 5] = [
            (&[], &[], &[]),
            (&[2, 5], &[], &[2, 5]),
            (&[], &[1, 9], &[1, 9]),
            (&[2, 5, 10], &[1, 3, 4, 11], &[1, 2, 3, 4, 5, 10, 11]),
            (&[1, 2], &[8, 9], &[1, 2, 8, 9]),
        ];
        for (parse_errors, refused, merged) in cases {
            let got = in_file_order(
                parse_errors.iter().copied().map(at).collect(),
                refused.iter().copied().map(at).collect(),
            );
            assert_eq!(lines(got), merged, "{parse_errors:?} + {refused:?}");
        }
        // Two records on one line (a SQL dump's INSERT): the one that did not parse first.
        let tie = in_file_order(
            vec![failure(4, "parse", None, "")],
            vec![failure(4, "refused", None, "")],
        );
        assert_eq!(tie[0].source, "parse");
    }
}
