//! The layers every API request meets: the body limit, the request timeout, the cap on API
//! requests at once (redirects are outside it) and CORS.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::support::{TestApp, app_with, config, new_database, spawn_app};

/// Holds `table` locked (every read of it waits) until the connection is dropped.
async fn lock_table(database_url: &str, table: &str) -> PgConnection {
    let mut conn = PgConnection::connect(database_url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut conn)
        .await
        .expect("begin");
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut conn)
        .await
        .expect("lock");
    conn
}

fn create_request(app: &TestApp, body: String, declare_length: bool) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/links")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
        .header(header::CONTENT_TYPE, "application/json");
    if declare_length {
        request = request.header(header::CONTENT_LENGTH, body.len());
    }
    request.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_in_the_error_shape() {
    let mut config = config(&new_database().await);
    config.gateway.api_body_limit = 2048;
    let app = app_with(&config).await;
    let destination = format!("https://example.com/{}", "a".repeat(3000));
    let body = json!({ "destination": destination }).to_string();
    // Declared in Content-Length (refused unread) or streamed without it (refused on reading).
    for declare_length in [true, false] {
        let response = app
            .send(create_request(&app, body.clone(), declare_length))
            .await;
        assert_eq!(
            response.error(StatusCode::PAYLOAD_TOO_LARGE).0,
            "payload_too_large"
        );
        let message = response.json()["error"]["message"].to_string();
        assert!(message.contains("2048"), "{declare_length}: {message}");
    }
    // Under the limit, the same route works.
    let small = json!({ "destination": "https://example.com/small" }).to_string();
    let response = app.send(create_request(&app, small, true)).await;
    assert_eq!(response.status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_default_body_limit_takes_the_largest_links_and_no_more() {
    let app = spawn_app().await;
    let body = json!({ "destination": format!("https://example.com/{}", "a".repeat(257 * 1024)) })
        .to_string();
    let response = app.send(create_request(&app, body, true)).await;
    assert_eq!(
        response.error(StatusCode::PAYLOAD_TOO_LARGE).0,
        "payload_too_large"
    );
    // A link with every rule at its bound and long destinations everywhere (about 140 KiB).
    let long = |n: usize| format!("https://example.com/{n}/{}", "a".repeat(3_900));
    let countries: Vec<String> = (0..50)
        .map(|i| format!("{}{}", (b'A' + i / 26) as char, (b'A' + i % 26) as char))
        .collect();
    let targets: Vec<_> = (0..20)
        .map(|n| json!({"when": {"country": countries}, "destination": long(n)}))
        .collect();
    let split: Vec<_> = (0..10)
        .map(|n| json!({"destination": long(100 + n), "weight": 10}))
        .collect();
    let body = json!({
        "destination": long(999),
        "targets": targets,
        "split": split,
        "fallback_url": long(1000),
        "tags": (0..20).map(|n| format!("tag {n}")).collect::<Vec<_>>(),
        "note": "n".repeat(2000),
    })
    .to_string();
    assert!(body.len() > 120 * 1024, "{}", body.len());
    let response = app.send(create_request(&app, body, true)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
}

#[tokio::test]
async fn a_request_past_the_timeout_is_503_timeout() {
    let database_url = new_database().await;
    let mut config = config(&database_url);
    config.gateway.request_timeout_secs = 1;
    let app = app_with(&config).await;
    let lock = lock_table(&database_url, "api_keys").await;
    let started = std::time::Instant::now();
    let response = app.api(Method::GET, "/api/v1/links", None).await;
    let took = started.elapsed();
    assert_eq!(response.error(StatusCode::SERVICE_UNAVAILABLE).0, "timeout");
    assert_eq!(response.header(&header::RETRY_AFTER), "5");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    drop(lock);
    let response = app.api(Method::GET, "/api/v1/links", None).await;
    assert_eq!(response.status, StatusCode::OK);
}

/// The redirect routes keep the deadline outside the gateway's layer (`redirect.rs`), and
/// answer a visitor with a page.
#[tokio::test]
async fn a_redirect_past_the_timeout_is_503_with_a_page() {
    let database_url = new_database().await;
    let mut config = config(&database_url);
    config.gateway.request_timeout_secs = 1;
    let app = app_with(&config).await;
    let lock = lock_table(&database_url, "links").await;
    let started = std::time::Instant::now();
    let response = app.visit(Method::GET, "/abc1234").await;
    let took = started.elapsed();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response
            .header(&header::CONTENT_TYPE)
            .starts_with("text/html")
    );
    assert_eq!(response.header(&header::RETRY_AFTER), "5");
    // The look-up itself gives up after 5 s: the answer came from the request's deadline.
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
    drop(lock);
    assert_eq!(
        app.visit(Method::GET, "/abc1234").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_burst_over_the_cap_is_shed_503_busy() {
    let mut config = config(&new_database().await);
    config.gateway.api_concurrency = 2;
    let app = app_with(&config).await;
    let requests = (0..64).map(|_| app.api(Method::GET, "/api/v1/links", None));
    let responses = futures_util::future::join_all(requests).await;
    let (mut ok, mut busy) = (0, 0);
    for response in &responses {
        if response.status == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(response.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
            assert_eq!(response.header(&header::RETRY_AFTER), "1");
            busy += 1;
        }
    }
    assert!(ok >= 2, "{ok} answered, {busy} shed");
    assert!(busy >= 1, "{ok} answered, {busy} shed");
    assert_eq!(ok + busy, 64);
}

#[tokio::test]
async fn redirects_and_sign_ins_are_outside_the_cap() {
    let database_url = new_database().await;
    let mut config = config(&database_url);
    config.gateway.api_concurrency = 1;
    let app = app_with(&config).await;
    app.create(json!({"destination": "https://example.com/cap", "code": "cap"}))
        .await;
    let lock = lock_table(&database_url, "api_keys").await;
    // Takes the one permit and waits on the lock.
    let router = app.router.clone();
    let key = app.api_key.clone();
    let held = tokio::spawn(async move {
        let request = Request::builder()
            .uri("/api/v1/links")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .expect("request");
        tower::ServiceExt::oneshot(router, request)
            .await
            .expect("infallible")
            .status()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app.api(Method::GET, "/api/v1/links", None).await;
    assert_eq!(response.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
    let response = app.visit(Method::GET, "/cap").await;
    assert_eq!(response.status, StatusCode::FOUND);
    // Nor are sign-ins (they need no key, so their flood must not starve the keyed calls).
    let sign_in = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": "nobody", "password": "wrong password"}).to_string(),
        ))
        .expect("request");
    let response = app.send(sign_in).await;
    assert_eq!(response.error(StatusCode::UNAUTHORIZED).0, "sign_in_failed");
    drop(lock);
    assert_eq!(held.await.expect("task"), StatusCode::OK);
    let response = app.api(Method::GET, "/api/v1/links", None).await;
    assert_eq!(response.status, StatusCode::OK);
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/v1/links")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type, x-csrf-token",
        )
        .body(Body::empty())
        .expect("request")
}

fn unauthenticated(origin: &str) -> Request<Body> {
    Request::builder()
        .uri("/api/v1/links")
        .header(header::ORIGIN, origin)
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let app = spawn_app().await;
    let response = app.send(preflight("https://app.example")).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert!(
        !response
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    let response = app.send(unauthenticated("https://app.example")).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert!(
        !response
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let mut config = config(&new_database().await);
    config.gateway.cors_origins = vec![
        "https://app.example".to_owned(),
        "http://localhost:3000".to_owned(),
    ];
    let app = app_with(&config).await;

    let response = app.send(preflight("https://app.example")).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert_eq!(
        response.header(&header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://app.example"
    );
    let methods = response
        .header(&header::ACCESS_CONTROL_ALLOW_METHODS)
        .to_ascii_lowercase();
    for method in ["get", "post", "patch", "delete"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = response
        .header(&header::ACCESS_CONTROL_ALLOW_HEADERS)
        .to_ascii_lowercase();
    // The conditional and retried requests of the links API need theirs too.
    for name in [
        "authorization",
        "content-type",
        "x-csrf-token",
        "if-match",
        "idempotency-key",
    ] {
        assert!(headers.contains(name), "{headers}");
    }
    assert!(
        !response
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
    );

    // Another origin, or the allowed one with another port, gets no CORS answer.
    for other in ["https://evil.example", "https://app.example:8443"] {
        let response = app.send(preflight(other)).await;
        assert!(
            !response
                .headers
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "{other}"
        );
    }

    // CORS grants no access: without a key the answer is still 401, readable by the page.
    let response = app.send(unauthenticated("https://app.example")).await;
    assert_eq!(response.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
    assert_eq!(
        response.header(&header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://app.example"
    );
    let mut request = unauthenticated("http://localhost:3000");
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {}", app.api_key).parse().expect("header"),
    );
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.header(&header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "http://localhost:3000"
    );
    // A page may read the version to send back in If-Match, a replay, and its budget.
    let exposed = response
        .header(&header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .to_ascii_lowercase();
    for name in [
        "etag",
        "idempotent-replayed",
        "location",
        "retry-after",
        "ratelimit",
        "ratelimit-policy",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }
    // Redirects are not the API's: no CORS headers there.
    let response = app
        .send(unauthenticated_at("/nothing", "https://app.example"))
        .await;
    assert!(
        !response
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

fn unauthenticated_at(path: &str, origin: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header(header::ORIGIN, origin)
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn a_cors_origin_must_be_exact() {
    let database_url = new_database().await;
    for wrong in [
        "https://app.example/",
        "app.example",
        "https://app.example/path",
        "*",
    ] {
        let mut config = config(&database_url);
        config.gateway.cors_origins = vec![wrong.to_owned()];
        assert!(origin::State::new(&config).is_err(), "{wrong}");
    }
}
