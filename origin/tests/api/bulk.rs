//! `POST /api/v1/links/bulk` (#15): one result per item in the request's order (created, or
//! the error a single create gives), all or nothing when atomic, nothing written in a dry
//! run; the bounds (1,000 items, the route's own body limit); created links redirect, reach
//! the edge's outbox and the audit log; who may do it. Also the import fields of a single
//! create and edit (title, created_at, imported_clicks).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures_util::StreamExt;
use serde_json::{Value, json};
use shortlink::password::PasswordHash;

use crate::support::{self, As, TestApp, TestResponse, scrambler, spawn_app};

const BULK: &str = "/api/v1/links/bulk";

async fn bulk(app: &TestApp, body: Value) -> TestResponse {
    app.api(Method::POST, BULK, Some(body)).await
}

/// The results of a 200 answer, asserting its counts.
fn results(response: &TestResponse, created: u64, failed: u64) -> Vec<Value> {
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(body["created"], created, "{body}");
    assert_eq!(body["failed"], failed, "{body}");
    body["results"].as_array().expect("results").clone()
}

/// (status, error code, error field) of an item's result.
fn outcome(result: &Value) -> (&str, Option<&str>, Option<&str>) {
    (
        result["status"].as_str().expect("status"),
        result["error"]["code"].as_str(),
        result["error"]["field"].as_str(),
    )
}

/// The codes of the live links (of every workspace), sorted.
async fn live_codes(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT code FROM links WHERE deleted_at IS NULL ORDER BY code")
        .fetch_all(&app.db)
        .await
        .expect("codes")
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn each_item_gets_its_own_result_in_order() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/old", "code": "taken"}))
        .await;
    let response = bulk(
        &app,
        json!({"links": [
            {"destination": "https://example.com/0"},
            {"destination": "ftp://example.com/1"},
            {"destination": "https://example.com/2", "code": "taken"},
            {"destination": "https://example.com/3", "code": "fresh", "title": " Fresh\nlink ", "tags": ["A", "b"]},
            42,
            {"destination": "https://example.com/5", "code": "fresh"},
            {"destination": "https://example.com/6", "colour": "red"},
            {"destination": "https://example.com/7", "expires_at": "2001-01-01T00:00:00Z"},
            {"destination": "https://example.com/8", "created_at": "2999-01-01T00:00:00Z"},
            {"destination": "https://example.com/9", "code": "export"},
            {"destination": "https://kurz.test/loop"},
            {"destination": "https://example.com/11", "code": "imported", "title": "Old one",
             "created_at": "2019-05-06T07:08:09Z", "imported_clicks": 1234, "note": "from bitly"},
            {"destination": "https://example.com/12", "targets": [{"when": {"os": ["ios"]}, "destination": "nope"}]},
            {"destination": "https://example.com/13", "imported_clicks": 2_000_000_000_000_000_u64},
        ]}),
    )
    .await;
    let results = results(&response, 3, 11);
    let expected = [
        ("created", None, None),
        ("failed", Some("invalid_input"), Some("destination")),
        ("failed", Some("code_taken"), Some("code")),
        ("created", None, None),
        ("failed", Some("invalid_input"), None),
        ("failed", Some("code_taken"), Some("code")),
        ("failed", Some("invalid_input"), Some("colour")),
        ("failed", Some("invalid_input"), Some("expires_at")),
        ("failed", Some("invalid_input"), Some("created_at")),
        ("failed", Some("invalid_input"), Some("code")),
        ("failed", Some("invalid_input"), Some("destination")),
        ("created", None, None),
        (
            "failed",
            Some("invalid_input"),
            Some("targets[0].destination"),
        ),
        ("failed", Some("invalid_input"), Some("imported_clicks")),
    ];
    assert_eq!(results.len(), expected.len());
    for (index, (result, expected)) in results.iter().zip(expected).enumerate() {
        assert_eq!(outcome(result), expected, "item {index}: {result}");
        if result["status"] == "failed" {
            assert!(
                result["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{result}"
            );
        }
    }
    let generated = results[0]["link"]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    assert_eq!(generated.len(), 7);
    let fresh = &results[3]["link"];
    assert_eq!(fresh["title"], "Fresh link");
    assert_eq!(fresh["tags"], json!(["a", "b"]));
    let imported = &results[11]["link"];
    assert_eq!(imported["created_at"], "2019-05-06T07:08:09Z");
    assert_eq!(imported["imported_clicks"], 1234);
    assert_eq!(imported["title"], "Old one");
    assert_eq!(imported["note"], "from bitly");

    // Exactly the valid ones exist, as the answer showed them, and redirect.
    let mut codes = vec![
        "fresh".to_owned(),
        "imported".to_owned(),
        "taken".to_owned(),
        generated.clone(),
    ];
    codes.sort();
    assert_eq!(live_codes(&app).await, codes);
    for (index, code) in [(0, generated.as_str()), (3, "fresh"), (11, "imported")] {
        let read = app
            .api(Method::GET, &format!("/api/v1/links/{code}"), None)
            .await;
        assert_eq!(read.json(), results[index]["link"], "{code}");
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        assert_eq!(visit.status, StatusCode::FOUND, "{code}");
        assert_eq!(
            visit.header(&header::LOCATION),
            format!("https://example.com/{index}")
        );
    }
    assert_eq!(
        app.api(Method::GET, "/api/v1/links/taken", None)
            .await
            .json()["destination"],
        "https://example.com/old"
    );
    // One audit entry per created link, none for the others.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'link.created'"
        )
        .await,
        4
    );
}

