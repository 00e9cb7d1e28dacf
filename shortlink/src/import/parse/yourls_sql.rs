//! YOURLS's database dump: the `INSERT` statements mysqldump writes for the `yourls_url` table
//! (its columns as YOURLS `includes/functions-install.php` creates them: `keyword`, `url`,
//! `title`, `timestamp`, `ip`, `clicks`).
//!
//! Read by a small tokenizer of MySQL's lexical rules (quoted strings with backslash escapes
//! and doubled quotes, backquoted names, numbers, `NULL`, comments) rather than an SQL parser
//! crate: only `INSERT` matters here, and a full parser would add a good part of its size to the
//! dashboard's wasm download for it. Every other statement (`CREATE TABLE`, `LOCK TABLES`, the
//! other YOURLS tables) is tokenized and skipped.
//!
//! The table is any whose name ends in `url`, so another prefix than `yourls_` (YOURLS's
//! `YOURLS_DB_PREFIX`) works. Both of mysqldump's forms are read: `VALUES` alone (the table's
//! column order) and with a column list (`--complete-insert`). Timestamps are read as UTC
//! (mysqldump writes `TIMESTAMP` columns in UTC unless told `--skip-tz-utc`).

use super::{Clicks, Draft, FileError, Format, Row, RowError, push};

/// The columns of `yourls_url`, in YOURLS's order.
const YOURLS_COLUMNS: [&str; 6] = ["keyword", "url", "title", "timestamp", "ip", "clicks"];

pub(super) fn parse(text: &str, max: usize) -> Result<Vec<Row>, FileError> {
    let mut lexer = Lexer::new(text);
    let mut rows = Vec::new();
    let mut found = false;
    while let Some(token) = lexer.next()? {
        if token.is_word("INSERT") || token.is_word("REPLACE") {
            match insert_into(&mut lexer)? {
                Some(columns) => {
                    found = true;
                    values(&mut lexer, &columns, &mut rows, max)?;
                }
                None => skip_statement(&mut lexer)?,
            }
        } else if !token.is_punct(b';') {
            skip_statement(&mut lexer)?;
        }
    }
    if !found {
        return Err(FileError::NotThisFormat {
            format: Format::YourlsSql.name(),
            expected: "no INSERT INTO the YOURLS links table (`yourls_url`, or another prefix \
                       and `url`)"
                .to_owned(),
        });
    }
    Ok(rows)
}

/// Whether the text holds an `INSERT` into a YOURLS links table.
pub(super) fn detect(text: &str) -> bool {
    let starts_an_insert = |line: &str| {
        let line = line.trim_start();
        ["INSERT", "REPLACE"].iter().any(|word| {
            line.get(..word.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(word))
        })
    };
    if !text.lines().any(starts_an_insert) {
        return false;
    }
    let mut lexer = Lexer::new(text);
    while let Ok(Some(token)) = lexer.next() {
        if (token.is_word("INSERT") || token.is_word("REPLACE"))
            && matches!(insert_into(&mut lexer), Ok(Some(_)))
        {
            return true;
        }
    }
    false
}

/// Where each needed column is in a record.
#[derive(Debug)]
struct Columns {
    count: usize,
    keyword: usize,
    url: usize,
    title: Option<usize>,
    timestamp: Option<usize>,
    clicks: Option<usize>,
}

