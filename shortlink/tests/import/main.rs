//! The importers against sample files in each tool's format (`samples/README.md` says where
//! each format comes from): what every row becomes, which format `detect` picks, the round
//! trip of kurz's own export, and no panic whatever the bytes.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};
use shortlink::api::{CreateLink, ExportedLink, Link, MAX_BULK_LINKS};
use shortlink::import::{self, FileError, Format, MAX_ROWS, Row};
use shortlink::rules::{ClickLimit, Note, Tag, Tags, Title};
use shortlink::{Destination, RedirectStatus, ShortCode};
use time::OffsetDateTime;

/// What one row must become.
enum Expect {
    /// The link (as the API's JSON body, so every default is spelled out once) and the
    /// warnings, each by a part of its text.
    Link(Value, &'static [&'static str]),
    /// The error's field and a part of its message.
    Error(Option<&'static str>, &'static str),
}

use Expect::{Error, Link as Made};

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/import/samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(file: &str, format: Format, expected: &[(u64, &str, Expect)]) {
    let bytes = sample(file);
    assert_eq!(import::detect(file, &bytes), Some(format), "{file}: detect");
    let rows = import::parse(format, &bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(rows.len(), expected.len(), "{file}: {rows:#?}");
    for (row, (line, source, expect)) in rows.iter().zip(expected) {
        let at = format!("{file}:{line} ({source})");
        assert_eq!(row.line, *line, "{at}");
        assert_eq!(row.source, *source, "{at}");
        match expect {
            Made(body, warnings) => {
                let want: CreateLink =
                    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(row.link.as_ref(), Ok(&want), "{at}");
                assert_eq!(
                    row.warnings.len(),
                    warnings.len(),
                    "{at}: {:?}",
                    row.warnings
                );
                for (warning, mentions) in row.warnings.iter().zip(*warnings) {
                    assert!(warning.contains(mentions), "{at}: {warning}");
                }
            }
            Error(field, mentions) => {
                let err = row.link.as_ref().expect_err(&at);
                assert_eq!(err.field.as_deref(), *field, "{at}: {err}");
                assert!(err.message.contains(mentions), "{at}: {err}");
            }
        }
    }
}

#[test]
fn bitly_web_export() {
    check(
        "bitly.csv",
        Format::Bitly,
        &[
            (
                2,
                "go.brand.example/launch",
                Made(
                    json!({"destination": "https://example.com/blog/launch?utm_source=bitly",
                        "code": "launch", "title": "Launch post", "tags": ["launch", "blog"],
                        "created_at": "2024-01-15T10:30:00Z", "imported_clicks": 1204}),
                    &[],
                ),
            ),
            (
                3,
                "bit.ly/4kLmNop",
                Made(
                    json!({"destination": "https://example.com/pricing", "code": "4kLmNop",
                        "created_at": "2024-02-01T08:00:00Z", "imported_clicks": 37}),
                    &[],
                ),
            ),
            (4, "bit.ly/admin", Error(Some("code"), "reserved")),
            (
                5,
                "bit.ly/5aBcDef",
                Error(Some("destination"), "http or https"),
            ),
            (6, "bit.ly/6aBcDef", Error(Some("tags"), "no/slash")),
            (
                7,
                "bit.ly/7aBcDef",
                Error(Some("created_at"), "between 1970"),
            ),
        ],
    );
}

#[test]
fn bitly_api_fields() {
    check(
        "bitly-api.csv",
        Format::Bitly,
        &[
            (
                2,
                "https://bit.ly/2Xyz9Ab",
                Made(
                    json!({"destination": "https://example.org/docs/start", "code": "2Xyz9Ab",
                        "title": "Getting started", "tags": ["docs"],
                        "created_at": "2019-08-21T19:18:03Z"}),
                    &[],
                ),
            ),
            (
                3,
                "https://brand.example/spring-sale",
                Made(
                    json!({"destination": "https://shop.example.org/sale", "code": "spring-sale",
                        "title": "Spring sale", "tags": ["sale", "spring 2023"],
                        "created_at": "2023-03-01T09:00:00Z"}),
                    &[],
                ),
            ),
        ],
    );
}

#[test]
fn yourls_plugin_csv() {
    check(
        "yourls-plugin.csv",
        Format::YourlsCsv,
        &[
            (
                2,
                "/yourls/",
                Made(
                    json!({"destination": "https://yourls.org/", "code": "yourls",
                        "imported_clicks": 42}),
                    &[],
                ),
            ),
            (
                3,
                "/ozh/",
                Made(
                    json!({"destination": "https://ozh.org/", "code": "ozh", "imported_clicks": 7}),
                    &[],
                ),
            ),
            (
                4,
                "/long-one/",
                Made(
                    json!({"destination": "https://example.com/a,b?c=\"d\"", "code": "long-one"}),
                    &[],
                ),
            ),
            (5, "/bad.code/", Error(Some("code"), "only contain")),
            (6, "/empty/", Error(Some("destination"), "not a valid URL")),
        ],
    );
}

#[test]
fn yourls_table_csv() {
    check(
        "yourls-table.csv",
        Format::YourlsCsv,
        &[
            (
                2,
                "yourlsblog",
                Made(
                    json!({"destination": "https://blog.yourls.org/", "code": "yourlsblog",
                        "title": "YOURLS' Blog", "created_at": "2024-01-31T10:00:00Z",
                        "imported_clicks": 12}),
                    &[],
                ),
            ),
            (
                3,
                "ozh",
                Made(
                    json!({"destination": "https://ozh.org/", "code": "ozh", "title": "ozh.org",
                        "created_at": "2024-02-01T11:30:00Z", "imported_clicks": 3}),
                    &[],
                ),
            ),
            (4, "neg", Error(Some("imported_clicks"), "whole number")),
            (5, "ex.ample", Error(Some("code"), "only contain")),
            // A NULL title, as phpMyAdmin and `mysql --batch` write it: no title.
            (
                6,
                "nulltitle",
                Made(
                    json!({"destination": "https://example.com/null", "code": "nulltitle",
                        "created_at": "2024-02-01T11:30:00Z", "imported_clicks": 5}),
                    &[],
                ),
            ),
        ],
    );
}

#[test]
fn yourls_mysqldump() {
    let link = |code: &str, destination: &str, title: Value, created: &str, clicks: u64| {
        let mut body = json!({"destination": destination, "code": code,
            "created_at": created, "imported_clicks": clicks});
        if !title.is_null() {
            body["title"] = title;
        }
        Made(body, &[])
    };
    check(
        "yourls.sql",
        Format::YourlsSql,
        &[
            (
                44,
                "ozh",
                link(
                    "ozh",
                    "https://ozh.org/",
                    json!("ozh.org"),
                    "2024-01-31T10:00:00Z",
                    3,
                ),
            ),
            (
                44,
                "yourls",
                link(
                    "yourls",
                    "https://yourls.org/",
                    json!("YOURLS: Your Own URL Shortener"),
                    "2024-01-31T10:00:01Z",
                    41,
                ),
            ),
            (
                44,
                "yourlsblog",
                link(
                    "yourlsblog",
                    "https://blog.yourls.org/",
                    json!("YOURLS' Blog"),
                    "2024-01-31T10:00:02Z",
                    0,
                ),
            ),
            (
                44,
                "notitle",
                link(
                    "notitle",
                    "https://example.com/?q=a;b",
                    Value::Null,
                    "2024-02-01T00:00:00Z",
                    5,
                ),
            ),
            (
                45,
                "nulltitle",
                link(
                    "nulltitle",
                    "https://example.com/null",
                    Value::Null,
                    "2024-02-01T00:00:00Z",
                    0,
                ),
            ),
            (45, "api", Error(Some("code"), "reserved")),
            (45, "zero", Error(Some("created_at"), "must be a date")),
        ],
    );
}

#[test]
fn yourls_complete_inserts_and_another_prefix() {
    check(
        "yourls-complete-insert.sql",
        Format::YourlsSql,
        &[
            (
                2,
                "docs",
                Made(
                    json!({"destination": "https://example.com/docs", "code": "docs",
                        "title": "Docs \"quoted\" tab", "created_at": "2023-05-04T03:02:01Z",
                        "imported_clicks": 100}),
                    &[],
                ),
            ),
            (
                3,
                "multi",
                Made(
                    json!({"destination": "https://example.com/multi", "code": "multi",
                        "title": "Two lines", "created_at": "2023-05-04T03:02:02Z",
                        "imported_clicks": 1}),
                    &[],
                ),
            ),
            (4, "short", Error(None, "4 values for 6 columns")),
        ],
    );
}

#[test]
fn shlink_api_page() {
    check(
        "shlink.json",
        Format::ShlinkJson,
        &[
            (
                1,
                "https://s.test/12C18",
                Made(
                    json!({"destination": "https://store.steampowered.com", "code": "12C18",
                        "title": "Welcome to Steam", "tags": ["games", "tech"],
                        "created_at": "2016-08-21T18:34:16Z", "imported_clicks": 328}),
                    &[
                        "limit of 100 visits",
                        "start date 2017-01-21T00:00:00+02:00",
                    ],
                ),
            ),
            (
                2,
                "https://s.test/customSlug",
                Made(
                    json!({"destination": "https://shlink.io", "code": "customSlug",
                        "created_at": "2019-08-29T21:36:04Z",
                        "expires_at": "2030-01-01T00:00:00Z"}),
                    &[],
                ),
            ),
            (
                3,
                "https://s.test/foo/bar",
                Error(Some("code"), "only contain"),
            ),
        ],
    );
}

#[test]
fn shlink_bare_array_of_an_older_version() {
    check(
        "shlink-array.json",
        Format::ShlinkJson,
        &[
            (
                1,
                "https://doma.in/abc123",
                Made(
                    json!({"destination": "https://example.com/old-api", "code": "abc123",
                        "tags": ["legacy"], "created_at": "2018-05-01T10:00:00Z",
                        "imported_clicks": 15}),
                    &[],
                ),
            ),
            (
                2,
                "https://doma.in/def456",
                Error(Some("destination"), "http or https"),
            ),
        ],
    );
}

#[test]
fn shlink_web_client_csv() {
    check(
        "shlink.csv",
        Format::ShlinkCsv,
        &[
            (
                2,
                "https://s.test/12C18",
                Made(
                    json!({"destination": "https://store.steampowered.com", "code": "12C18",
                        "title": "Welcome to Steam", "tags": ["games", "tech"],
                        "created_at": "2016-08-21T18:34:16Z", "imported_clicks": 328}),
                    &[],
                ),
            ),
            (
                3,
                "https://s.test/customSlug",
                Made(
                    json!({"destination": "https://shlink.io", "code": "customSlug",
                        "created_at": "2019-08-29T21:36:04Z"}),
                    &[],
                ),
            ),
            (
                4,
                "https://s.test/foo/bar",
                Error(Some("code"), "only contain"),
            ),
        ],
    );
}

#[test]
fn kutt_api_page() {
    check(
        "kutt.json",
        Format::KuttJson,
        &[
            (
                1,
                "https://kutt.it/2ZxY7",
                Made(
                    json!({"destination": "https://docs.example.com/", "code": "2ZxY7",
                        "note": "Our docs", "created_at": "2020-03-01T12:00:00Z",
                        "imported_clicks": 99}),
                    &[],
                ),
            ),
            (
                2,
                "https://go.example.com/secret",
                Made(
                    json!({"destination": "https://example.com/private", "code": "secret",
                        "created_at": "2021-06-15T08:30:00Z",
                        "expires_at": "2031-06-15T08:30:00Z", "imported_clicks": 4}),
                    &["password"],
                ),
            ),
            (
                3,
                "https://kutt.it/spam",
                Made(
                    json!({"destination": "https://spam.example/", "code": "spam",
                        "created_at": "2022-01-01T00:00:00Z", "disabled": true}),
                    &["banned"],
                ),
            ),
        ],
    );
}

#[test]
fn kutt_v3_array() {
    check(
        "kutt-v3.json",
        Format::KuttJson,
        &[
            (
                1,
                "https://kutt.it/v3link",
                Made(
                    json!({"destination": "https://example.com/v3", "code": "v3link",
                        "note": "Made with Kutt v3", "created_at": "2024-11-02T09:15:00Z",
                        "imported_clicks": 12}),
                    &[],
                ),
            ),
            (2, "https://kutt.it/static", Error(Some("code"), "reserved")),
        ],
    );
}

#[test]
fn plain_csv_with_and_without_header() {
    check(
        "plain.csv",
        Format::Csv,
        &[
            (
                2,
                "summer-2024",
                Made(
                    json!({"destination": "https://example.com/summer", "code": "summer-2024",
                        "tags": ["campaign", "summer"]}),
                    &[],
                ),
            ),
            (
                3,
                "",
                Made(json!({"destination": "https://example.com/generated"}), &[]),
            ),
            (
                4,
                "semi",
                Made(
                    json!({"destination": "https://example.com/semicolons", "code": "semi",
                        "tags": ["a", "b", "c d"]}),
                    &[],
                ),
            ),
            (
                5,
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                Error(Some("code"), "at most 64"),
            ),
            (6, "nope", Error(Some("destination"), "not a valid URL")),
        ],
    );
    check(
        "plain-no-header.csv",
        Format::Csv,
        &[
            (
                1,
                "one",
                Made(
                    json!({"destination": "https://example.com/one", "code": "one",
                        "tags": ["first"]}),
                    &[],
                ),
            ),
            (
                2,
                "",
                Made(json!({"destination": "https://example.com/two"}), &[]),
            ),
        ],
    );
}

/// A file without a header whose first link's code or tag reads like a column name is all
/// links: the row was taken as a header and dropped, and the codes then read as destinations.
#[test]
fn a_first_link_whose_code_names_a_column_is_no_header() {
    for text in [
        "https://example.com/a,url,\nhttps://example.com/b,b,\n",
        "https://example.com/a,destination,tags\nhttps://example.com/b,b,\n",
        "destination,code\nhttps://example.com/b,b\n",
    ] {
        let rows = import::parse(Format::Csv, text.as_bytes()).expect("parsed");
        let made: Vec<String> = rows
            .iter()
            .map(|row| match &row.link {
                Ok(link) => link.destination.to_string(),
                Err(err) => panic!("{text:?}: {err:?}"),
            })
            .collect();
        let expected: &[&str] = if text.starts_with("destination") {
            &["https://example.com/b"]
        } else {
            &["https://example.com/a", "https://example.com/b"]
        };
        assert_eq!(made, expected, "{text:?}");
    }
}

#[test]
fn kurz_export() {
    check(
        "kurz.jsonl",
        Format::Kurz,
        &[
            (
                1,
                "launch",
                Made(
                    json!({"destination": "https://example.com/launch", "code": "launch",
                        "status": 301, "expires_at": "2030-01-01T00:00:00Z", "max_clicks": 1000,
                        "fallback_url": "https://example.com/over",
                        "targets": [{"when": {"country": ["DE", "AT"]},
                                     "destination": "https://example.de/launch"}],
                        "split": [{"destination": "https://a.example/", "weight": 50},
                                  {"destination": "https://b.example/", "weight": 50}],
                        "utm": {"source": "newsletter", "campaign": "launch"},
                        "tags": ["launch", "q1"], "note": "For the team", "title": "The launch",
                        "created_at": "2024-01-15T10:30:00Z", "imported_clicks": 1234,
                        "clicks_used": 10}),
                    &[],
                ),
            ),
            (
                3,
                "secret",
                Made(
                    json!({"destination": "https://example.com/private", "code": "secret",
                        "disabled": true, "created_at": "2024-03-01T00:00:00Z"}),
                    &["password"],
                ),
            ),
            (4, "a b", Error(None, "not a kurz link")),
            (5, "future", Error(Some("created_at"), "between 1970")),
            (6, "", Error(None, "not a kurz link")),
        ],
    );
}

#[test]
fn a_file_of_another_format_says_what_it_lacks() {
    let cases: &[(Format, &str, &str)] = &[
        (
            Format::Bitly,
            "yourls-table.csv",
            "\"link\" or \"custom link\"",
        ),
        (Format::ShlinkCsv, "bitly.csv", "\"shortUrl\""),
        (Format::YourlsCsv, "plain.csv", "\"keyword\" or \"source\""),
        (Format::YourlsSql, "plain.csv", "no INSERT INTO"),
        (Format::ShlinkJson, "bitly.csv", "not valid JSON"),
        (
            Format::KuttJson,
            "shlink.csv",
            "expected an array of records",
        ),
    ];
    for (format, file, mentions) in cases {
        let err = import::parse(*format, &sample(file)).expect_err(file);
        assert!(
            err.to_string().contains(mentions),
            "{file} as {format}: {err}"
        );
    }
    // Shlink's page read as Kutt's finds its records (same nesting), each lacking Kutt's code.
    let rows = import::parse(Format::KuttJson, &sample("shlink.json")).expect("records");
    assert!(rows.iter().all(|row| {
        row.link
            .as_ref()
            .is_err_and(|e| e.field.as_deref() == Some("destination"))
    }));
}

#[test]
fn detect_leaves_unknown_files_to_people() {
    for (name, bytes) in [
        ("notes.txt", &b"just some words\nand more"[..]),
        ("x.csv", b"name,email\nAda,ada@example.com"),
        ("x.json", b"{\"hello\": 1}"),
        ("x.json", b"[]"),
        ("dump.sql", b"INSERT INTO `yourls_log` VALUES (1);"),
        ("x.csv", b"\xff\xfe"),
        ("x.csv", b""),
    ] {
        assert_eq!(import::detect(name, bytes), None, "{name}");
    }
}

#[test]
fn json_documents_are_bounded() {
    let many = format!("[{}{{}}]", "{},".repeat(MAX_ROWS));
    assert_eq!(
        import::parse(Format::KuttJson, many.as_bytes()),
        Err(FileError::TooManyRows { max: MAX_ROWS })
    );
}

#[test]
fn kurz_csv_export_is_sent_to_the_json_lines_one() {
    // The header `GET /api/v1/links/export?format=csv` writes (origin/src/links/export.rs).
    let export = "code,short_url,destination,title,tags,note,created_at,clicks,status,\
                  expires_at,disabled,max_clicks,fallback_url,rules\n\
                  launch,https://s.test/launch,https://example.com/,Launch,a|b,,\
                  2024-01-15T10:30:00Z,12,302,,false,,,\n";
    let with_bom = format!("\u{feff}{export}");
    let by_semicolons = export.replace(',', ";");
    let cases: &[(&str, &[u8])] = &[
        ("links.csv", export.as_bytes()),
        ("links.csv", with_bom.as_bytes()),
        ("links.csv", by_semicolons.as_bytes()),
        // Only its first columns: a later version may add more.
        (
            "links.csv",
            b"code,short_url,destination,title,tags\nx,https://s.test/x,https://e.example/,,\n",
        ),
    ];
    for (name, bytes) in cases {
        let text = String::from_utf8_lossy(bytes);
        assert_eq!(import::detect(name, bytes), Some(Format::Kurz), "{text}");
        for format in Format::ALL {
            let err = import::parse(format, bytes).expect_err(&text);
            assert_eq!(err, FileError::KurzCsv, "{format}: {text}");
            assert!(err.to_string().contains("JSON lines export"), "{err}");
        }
    }
    // Bitly's and a plain CSV with some of the same names stay theirs.
    for (bytes, format) in [
        (
            &b"link,destination,title,tags\nbit.ly/a,https://e.example/,,\n"[..],
            Format::Bitly,
        ),
        (
            b"destination,code,tags\nhttps://e.example/,a,\n",
            Format::Csv,
        ),
        (
            b"short_url,code,destination,title,tags\nbit.ly/a,a,https://e.example/,,\n",
            Format::Bitly,
        ),
        // Bitly's "Short URL" and "Long URL" are Shlink's names too: its own columns (a
        // custom back-half, clicks) tell it apart. Read as Shlink's, its custom back-halves
        // and clicks were dropped without a word.
        (
            b"Title,Short URL,Custom Link,Long URL,Tags,Date Created,Clicks\n,bit.ly/a,,https://e.example/,,,3\n",
            Format::Bitly,
        ),
        (
            b"shortCode,shortUrl,longUrl,title,tags,visits\na,https://s.example/a,https://e.example/,,,3\n",
            Format::ShlinkCsv,
        ),
    ] {
        assert_eq!(import::detect("x.csv", bytes), Some(format));
        assert!(import::parse(format, bytes).is_ok());
    }
}

#[test]
fn codes_a_new_link_may_not_take_are_row_errors() {
    let many = (0..MAX_BULK_LINKS + 100)
        .map(|i| format!("https://e.example/{i},c{i},\n"))
        .collect::<String>();
    let spread = format!("destination,code,tags\n{many}https://e.example/again,c3,\n");
    /// The format, the file, and the line of each row that fails with a part of its error.
    type Case<'a> = (Format, String, &'a [(u64, &'a str)]);
    let cases: &[Case<'_>] = &[
        (
            Format::Csv,
            "https://e.example/1,dup,\nhttps://e.example/2,ok,\nhttps://e.example/3,dup,\n\
             https://e.example/4,Dup,\nhttps://e.example/5,dup,\n"
                .to_owned(),
            &[
                (3, "code dup is already used on line 1 of this file"),
                (5, "code dup is already used on line 1 of this file"),
            ],
        ),
        // Far apart: the rows go in different chunks of a bulk create.
        (
            Format::Csv,
            spread,
            &[(
                MAX_BULK_LINKS as u64 + 102,
                "code c3 is already used on line 5 of this file",
            )],
        ),
        (
            Format::Csv,
            "https://e.example/1,bulk,\nhttps://e.example/2,export,\nhttps://e.example/3,Bulk,\n\
             https://e.example/4,exports,\n"
                .to_owned(),
            &[(1, "\"bulk\" is reserved"), (2, "\"export\" is reserved")],
        ),
        // A row that failed takes no code; a generated code is no repeat.
        (
            Format::Csv,
            "ftp://e.example/1,x,\nhttps://e.example/2,x,\nhttps://e.example/3,,\n\
             https://e.example/4,,\n"
                .to_owned(),
            &[(1, "http or https")],
        ),
        (
            Format::KuttJson,
            r#"[{"address": "k", "target": "https://e.example/1"},
                {"address": "k", "target": "https://e.example/2"}]"#
                .to_owned(),
            &[(2, "code k is already used on record 1 of this file")],
        ),
        (
            Format::Kurz,
            // A link that took the code before the route existed, as it is exported.
            String::from_utf8(sample("kurz.jsonl"))
                .expect("UTF-8")
                .lines()
                .next()
                .expect("a line")
                .replace(r#""code":"launch""#, r#""code":"export""#),
            &[(1, "\"export\" is reserved")],
        ),
    ];
    for (format, text, failing) in cases {
        let rows = import::parse(*format, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let errors: Vec<(u64, String)> = rows
            .iter()
            .filter_map(|row| Some((row.line, row.link.as_ref().err()?.to_string())))
            .collect();
        assert_eq!(errors.len(), failing.len(), "{format}: {errors:?}");
        for ((line, error), (want_line, mentions)) in errors.iter().zip(*failing) {
            assert_eq!(line, want_line, "{format}: {error}");
            assert!(error.contains(mentions), "{format}: {error}");
        }
    }
}

/// A link as an export writes it, from generated plain fields (each made by its own rules, so
/// it is valid).
fn exported_link() -> impl Strategy<Value = ExportedLink> {
    let code = "[A-Za-z0-9_-]{1,30}".prop_filter_map("not reserved", |c| ShortCode::parse(&c).ok());
    let destination = "https://[a-z]{1,12}\\.example/[a-z0-9/]{0,20}"
        .prop_filter_map("valid", |d| Destination::parse(&d).ok());
    let instant = (0i64..32_503_680_000)
        .prop_filter_map("in range", |s| OffsetDateTime::from_unix_timestamp(s).ok());
    let status = prop::sample::select(vec![301u16, 302, 307, 308])
        .prop_filter_map("status", |s| RedirectStatus::try_from(s).ok());
    let tags = prop::collection::vec("[a-z][a-z0-9 ._-]{0,15}", 0..5).prop_filter_map(
        "valid tags",
        |tags| {
            let tags = tags
                .iter()
                .map(|t| Tag::parse(t))
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            Tags::new(tags).ok()
        },
    );
    (
        (code, destination.clone(), status, instant.clone()),
        (
            prop::option::of(instant),
            any::<bool>(),
            prop::option::of(
                (1u64..1_000_000).prop_filter_map("limit", |n| ClickLimit::new(n).ok()),
            ),
            prop::option::of(destination),
            any::<bool>(),
        ),
        (
            tags,
            prop::option::of("[ -~]{0,60}".prop_filter_map("note", |n| Note::parse(&n).ok())),
            prop::option::of("[ -~]{0,60}".prop_filter_map("title", |t| Title::parse(&t).ok())),
            any::<u64>(),
            // Absent in the export of a key without `stats:read`.
            prop::option::of(any::<u64>()),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (code, destination, status, created_at),
                (expires_at, disabled, max_clicks, fallback_url, password_protected),
                (tags, note, title, imported_clicks, clicks, used),
            )| ExportedLink {
                link: Link {
                    id: 1,
                    short_url: format!("https://kurz.example/{}", code.as_str()),
                    code,
                    destination,
                    status,
                    expires_at,
                    disabled,
                    max_clicks,
                    // Without a limit nothing is used; with one, up to the edge's overshoot
                    // past it.
                    clicks_used: max_clicks.map_or(0, |max| used % (2 * max.get() + 1)),
                    fallback_url,
                    password_protected,
                    targets: Default::default(),
                    split: Default::default(),
                    utm: Default::default(),
                    tags,
                    note,
                    title,
                    imported_clicks: imported_clicks / 2,
                    created_at,
                    updated_at: created_at,
                    version: 3,
                    click_counts: None,
                },
                clicks,
            },
        )
}

/// Byte soup made of the formats' own pieces, so the fuzzing reaches past the first check.
fn format_soup() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "INSERT INTO `yourls_url` VALUES ",
        "INSERT INTO `x_url` (`keyword`,`url`) VALUES ",
        "(",
        ")",
        ",",
        ";",
        "'",
        "\"",
        "\\",
        "`",
        "/*",
        "*/",
        "-- ",
        "#",
        "\n",
        "\r\n",
        "NULL",
        "-1",
        "0x1A",
        "_binary",
        "'https://example.com/'",
        "'9999-12-31 23:59:59'",
        "{\"shortUrls\":{\"data\":[",
        "{\"data\":[",
        "{\"shortCode\":\"a\",\"longUrl\":\"https://x.example\",\"visitsCount\":1}",
        "{\"address\":\"a\",\"target\":\"https://x.example\",\"link\":{\"url\":1}}",
        "]}",
        "[",
        "]",
        "{",
        "}",
        "keyword,url,title,timestamp,ip,clicks\n",
        "shortUrl,longUrl\n",
        "Link,Destination URL,Tags,Clicks\n",
        "destination,code,tags\n",
        "https://bit.ly/",
        "é",
        "\u{feff}",
        ";",
        "\t",
        "18446744073709551616",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|pieces| pieces.concat().into_bytes())
}

fn parse_everything(bytes: &[u8]) {
    for format in Format::ALL {
        if let Ok(rows) = import::parse(format, bytes) {
            for Row { link, .. } in rows {
                // What parses must serialise as the API's body.
                if let Ok(link) = link {
                    serde_json::to_string(&link).expect("serialises");
                }
            }
        }
    }
    let _ = import::detect("x", bytes);
    let _ = import::detect("x.sql", bytes);
}

proptest! {
    #[test]
    fn kurz_export_round_trips(exported in exported_link()) {
        let line = serde_json::to_string(&exported).expect("serialises");
        let rows = import::parse(Format::Kurz, line.as_bytes()).expect("one row");
        prop_assert_eq!(rows.len(), 1);
        let link = &exported.link;
        let want = CreateLink {
            destination: link.destination.clone(),
            code: Some(link.code.clone()),
            status: link.status,
            expires_at: link.expires_at,
            disabled: link.disabled,
            max_clicks: link.max_clicks,
            fallback_url: link.fallback_url.clone(),
            password: None,
            targets: link.targets.clone(),
            split: link.split.clone(),
            utm: link.utm.clone(),
            tags: link.tags.clone(),
            note: link.note.clone(),
            title: link.title.clone(),
            created_at: Some(link.created_at),
            imported_clicks: exported.clicks.unwrap_or(0),
            clicks_used: link.max_clicks.map_or(0, |max| link.clicks_used.min(max.get())),
        };
        prop_assert_eq!(rows[0].link.as_ref(), Ok(&want));
        // A password left out, and a click total missing (an export without stats:read),
        // are each said.
        prop_assert_eq!(
            rows[0].warnings.len(),
            usize::from(link.password_protected) + usize::from(exported.clicks.is_none())
        );
        if exported.clicks.is_none() {
            prop_assert!(rows[0].warnings.iter().any(|w| w.contains("no click total")));
        }
        // And the body the importer sends is read back by the API as the same link.
        let body = serde_json::to_string(&want).expect("serialises");
        prop_assert_eq!(serde_json::from_str::<CreateLink>(&body).expect("the API reads it"), want);
    }

    #[test]
    fn no_bytes_make_a_parser_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_everything(&bytes);
    }

    #[test]
    fn no_mix_of_the_formats_pieces_makes_a_parser_panic(bytes in format_soup()) {
        parse_everything(&bytes);
    }
}

/// A JSON document on one line whose top level is an array of three records is Shlink's or
/// Kutt's, not a kurz export: serde reads a struct from an array of as many elements, so the
/// kurz probe took the three records for its three fields, and the file failed as one row.
#[test]
fn a_one_line_array_of_three_records_is_not_a_kurz_export() {
    let shlink = r#"[{"shortCode":"a","longUrl":"https://e.example/a"},{"shortCode":"b","longUrl":"https://e.example/b"},{"shortCode":"c","longUrl":"https://e.example/c"}]"#;
    assert_eq!(
        import::detect("export.json", shlink.as_bytes()),
        Some(Format::ShlinkJson)
    );
    let parsed = import::parse(Format::ShlinkJson, shlink.as_bytes()).expect("parse");
    assert_eq!(parsed.len(), 3);
}