#[tokio::test]
async fn atomic_creates_all_or_nothing() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/old", "code": "taken"}))
        .await;
    let before = live_codes(&app).await;
    // The taken code is met by the insert itself (no item failed before it): rolled back.
    let response = bulk(
        &app,
        json!({"atomic": true, "links": [
            {"destination": "https://example.com/a"},
            {"destination": "https://example.com/b", "code": "b", "password": "open sesame"},
            {"destination": "https://example.com/c", "code": "taken"},
        ]}),
    )
    .await;
    let first = results(&response, 0, 1);
    let statuses: Vec<_> = first.iter().map(outcome).collect();
    assert_eq!(
        statuses,
        [
            ("rolled_back", None, None),
            ("rolled_back", None, None),
            ("failed", Some("code_taken"), Some("code")),
        ]
    );
    // An item that fails its checks: nothing is written, and every item's own error is told,
    // the taken code's too.
    let response = bulk(
        &app,
        json!({"atomic": true, "links": [
            {"destination": "https://example.com/a"},
            {"destination": "nope"},
            {"destination": "https://example.com/c", "code": "taken"},
        ]}),
    )
    .await;
    let second = results(&response, 0, 2);
    let statuses: Vec<_> = second.iter().map(outcome).collect();
    assert_eq!(
        statuses,
        [
            ("rolled_back", None, None),
            ("failed", Some("invalid_input"), Some("destination")),
            ("failed", Some("code_taken"), Some("code")),
        ]
    );
    assert_eq!(live_codes(&app).await, before);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'link.created'"
        )
        .await,
        1
    );

    // All valid: all created.
    let response = bulk(
        &app,
        json!({"atomic": true, "links": [
            {"destination": "https://example.com/a", "code": "a"},
            {"destination": "https://example.com/b", "code": "b"},
        ]}),
    )
    .await;
    results(&response, 2, 0);
    assert_eq!(live_codes(&app).await, ["a", "b", "taken"]);
}

#[tokio::test]
async fn a_dry_run_checks_everything_and_writes_nothing() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/old", "code": "taken"}))
        .await;
    let blocked = app
        .api(
            Method::POST,
            "/api/v1/abuse/blocklist",
            Some(json!({"rule": "evil.example", "reason": "phishing"})),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::CREATED, "{}", blocked.text());
    let links_before = count(&app, "SELECT count(*) FROM links").await;
    let audit_before = count(&app, "SELECT count(*) FROM audit_log").await;
    let response = bulk(
        &app,
        json!({"dry_run": true, "links": [
            {"destination": "https://example.com/a"},
            {"destination": "https://example.com/b", "code": "new", "password": "open sesame"},
            {"destination": "https://example.com/c", "code": "taken"},
            {"destination": "https://example.com/d", "fallback_url": "https://www.evil.example/x"},
            {"destination": "https://example.com/e", "code": "new"},
        ]}),
    )
    .await;
    let dry = results(&response, 0, 3);
    let statuses: Vec<_> = dry.iter().map(outcome).collect();
    assert_eq!(
        statuses,
        [
            ("would_create", None, None),
            ("would_create", None, None),
            ("failed", Some("code_taken"), Some("code")),
            ("failed", Some("invalid_input"), Some("fallback_url")),
            ("failed", Some("code_taken"), Some("code")),
        ]
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM links").await,
        links_before
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit_log").await,
        audit_before
    );
    // The same items for real: what the dry run said.
    let response = bulk(
        &app,
        json!({"links": [
            {"destination": "https://example.com/a"},
            {"destination": "https://example.com/b", "code": "new", "password": "open sesame"},
            {"destination": "https://example.com/c", "code": "taken"},
            {"destination": "https://example.com/d", "fallback_url": "https://www.evil.example/x"},
        ]}),
    )
    .await;
    let results = results(&response, 2, 2);
    assert_eq!(results[1]["link"]["password_protected"], true);
    // The password is stored only as its hash.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM links WHERE code = 'new'")
        .fetch_one(&app.db)
        .await
        .expect("hash");
    assert!(PasswordHash::parse(&hash).is_ok(), "{hash}");
    assert!(!hash.contains("open sesame"));
    assert!(!response.text().contains("open sesame"));
}

