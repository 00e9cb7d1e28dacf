//! Cells of the CSV files kurz writes for people to open in a spreadsheet: the origin's
//! clicks and links exports, and the failed rows of an import (the dashboard's download and
//! the CLI's `--errors`).
//!
//! Their text comes from strangers: a visitor chooses their `Referer` and `User-Agent`, and an
//! imported file is anybody's. A cell starting with `=` (`=HYPERLINK(...)`, `=cmd|...`) runs
//! as a formula when the file is opened: CSV injection
//! (<https://owasp.org/www-community/attacks/CSV_Injection>).

use std::borrow::Cow;

/// A cell a spreadsheet shows as text instead of running it as a formula. OWASP's
/// recommendation: a leading `'` before a cell that starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return (spreadsheets hide the `'`); the cell is then quoted by the CSV writer as
/// usual. Every cell goes through it, not only the ones strangers write today: a cell that
/// cannot start with a formula character costs nothing, and a new column cannot forget it.
pub fn inert_cell(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_would_run_as_formulas_are_made_text() {
        for (cell, written) in [
            (
                "=HYPERLINK(\"https://evil.example\",\"x\")",
                "'=HYPERLINK(\"https://evil.example\",\"x\")",
            ),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "'\r=1+1"),
            // Harmless cells are left as they are, formula characters inside them too.
            ("https://news.example/a=b", "https://news.example/a=b"),
            (
                "Mozilla/5.0 (X11; Linux x86_64)",
                "Mozilla/5.0 (X11; Linux x86_64)",
            ),
            ("a-b@c", "a-b@c"),
            ("abc=1", "abc=1"),
            (" =1", " =1"),
            ("", ""),
        ] {
            assert_eq!(inert_cell(cell), written, "{cell:?}");
        }
    }
}
