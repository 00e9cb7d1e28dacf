//! `GET /api/v1/links/export` (#15): every live link of the workspace as JSON lines or CSV,
//! streamed across pages; an export imported into an empty deployment through
//! `POST /api/v1/links/bulk` (by `shortlink::import`'s reader of kurz's format) exports the
//! same again; CSV cells are inert; who may export.

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};
use shortlink::ShortCode;
use shortlink::api::ExportedLink;
use shortlink::edge::{ClickEvent, ClickSource};
use shortlink::import::{self, Format};
use time::{Duration, OffsetDateTime};

use crate::support::{As, TestApp, TestResponse, spawn_app};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

async fn export(app: &TestApp, format: &str) -> TestResponse {
    let response = app
        .api(
            Method::GET,
            &format!("/api/v1/links/export?format={format}"),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response
}

/// The JSON lines of an export, each an `ExportedLink`.
fn lines(response: &TestResponse) -> Vec<ExportedLink> {
    response
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// What a link is apart from where it lives: its id, version, last change and short URL are
/// the deployment's; its clicks in all are kept, but those the first deployment counted are
/// imported ones in the second.
fn portable(mut exported: ExportedLink) -> ExportedLink {
    exported.link.imported_clicks = 0;
    exported.link.id = 0;
    exported.link.version = 0;
    exported.link.updated_at = OffsetDateTime::UNIX_EPOCH;
    exported.link.short_url = String::new();
    exported
}

async fn bulk(app: &TestApp, links: Vec<Value>) -> Value {
    let response = app
        .api(
            Method::POST,
            "/api/v1/links/bulk",
            Some(json!({ "links": links })),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(body["failed"], 0, "{body}");
    body
}

fn click(id: &str, link_id: i64, code: &str, qr: bool, agent: &str) -> ClickEvent {
    ClickEvent {
        id: id.to_owned(),
        link_id,
        code: ShortCode::parse(code).expect("code"),
        at: OffsetDateTime::now_utc() - Duration::hours(2),
        country: Some("DE".to_owned()),
        referrer: None,
        user_agent: Some(agent.to_owned()),
        qr,
        head: false,
        source: ClickSource::Edge,
        visitor: Some(format!("{:032x}", 1)),
        variant: None,
    }
}

#[tokio::test]
async fn an_export_imported_into_an_empty_deployment_exports_the_same() {
    let app = spawn_app().await;
    let full = app
        .create(json!({
            "destination": "https://example.com/main",
            "code": "full",
            "status": 301,
            "expires_at": "2999-01-01T00:00:00Z",
            "max_clicks": 500,
            "fallback_url": "https://example.com/over",
            "targets": [
                {"when": {"country": ["DE"]}, "destination": "https://example.de/"},
                {"when": {"query": {"param": "ref", "value": "mail"}}, "destination": "https://example.com/mail"},
            ],
            "split": [
                {"destination": "https://a.example/", "weight": 30},
                {"destination": "https://b.example/", "weight": 70},
            ],
            "utm": {"source": "news letter", "medium": "mail", "campaign": "spring"},
            "tags": ["spring sale", "q4"],
            "note": "For the spring campaign.",
            "title": "Spring sale",
            "created_at": "2020-02-03T04:05:06Z",
            "imported_clicks": 10,
        }))
        .await;
    assert_eq!(full["code"], "full");
    app.create(json!({"destination": "https://example.com/off", "disabled": true, "title": "Off"}))
        .await;
    app.create(
        json!({"destination": "https://example.com/old", "code": "expired",
                       "created_at": "2010-01-01T00:00:00Z", "expires_at": "2011-01-01T00:00:00Z"}),
    )
    .await;
    let clicked = app
        .create(
            json!({"destination": "https://example.com/clicked", "code": "clicked",
                       "imported_clicks": 5}),
        )
        .await;
    app.create(json!({"destination": "https://example.com/gone", "code": "gone"}))
        .await;
    // Click limits: one used up by visits, one half used by its own import.
    app.create(
        json!({"destination": "https://example.com/few", "code": "usedup", "max_clicks": 3}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(person_visits(&app, "usedup").await, StatusCode::FOUND);
    }
    assert_eq!(person_visits(&app, "usedup").await, StatusCode::GONE);
    let half = app
        .create(
            json!({"destination": "https://example.com/half", "code": "half",
                       "max_clicks": 4, "clicks_used": 2}),
        )
        .await;
    assert_eq!(half["clicks_used"], 2);
    let deleted = app.api(Method::DELETE, "/api/v1/links/gone", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // Two clicks and a QR scan counted; a bot's visit is no click.
    let id = clicked["id"].as_i64().expect("id");
    let events = [
        click("c1", id, "clicked", false, CHROME),
        click("c2", id, "clicked", false, CHROME),
        click("c3", id, "clicked", true, CHROME),
        click("c4", id, "clicked", false, GOOGLEBOT),
    ];
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");

    let response = export(&app, "jsonl").await;
    assert_eq!(
        response.header(&header::CONTENT_TYPE),
        "application/jsonl; charset=utf-8"
    );
    let today = OffsetDateTime::now_utc().date();
    assert_eq!(
        response.header(&header::CONTENT_DISPOSITION),
        format!("attachment; filename=\"kurz-links-1-{today}.jsonl\"")
    );
    let exported = lines(&response);
    let codes: Vec<&str> = exported.iter().map(|e| e.link.code.as_str()).collect();
    assert_eq!(codes.len(), 6, "{codes:?}");
    assert!(!codes.contains(&"gone"));
    let clicks_of = |code: &str| {
        exported
            .iter()
            .find(|e| e.link.code.as_str() == code)
            .and_then(|e| e.clicks)
    };
    assert_eq!(clicks_of("clicked"), Some(8));
    assert_eq!(clicks_of("full"), Some(10));
    assert_eq!(clicks_of("expired"), Some(0));
    let used_of = |code: &str| {
        exported
            .iter()
            .find(|e| e.link.code.as_str() == code)
            .map(|e| e.link.clicks_used)
    };
    assert_eq!((used_of("usedup"), used_of("half")), (Some(3), Some(2)));

    // Into an empty deployment, by the importer of kurz's own format.
    let rows = import::parse(Format::Kurz, &response.body).expect("a kurz export");
    let links: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            assert!(row.warnings.is_empty(), "{:?}", row.warnings);
            serde_json::to_value(row.link.expect("a link")).expect("JSON")
        })
        .collect();
    let fresh = spawn_app().await;
    let imported = bulk(&fresh, links).await;
    assert_eq!(imported["created"], 6);
    let again = lines(&export(&fresh, "jsonl").await);

    for link in &again {
        assert_eq!(
            Some(link.link.imported_clicks),
            clicks_of(link.link.code.as_str()),
            "{link:?}"
        );
    }
    let mut before: Vec<ExportedLink> = exported.into_iter().map(portable).collect();
    let mut after: Vec<ExportedLink> = again.into_iter().map(portable).collect();
    before.sort_by(|a, b| a.link.code.cmp(&b.link.code));
    after.sort_by(|a, b| a.link.code.cmp(&b.link.code));
    assert_eq!(after, before);
    // The imported links redirect: the expired one as expired.
    for (code, status) in [
        ("full", StatusCode::MOVED_PERMANENTLY),
        ("clicked", StatusCode::FOUND),
        ("expired", StatusCode::GONE),
    ] {
        let visit = fresh.visit(Method::GET, &format!("/{code}")).await;
        assert_eq!(visit.status, status, "{code}");
    }
    // A used-up link stays used up; a half-used one has what was left.
    assert_eq!(person_visits(&fresh, "usedup").await, StatusCode::GONE);
    for _ in 0..2 {
        assert_eq!(person_visits(&fresh, "half").await, StatusCode::FOUND);
    }
    assert_eq!(person_visits(&fresh, "half").await, StatusCode::GONE);
}

/// A person's visit (a browser's user agent: a click that counts against a limit).
async fn person_visits(app: &TestApp, code: &str) -> StatusCode {
    let request = axum::http::Request::builder()
        .uri(format!("/{code}"))
        .header(header::USER_AGENT, CHROME)
        .body(axum::body::Body::empty())
        .expect("request");
    app.send(request).await.status
}

#[tokio::test]
async fn an_export_streams_every_link_across_pages() {
    let app = spawn_app().await;
    for batch in 0..3 {
        let links: Vec<Value> = (0..850)
            .map(|i| json!({"destination": format!("https://example.com/{batch}/{i}")}))
            .collect();
        bulk(&app, links).await;
    }
    let exported = lines(&export(&app, "jsonl").await);
    assert_eq!(exported.len(), 2550);
    // Oldest first, each once.
    assert!(exported.windows(2).all(|w| w[0].link.id < w[1].link.id));
    let csv = export(&app, "csv").await;
    assert_eq!(csv.header(&header::CONTENT_TYPE), "text/csv; charset=utf-8");
    assert!(csv.header(&header::CONTENT_DISPOSITION).ends_with(".csv\""));
    let mut reader = csv::Reader::from_reader(&csv.body[..]);
    assert_eq!(reader.records().count(), 2550);
    // The default format is JSON lines; an unknown one is refused naming the parameter.
    let default = app.api(Method::GET, "/api/v1/links/export", None).await;
    assert_eq!(default.body, export(&app, "jsonl").await.body);
    let unknown = app
        .api(Method::GET, "/api/v1/links/export?format=xml", None)
        .await;
    assert_eq!(
        unknown.error(StatusCode::UNPROCESSABLE_ENTITY),
        ("invalid_input".to_owned(), Some("format".to_owned()))
    );
}

#[tokio::test]
async fn csv_rows_hold_every_field_and_no_formula() {
    let app = spawn_app().await;
    app.create(json!({
        "destination": "https://example.com/x",
        "code": "sheet",
        "title": "=HYPERLINK(\"https://evil.example\",\"x\")",
        "note": "@SUM(1+1), \"quoted\"",
        "tags": ["b", "a"],
        "max_clicks": 3,
        "fallback_url": "https://example.com/over",
        "utm": {"source": "mail"},
        "split": [
            {"destination": "https://a.example/", "weight": 50},
            {"destination": "https://b.example/", "weight": 50},
        ],
        "created_at": "2021-01-02T03:04:05Z",
        "imported_clicks": 42,
    }))
    .await;
    app.create(json!({"destination": "https://example.com/plain", "code": "plain"}))
        .await;
    let response = export(&app, "csv").await;
    let mut reader = csv::Reader::from_reader(&response.body[..]);
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        [
            "code",
            "short_url",
            "destination",
            "title",
            "tags",
            "note",
            "created_at",
            "clicks",
            "status",
            "expires_at",
            "disabled",
            "max_clicks",
            "fallback_url",
            "rules"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let sheet: Vec<&str> = rows[0].iter().collect();
    assert_eq!(
        sheet[..13],
        [
            "sheet",
            "https://kurz.test/sheet",
            "https://example.com/x",
            "'=HYPERLINK(\"https://evil.example\",\"x\")",
            "b|a",
            "'@SUM(1+1), \"quoted\"",
            "2021-01-02T03:04:05Z",
            "42",
            "302",
            "",
            "false",
            "3",
            "https://example.com/over",
        ]
    );
    let rules: Value = serde_json::from_str(sheet[13]).expect("rules as JSON");
    assert_eq!(
        rules,
        json!({
            "split": [
                {"id": 0, "destination": "https://a.example/", "weight": 50},
                {"id": 1, "destination": "https://b.example/", "weight": 50},
            ],
            "utm": {"source": "mail"},
        })
    );
    // A link without rules has an empty rules cell.
    assert_eq!(rows[1].get(13), Some(""));
}

#[tokio::test]
async fn who_may_export() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/mine", "code": "mine"}))
        .await;
    let other = app.workspace("Other").await;
    let path = "/api/v1/links/export?format=jsonl";
    let response = app.call(&As::Nobody, Method::GET, path, None).await;
    assert_eq!(response.error(StatusCode::UNAUTHORIZED).0, "unauthorized");

    // Another workspace's key and member export their own links only.
    let theirs = app.key(other, &["links:read", "links:write"]).await;
    let made = app
        .call(
            &theirs,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/theirs", "code": "theirs"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    for who in [theirs, app.user("stranger", &[(other, "viewer")]).await] {
        let response = app.call(&who, Method::GET, path, None).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let codes: Vec<String> = lines(&response)
            .into_iter()
            .map(|e| e.link.code.to_string())
            .collect();
        assert_eq!(codes, ["theirs"], "{who:?}");
        assert!(
            response
                .header(&header::CONTENT_DISPOSITION)
                .contains(&format!("kurz-links-{other}-"))
        );
    }
    // A key without links:read may not.
    let stats_only = app.key(1, &["stats:read"]).await;
    let response = app.call(&stats_only, Method::GET, path, None).await;
    assert_eq!(response.error(StatusCode::FORBIDDEN).0, "forbidden");
    // Readers of the workspace may.
    for who in [
        app.user("vic", &[(1, "viewer")]).await,
        app.key(1, &["links:read"]).await,
    ] {
        let response = app.call(&who, Method::GET, path, None).await;
        assert_eq!(response.status, StatusCode::OK, "{who:?}");
        let codes: Vec<String> = lines(&response)
            .into_iter()
            .map(|e| e.link.code.to_string())
            .collect();
        assert_eq!(codes, ["mine"]);
    }
}

/// A download carries no `Kurz-Workspace` header, so the dashboard names the workspace it
/// shows in the URL: a tab that still shows one workspace after another tab switched the
/// session away is refused (409) rather than handed the other workspace's links or clicks;
/// so is a key naming a workspace it is not of. The workspace it works in passes.
#[tokio::test]
async fn a_download_naming_another_workspace_is_refused() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/mine", "code": "mine"}))
        .await;
    let other = app.workspace("Other").await;
    let person = app.user("both", &[(1, "owner"), (other, "owner")]).await;
    let key = app.key(other, &["links:read", "stats:read"]).await;
    for path in [
        "/api/v1/links/export?format=jsonl&",
        "/api/v1/links/mine/clicks.csv?",
    ] {
        for (who, shown) in [(&person, other), (&key, 1)] {
            let response = app
                .call(who, Method::GET, &format!("{path}workspace={shown}"), None)
                .await;
            let (code, _) = response.error(StatusCode::CONFLICT);
            assert_eq!(code, "workspace_changed", "{path} {who:?}");
        }
        let response = app
            .call(&person, Method::GET, &format!("{path}workspace=1"), None)
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {}",
            response.text()
        );
        // A workspace that is no number is refused on its field, not ignored.
        for bad in ["one", "", "1.5", "99999999999999999999"] {
            let response = app
                .call(
                    &person,
                    Method::GET,
                    &format!("{path}workspace={bad}"),
                    None,
                )
                .await;
            let (_, field) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(field.as_deref(), Some("workspace"), "{path}{bad}");
        }
    }
    let response = app
        .call(
            &person,
            Method::GET,
            "/api/v1/links/export?workspace=1",
            None,
        )
        .await;
    let codes: Vec<String> = lines(&response)
        .into_iter()
        .map(|e| e.link.code.to_string())
        .collect();
    assert_eq!(codes, ["mine"]);
}

/// One instance streams at most 4 exports at once, at most 2 of them one workspace's, each
/// holding its place until its answer is read to the end (or dropped), not only while the
/// handler runs: one more is told to come back (503, `Retry-After`), and gets its turn once
/// one ends. One workspace's exports read slowly cannot shut every other's.
#[tokio::test]
async fn exports_at_once_are_capped_until_their_answers_end() {
    use tower::ServiceExt;
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/one"}))
        .await;
    let key = |who: &As| match who {
        As::Key(key) => key.clone(),
        other => panic!("not a key: {other:?}"),
    };
    let mut keys = vec![app.api_key.clone()];
    for name in ["Two", "Three"] {
        let workspace = app.workspace(name).await;
        let other = app.key(workspace, &["links:read", "links:write"]).await;
        // A link each: an empty export's answer is all buffered at once, and its place freed.
        let body = json!({"destination": format!("https://example.com/{name}")});
        let made = app
            .call(&other, Method::POST, "/api/v1/links", Some(body))
            .await;
        assert_eq!(made.status, StatusCode::CREATED);
        keys.push(key(&other));
    }
    let start = |key: &str| {
        let request = axum::http::Request::builder()
            .uri("/api/v1/links/export?format=jsonl")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(axum::body::Body::empty())
            .expect("request");
        app.router.clone().oneshot(request)
    };
    // Answers begun, their bodies not read: the first workspace's two, then its share is
    // taken while the instance has places left.
    let mut streaming = Vec::new();
    for _ in 0..2 {
        let response = start(&keys[0]).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        streaming.push(response);
    }
    let refused = app
        .api(Method::GET, "/api/v1/links/export?format=jsonl", None)
        .await;
    assert_eq!(refused.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
    assert_eq!(refused.header(&header::RETRY_AFTER), "1");
    for _ in 0..2 {
        let response = start(&keys[1]).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        streaming.push(response);
    }
    // The instance's four are taken: a third workspace waits too.
    let full = start(&keys[2]).await.expect("infallible");
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    // One of the first workspace's read to its end: its place is free.
    let done = streaming.remove(0);
    let body = http_body_util::BodyExt::collect(done.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        1
    );
    export(&app, "jsonl").await;
    // The other dropped unread (the client went away): its place is free too, once its task
    // runs.
    drop(streaming.remove(0));
    tokio::task::yield_now().await;
    export(&app, "csv").await;
}

/// A client that reads every piece within the stall but under the least rate on average (a
/// trickle) gives its place up too, and its download ends broken.
#[tokio::test]
async fn an_export_read_at_a_trickle_gives_its_place_up() {
    let app = spawn_app().await;
    // ~1 KB a line, ~800 KB: about 12 pieces of 64 KiB.
    let note = "n".repeat(900);
    for part in 0..2 {
        bulk(
            &app,
            (0..400)
                .map(|i| {
                    json!({"destination": format!("https://example.com/{part}/{i}"), "note": note})
                })
                .collect(),
        )
        .await;
    }
    app.state
        .set_export_stall(std::time::Duration::from_secs(5));
    let request = axum::http::Request::builder()
        .uri("/api/v1/links/export?format=jsonl")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // A piece every 3 s, each within the 5 s stall: 21 KiB/s, under the least 32 KiB/s.
    let mut read = 0;
    let ended = loop {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        match http_body_util::BodyExt::frame(&mut body).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, axum::body::Bytes::len),
            Some(Err(err)) => break Err(err.to_string()),
            None => break Ok(read),
        }
    };
    app.state
        .set_export_stall(std::time::Duration::from_secs(30));
    let err = ended.expect_err("a trickle read the whole export");
    assert!(err.contains("stopped reading"), "{err}");
    assert!(read < 800 * 1000, "{read} bytes read before it gave up");
}

/// A client that stops reading gives its place up after a while (30 s in a deployment): four
/// stalled clients do not shut exports for every workspace for as long as their connections
/// stay open, and one that reads again finds its download broken, not complete-looking.
#[tokio::test]
async fn exports_whose_clients_stop_reading_give_their_places_up() {
    let app = spawn_app().await;
    // ~1 KB a line, ~400 KB: more than one piece (64 KiB) handed to the answer at a time.
    let note = "n".repeat(900);
    bulk(
        &app,
        (0..400)
            .map(|i| json!({"destination": format!("https://example.com/{i}"), "note": note}))
            .collect(),
    )
    .await;
    crate::support::stalled_exports_give_their_places_up(&app, "/api/v1/links/export?format=jsonl")
        .await;
    // A client that reads gets every link.
    assert_eq!(lines(&export(&app, "jsonl").await).len(), 400);
}