/// After `INSERT`: `[IGNORE] INTO name [(columns)] VALUES`. `None` when the table is not a
/// YOURLS links table (the caller skips the statement).
fn insert_into(lexer: &mut Lexer<'_>) -> Result<Option<Columns>, FileError> {
    let mut token = lexer.expect()?;
    while ["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"]
        .iter()
        .any(|word| token.is_word(word))
    {
        token = lexer.expect()?;
    }
    let mut table = token.name();
    let mut token = lexer.expect()?;
    // `database`.`table`
    if token.is_punct(b'.') {
        table = lexer.expect()?.name();
        token = lexer.expect()?;
    }
    let is_links_table = table
        .get(table.len().saturating_sub(3)..)
        .is_some_and(|end| end.eq_ignore_ascii_case("url"));
    if !is_links_table {
        return Ok(None);
    }
    let names: Vec<String> = if token.is_punct(b'(') {
        let mut names = Vec::new();
        loop {
            // Bounded like a record's values: a `)` missing would read the rest of the file
            // as column names.
            if names.len() == super::table::MAX_COLUMNS {
                return Err(lexer.syntax(
                    token.line,
                    &format!(
                        "a column list of more than {} names",
                        super::table::MAX_COLUMNS
                    ),
                ));
            }
            names.push(lexer.expect()?.name().to_ascii_lowercase());
            let after = lexer.expect()?;
            if after.is_punct(b')') {
                break;
            }
            if !after.is_punct(b',') {
                return Err(lexer.syntax(after.line, "expected , or ) in the column list"));
            }
        }
        token = lexer.expect()?;
        names
    } else {
        YOURLS_COLUMNS
            .iter()
            .map(|name| (*name).to_owned())
            .collect()
    };
    if !(token.is_word("VALUES") || token.is_word("VALUE")) {
        return Err(lexer.syntax(token.line, "expected VALUES"));
    }
    let find = |wanted: &str| names.iter().position(|name| name == wanted);
    let required = |wanted: &str| {
        find(wanted).ok_or_else(|| FileError::NotThisFormat {
            format: Format::YourlsSql.name(),
            expected: format!(
                "the INSERT INTO `{table}` has no `{wanted}` column (found: {})",
                names.join(", ")
            ),
        })
    };
    Ok(Some(Columns {
        count: names.len(),
        keyword: required("keyword")?,
        url: required("url")?,
        title: find("title"),
        timestamp: find("timestamp"),
        clicks: find("clicks"),
    }))
}

/// The records after `VALUES`, up to the statement's end.
fn values(
    lexer: &mut Lexer<'_>,
    columns: &Columns,
    rows: &mut Vec<Row>,
    max: usize,
) -> Result<(), FileError> {
    loop {
        let open = lexer.expect()?;
        if !open.is_punct(b'(') {
            return Err(lexer.syntax(open.line, "expected ( to start a record"));
        }
        let record = record(lexer)?;
        push(rows, row(open.line, &record, columns), max)?;
        match lexer.next()? {
            None => return Ok(()),
            Some(token) if token.is_punct(b';') => return Ok(()),
            Some(token) if token.is_punct(b',') => {}
            // `ON DUPLICATE KEY UPDATE ...`
            Some(token) if token.is_word("ON") => return skip_statement(lexer),
            Some(token) => return Err(lexer.syntax(token.line, "expected , or ; after a record")),
        }
    }
}

/// A record's values, after its `(` and up to its `)`. A value is its text (a string's content,
/// a number as written), `None` for `NULL`, or as written in the file for anything else
/// (`NOW()`, `-1`): the row's rules then say what is wrong with it.
///
/// A value of more than [`MAX_VALUE_TOKENS`] tokens, or a record of more than
/// [`super::table::MAX_COLUMNS`] values, is the file's error: a quote or `)` missing would
/// otherwise gather the rest of the file, tens of bytes a token.
fn record<'a>(lexer: &mut Lexer<'a>) -> Result<Vec<Option<String>>, FileError> {
    let mut values = Vec::new();
    let mut parts: Vec<Token<'a>> = Vec::new();
    let mut depth = 0u32;
    loop {
        let token = lexer.expect()?;
        let ends_value = depth == 0 && (token.is_punct(b',') || token.is_punct(b')'));
        // The token would be the value's `MAX_VALUE_TOKENS + 1`th, or end the record's
        // `MAX_COLUMNS + 1`th value.
        let too_long = if ends_value {
            values.len() >= super::table::MAX_COLUMNS
        } else {
            parts.len() >= MAX_VALUE_TOKENS
        };
        if too_long {
            return Err(lexer.syntax(
                token.line,
                "a record runs on too long: is a ')' or a quote missing?",
            ));
        }
        if !ends_value {
            if token.is_punct(b'(') {
                depth += 1;
            } else if token.is_punct(b')') {
                depth -= 1;
            }
            parts.push(token);
            continue;
        }
        values.push(value(lexer.text, &parts));
        parts.clear();
        if token.is_punct(b')') {
            return Ok(values);
        }
    }
}

