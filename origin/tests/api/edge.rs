//! The origin's routes for the edge: signatures, replays, resolve and idempotent ingest.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use shortlink::signature;
use time::OffsetDateTime;

use crate::support::{
    EDGE_SECRET, TestApp, TestResponse, hour_start, spawn_app, spawn_app_with_edge,
};

async fn signed(app: &TestApp, method: Method, path: &str, body: &[u8]) -> TestResponse {
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    signed_at(app, method, path, body, timestamp).await
}

async fn signed_at(
    app: &TestApp,
    method: Method,
    path: &str,
    body: &[u8],
    timestamp: i64,
) -> TestResponse {
    let signature = signature::sign(
        EDGE_SECRET.as_bytes(),
        method.as_str(),
        path,
        timestamp,
        body,
    );
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, signature)
        .body(Body::from(body.to_vec()))
        .expect("request");
    app.send(request).await
}

fn click(id: &str, link_id: i64, code: &str) -> Value {
    // The same instant for every call within a test (events are identified by id and time).
    let at = hour_start(time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    json!({
        "id": id, "link_id": link_id, "code": code, "at": at,
        "country": "DE", "referrer": "https://news.example/item", "user_agent": "test-agent",
        "qr": false, "head": false, "source": "edge"
    })
}

#[tokio::test]
async fn resolve_answers_signed_requests_with_the_link_record() {
    let app = spawn_app_with_edge().await;
    let link = app
        .create(json!({"destination": "https://example.com/r", "code": "resolved", "status": 307}))
        .await;
    let response = signed(&app, Method::GET, "/_edge/resolve/resolved", b"").await;
    assert_eq!(response.status, StatusCode::OK);
    let version = version_of(&app, "resolved").await;
    assert_eq!(
        response.json(),
        json!({"v": 1, "version": version, "link_id": link["id"], "destination": "https://example.com/r", "status": 307, "expires_at": null})
    );
    let unknown = signed(&app, Method::GET, "/_edge/resolve/nothing-here", b"").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let unsigned = app.visit(Method::GET, "/_edge/resolve/resolved").await;
    assert_eq!(unsigned.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
    // Signed for another path: refused.
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let other = signature::sign(
        EDGE_SECRET.as_bytes(),
        "GET",
        "/_edge/resolve/other",
        timestamp,
        b"",
    );
    let request = Request::builder()
        .uri("/_edge/resolve/resolved")
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, other)
        .body(Body::empty())
        .expect("request");
    assert_eq!(app.send(request).await.status, StatusCode::UNAUTHORIZED);
    // Stale: outside the allowed clock skew.
    let stale = signed_at(
        &app,
        Method::GET,
        "/_edge/resolve/resolved",
        b"",
        timestamp - 600,
    )
    .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
}

/// The version of the code's live link.
async fn version_of(app: &TestApp, code: &str) -> i64 {
    sqlx::query_scalar("SELECT version FROM links WHERE code = $1 AND deleted_at IS NULL")
        .bind(code)
        .fetch_one(&app.db)
        .await
        .expect("a live link")
}

#[tokio::test]
async fn resolve_reads_postgresql_not_the_redirect_cache() {
    let app = spawn_app_with_edge().await;
    app.create(json!({"destination": "https://example.com/old", "code": "fresh"}))
        .await;
    // The redirect route caches the link...
    assert_eq!(
        app.visit(Method::GET, "/fresh").await.status,
        StatusCode::FOUND
    );
    let before = version_of(&app, "fresh").await;
    // ...and a change this instance does not see (another origin's, or a script's) leaves
    // its cache stale: the edge must not be handed that.
    sqlx::query("UPDATE links SET destination = 'https://example.com/new' WHERE code = 'fresh'")
        .execute(&app.db)
        .await
        .expect("update");
    let response = signed(&app, Method::GET, "/_edge/resolve/fresh", b"").await;
    assert_eq!(response.status, StatusCode::OK);
    let record = response.json();
    assert_eq!(record["destination"], "https://example.com/new");
    assert!(
        record["version"].as_i64().expect("version") > before,
        "{record}"
    );
    assert_eq!(record["version"], version_of(&app, "fresh").await);
}

#[tokio::test]
async fn ingest_stores_each_event_once_however_often_it_is_delivered() {
    let app = spawn_app_with_edge().await;
    let link = app
        .create(json!({"destination": "https://example.com/i", "code": "ingested"}))
        .await;
    let id = link["id"].as_i64().expect("id");
    let batch = json!({"events": [click("e1", id, "ingested"), click("e2", id, "ingested"), click("e1", id, "ingested")]});
    let body = batch.to_string();

    let first = signed(&app, Method::POST, "/_edge/ingest", body.as_bytes()).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.json(), json!({"received": 3, "inserted": 2}));
    // The same request again is a replay; a new delivery of the same events adds nothing.
    let replay = signed_at(&app, Method::POST, "/_edge/ingest", body.as_bytes(), 0).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = signed(&app, Method::POST, "/_edge/ingest", body.as_bytes()).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), json!({"received": 3, "inserted": 0}));

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks WHERE link_id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn ingest_refuses_unsigned_and_malformed_batches() {
    let app = spawn_app_with_edge().await;
    let body = json!({"events": []}).to_string();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/_edge/ingest")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    assert_eq!(app.send(request).await.status, StatusCode::UNAUTHORIZED);
    for body in [
        &b"{\"events\": 5}"[..],
        b"{\"clicks\": []}",
        b"[]",
        b"{\"events\": [",
    ] {
        let bad = signed(&app, Method::POST, "/_edge/ingest", body).await;
        assert!(bad.status.is_client_error(), "{body:?}: {:?}", bad.status);
    }
}

