//! `POST /api/v1/links/import/parse` (#17): every format read from its sample file as the CLI
//! reads it (guessed or named), destinations normalised, the file's errors; the bounds (16 MiB,
//! 100,000 rows, two parses at once); who may ask.

use std::path::Path;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures_util::StreamExt;
use serde_json::{Value, json};
use shortlink::import::{self, Format, MAX_PARSE_BYTES, MAX_PARSE_ROWS, ParsedFile};

use crate::support::{self, As, TestApp, TestResponse, spawn_app};

const PARSE: &str = "/api/v1/links/import/parse";

/// Each sample file of `shortlink/tests/import/samples` and its format.
const SAMPLES: [(&str, Format); 14] = [
    ("bitly.csv", Format::Bitly),
    ("bitly-api.csv", Format::Bitly),
    ("yourls-plugin.csv", Format::YourlsCsv),
    ("yourls-table.csv", Format::YourlsCsv),
    ("yourls.sql", Format::YourlsSql),
    ("yourls-complete-insert.sql", Format::YourlsSql),
    ("shlink.json", Format::ShlinkJson),
    ("shlink-array.json", Format::ShlinkJson),
    ("shlink.csv", Format::ShlinkCsv),
    ("kutt.json", Format::KuttJson),
    ("kutt-v3.json", Format::KuttJson),
    ("plain.csv", Format::Csv),
    ("plain-no-header.csv", Format::Csv),
    ("kurz.jsonl", Format::Kurz),
];

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shortlink/tests/import/samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The request, as `who`, with `query` (`?format=...`) and the file as its body.
fn request(who: &As, query: &str, body: Body) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{PARSE}{query}"))
        .header(header::CONTENT_TYPE, "application/octet-stream");
    match who {
        As::Nobody => {}
        As::Key(key) => {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        As::Session { cookie, csrf, .. } => {
            request = request
                .header(header::COOKIE, cookie)
                .header("x-csrf-token", csrf);
        }
    }
    request.body(body).expect("request")
}

async fn parse_as(app: &TestApp, who: &As, query: &str, file: impl Into<Body>) -> TestResponse {
    app.send(request(who, query, file.into())).await
}

async fn parse(app: &TestApp, query: &str, file: impl Into<Body>) -> TestResponse {
    parse_as(app, &As::Key(app.api_key.clone()), query, file).await
}