#[tokio::test]
async fn more_than_a_thousand_items_are_refused() {
    let app = spawn_app().await;
    let links: Vec<Value> = (0..1001)
        .map(|i| json!({"destination": format!("https://example.com/{i}")}))
        .collect();
    let response = bulk(&app, json!({"links": links})).await;
    assert_eq!(
        response.error(StatusCode::UNPROCESSABLE_ENTITY),
        ("invalid_input".to_owned(), Some("links".to_owned()))
    );
    assert!(
        response
            .text()
            .contains("at most 1000 links per request: send the rest in another request"),
        "{}",
        response.text()
    );
    // Two million tiny items within the body limit: refused at the 1,001st as the body is
    // read, never held as a list of two million.
    let tiny = format!("{{\"links\":[{}0]}}", "0,".repeat(2_000_000));
    assert!(tiny.len() < shortlink::api::MAX_BULK_BYTES);
    let response = bulk_raw(&app, tiny).await;
    assert_eq!(
        response.error(StatusCode::UNPROCESSABLE_ENTITY),
        ("invalid_input".to_owned(), Some("links".to_owned()))
    );
    assert_eq!(count(&app, "SELECT count(*) FROM links").await, 0);
}

async fn bulk_raw(app: &TestApp, body: String) -> TestResponse {
    let request = Request::builder()
        .method(Method::POST)
        .uri(BULK)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    app.send(request).await
}

/// A thousand links of about 600 bytes each: more than the API's own body limit (256 KiB),
/// within the route's.
#[tokio::test]
async fn a_thousand_links_in_one_request() {
    let app = spawn_app().await;
    let note = "n".repeat(400);
    let links: Vec<Value> = (0..1000)
        .map(|i| {
            json!({
                "destination": format!("https://example.com/page/{i}"),
                "code": format!("imp-{i}"),
                "tags": ["import", format!("batch {}", i % 7)],
                "note": note,
                "title": format!("Page {i}"),
                "created_at": "2020-01-01T00:00:00Z",
                "imported_clicks": i,
            })
        })
        .collect();
    let body = json!({"links": links}).to_string();
    assert!(body.len() > 256 * 1024);
    // With its length declared, as clients send it (the limit is checked before reading).
    let request = Request::builder()
        .method(Method::POST)
        .uri(BULK)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("request");
    let response = app.send(request).await;
    let results = results(&response, 1000, 0);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["link"]["code"], format!("imp-{i}"), "{result}");
        assert_eq!(result["link"]["imported_clicks"], i, "{result}");
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM links WHERE deleted_at IS NULL").await,
        1000
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'link.created'"
        )
        .await,
        1000
    );
    let visit = app.visit(Method::GET, "/imp-999").await;
    assert_eq!(
        visit.header(&header::LOCATION),
        "https://example.com/page/999"
    );
}

#[tokio::test]
async fn a_body_over_the_routes_limit_is_413() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"links":[{{"destination":"https://example.com/","note":"{}"}}]}}"#,
        "n".repeat(4 * 1024 * 1024)
    );
    // Refused by its declared length before it is read, and, sent without one, while read.
    for declared in [true, false] {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(BULK)
            .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
            .header(header::CONTENT_TYPE, "application/json");
        if declared {
            request = request.header(header::CONTENT_LENGTH, big.len());
        }
        let response = app
            .send(request.body(Body::from(big.clone())).expect("request"))
            .await;
        assert_eq!(
            response.error(StatusCode::PAYLOAD_TOO_LARGE).0,
            "payload_too_large",
            "declared: {declared}"
        );
        assert!(
            response.text().contains(&(4 * 1024 * 1024).to_string()),
            "{}",
            response.text()
        );
    }
    // The other routes keep the API's limit.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/links")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, 300 * 1024)
        .body(Body::from(format!(
            r#"{{"destination":"https://example.com/","note":"{}"}}"#,
            "n".repeat(300 * 1024 - 50)
        )))
        .expect("request");
    assert_eq!(
        app.send(request)
            .await
            .error(StatusCode::PAYLOAD_TOO_LARGE)
            .0,
        "payload_too_large"
    );
}