/// Most tokens of one value: `NULL`, a string, `_utf8mb4'text'`, `NOW()`, `-1` and the like
/// have a few.
const MAX_VALUE_TOKENS: usize = 64;

fn value(text: &str, parts: &[Token<'_>]) -> Option<String> {
    match parts {
        [single] if single.is_word("NULL") => None,
        [
            Token {
                kind: Kind::Str(s), ..
            },
        ] => Some(s.clone()),
        // A character set introducer: `_utf8mb4'text'`, `_binary'text'`.
        [
            charset,
            Token {
                kind: Kind::Str(s), ..
            },
        ] if matches!(charset.kind, Kind::Word(word) if word.starts_with('_')) => Some(s.clone()),
        [] => Some(String::new()),
        [first, .., last] => Some(text[first.start..last.end].to_owned()),
        [single] => Some(text[single.start..single.end].to_owned()),
    }
}

fn row(line: u64, record: &[Option<String>], columns: &Columns) -> Row {
    let get = |column: Option<usize>| {
        column
            .and_then(|column| record.get(column))
            .and_then(Option::as_deref)
    };
    let source = get(Some(columns.keyword)).unwrap_or_default().to_owned();
    let mut warnings = Vec::new();
    let link = if record.len() == columns.count {
        Draft {
            destination: get(Some(columns.url)).unwrap_or_default(),
            code: get(Some(columns.keyword)),
            code_required: true,
            title: get(columns.title),
            created_at: get(columns.timestamp),
            clicks: get(columns.clicks).map_or(Clicks::None, Clicks::Text),
            ..Draft::default()
        }
        .build(&mut warnings)
    } else {
        Err(RowError::whole(format_args!(
            "the record has {} values for {} columns",
            record.len(),
            columns.count
        )))
    };
    Row {
        line,
        source,
        link,
        warnings,
    }
}

fn skip_statement(lexer: &mut Lexer<'_>) -> Result<(), FileError> {
    while let Some(token) = lexer.next()? {
        if token.is_punct(b';') {
            break;
        }
    }
    Ok(())
}

#[derive(Debug)]
struct Token<'a> {
    kind: Kind<'a>,
    line: u64,
    /// Its bytes in the text, for a value written as something other than a string.
    start: usize,
    end: usize,
}