/// A worker of a newer release may write an event this origin cannot read (a new source, a
/// field in another form): the others of its batch are stored, and the answer names it, so
/// that the edge retries its message until an origin of the newer release stores it. Before,
/// the whole batch was refused and every click of it waited for the upgrade.
#[tokio::test]
async fn ingest_stores_what_it_reads_and_names_the_rest() {
    let app = spawn_app_with_edge().await;
    let link = app
        .create(json!({"destination": "https://example.com/u", "code": "unread"}))
        .await;
    let id = link["id"].as_i64().expect("id");
    let mut newer = click("newer", id, "unread");
    newer["source"] = json!("satellite");
    let events = json!([
        click("fine-1", id, "unread"),
        newer,
        {"id": 1},
        "not an event",
        click("fine-2", id, "unread"),
    ]);
    let body = json!({ "events": events }).to_string();
    let response = signed(&app, Method::POST, "/_edge/ingest", body.as_bytes()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(
        response.json(),
        json!({"received": 5, "inserted": 2, "unread": [1, 2, 3]})
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM clicks ORDER BY id")
        .fetch_all(&app.db)
        .await
        .expect("stored clicks");
    assert_eq!(stored, ["fine-1", "fine-2"]);
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks_parked")
        .fetch_one(&app.db)
        .await
        .expect("parked clicks");
    assert_eq!(parked, 0, "left to the edge's retries, not set aside");

    // The edge's retry of that message, once an origin reads the new source (here: the
    // event as this release writes it), stores it and nothing twice.
    let events = json!([click("fine-1", id, "unread"), click("newer", id, "unread")]);
    let body = json!({ "events": events }).to_string();
    let response = signed(&app, Method::POST, "/_edge/ingest", body.as_bytes()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.json(), json!({"received": 2, "inserted": 1}));
}

/// A request whose body never comes: only what its headers say can answer it.
fn without_body(timestamp: Option<i64>, signature: Option<&str>, length: usize) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/_edge/ingest")
        .header("content-type", "application/json")
        .header("content-length", length.to_string());
    if let Some(timestamp) = timestamp {
        request = request.header(signature::TIMESTAMP_HEADER, timestamp.to_string());
    }
    if let Some(signature) = signature {
        request = request.header(signature::SIGNATURE_HEADER, signature);
    }
    let never = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    request.body(Body::from_stream(never)).expect("request")
}

#[tokio::test]
async fn the_edge_routes_answer_from_the_headers_before_reading_a_body() {
    let app = spawn_app_with_edge().await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let forged = "ab".repeat(32);
    // (timestamp, signature, declared length, status): unsigned, stale, or declaring more
    // than the routes take; none may wait for its body (the test would hang).
    let cases = [
        (None, None, 100, StatusCode::UNAUTHORIZED),
        (
            Some(0),
            Some(forged.as_str()),
            100,
            StatusCode::UNAUTHORIZED,
        ),
        (Some(now), Some("not hex"), 100, StatusCode::UNAUTHORIZED),
        (
            Some(now),
            Some(forged.as_str()),
            3 << 20,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (timestamp, signature, length, status) in cases {
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            app.send(without_body(timestamp, signature, length)),
        )
        .await
        .unwrap_or_else(|_| panic!("{timestamp:?} {signature:?} {length}: waited for the body"));
        assert_eq!(
            response.status, status,
            "{timestamp:?} {signature:?} {length}"
        );
    }
}

#[tokio::test]
async fn a_signed_post_is_taken_once_in_whatever_letters_it_comes_again() {
    let app = spawn_app_with_edge().await;
    let body = json!({"events": []}).to_string();
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let given = signature::sign(
        EDGE_SECRET.as_bytes(),
        "POST",
        "/_edge/ingest",
        timestamp,
        body.as_bytes(),
    );
    let send = |signature: String| {
        Request::builder()
            .method(Method::POST)
            .uri("/_edge/ingest")
            .header("content-type", "application/json")
            .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
            .header(signature::SIGNATURE_HEADER, signature)
            .body(Body::from(body.clone()))
            .expect("request")
    };
    assert_eq!(app.send(send(given.clone())).await.status, StatusCode::OK);
    // The same request again, as sent and with its hex in other letters (the same bytes).
    for again in [given.clone(), given.to_ascii_uppercase()] {
        assert_eq!(
            app.send(send(again.clone())).await.status,
            StatusCode::UNAUTHORIZED,
            "{again}"
        );
    }
}

#[tokio::test]
async fn edge_routes_do_not_exist_without_a_secret() {
    let app = spawn_app().await;
    let response = signed(&app, Method::GET, "/_edge/resolve/anything", b"").await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ingest_stores_an_event_with_nul_characters_without_them() {
    let app = spawn_app_with_edge().await;
    let link = app
        .create(json!({"destination": "https://example.com/n", "code": "nul"}))
        .await;
    let id = link["id"].as_i64().expect("id");
    let mut event = click("nul-1", id, "nul");
    event["user_agent"] = json!("Mozilla/5.0\u{0}(X11)");
    event["referrer"] = json!("https://news.example/\u{0}item");
    let body = json!({"events": [event]}).to_string();
    let response = signed(&app, Method::POST, "/_edge/ingest", body.as_bytes()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.json(), json!({"received": 1, "inserted": 1}));
    let (user_agent, referrer): (String, String) =
        sqlx::query_as("SELECT user_agent, referrer FROM clicks WHERE id = 'nul-1'")
            .fetch_one(&app.db)
            .await
            .expect("stored");
    assert_eq!(user_agent, "Mozilla/5.0(X11)");
    assert_eq!(referrer, "https://news.example/item");
}

#[tokio::test]
async fn ingest_parks_an_event_postgresql_refuses_and_stores_the_others() {
    let app = spawn_app_with_edge().await;
    let link = app
        .create(json!({"destination": "https://example.com/p", "code": "poisoned"}))
        .await;
    let id = link["id"].as_i64().expect("id");
    // Nothing `bounded()` lets through is refused today; a constraint stands in for the next
    // value PostgreSQL refuses (a check violation, SQLSTATE 23514).
    sqlx::query("ALTER TABLE clicks ADD CONSTRAINT no_poison CHECK (user_agent <> 'poison')")
        .execute(&app.db)
        .await
        .expect("add a constraint");
    let mut events: Vec<Value> = (0..9)
        .map(|n| click(&format!("good-{n}"), id, "poisoned"))
        .collect();
    let mut poison = click("bad", id, "poisoned");
    poison["user_agent"] = json!("poison");
    events.insert(4, poison);
    let body = json!({ "events": events }).to_string();

    let response = signed(&app, Method::POST, "/_edge/ingest", body.as_bytes()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.json(), json!({"received": 10, "inserted": 9}));
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM clicks ORDER BY id")
        .fetch_all(&app.db)
        .await
        .expect("stored clicks");
    let good: Vec<String> = (0..9).map(|n| format!("good-{n}")).collect();
    assert_eq!(stored, good);
    let parked: Vec<(String, String)> =
        sqlx::query_as("SELECT error, event::text FROM clicks_parked")
            .fetch_all(&app.db)
            .await
            .expect("parked clicks");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].0.contains("no_poison"), "{parked:?}");
    assert!(parked[0].1.contains(r#""id":"bad""#), "{parked:?}");
    // The parked event is out of the way: the counters count the stored ones.
    assert_eq!(app.state.count_clicks().await.expect("count"), 9);

    // The edge's queue retries the batch (say, after an outage answered it): the event is
    // refused again and stays parked once. Reversed, so the body and its signature are new.
    events.reverse();
    let body = json!({ "events": events }).to_string();
    let response = signed(&app, Method::POST, "/_edge/ingest", body.as_bytes()).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.json(), json!({"received": 10, "inserted": 0}));
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks_parked")
        .fetch_one(&app.db)
        .await
        .expect("parked clicks");
    assert_eq!(parked, 1);
}

#[tokio::test]
async fn ingest_answers_a_database_failure_503_so_the_queue_retries() {
    let app = spawn_app_with_edge().await;
    let link = app
        .create(json!({"destination": "https://example.com/o", "code": "outage"}))
        .await;
    let id = link["id"].as_i64().expect("id");
    // A failure that blames no event (here a missing table, SQLSTATE 42P01).
    sqlx::query("ALTER TABLE clicks RENAME TO clicks_away")
        .execute(&app.db)
        .await
        .expect("rename");
    let body = json!({"events": [click("o-1", id, "outage")]}).to_string();
    let response = signed(&app, Method::POST, "/_edge/ingest", body.as_bytes()).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        response.body
    );
    assert_eq!(response.json()["error"]["code"], "unavailable");
}