#[tokio::test]
async fn created_links_reach_the_edge_outbox_and_forget_a_cached_miss() {
    let database_url = support::new_database().await;
    let mut config = support::config(&database_url);
    // Changes go to the outbox; the edge is never reached (no background tasks run).
    config.edge_url = Some("http://127.0.0.1:9".to_owned());
    config.edge_secret = Some(support::EDGE_SECRET.to_owned());
    let app = support::app_with(&config).await;
    // A visit before the link exists caches "no such code".
    assert_eq!(
        app.visit(Method::GET, "/later").await.status,
        StatusCode::NOT_FOUND
    );
    let response = bulk(
        &app,
        json!({"links": [
            {"destination": "https://example.com/later", "code": "later"},
            {"destination": "https://example.com/generated"},
        ]}),
    )
    .await;
    let results = results(&response, 2, 0);
    let generated = results[1]["link"]["code"].as_str().expect("code");
    let visit = app.visit(Method::GET, "/later").await;
    assert_eq!(visit.status, StatusCode::FOUND);
    assert_eq!(visit.header(&header::LOCATION), "https://example.com/later");
    let outbox: Vec<String> = sqlx::query_scalar("SELECT code FROM edge_outbox ORDER BY code")
        .fetch_all(&app.db)
        .await
        .expect("outbox");
    let mut expected = vec!["later".to_owned(), generated.to_owned()];
    expected.sort();
    assert_eq!(outbox, expected);
}

#[tokio::test]
async fn a_generated_code_that_a_custom_one_took_draws_again() {
    let app = spawn_app().await;
    let first = app
        .create(json!({"destination": "https://example.com/first"}))
        .await;
    let id = first["id"].as_i64().expect("id") as u64;
    // The bulk create's ids are id+1 and id+2: the generated item (first) would get the code
    // of id+1, which the second item asks for; and a link made before took id+3's code.
    let clash = scrambler().encode(id + 1).expect("code").to_string();
    let response = bulk(
        &app,
        json!({"links": [
            {"destination": "https://example.com/generated"},
            {"destination": "https://example.com/custom", "code": clash},
        ]}),
    )
    .await;
    let results = results(&response, 2, 0);
    assert_eq!(results[1]["link"]["code"], clash.as_str());
    let generated = results[0]["link"]["code"].as_str().expect("code");
    assert_ne!(generated, clash);
    assert_eq!(generated.len(), 7);
    for (code, destination) in [
        (generated, "https://example.com/generated"),
        (clash.as_str(), "https://example.com/custom"),
    ] {
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        assert_eq!(visit.header(&header::LOCATION), destination);
    }
}