#[derive(Debug)]
enum Kind<'a> {
    /// A keyword or a bare name.
    Word(&'a str),
    /// A `backquoted` name.
    Name(String),
    /// A quoted string, unescaped.
    Str(String),
    Number(&'a str),
    Punct(u8),
}

impl Token<'_> {
    fn is_word(&self, word: &str) -> bool {
        matches!(self.kind, Kind::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn is_punct(&self, punct: u8) -> bool {
        matches!(self.kind, Kind::Punct(p) if p == punct)
    }

    /// A table or column name, bare or backquoted.
    fn name(&self) -> String {
        match &self.kind {
            Kind::Word(word) | Kind::Number(word) => (*word).to_owned(),
            Kind::Name(name) | Kind::Str(name) => name.clone(),
            Kind::Punct(p) => char::from(*p).to_string(),
        }
    }
}

/// MySQL's tokens, with the line each starts on.
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: u64,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
        }
    }

    fn syntax(&self, line: u64, message: &str) -> FileError {
        FileError::Syntax {
            line,
            message: message.to_owned(),
        }
    }

    fn expect(&mut self) -> Result<Token<'a>, FileError> {
        let line = self.line;
        self.next()?
            .ok_or_else(|| self.syntax(line, "the statement ends too early"))
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.text.as_bytes().get(self.pos + offset).copied()
    }

    /// Moves past `len` bytes, counting lines.
    fn advance(&mut self, len: usize) {
        let end = (self.pos + len).min(self.text.len());
        let newlines = self.text.as_bytes()[self.pos..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.line += newlines as u64;
        self.pos = end;
    }

    fn next(&mut self) -> Result<Option<Token<'a>>, FileError> {
        self.skip_blanks_and_comments()?;
        let Some(first) = self.peek_at(0) else {
            return Ok(None);
        };
        let (start, line) = (self.pos, self.line);
        let kind = match first {
            b'\'' | b'"' => Kind::Str(self.quoted(first)?),
            b'`' => Kind::Name(self.quoted(b'`')?),
            b'0'..=b'9' => {
                let len = self.run(|prev, b| {
                    b.is_ascii_alphanumeric()
                        || b == b'.'
                        || (matches!(b, b'+' | b'-') && matches!(prev, b'e' | b'E'))
                });
                self.advance(len);
                Kind::Number(&self.text[start..self.pos])
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b == b'$' || b >= 0x80 => {
                let len = self
                    .run(|_, b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80);
                self.advance(len);
                Kind::Word(&self.text[start..self.pos])
            }
            punct => {
                self.advance(1);
                Kind::Punct(punct)
            }
        };
        Ok(Some(Token {
            kind,
            line,
            start,
            end: self.pos,
        }))
    }

    /// How many bytes from here `keep(previous, byte)` accepts.
    fn run(&self, keep: impl Fn(u8, u8) -> bool) -> usize {
        let rest = &self.text.as_bytes()[self.pos..];
        let mut prev = 0;
        rest.iter()
            .take_while(|b| {
                let ok = keep(prev, **b);
                prev = **b;
                ok
            })
            .count()
    }

    fn skip_blanks_and_comments(&mut self) -> Result<(), FileError> {
        loop {
            let blanks = self.run(|_, b| b.is_ascii_whitespace());
            self.advance(blanks);
            let rest = &self.text.as_bytes()[self.pos..];
            let line_comment = rest.starts_with(b"#")
                || (rest.starts_with(b"--") && rest.get(2).is_none_or(|b| b.is_ascii_whitespace()));
            if line_comment {
                let len = self.run(|_, b| b != b'\n');
                self.advance(len);
            } else if rest.starts_with(b"/*") {
                let line = self.line;
                let len = self.text[self.pos + 2..]
                    .find("*/")
                    .ok_or_else(|| self.syntax(line, "a comment /* is never closed"))?;
                self.advance(len + 4);
            } else {
                return Ok(());
            }
        }
    }

    /// A string or name in `quote`s, from its opening quote: a doubled quote is one quote,
    /// and in strings a backslash escapes the next character as MySQL reads it.
    fn quoted(&mut self, quote: u8) -> Result<String, FileError> {
        let line = self.line;
        self.advance(1);
        let mut out = String::new();
        loop {
            let len = self.run(|_, b| b != quote && (quote == b'`' || b != b'\\'));
            out.push_str(&self.text[self.pos..self.pos + len]);
            self.advance(len);
            match self.peek_at(0) {
                None => return Err(self.syntax(line, "a quoted string is never closed")),
                Some(b'\\') => {
                    let Some(escaped) = self.text[self.pos + 1..].chars().next() else {
                        return Err(self.syntax(line, "a quoted string is never closed"));
                    };
                    // MySQL keeps the backslash of `\%` and `\_` (LIKE patterns).
                    if matches!(escaped, '%' | '_') {
                        out.push('\\');
                    }
                    out.push(match escaped {
                        '0' => '\0',
                        'b' => '\u{8}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'Z' => '\u{1a}',
                        other => other,
                    });
                    self.advance(1 + escaped.len_utf8());
                }
                Some(_) if self.peek_at(1) == Some(quote) => {
                    out.push(char::from(quote));
                    self.advance(2);
                }
                Some(_) => {
                    self.advance(1);
                    return Ok(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::MAX_ROWS;

    fn kinds(text: &str) -> Vec<String> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        while let Some(token) = lexer.next().expect("lexes") {
            out.push(match token.kind {
                Kind::Word(w) => format!("w:{w}"),
                Kind::Name(n) => format!("n:{n}"),
                Kind::Str(s) => format!("s:{s}"),
                Kind::Number(n) => format!("#:{n}"),
                Kind::Punct(p) => format!("p:{}", char::from(p)),
            });
        }
        out
    }

    #[test]
    fn tokens_as_mysqldump_writes_them() {
        assert_eq!(
            kinds(
                "/*!40101 SET x */;\n-- a comment\n# another\nINSERT INTO `yo``urls_url` VALUES \
                 ('it''s \\'a\\' \\\\ \\n \\% é','x\"y',NULL,-1.5e+3,0x1A);--\n"
            ),
            [
                "p:;",
                "w:INSERT",
                "w:INTO",
                "n:yo`urls_url",
                "w:VALUES",
                "p:(",
                "s:it's 'a' \\ \n \\% é",
                "p:,",
                "s:x\"y",
                "p:,",
                "w:NULL",
                "p:,",
                "p:-",
                "#:1.5e+3",
                "p:,",
                "#:0x1A",
                "p:)",
                "p:;",
            ]
        );
        // `--` without a space after it is two minus signs, as MySQL reads it.
        assert_eq!(kinds("1--2"), ["#:1", "p:-", "p:-", "#:2"]);
    }

    #[test]
    fn lines_of_tokens() {
        let mut lexer = Lexer::new("a\n'multi\nline'\n/* x\n*/ b");
        let lines: Vec<u64> = std::iter::from_fn(|| lexer.next().expect("lexes"))
            .map(|token| token.line)
            .collect();
        assert_eq!(lines, [1, 2, 5]);
    }

    #[test]
    fn malformed_text_is_a_file_error() {
        for (text, mentions) in [
            ("INSERT INTO `yourls_url` VALUES ('abc", "never closed"),
            ("INSERT INTO `yourls_url` VALUES ('abc\\", "never closed"),
            ("/* open", "never closed"),
            ("INSERT INTO `yourls_url` VALUES 'x'", "expected ("),
            (
                "INSERT INTO `yourls_url` (`keyword` `url`) VALUES",
                "expected , or )",
            ),
            (
                "INSERT INTO `yourls_url` SET keyword='x'",
                "expected VALUES",
            ),
            (
                "INSERT INTO `yourls_url` VALUES ('a','b') ('c')",
                "expected , or ;",
            ),
            ("INSERT INTO `yourls_url` VALUES ('a'", "ends too early"),
            (
                "INSERT INTO `yourls_url` (`url`) VALUES ('a')",
                "no `keyword` column",
            ),
            ("INSERT INTO `yourls_log` VALUES (1);", "no INSERT INTO"),
            // A ')' missing: the rest of the file would be one value, or one record.
            (
                &format!("INSERT INTO `yourls_url` VALUES ({}", "(".repeat(100)),
                "runs on too long",
            ),
            (
                &format!("INSERT INTO `yourls_url` VALUES ({}1)", "1,".repeat(1_000)),
                "runs on too long",
            ),
            // Millions of column names are as many strings: refused at the 1,001st.
            (
                &format!(
                    "INSERT INTO `yourls_url` ({}a) VALUES",
                    "a,".repeat(1_000_000)
                ),
                "a column list of more than 1000 names",
            ),
        ] {
            let err = parse(text, MAX_ROWS).expect_err(text);
            assert!(err.to_string().contains(mentions), "{text}: {err}");
        }
    }
}