#[tokio::test]
async fn every_format_is_read_from_its_sample_as_the_cli_reads_it() {
    let app = spawn_app().await;
    for (name, format) in SAMPLES {
        let bytes = sample(name);
        let rows = import::parse(format, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = serde_json::to_value(ParsedFile::of(format, rows)).expect("json");
        assert!(
            !want["links"].as_array().expect("links").is_empty(),
            "{name}"
        );
        // Guessed from the content (the name breaking ties), and named.
        for query in [
            format!("?name={name}"),
            String::new(),
            format!("?format={}", format.id()),
        ] {
            let response = parse(&app, &query, bytes.clone()).await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{name}{query}: {}",
                response.text()
            );
            assert_eq!(response.json(), want, "{name}{query}");
        }
    }
    // What it answers is what the bulk create takes: the sample's links are created.
    let parsed = parse(&app, "", sample("bitly.csv")).await.json();
    let links: Vec<&Value> = parsed["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|item| &item["link"])
        .collect();
    let response = app
        .api(
            Method::POST,
            "/api/v1/links/bulk",
            Some(json!({ "links": links })),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(
        response.json()["created"],
        links.len(),
        "{}",
        response.text()
    );
    assert_eq!(response.json()["failed"], 0, "{}", response.text());
}

#[tokio::test]
async fn failures_and_warnings_come_with_their_lines() {
    let app = spawn_app().await;
    let file = "destination,code,tags\n\
                https://example.com/ok,ok,\n\
                not a url,bad,\n\
                https://example.com/dup,ok,\n";
    let parsed = parse(&app, "?name=links.csv", file).await;
    assert_eq!(parsed.status, StatusCode::OK, "{}", parsed.text());
    let parsed = parsed.json();
    assert_eq!(parsed["format"], "csv");
    assert_eq!(parsed["links"].as_array().expect("links").len(), 1);
    assert_eq!(parsed["links"][0]["line"], 2);
    assert_eq!(parsed["links"][0]["source"], "ok");
    let failures = parsed["failures"].as_array().expect("failures");
    let at: Vec<(u64, &str)> = failures
        .iter()
        .map(|f| {
            (
                f["line"].as_u64().expect("line"),
                f["field"].as_str().expect("field"),
            )
        })
        .collect();
    assert_eq!(at, [(3, "destination"), (4, "code")]);
    // A Shlink link with a visit limit and a start date is imported without them, said twice.
    let shlink = json!([{
        "shortCode": "lim",
        "longUrl": "https://example.com/limited",
        "meta": {"maxVisits": 5, "validSince": "2024-01-01T00:00:00+00:00"},
    }]);
    let parsed = parse(&app, "", shlink.to_string()).await.json();
    assert_eq!(parsed["format"], "shlink-json");
    let warnings = parsed["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2, "{parsed}");
    assert!(
        warnings
            .iter()
            .all(|w| w["line"] == 1 && w["source"] == "lim")
    );
    assert!(
        warnings[0]["message"]
            .as_str()
            .expect("message")
            .contains("limit of 5 visits"),
        "{parsed}"
    );
}

/// A row's `source` comes back cut to 200 characters: a cell of a megabyte came back whole,
/// once for its row and once for each of its warnings, the answer three times its file (and
/// made after the parse's permit was given back).
#[tokio::test]
async fn a_huge_cell_comes_back_cut() {
    let app = spawn_app().await;
    let code = "c".repeat(1_000_000);
    let shlink = json!([{
        "shortCode": code,
        "longUrl": "https://example.com/limited",
        "meta": {"maxVisits": 5, "validSince": "2024-01-01T00:00:00+00:00"},
    }]);
    let parsed = parse(&app, "", shlink.to_string()).await;
    assert_eq!(parsed.status, StatusCode::OK);
    assert!(
        parsed.text().len() < 10_000,
        "{} bytes",
        parsed.text().len()
    );
    let parsed = parsed.json();
    let sources: Vec<&str> = parsed["failures"]
        .as_array()
        .into_iter()
        .chain(parsed["links"].as_array())
        .chain(parsed["warnings"].as_array())
        .flatten()
        .map(|row| row["source"].as_str().expect("source"))
        .collect();
    assert!(!sources.is_empty(), "{parsed}");
    for source in sources {
        assert_eq!(source, format!("{}…", &code[..200]));
    }
}

#[tokio::test]
async fn destinations_are_normalised_as_the_cli_does() {
    let app = spawn_app().await;
    let parsed = parse(
        &app,
        "?format=csv",
        "HTTPS://Example.COM:443/a b?q=ü,norm,\n",
    )
    .await;
    assert_eq!(parsed.status, StatusCode::OK, "{}", parsed.text());
    let parsed = parsed.json();
    assert_eq!(parsed["failures"], json!([]), "{parsed}");
    assert_eq!(
        parsed["links"][0]["link"]["destination"],
        "https://example.com/a%20b?q=%C3%BC"
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_read_is_422_saying_why() {
    let app = spawn_app().await;
    let kurz_csv =
        "code,short_url,destination,title,tags\nx,https://s.test/x,https://e.example/,,\n";
    let cases: [(&str, &[u8], &str, &str); 6] = [
        (
            "",
            b"just some words\nand more",
            "format",
            "could not be recognised",
        ),
        (
            "?name=dump.sql",
            b"https://example.com/a\n",
            "format",
            "could not be recognised",
        ),
        (
            "?format=bitly",
            b"destination,code,tags\nhttps://e.example/,a,\n",
            "file",
            "not a Bitly",
        ),
        (
            "?format=csv",
            kurz_csv.as_bytes(),
            "file",
            "JSON lines export",
        ),
        ("?format=csv", b"", "file", "empty"),
        ("?format=csv", b"\xff\xfe", "file", "UTF-8"),
    ];
    for (query, file, field, mentions) in cases {
        let response = parse(&app, query, file.to_vec()).await;
        let (code, at) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(field)),
            "{query}"
        );
        assert!(
            response.text().contains(mentions),
            "{query}: {}",
            response.text()
        );
    }
    let response = parse(&app, "?format=excel", "x").await;
    let (code, field) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("invalid_input", Some("format"))
    );
}

#[tokio::test]
async fn a_file_over_16_mib_is_413() {
    let app = spawn_app().await;
    let line = "https://example.com/a-long-enough-path-for-the-line,,\n";
    let big = line.repeat(MAX_PARSE_BYTES / line.len() + 1);
    assert!(big.len() > MAX_PARSE_BYTES);
    // Refused by its declared length before it is read, and, sent without one, while read.
    for declared in [true, false] {
        let mut request = request(&As::Key(app.api_key.clone()), "?format=csv", Body::empty());
        if declared {
            request
                .headers_mut()
                .insert(header::CONTENT_LENGTH, big.len().into());
            *request.body_mut() = Body::from(big.clone());
        } else {
            let chunks: Vec<Result<String, std::io::Error>> = big
                .as_bytes()
                .chunks(1024 * 1024)
                .map(|chunk| Ok(String::from_utf8(chunk.to_vec()).expect("ASCII")))
                .collect();
            *request.body_mut() = Body::from_stream(futures_util::stream::iter(chunks));
        }
        let response = app.send(request).await;
        assert_eq!(
            response.error(StatusCode::PAYLOAD_TOO_LARGE).0,
            "payload_too_large",
            "declared: {declared}"
        );
        assert!(response.text().contains(&MAX_PARSE_BYTES.to_string()));
    }
    // Just under it is read (more than the API's own limit for a JSON body).
    let fits = line.repeat(MAX_PARSE_BYTES / line.len() / 8);
    let response = parse(&app, "?format=csv", fits).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

#[tokio::test]
async fn a_file_of_more_than_100_000_rows_is_refused_whole() {
    let app = spawn_app().await;
    // Rows that fail fast: the bound holds for them too.
    let at_most = "x\n".repeat(MAX_PARSE_ROWS);
    let response = parse(&app, "?format=csv", at_most.clone()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let parsed = response.json();
    assert_eq!(
        parsed["failures"].as_array().expect("failures").len(),
        MAX_PARSE_ROWS
    );
    for (format, file) in [
        ("csv", format!("{at_most}x\n")),
        (
            "kutt-json",
            format!("[{}{{}}]", "{},".repeat(MAX_PARSE_ROWS)),
        ),
    ] {
        let response = parse(&app, &format!("?format={format}"), file).await;
        let (code, field) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), field.as_deref()),
            ("invalid_input", Some("file"))
        );
        assert!(
            response.text().contains("more than 100000 rows"),
            "{format}: {}",
            response.text()
        );
    }
}

/// A file sent in two parts: the second once `release` says so.
fn held_file(mut release: tokio::sync::watch::Receiver<bool>) -> Body {
    let parts = futures_util::stream::iter([Ok::<_, std::io::Error>(
        "destination,code,tags\n".to_owned(),
    )])
    .chain(futures_util::stream::once(async move {
        release.wait_for(|released| *released).await.ok();
        Ok("https://example.com/held,,\n".to_owned())
    }));
    Body::from_stream(parts)
}

/// A parse of `who` whose file waits for `released`: it holds a place once in, until
/// released. Its answer.
fn hold(
    app: &TestApp,
    who: &As,
    released: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(StatusCode, axum::body::Bytes)> {
    let (who, released) = (who.clone(), released.clone());
    support::send_until_admitted(&app.router, move || {
        request(&who, "?format=csv", held_file(released.clone()))
    })
}

/// Probes `who`'s parses until one is refused (busy); panics if none is.
async fn busy_for(app: &TestApp, who: &As, probe: &'static str) -> TestResponse {
    for _ in 0..500 {
        let response = parse_as(app, who, "?format=csv", probe).await;
        if response.status == StatusCode::SERVICE_UNAVAILABLE {
            return response;
        }
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{who:?} was never refused")
}

/// An instance parses 2 files at once, one of them a workspace's: parses whose files are
/// still on their way hold their places. Before, one workspace's slow uploads could hold
/// both, and every other workspace's imports were busy.
#[tokio::test]
async fn a_parse_beyond_the_instances_two_or_its_workspaces_one_is_busy_at_once() {
    let app = spawn_app().await;
    let (first, second, third) = (
        As::Key(app.api_key.clone()),
        app.key(app.workspace("Second").await, &["links:write"])
            .await,
        app.key(app.workspace("Third").await, &["links:write"])
            .await,
    );
    let probe = "https://example.com/probe\n";
    let (release, released) = tokio::sync::watch::channel(false);
    // The first workspace's one: its second is refused, another workspace's goes through.
    let mut held = vec![hold(&app, &first, &released)];
    let busy = busy_for(&app, &first, probe).await;
    assert_eq!(busy.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
    assert_eq!(busy.header(&header::RETRY_AFTER), "1");
    let response = parse_as(&app, &second, "?format=csv", probe).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    // The second workspace's one fills the instance: a third workspace is refused too.
    held.push(hold(&app, &second, &released));
    busy_for(&app, &third, probe).await;
    // A burst meanwhile: every one refused, none waits; other calls go on.
    let burst: Vec<TestResponse> = futures_util::stream::iter(0..8)
        .map(|_| parse_as(&app, &third, "?format=csv", probe))
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        burst
            .iter()
            .all(|response| response.status == StatusCode::SERVICE_UNAVAILABLE)
    );
    app.create(json!({"destination": "https://example.com/single"}))
        .await;
    release
        .send(true)
        .expect("the requests still read their bodies");
    for answer in held {
        let (status, body) = answer.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let parsed: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            parsed["links"][0]["link"]["destination"],
            "https://example.com/held"
        );
    }
    let response = parse(&app, "?format=csv", probe).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

#[tokio::test]
async fn who_may_parse() {
    let app = spawn_app().await;
    let other = app.workspace("Other").await;
    let file = "https://example.com/a,a,\n";
    let response = parse_as(&app, &As::Nobody, "?format=csv", file).await;
    assert_eq!(response.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
    // Readers may not: it is the first step of an import.
    for who in [
        app.user("vic", &[(1, "viewer")]).await,
        app.key(1, &["links:read"]).await,
        app.key(1, &["stats:read"]).await,
    ] {
        let response = parse_as(&app, &who, "?format=csv", file).await;
        assert_eq!(
            response.error(StatusCode::FORBIDDEN).0,
            "forbidden",
            "{who:?}"
        );
    }
    // Those who may write links may, in their own workspace as in another one (parsing reads
    // no workspace's data).
    for who in [
        app.user("ed", &[(1, "editor")]).await,
        app.user("ad", &[(1, "admin")]).await,
        app.user("ow", &[(1, "owner")]).await,
        app.key(1, &["links:write"]).await,
        app.key(other, &["links:write"]).await,
        app.user("stranger", &[(other, "editor")]).await,
    ] {
        let response = parse_as(&app, &who, "?format=csv", file).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{who:?}: {}",
            response.text()
        );
        assert_eq!(response.json()["links"][0]["link"]["code"], "a");
    }
    // A dashboard showing another workspace than its session works in is told so, as on
    // every route.
    let person = app
        .user("person", &[(other, "editor"), (1, "editor")])
        .await;
    let response = app.send(request_in(&person, 1, file)).await;
    assert_eq!(response.error(StatusCode::CONFLICT).0, "workspace_changed");
    let mut request = request_in(&person, other, file);
    request
        .headers_mut()
        .insert(header::CONTENT_TYPE, "text/csv".parse().expect("header"));
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    // Nothing was written.
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM links")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(links, 0);
}

/// The request of a session that names `workspace` in `Kurz-Workspace`.
fn request_in(who: &As, workspace: i64, file: &'static str) -> Request<Body> {
    let mut request = request(who, "?format=csv", Body::from(file));
    request.headers_mut().insert(
        "kurz-workspace",
        workspace.to_string().parse().expect("header"),
    );
    request
}

#[tokio::test]
async fn a_link_coded_import_keeps_its_routes() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/i", "code": "import"}))
        .await;
    for path in ["/api/v1/links/import", "/api/v1/links/import/stats"] {
        let response = app.api(Method::GET, path, None).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {}",
            response.text()
        );
    }
}

#[tokio::test]
async fn the_document_says_the_body_is_the_files_bytes() {
    let app = spawn_app().await;
    let doc = app.visit(Method::GET, "/api/v1/openapi.json").await.json();
    let operation = &doc["paths"][PARSE]["post"];
    assert_eq!(
        operation["requestBody"]["content"]["application/octet-stream"]["schema"],
        json!({"type": "string", "format": "binary"})
    );
    assert_eq!(
        operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ParsedFile"
    );
    let formats: Vec<&str> = Format::ALL.iter().map(|f| f.id()).collect();
    assert_eq!(
        doc["components"]["schemas"]["Format"]["enum"],
        json!(formats)
    );
}