#[tokio::test]
async fn who_may_bulk_create() {
    let app = spawn_app().await;
    let other = app.workspace("Other").await;
    let body = |code: &str| json!({"links": [{"destination": format!("https://example.com/{code}"), "code": code}]});
    let response = app
        .call(&As::Nobody, Method::POST, BULK, Some(body("nobody")))
        .await;
    assert_eq!(response.error(StatusCode::UNAUTHORIZED).0, "unauthorized");

    // Another workspace's key and member create in their own workspace, which the first
    // workspace's key does not see.
    for (who, code) in [
        (app.key(other, &["links:write"]).await, "theirs-key"),
        (
            app.user("stranger", &[(other, "editor")]).await,
            "theirs-user",
        ),
    ] {
        let response = app.call(&who, Method::POST, BULK, Some(body(code))).await;
        results(&response, 1, 0);
        let workspace: i64 = sqlx::query_scalar("SELECT workspace_id FROM links WHERE code = $1")
            .bind(code)
            .fetch_one(&app.db)
            .await
            .expect("link");
        assert_eq!(workspace, other);
        let path = format!("/api/v1/links/{code}");
        assert_eq!(
            app.api(Method::GET, &path, None)
                .await
                .error(StatusCode::NOT_FOUND)
                .0,
            "not_found"
        );
        let theirs = app.call(&who, Method::GET, &path, None).await;
        // A write-only key may not read it back; a member may.
        assert!(
            theirs.status == StatusCode::OK || theirs.status == StatusCode::FORBIDDEN,
            "{}",
            theirs.text()
        );
    }
    // Readers may not.
    for who in [
        app.user("vic", &[(1, "viewer")]).await,
        app.key(1, &["links:read"]).await,
    ] {
        let response = app
            .call(&who, Method::POST, BULK, Some(body("reader")))
            .await;
        assert_eq!(
            response.error(StatusCode::FORBIDDEN).0,
            "forbidden",
            "{who:?}"
        );
    }
    // Editors and writing keys may.
    for (who, code) in [
        (app.user("ed", &[(1, "editor")]).await, "by-editor"),
        (app.key(1, &["links:write"]).await, "by-key"),
    ] {
        let response = app.call(&who, Method::POST, BULK, Some(body(code))).await;
        results(&response, 1, 0);
    }
    let mine: Vec<String> = sqlx::query_scalar(
        "SELECT code FROM links WHERE workspace_id = 1 AND deleted_at IS NULL ORDER BY code",
    )
    .fetch_all(&app.db)
    .await
    .expect("codes");
    assert_eq!(mine, ["by-editor", "by-key"]);
}

#[tokio::test]
async fn a_single_create_keeps_the_import_fields_and_an_edit_sets_the_title() {
    let app = spawn_app().await;
    let link = app
        .create(json!({
            "destination": "https://example.com/",
            "code": "old",
            "title": "  An old link\t(2019) ",
            "created_at": "2019-05-06T07:08:09+02:00",
            "imported_clicks": 77,
        }))
        .await;
    assert_eq!(link["title"], "An old link (2019)");
    assert_eq!(link["created_at"], "2019-05-06T05:08:09Z");
    assert_eq!(link["imported_clicks"], 77);
    let patched = app
        .api(
            Method::PATCH,
            "/api/v1/links/old",
            Some(json!({"title": "Renamed"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_eq!(patched.json()["title"], "Renamed");
    assert_eq!(patched.json()["created_at"], "2019-05-06T05:08:09Z");
    assert_eq!(patched.json()["imported_clicks"], 77);
    let cleared = app
        .api(
            Method::PATCH,
            "/api/v1/links/old",
            Some(json!({"title": null})),
        )
        .await;
    assert_eq!(cleared.json()["title"], Value::Null);
    // The audit log shows the title's change.
    let after: Value = sqlx::query_scalar(
        "SELECT after FROM audit_log WHERE action = 'link.updated' ORDER BY id LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .expect("audit");
    assert_eq!(after["title"], "Renamed");

    // Dates: not made in the future; an import may bring a link that already expired (it
    // answers 410), but not one that expired before it was made.
    let cases = [
        (
            json!({"destination": "https://example.com/", "created_at": "2999-01-01T00:00:00Z"}),
            "created_at",
        ),
        (
            json!({"destination": "https://example.com/", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"destination": "https://example.com/", "created_at": "2010-01-01T00:00:00Z",
                   "expires_at": "2009-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"destination": "https://example.com/", "code": "bulk"}),
            "code",
        ),
        (
            json!({"destination": "https://example.com/", "title": "a\u{7}b"}),
            "title",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .api(Method::POST, "/api/v1/links", Some(body.clone()))
            .await;
        assert_eq!(
            response.error(StatusCode::UNPROCESSABLE_ENTITY),
            ("invalid_input".to_owned(), Some(field.to_owned())),
            "{body}"
        );
    }
    app.create(
        json!({"destination": "https://example.com/", "code": "expired",
                       "created_at": "2010-01-01T00:00:00Z", "expires_at": "2011-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        app.visit(Method::GET, "/expired").await.status,
        StatusCode::GONE
    );
}

#[tokio::test]
async fn created_links_are_announced_to_webhooks_in_order() {
    let app = spawn_app().await;
    let endpoint: i64 = sqlx::query_scalar(
        "INSERT INTO webhook_endpoints (workspace_id, url, events, secret)
         VALUES (1, 'https://hooks.example/kurz', '{link.created}', 'whsec_dGVzdA==')
         RETURNING id",
    )
    .fetch_one(&app.db)
    .await
    .expect("endpoint");
    let response = bulk(
        &app,
        json!({"links": [
            {"destination": "https://example.com/1", "code": "first"},
            {"destination": "nope"},
            {"destination": "https://example.com/3", "code": "third"},
        ]}),
    )
    .await;
    results(&response, 2, 1);
    let messages: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id",
    )
    .bind(endpoint)
    .fetch_all(&app.db)
    .await
    .expect("deliveries");
    let announced: Vec<(&str, &str)> = messages
        .iter()
        .map(|(event, payload)| {
            (
                event.as_str(),
                payload["data"]["code"].as_str().expect("code"),
            )
        })
        .collect();
    assert_eq!(
        announced,
        [("link.created", "first"), ("link.created", "third")]
    );
    // A dry run and a rolled-back request announce nothing.
    for flag in ["dry_run", "atomic"] {
        let response = bulk(
            &app,
            json!({flag: true, "links": [
                {"destination": "https://example.com/4", "code": "fourth"},
                {"destination": "https://example.com/5", "code": "first"},
            ]}),
        )
        .await;
        results(&response, 0, 1);
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(count, 2);
}

/// A bulk create's body, sent in two parts: the second once `release` says so.
fn held_body(links: &Value, mut release: tokio::sync::watch::Receiver<bool>) -> Body {
    let text = json!({ "links": links }).to_string();
    let (head, tail) = text.split_at(1);
    let (head, tail) = (head.to_owned(), tail.to_owned());
    let parts = futures_util::stream::iter([Ok::<_, std::io::Error>(head)]).chain(
        futures_util::stream::once(async move {
            release.wait_for(|released| *released).await.ok();
            Ok(tail)
        }),
    );
    Body::from_stream(parts)
}

/// A bulk create of `key` whose body waits for `released`: it holds a place once in, until
/// released. Its answer.
fn hold(
    app: &TestApp,
    key: &str,
    code: &str,
    released: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(StatusCode, axum::body::Bytes)> {
    let links = json!([{"destination": "https://example.com/", "code": code}]);
    let (key, released) = (key.to_owned(), released.clone());
    support::send_until_admitted(&app.router, move || {
        Request::builder()
            .method(Method::POST)
            .uri(BULK)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(held_body(&links, released.clone()))
            .expect("request")
    })
}

/// Probes with a dry run as `who` until one is refused (busy); panics if none is.
async fn busy_for(app: &TestApp, who: &As, probe: &Value) -> TestResponse {
    for _ in 0..500 {
        let response = app.call(who, Method::POST, BULK, Some(probe.clone())).await;
        if response.status == StatusCode::SERVICE_UNAVAILABLE {
            return response;
        }
        results(&response, 0, 0);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{who:?} was never refused")
}

/// An instance runs 4 bulk creates at once, at most 2 of one workspace's: bulk creates whose
/// bodies are still on their way hold their places. Before, one workspace's slow bodies
/// could hold all four, and every other workspace's imports were busy.
#[tokio::test]
async fn a_bulk_create_beyond_the_instances_four_or_its_workspaces_two_is_busy_at_once() {
    let app = spawn_app().await;
    let (first, second, third) = (
        As::Key(app.api_key.clone()),
        app.key(app.workspace("Second").await, &["links:write"])
            .await,
        app.key(app.workspace("Third").await, &["links:write"])
            .await,
    );
    let key = |who: &As| match who {
        As::Key(key) => key.clone(),
        _ => unreachable!("keys"),
    };
    let probe = json!({"dry_run": true, "links": [{"destination": "https://example.com/p"}]});
    let (release, released) = tokio::sync::watch::channel(false);
    // The first workspace's two: its third is refused, another workspace's goes through.
    let mut held: Vec<_> = (0..2)
        .map(|i| hold(&app, &key(&first), &format!("held{i}"), &released))
        .collect();
    let busy = busy_for(&app, &first, &probe).await;
    assert_eq!(busy.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
    assert_eq!(busy.header(&header::RETRY_AFTER), "1");
    let response = app
        .call(&second, Method::POST, BULK, Some(probe.clone()))
        .await;
    results(&response, 0, 0);
    // The second workspace's two fill the instance: a third workspace is refused too.
    held.extend((2..4).map(|i| hold(&app, &key(&second), &format!("held{i}"), &released)));
    busy_for(&app, &third, &probe).await;
    // A burst meanwhile: every one refused, none waits; single creates go on.
    let burst: Vec<TestResponse> = futures_util::stream::iter(0..12)
        .map(|_| app.call(&third, Method::POST, BULK, Some(probe.clone())))
        .buffer_unordered(12)
        .collect()
        .await;
    let refused = burst
        .iter()
        .filter(|response| response.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(refused, 12);
    app.create(json!({"destination": "https://example.com/single"}))
        .await;
    // The held ones finish, and free their places.
    release
        .send(true)
        .expect("the requests still read their bodies");
    for answer in held {
        let (status, body) = answer.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    results(&bulk(&app, probe).await, 0, 0);
    assert_eq!(
        count(&app, "SELECT count(*) FROM links WHERE code LIKE 'held%'").await,
        4
    );
}

#[tokio::test]
async fn bulk_creates_sharing_codes_in_other_orders_do_not_deadlock() {
    let app = spawn_app().await;
    let codes: Vec<String> = (0..300).map(|i| format!("shared{i:03}")).collect();
    // Two requests at once (a workspace's share of the instance's places), one in each
    // order, over the same codes.
    let bodies: Vec<Value> = (0..2)
        .map(|turn| {
            let mut links: Vec<Value> = codes
                .iter()
                .map(|code| json!({"destination": "https://example.com/", "code": code}))
                .collect();
            if turn % 2 == 1 {
                links.reverse();
            }
            json!({ "links": links })
        })
        .collect();
    let answers =
        futures_util::future::join_all(bodies.into_iter().map(|body| bulk(&app, body))).await;
    let mut created = 0;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let body = answer.json();
        assert_eq!(
            body["created"].as_u64().expect("created") + body["failed"].as_u64().expect("failed"),
            300
        );
        created += body["created"].as_u64().expect("created");
    }
    // Each code once, whichever request got it; the others were told it is taken.
    assert_eq!(created, 300);
    assert_eq!(live_codes(&app).await, codes);
}

#[tokio::test]
async fn an_import_brings_the_clicks_its_link_used_against_its_limit() {
    let app = spawn_app().await;
    let response = bulk(
        &app,
        json!({"links": [
            {"destination": "https://example.com/1", "code": "spent", "max_clicks": 5, "clicks_used": 5},
            {"destination": "https://example.com/2", "code": "some", "max_clicks": 5, "clicks_used": 4},
            {"destination": "https://example.com/3", "code": "over", "max_clicks": 5, "clicks_used": 6},
            {"destination": "https://example.com/4", "code": "nolimit", "clicks_used": 1},
        ]}),
    )
    .await;
    let results = results(&response, 2, 2);
    assert_eq!(results[0]["link"]["clicks_used"], 5);
    assert_eq!(results[1]["link"]["clicks_used"], 4);
    assert_eq!(
        outcome(&results[2]),
        ("failed", Some("invalid_input"), Some("clicks_used"))
    );
    assert_eq!(
        outcome(&results[3]),
        ("failed", Some("invalid_input"), Some("clicks_used"))
    );
    // A single create takes it too.
    let single = app
        .create(json!({"destination": "https://example.com/5", "code": "one", "max_clicks": 2, "clicks_used": 2}))
        .await;
    assert_eq!(single["clicks_used"], 2);
    // Created used up (exhausted, so the edge learns it too), or with what is left.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM links WHERE exhausted_at IS NOT NULL AND code IN ('spent', 'one')"
        )
        .await,
        2
    );
    let person = |code: &str| {
        Request::builder()
            .uri(format!("/{code}"))
            .header(header::USER_AGENT, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(app.send(person("spent")).await.status, StatusCode::GONE);
    assert_eq!(app.send(person("one")).await.status, StatusCode::GONE);
    assert_eq!(app.send(person("some")).await.status, StatusCode::FOUND);
    assert_eq!(app.send(person("some")).await.status, StatusCode::GONE);
}

/// A bulk create with an `Idempotency-Key`, sent again while the instance's slots are taken
/// (as a client does on 503 `busy`).
async fn bulk_with_key(app: &TestApp, key: &str, body: &Value) -> TestResponse {
    loop {
        let request = Request::builder()
            .method(Method::POST)
            .uri(BULK)
            .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(Body::from(body.to_string()))
            .expect("request");
        let response = app.send(request).await;
        if response.status != StatusCode::SERVICE_UNAVAILABLE {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Items whose refusal names a NUL (a field or a value of that text) fail alone, and the
/// answer is remembered under the key like any other. Before, PostgreSQL's `jsonb` refused
/// to remember the answer (a NUL in an unknown field's name): 500 at every retry, and the
/// chunk's good items were not created either.
#[tokio::test]
async fn an_item_naming_a_nul_fails_alone_under_a_key() {
    let app = spawn_app().await;
    let body = json!({"links": [
        {"destination": "https://example.com/nul/1", "\u{0}": 1},
        {"destination": "https://example.com/nul/2", "title": "a\u{0}b"},
        {"destination": "https://exa\u{0}mple.com/nul/3"},
        {"destination": "https://example.com/nul/4", "code": "x\u{0}"},
        {"destination": "https://example.com/nul/5", "redirect_type": "\u{0}"},
        {"destination": "https://example.com/nul/ok"},
    ]});
    let first = bulk_with_key(&app, "nul-chunk", &body).await;
    let items = results(&first, 1, 5);
    assert_eq!(outcome(&items[5]).0, "created");
    for item in &items[..5] {
        assert_eq!(outcome(item).0, "failed", "{item}");
        assert!(!item.to_string().contains("\\u0000"), "{item}");
    }
    let again = bulk_with_key(&app, "nul-chunk", &body).await;
    assert_eq!(again.json(), first.json());
    assert!(again.headers.get("idempotent-replayed").is_some());
}

#[tokio::test]
async fn a_bulk_create_sent_again_with_its_key_gets_the_first_answer() {
    let app = spawn_app().await;
    // Generated codes: a second creation would make other links, not fail.
    let body = json!({"links": [
        {"destination": "https://example.com/1"},
        {"destination": "https://example.com/2", "code": "kept"},
        {"destination": "ftp://example.com/3"},
    ]});
    let answers = futures_util::future::join_all(
        (0..5).map(|_| bulk_with_key(&app, "import-chunk-0", &body)),
    )
    .await;
    let first = results(&answers[0], 2, 1);
    for answer in &answers {
        assert_eq!(answer.json(), answers[0].json());
    }
    let replayed = answers
        .iter()
        .filter(|answer| answer.headers.get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replayed, 4);
    assert_eq!(count(&app, "SELECT count(*) FROM links").await, 2);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'link.created'"
        )
        .await,
        2
    );
    assert_eq!(first[1]["link"]["code"], "kept");
    // The same key with another body, or on a single create: refused, nothing created.
    let other = json!({"links": [{"destination": "https://example.com/other"}]});
    let (code, _) = bulk_with_key(&app, "import-chunk-0", &other)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code, "idempotency_key_reused");
    let single = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/links")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "import-chunk-0")
        .body(Body::from(
            json!({"destination": "https://example.com/1"}).to_string(),
        ))
        .expect("request");
    let (code, _) = app
        .send(single)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code, "idempotency_key_reused");
    // A dry run ignores its key: it writes nothing, and the key stays free for the real one.
    let dry = json!({"dry_run": true, "links": [{"destination": "https://example.com/d"}]});
    for _ in 0..2 {
        results(&bulk_with_key(&app, "import-chunk-1", &dry).await, 0, 0);
    }
    let real = json!({"links": [{"destination": "https://example.com/d"}]});
    results(&bulk_with_key(&app, "import-chunk-1", &real).await, 1, 0);
    // An atomic request that rolled back wrote nothing, its key's claim included: sent again
    // (the failing item fixed) with the key, it is done.
    let broken = json!({"atomic": true, "links": [
        {"destination": "https://example.com/a1"}, {"destination": "ftp://example.com/"}]});
    results(&bulk_with_key(&app, "import-chunk-2", &broken).await, 0, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM links").await, 3);
    // A request of which every item failed wrote nothing either: sent again with its key
    // once the code is free, it creates the link (before, its answer of failures was kept).
    let taken = json!({"links": [{"destination": "https://example.com/again", "code": "kept"}]});
    let failed = results(&bulk_with_key(&app, "import-chunk-3", &taken).await, 0, 1);
    assert_eq!(outcome(&failed[0]).1, Some("code_taken"));
    let deleted = app.api(Method::DELETE, "/api/v1/links/kept", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    let again = bulk_with_key(&app, "import-chunk-3", &taken).await;
    assert!(again.headers.get("idempotent-replayed").is_none());
    let created = results(&again, 1, 0);
    assert_eq!(
        created[0]["link"]["destination"],
        "https://example.com/again"
    );
}
