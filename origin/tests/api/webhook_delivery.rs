//! Webhook delivery against a real local receiver that answers, fails, hangs, answers 410 and
//! recovers: nothing is lost, every retry carries the same `webhook-id`, a link's messages
//! arrive in order, the signature verifies (by the `standardwebhooks` crate and by an HMAC made
//! here from the specification), and the bounds hold.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use base64::prelude::{BASE64_STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource};
use time::OffsetDateTime;

use crate::support::{TestApp, app_with, config, new_database};

/// The workspace of the tests' default API key.
const WORKSPACE: i64 = 1;
/// Longest a test waits for something that normally takes well under a second.
const DEADLINE: Duration = Duration::from_secs(30);

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    /// Answers after far longer than the tests' timeout.
    Hang,
    Gone,
    /// 500 with a binary body: NUL bytes, which PostgreSQL's text cannot hold.
    FailBinary,
}

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: Mode,
}

impl Received {
    fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().expect("ascii")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A webhook receiver on 127.0.0.1: it records every request and answers as told.
#[derive(Clone)]
struct Receiver {
    url: String,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Self {
        let mode = Arc::new(Mutex::new(Mode::Ok));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (m, r) = (mode.clone(), received.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (mode, received) = (m.clone(), r.clone());
                async move {
                    let answered = *mode.lock().expect("mode");
                    received.lock().expect("log").push(Received {
                        headers,
                        body,
                        answered,
                    });
                    match answered {
                        Mode::Ok => StatusCode::NO_CONTENT.into_response(),
                        Mode::Fail => {
                            (StatusCode::INTERNAL_SERVER_ERROR, "receiver down").into_response()
                        }
                        Mode::Hang => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            StatusCode::OK.into_response()
                        }
                        Mode::Gone => StatusCode::GONE.into_response(),
                        Mode::FailBinary => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            b"\x1f\x8b\x08\x00\x00\x00oops".to_vec(),
                        )
                            .into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{address}/hook"),
            mode,
            received,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }

    /// What was answered 2xx, in order.
    fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered == Mode::Ok)
            .collect()
    }

    /// Waits until `done` holds for what was received.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "receiver: {what} not within {DEADLINE:?}; got {:?}",
                received.iter().map(Received::json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Polls `query` (one value) until `done` holds.
async fn wait_db<T>(app: &TestApp, what: &str, query: &str, done: impl Fn(&T) -> bool) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let value: T = sqlx::query_scalar(query)
            .fetch_one(&app.db)
            .await
            .expect(query);
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} not within {DEADLINE:?}: {query} is {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An app whose webhooks time out after 10 s (an attempt that must succeed does, on a loaded
/// machine too); `allow_private` as given.
async fn app(allow_private: bool, max_pending_clicks: u32) -> TestApp {
    app_timing_out(allow_private, max_pending_clicks, 10_000).await
}

async fn app_timing_out(allow_private: bool, max_pending_clicks: u32, timeout_ms: u64) -> TestApp {
    let mut config = config(&new_database().await);
    config.webhooks.timeout_ms = timeout_ms;
    config.webhooks.allow_private = allow_private;
    config.webhooks.max_pending_clicks = max_pending_clicks;
    app_with(&config).await
}

/// A random signing secret, as the API makes them.
fn new_secret() -> String {
    let mut key = [0u8; 24];
    getrandom::fill(&mut key).expect("randomness");
    format!("whsec_{}", base64(&key))
}

/// An endpoint of the tests' workspace (made in SQL, as the API would); its id.
async fn endpoint(app: &TestApp, url: &str, secret: &str, events: &[&str]) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO webhook_endpoints (workspace_id, url, events, secret)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(WORKSPACE)
    .bind(url)
    .bind(events)
    .bind(secret)
    .fetch_one(&app.db)
    .await
    .expect("endpoint")
}

/// Makes every pending retry due now (the tests' clock does not wait 5 s or 10 h).
async fn retry_now(app: &TestApp) {
    sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE state = 'pending'")
        .execute(&app.db)
        .await
        .expect("retry now");
}

/// Checks a message's signature by the Standard Webhooks library and by the specification's
/// HMAC made here: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
fn verify(secret: &str, received: &Received) {
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(&received.body, &received.headers)
        .expect("the signature verifies");
    let header = |name: &str| received.headers[name].to_str().expect("ascii").to_owned();
    let expected = spec_signature(
        secret,
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &received.body,
    );
    assert!(
        header("webhook-signature")
            .split(' ')
            .any(|signature| signature == expected),
        "{} is not {expected}",
        header("webhook-signature")
    );
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("user-agent"), "kurz-webhooks");
}

fn spec_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = unbase64(secret.strip_prefix("whsec_").expect("prefix"));
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64(&mac.finalize().into_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    BASE64_STANDARD.encode(bytes)
}

fn unbase64(text: &str) -> Vec<u8> {
    BASE64_STANDARD.decode(text).expect("base64")
}

#[test]
fn signatures_match_the_specifications_test_vector() {
    let (secret, id, timestamp, body) = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        br#"{"test": 2432232314}"#,
    );
    let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let signed = standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .sign(id, timestamp, body)
        .expect("signs");
    assert_eq!(signed, expected);
    assert_eq!(
        spec_signature(secret, id, &timestamp.to_string(), body),
        expected
    );
    assert_eq!(
        base64(&unbase64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    );
}

#[tokio::test]
async fn a_links_changes_each_arrive_once_signed_and_in_order() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    let secret = new_secret();
    let events = ["link.created", "link.updated", "link.deleted"];
    endpoint(&app, &receiver.url, &secret, &events).await;
    let _background = app.state.spawn_background();

    let link = app
        .create(json!({"destination": "https://example.com/a", "code": "hooked"}))
        .await;
    let patched = app
        .api(
            Method::PATCH,
            "/api/v1/links/hooked",
            Some(json!({"destination": "https://example.com/b"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    let deleted = app.api(Method::DELETE, "/api/v1/links/hooked", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    receiver.wait_for("three messages", |r| r.len() >= 3).await;
    wait_db::<i64>(
        &app,
        "all delivered",
        "SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'",
        |n| *n == 0,
    )
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 3, "each once");
    let types: Vec<Value> = received.iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(types, events.map(Value::from));
    for message in &received {
        verify(&secret, message);
        let body = message.json();
        assert_eq!(body["data"]["code"], "hooked");
        assert_eq!(body["data"]["id"], link["id"]);
        OffsetDateTime::parse(
            body["timestamp"].as_str().expect("timestamp"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("an RFC 3339 timestamp");
        assert!(message.id().starts_with("msg_") && message.id().len() >= 28);
    }
    assert_eq!(
        received[0].json()["data"]["destination"],
        "https://example.com/a"
    );
    // A deleted link's message shows its last state.
    assert_eq!(
        received[2].json()["data"]["destination"],
        "https://example.com/b"
    );
    let mut ids: Vec<&str> = received.iter().map(Received::id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one id per message");
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempts FROM webhook_deliveries ORDER BY id")
            .fetch_all(&app.db)
            .await
            .expect("attempts");
    assert_eq!(attempts, [1, 1, 1]);
}

#[tokio::test]
async fn a_failing_receiver_that_recovers_loses_nothing_and_gets_the_same_ids_in_order() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Fail);
    let secret = new_secret();
    let endpoint = endpoint(
        &app,
        &receiver.url,
        &secret,
        &["link.created", "link.updated"],
    )
    .await;
    let _background = app.state.spawn_background();

    app.create(json!({"destination": "https://example.com/1", "code": "order"}))
        .await;
    for n in 2..=3 {
        let patched = app
            .api(
                Method::PATCH,
                "/api/v1/links/order",
                Some(json!({"destination": format!("https://example.com/{n}")})),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK);
    }
    // Two failed attempts of the create (the first, and a retry made due at once); the
    // updates wait behind it, never sent before it.
    let logged = "SELECT count(*) FROM webhook_attempts WHERE status = 500";
    wait_db::<i64>(&app, "a failure logged", logged, |n| *n >= 1).await;
    retry_now(&app).await;
    wait_db::<i64>(&app, "a second failure logged", logged, |n| *n >= 2).await;
    let failed = receiver.received();
    assert!(failed.len() >= 2);
    assert!(failed.iter().all(|r| r.json()["type"] == "link.created"));
    let failing_since: Option<OffsetDateTime> =
        sqlx::query_scalar("SELECT failing_since FROM webhook_endpoints WHERE id = $1")
            .bind(endpoint)
            .fetch_one(&app.db)
            .await
            .expect("endpoint");
    assert!(failing_since.is_some());
    receiver.set(Mode::Ok);
    retry_now(&app).await;
    receiver
        .wait_for("the create and both updates accepted", |r| {
            r.iter().filter(|r| r.answered == Mode::Ok).count() >= 3
        })
        .await;
    let accepted = receiver.accepted();
    let destinations: Vec<Value> = accepted
        .iter()
        .map(|r| r.json()["data"]["destination"].clone())
        .collect();
    assert_eq!(
        destinations,
        [
            "https://example.com/1",
            "https://example.com/2",
            "https://example.com/3"
        ]
        .map(Value::from),
        "in order"
    );
    // Every attempt of one message under one id; one id per message.
    let received = receiver.received();
    for message in &received {
        verify(&secret, message);
        let same_version: Vec<&str> = received
            .iter()
            .filter(|r| r.json()["data"]["version"] == message.json()["data"]["version"])
            .map(Received::id)
            .collect();
        assert!(
            same_version.iter().all(|id| *id == message.id()),
            "{same_version:?}"
        );
    }
    assert_eq!(received.len(), accepted.len() + failed.len());
    let failing_since: Option<OffsetDateTime> =
        sqlx::query_scalar("SELECT failing_since FROM webhook_endpoints WHERE id = $1")
            .bind(endpoint)
            .fetch_one(&app.db)
            .await
            .expect("endpoint");
    assert_eq!(failing_since, None, "a success ends the failing");
}

#[tokio::test]
async fn a_timeout_is_a_failed_attempt() {
    // Far shorter than the receiver's hang (60 s), far longer than any stall of the machine.
    let app = app_timing_out(true, 100_000, 2_000).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Hang);
    let secret = new_secret();
    endpoint(&app, &receiver.url, &secret, &["link.created"]).await;
    let _background = app.state.spawn_background();
    app.create(json!({"destination": "https://example.com/slow"}))
        .await;

    let error: Option<String> = wait_db(
        &app,
        "the timed-out attempt",
        "SELECT max(error) FROM webhook_attempts",
        Option::is_some,
    )
    .await;
    assert!(
        error.as_deref().is_some_and(|e| e.contains("timed out")),
        "{error:?}"
    );
    let (state, status, attempts): (String, Option<i16>, i32) =
        sqlx::query_as("SELECT state, last_status, attempts FROM webhook_deliveries")
            .fetch_one(&app.db)
            .await
            .expect("delivery");
    assert_eq!((state.as_str(), status, attempts), ("pending", None, 1));

    receiver.set(Mode::Ok);
    retry_now(&app).await;
    receiver
        .wait_for("the retry accepted", |r| {
            r.iter().any(|r| r.answered == Mode::Ok)
        })
        .await;
    let received = receiver.received();
    assert!(received.iter().all(|r| r.id() == received[0].id()));
}

#[tokio::test]
async fn a_410_switches_the_endpoint_off_at_once() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Gone);
    let endpoint = endpoint(&app, &receiver.url, &new_secret(), &["link.created"]).await;
    let _background = app.state.spawn_background();
    app.create(json!({"destination": "https://example.com/gone"}))
        .await;

    let enabled: bool = wait_db(
        &app,
        "the endpoint switched off",
        "SELECT bool_and(enabled) FROM webhook_endpoints",
        |enabled| !enabled,
    )
    .await;
    assert!(!enabled);
    let (reason, at): (Option<String>, Option<OffsetDateTime>) =
        sqlx::query_as("SELECT disabled_reason, disabled_at FROM webhook_endpoints WHERE id = $1")
            .bind(endpoint)
            .fetch_one(&app.db)
            .await
            .expect("endpoint");
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("410")),
        "{reason:?}"
    );
    assert!(at.is_some());
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'webhook.disabled' AND target_id = $1",
    )
    .bind(endpoint)
    .fetch_one(&app.db)
    .await
    .expect("audit");
    assert_eq!(audited, 1);
    // Its message stays pending, unsent, until it is switched on; new changes write none.
    app.create(json!({"destination": "https://example.com/after"}))
        .await;
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM webhook_deliveries")
        .fetch_all(&app.db)
        .await
        .expect("deliveries");
    assert_eq!(states, ["pending"]);
    // The log shows the parked message, pending with no next attempt (its `infinity` is not a
    // time an answer can carry; reading it once panicked the handler).
    let log = app
        .api(
            Method::GET,
            &format!("/api/v1/webhooks/{endpoint}/deliveries"),
            None,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text());
    let deliveries = log.json();
    let first = &deliveries["deliveries"][0];
    assert_eq!(first["state"], "pending", "{deliveries}");
    assert!(first["next_attempt_at"].is_null(), "{deliveries}");
}

/// A receiver's error answer with NUL bytes (gzip, UTF-16) is recorded as an attempt like any
/// other: the record once failed on PostgreSQL's text, so the message was sent again and again
/// without an attempt ever counted.
#[tokio::test]
async fn an_error_answer_with_nul_bytes_is_recorded() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::FailBinary);
    let endpoint = endpoint(&app, &receiver.url, &new_secret(), &["link.created"]).await;
    let _background = app.state.spawn_background();
    app.create(json!({"destination": "https://example.com/binary"}))
        .await;
    let error: Option<String> = wait_db(
        &app,
        "the attempt recorded",
        "SELECT max(error) FROM webhook_attempts",
        |error: &Option<String>| error.is_some(),
    )
    .await;
    let error = error.expect("recorded");
    assert!(error.starts_with("HTTP 500: "), "{error:?}");
    assert!(
        error.ends_with("oops") && !error.contains('\0'),
        "{error:?}"
    );
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(endpoint)
            .fetch_one(&app.db)
            .await
            .expect("delivery");
    // (A retry 5 s later on a slow machine may have added one.)
    assert!(attempts >= 1, "{attempts}");
}

#[tokio::test]
async fn failing_for_a_day_switches_the_endpoint_off_at_its_next_failed_attempt() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Fail);
    let day_long = endpoint(&app, &receiver.url, &new_secret(), &["link.created"]).await;
    let hour_long = endpoint(&app, &receiver.url, &new_secret(), &["link.created"]).await;
    // A day of failing first tries (a backlog as long as a day): its message is at its 3rd
    // attempt, far from failing for good. Before, only a message's last attempt switched an
    // endpoint off, so a backlog kept a dead one on for days.
    let backlogged = endpoint(&app, &receiver.url, &new_secret(), &["link.created"]).await;
    // The clock is moved, not waited for: failing since 25 h and 1 h, each with a message at
    // its last attempt, and 25 h with a message at its third.
    for (endpoint, hours) in [(day_long, 25), (hour_long, 1), (backlogged, 25)] {
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = now() - make_interval(hours => $2)
             WHERE id = $1",
        )
        .bind(endpoint)
        .bind(hours)
        .execute(&app.db)
        .await
        .expect("failing");
        sqlx::query(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload, attempts)
             VALUES ($1, $2, 'link.created', '{\"type\": \"link.created\"}', $3)",
        )
        .bind(format!("msg_lastattempt{endpoint}"))
        .bind(endpoint)
        .bind(if endpoint == backlogged { 2 } else { 7 })
        .execute(&app.db)
        .await
        .expect("delivery");
    }
    let _background = app.state.spawn_background();

    wait_db::<i64>(
        &app,
        "both last messages failed for good, the third tried once more",
        "SELECT count(*) FROM webhook_deliveries
         WHERE (state = 'failed' AND attempts = 8) OR attempts = 3",
        |n| *n == 3,
    )
    .await;
    let endpoints: Vec<(i64, bool, Option<String>)> =
        sqlx::query_as("SELECT id, enabled, disabled_reason FROM webhook_endpoints ORDER BY id")
            .fetch_all(&app.db)
            .await
            .expect("endpoints");
    for (endpoint, enabled, reason) in [&endpoints[0], &endpoints[2]] {
        assert!(!enabled, "{endpoint}");
        let reason = reason.as_deref().expect("a reason");
        assert!(
            reason.starts_with("failing since ") && reason.contains("HTTP 500"),
            "{reason}"
        );
    }
    assert_eq!(
        endpoints[1],
        (hour_long, true, None),
        "failing for an hour only"
    );
    let audited: Vec<i64> = sqlx::query_scalar(
        "SELECT target_id FROM audit_log WHERE action = 'webhook.disabled' ORDER BY target_id",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(audited, [day_long, backlogged]);
    // The backlogged message is kept, unsent, for when the endpoint is switched on again.
    let (state, next): (String, String) = sqlx::query_as(
        "SELECT state, next_attempt_at::text FROM webhook_deliveries WHERE endpoint_id = $1",
    )
    .bind(backlogged)
    .fetch_one(&app.db)
    .await
    .expect("message");
    assert_eq!((state.as_str(), next.as_str()), ("pending", "infinity"));
}

/// A new URL starts the failing clock again: the old receiver's day of failures switched the
/// endpoint off at the new receiver's first failed answer (a warming-up 503), and every
/// link change after was lost to it until someone switched it on again.
#[tokio::test]
async fn a_new_url_starts_the_failing_clock_again() {
    let app = app(true, 100_000).await;
    // By name: the deployment's own address (127.0.0.1) is refused as a new URL.
    let by_name = |receiver: &Receiver| receiver.url.replace("127.0.0.1", "localhost");
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    let endpoint = endpoint(&app, &by_name(&old), &new_secret(), &["link.created"]).await;
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '25 hours' WHERE id = $1",
    )
    .bind(endpoint)
    .execute(&app.db)
    .await
    .expect("failing");
    let path = format!("/api/v1/webhooks/{endpoint}");
    for (body, cleared) in [
        (json!({"description": "renamed"}), false),
        (json!({"url": by_name(&old)}), false),
        (json!({"url": by_name(&new)}), true),
    ] {
        let response = app.api(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let failing_since: Option<OffsetDateTime> =
            sqlx::query_scalar("SELECT failing_since FROM webhook_endpoints WHERE id = $1")
                .bind(endpoint)
                .fetch_one(&app.db)
                .await
                .expect("endpoint");
        assert_eq!(failing_since.is_none(), cleared, "{body}");
    }
}

fn click(n: usize, link_id: i64, code: &str) -> ClickEvent {
    ClickEvent {
        id: format!("click-{n:06}"),
        link_id,
        code: ShortCode::parse(code).expect("code"),
        at: OffsetDateTime::now_utc() - time::Duration::seconds(60)
            + time::Duration::milliseconds(n as i64),
        country: Some("DE".to_owned()),
        referrer: Some("https://news.example/item".to_owned()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36".to_owned()),
        qr: false,
        head: false,
        source: ClickSource::Edge,
        visitor: None,
        variant: None,
    }
}

#[tokio::test]
async fn clicks_go_out_in_batches_each_once() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    let secret = new_secret();
    endpoint(&app, &receiver.url, &secret, &["link.clicked"]).await;
    let mut links = Vec::new();
    for code in ["c1", "c2"] {
        let link = app
            .create(json!({"destination": "https://example.com/", "code": code}))
            .await;
        links.push((link["id"].as_i64().expect("id"), code.to_owned()));
    }
    let events: Vec<ClickEvent> = (0..2500)
        .map(|n| {
            let (id, code) = &links[n % 2];
            click(n, *id, code)
        })
        .collect();
    assert_eq!(app.state.store_clicks(&events).await.expect("stored"), 2500);

    // One pass takes them all, in messages of at most 1,000: one batch cycle, not one message.
    assert_eq!(
        app.state.batch_webhook_clicks().await.expect("batched"),
        (3, 2500, 0),
        "(messages, clicks, dropped)"
    );
    let _background = app.state.spawn_background();
    let received = receiver.wait_for("three messages", |r| r.len() >= 3).await;
    let mut ids = Vec::new();
    for message in &received {
        verify(&secret, message);
        let body = message.json();
        assert_eq!(body["type"], "link.clicked");
        let clicks = body["data"]["clicks"].as_array().expect("clicks");
        assert!(clicks.len() <= 1000);
        for click in clicks {
            assert_eq!(click["country"], "DE");
            assert_eq!(click["referrer_host"], "news.example");
            assert!(click["link_id"] == links[0].0 || click["link_id"] == links[1].0);
            ids.push(click["id"].as_str().expect("id").to_owned());
        }
    }
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((total, ids.len()), (2500, 2500), "each click once");
    // Stored again (the edge retried a batch): nothing new to send.
    assert_eq!(app.state.store_clicks(&events).await.expect("stored"), 0);
    assert_eq!(
        app.state.batch_webhook_clicks().await.expect("batched"),
        (0, 0, 0)
    );
}

/// Clicks waiting to be batched, of every workspace.
async fn pending_clicks(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_clicks_pending")
        .fetch_one(&app.db)
        .await
        .expect("pending")
}

/// `endpoint`'s click messages not yet delivered.
async fn unsent_click_messages(app: &TestApp, endpoint: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries
         WHERE endpoint_id = $1 AND event_type = 'link.clicked' AND state = 'pending'",
    )
    .bind(endpoint)
    .fetch_one(&app.db)
    .await
    .expect("deliveries")
}

/// Stores `count` new clicks of `link_id` (code `code`), numbered on from `*n`.
async fn store_burst(app: &TestApp, n: &mut usize, count: usize, link_id: i64, code: &str) {
    let burst: Vec<ClickEvent> = (0..count)
        .map(|_| {
            *n += 1;
            click(*n, link_id, code)
        })
        .collect();
    assert_eq!(
        app.state.store_clicks(&burst).await.expect("stored"),
        count as u64
    );
}

#[tokio::test]
async fn pending_clicks_are_bounded_while_a_receiver_is_down() {
    // A batch takes up to 1,500 clicks; an endpoint holds 2 unsent click messages.
    const CAP: u32 = 1500;
    let app = app(true, CAP).await;
    let endpoint = endpoint(
        &app,
        "https://hooks.example/down",
        &new_secret(),
        &["link.clicked"],
    )
    .await;
    let link = app
        .create(json!({"destination": "https://example.com/", "code": "burst"}))
        .await;
    let link_id = link["id"].as_i64().expect("id");
    // No deliverer: every click message stays pending, as with a receiver down for long.
    let mut n = 0;
    let mut dropped_in_all = 0;
    for round in 0..4 {
        store_burst(&app, &mut n, 1000, link_id, "burst").await;
        let (messages, clicks, dropped) = app.state.batch_webhook_clicks().await.expect("batched");
        dropped_in_all += dropped;
        if round < 2 {
            assert_eq!((messages, clicks, dropped), (1, 1000, 0), "round {round}");
        } else {
            // Its backlog is full: it misses these clicks (taken all the same, not kept).
            assert_eq!(
                (messages, clicks, dropped),
                (0, 1000, 1000),
                "round {round}"
            );
        }
        assert_eq!(pending_clicks(&app).await, 0, "round {round}");
        assert_eq!(
            unsent_click_messages(&app, endpoint).await,
            (round + 1).min(2)
        );
    }
    // A burst past what a batch takes: 1,500 taken (missed by the full endpoint), of the
    // 2,500 left the oldest 1,000 dropped, so no more than the bound waits.
    store_burst(&app, &mut n, 4000, link_id, "burst").await;
    let (messages, clicks, dropped) = app.state.batch_webhook_clicks().await.expect("batched");
    dropped_in_all += dropped;
    assert_eq!((messages, clicks, dropped), (0, 1500, 2500));
    assert_eq!(pending_clicks(&app).await, i64::from(CAP));
    let (messages, clicks, dropped) = app.state.batch_webhook_clicks().await.expect("batched");
    dropped_in_all += dropped;
    assert_eq!((messages, clicks, dropped), (0, 1500, 1500));
    assert_eq!(pending_clicks(&app).await, 0);
    assert_eq!(unsent_click_messages(&app, endpoint).await, 2);
    assert_eq!(
        dropped_in_all,
        8000 - 2000,
        "every click but the 2 messages' ones"
    );
}

#[tokio::test]
async fn a_dead_endpoint_does_not_stop_the_clicks_of_a_healthy_one() {
    // An endpoint holds 1 unsent click message.
    let app = app(true, 1000).await;
    let dead = endpoint(
        &app,
        "https://hooks.example/dead",
        &new_secret(),
        &["link.clicked"],
    )
    .await;
    let healthy = endpoint(
        &app,
        "https://hooks.example/fine",
        &new_secret(),
        &["link.clicked"],
    )
    .await;
    let link = app
        .create(json!({"destination": "https://example.com/", "code": "both"}))
        .await;
    let link_id = link["id"].as_i64().expect("id");
    let mut n = 0;
    for round in 0..3 {
        store_burst(&app, &mut n, 1000, link_id, "both").await;
        let done = app.state.batch_webhook_clicks().await.expect("batched");
        if round == 0 {
            assert_eq!(done, (2, 1000, 0), "both get the first");
        } else {
            assert_eq!(done, (1, 1000, 1000), "round {round}: the healthy one only");
        }
        // The healthy receiver answers 2xx to all it got; the dead one to nothing.
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'delivered', delivered_at = now()
             WHERE endpoint_id = $1",
        )
        .bind(healthy)
        .execute(&app.db)
        .await
        .expect("delivered");
        assert_eq!(unsent_click_messages(&app, dead).await, 1);
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT c->>'id' FROM webhook_deliveries d,
                jsonb_array_elements(d.payload->'data'->'clicks') c
         WHERE d.endpoint_id = $1 ORDER BY 1",
    )
    .bind(healthy)
    .fetch_all(&app.db)
    .await
    .expect("clicks");
    let expected: Vec<String> = (1..=3000).map(|n| format!("click-{n:06}")).collect();
    assert_eq!(ids, expected, "the healthy endpoint got every click, once");
}

#[tokio::test]
async fn a_bulk_create_writes_webhook_messages_only_for_an_endpoint_that_wants_them() {
    let app = app(true, 100_000).await;
    let messages = || async {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
            .fetch_one(&app.db)
            .await
            .expect("count");
        count
    };
    let bulk = |prefix: &'static str| {
        let links: Vec<Value> = (0..3)
            .map(|i| json!({"destination": "https://example.com/", "code": format!("{prefix}{i}")}))
            .collect();
        let app = &app;
        async move {
            let response = app
                .api(
                    Method::POST,
                    "/api/v1/links/bulk",
                    Some(json!({"links": links})),
                )
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
            assert_eq!(response.json()["created"], 3);
        }
    };
    // No endpoint; one for other events; one switched off: no message.
    bulk("none").await;
    assert_eq!(messages().await, 0);
    endpoint(
        &app,
        "https://hooks.example/a",
        &new_secret(),
        &["link.deleted", "link.clicked"],
    )
    .await;
    let off = endpoint(
        &app,
        "https://hooks.example/b",
        &new_secret(),
        &["link.created"],
    )
    .await;
    sqlx::query("UPDATE webhook_endpoints SET enabled = false WHERE id = $1")
        .bind(off)
        .execute(&app.db)
        .await
        .expect("off");
    bulk("other").await;
    assert_eq!(messages().await, 0);
    // An endpoint made just now gets the next change's messages: no cache in the way.
    let on = endpoint(
        &app,
        "https://hooks.example/c",
        &new_secret(),
        &["link.created"],
    )
    .await;
    bulk("some").await;
    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT payload->'data'->>'code' FROM webhook_deliveries WHERE endpoint_id = $1
         ORDER BY id",
    )
    .bind(on)
    .fetch_all(&app.db)
    .await
    .expect("messages");
    assert_eq!(codes, ["some0", "some1", "some2"]);
    assert_eq!(messages().await, 3);
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let app = app(false, 100_000).await;
    let receiver = Receiver::start().await;
    let port = receiver.url.split(':').nth(2).expect("port").to_owned();
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let mapped = format!("http://[::ffff:127.0.0.1]:{port}");
    for url in [&receiver.url, &by_name, &mapped] {
        endpoint(&app, url, &new_secret(), &["link.created"]).await;
    }
    let _background = app.state.spawn_background();
    app.create(json!({"destination": "https://example.com/ssrf"}))
        .await;
    wait_db::<i64>(
        &app,
        "three refused attempts",
        "SELECT count(*) FROM webhook_attempts",
        |n| *n >= 3,
    )
    .await;
    let errors: Vec<(Option<i16>, Option<String>)> =
        sqlx::query_as("SELECT status, error FROM webhook_attempts ORDER BY delivery_id")
            .fetch_all(&app.db)
            .await
            .expect("attempts");
    for (status, error) in &errors {
        assert_eq!(*status, None);
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("public address")),
            "{error:?}"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn a_used_up_link_and_a_blocked_one_are_announced() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    let secret = new_secret();
    endpoint(
        &app,
        &receiver.url,
        &secret,
        &["link.updated", "link.limit_reached"],
    )
    .await;
    let _background = app.state.spawn_background();

    // The edge's clicks use up a limited link (added when they are stored).
    let limited = app
        .create(json!({"destination": "https://example.com/", "code": "twice", "max_clicks": 2}))
        .await;
    let id = limited["id"].as_i64().expect("id");
    let clicks = [click(1, id, "twice"), click(2, id, "twice")];
    assert_eq!(app.state.store_clicks(&clicks).await.expect("stored"), 2);
    let received = receiver
        .wait_for("link.limit_reached", |r| !r.is_empty())
        .await;
    let body = received[0].json();
    assert_eq!(body["type"], "link.limit_reached");
    assert_eq!(body["data"]["code"], "twice");
    assert_eq!(body["data"]["clicks_used"], 2);
    verify(&secret, &received[0]);

    // The blocklist disables a link as a PATCH would: link.updated.
    app.create(json!({"destination": "https://evil.example/", "code": "victim"}))
        .await;
    let blocked = app
        .api(
            Method::POST,
            "/api/v1/abuse/blocklist",
            Some(json!({"rule": "evil.example", "reason": "phishing campaign"})),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::CREATED, "{}", blocked.text());
    let received = receiver.wait_for("link.updated", |r| r.len() >= 2).await;
    let body = received[1].json();
    assert_eq!(body["type"], "link.updated");
    assert_eq!(body["data"]["code"], "victim");
    assert_eq!(body["data"]["disabled"], true);
    assert_eq!(received.len(), 2, "nothing else was subscribed to");
}

#[tokio::test]
async fn delivered_and_failed_messages_are_deleted_after_30_days() {
    let app = app(true, 100_000).await;
    let endpoint = endpoint(
        &app,
        "http://127.0.0.1:9/hook",
        &new_secret(),
        &["link.created"],
    )
    .await;
    for (name, state, days) in [
        ("old-delivered", "delivered", 31),
        ("old-failed", "failed", 31),
        ("old-pending", "pending", 31),
        ("new-delivered", "delivered", 29),
    ] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload, state,
                                             created_at, next_attempt_at)
             VALUES ($1, $2, 'link.created', '{}', $3, now() - make_interval(days => $4),
                     now() + interval '1 hour')
             RETURNING id",
        )
        .bind(format!("msg_{name}"))
        .bind(endpoint)
        .bind(state)
        .bind(days)
        .fetch_one(&app.db)
        .await
        .expect("delivery");
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, duration_ms) VALUES ($1, 1, 5)",
        )
        .bind(id)
        .execute(&app.db)
        .await
        .expect("attempt");
    }
    let deleted = app
        .state
        .delete_old_webhook_deliveries(OffsetDateTime::now_utc())
        .await
        .expect("retention");
    assert_eq!(deleted, 2);
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM webhook_deliveries ORDER BY id")
            .fetch_all(&app.db)
            .await
            .expect("kept");
    // A pending message is kept whatever its age (its endpoint may be switched off).
    assert_eq!(kept, ["msg_old-pending", "msg_new-delivered"]);
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_attempts")
        .fetch_one(&app.db)
        .await
        .expect("attempts");
    assert_eq!(attempts, 2, "with their attempts");
}

#[tokio::test]
async fn a_hanging_receiver_does_not_hold_up_the_others() {
    let mut config = config(&new_database().await);
    // Far longer than the test may take: the hanging receiver never frees its sends.
    config.webhooks.timeout_ms = 60_000;
    let app = app_with(&config).await;
    let hanging = Receiver::start().await;
    hanging.set(Mode::Hang);
    let healthy = Receiver::start().await;
    let stuck = endpoint(&app, &hanging.url, &new_secret(), &["link.created"]).await;
    let fine = endpoint(&app, &healthy.url, &new_secret(), &["link.created"]).await;
    // The hanging receiver's 20 messages come first in line.
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload,
                                         next_attempt_at)
         SELECT 'msg_stuck' || g, $1, 'link.created', '{}', now() - interval '1 minute'
         FROM generate_series(1, 20) g",
    )
    .bind(stuck)
    .execute(&app.db)
    .await
    .expect("messages");
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload)
         VALUES ('msg_fine', $1, 'link.created', '{}')",
    )
    .bind(fine)
    .execute(&app.db)
    .await
    .expect("message");
    let _background = app.state.spawn_background();

    healthy.wait_for("its message", |r| !r.is_empty()).await;
    let held = hanging.received().len();
    assert!(held <= 4, "{held} sends held by the hanging receiver");
}

/// Every workspace's first due message goes before any workspace's second, and one
/// workspace takes at most half of the sends while another has messages due: another
/// workspace's message, due after all of the first one's, is still sent. Before, 5 such
/// endpoints (4 sends each) held all 16 sends until their timeouts, and the others waited.
/// (Once the other's message is sent, the first may take every send: how many it holds when
/// the test looks is not a measure of the cap.)
#[tokio::test]
async fn a_workspace_of_hanging_receivers_does_not_hold_up_another_workspace() {
    let (app, _hanging) = hanging_workspace().await;
    let healthy = Receiver::start().await;
    let other = app.workspace("Other").await;
    let fine: i64 = sqlx::query_scalar(
        "INSERT INTO webhook_endpoints (workspace_id, url, events, secret)
         VALUES ($1, $2, '{link.created}', $3) RETURNING id",
    )
    .bind(other)
    .bind(&healthy.url)
    .bind(new_secret())
    .fetch_one(&app.db)
    .await
    .expect("endpoint");
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload)
         VALUES ('msg_fine', $1, 'link.created', '{}')",
    )
    .bind(fine)
    .execute(&app.db)
    .await
    .expect("message");
    let _background = app.state.spawn_background();

    healthy.wait_for("its message", |r| !r.is_empty()).await;
}

/// Alone, a workspace takes every send of the origin: the cap of half is for workspaces
/// sharing them. (A deployment of one workspace kept half its concurrency idle.)
#[tokio::test]
async fn a_workspace_alone_takes_every_send() {
    let (app, hanging) = hanging_workspace().await;
    let _background = app.state.spawn_background();
    hanging.wait_for("every send", |r| r.len() >= 16).await;
}

/// An origin of 16 sends whose workspace has 5 endpoints at a receiver that hangs (for
/// longer than a test takes), each with 20 messages due a minute ago: 100 sends that hold
/// their place.
async fn hanging_workspace() -> (TestApp, Receiver) {
    let mut config = config(&new_database().await);
    config.webhooks.timeout_ms = 60_000;
    config.webhooks.concurrency = 16;
    let app = app_with(&config).await;
    let hanging = Receiver::start().await;
    hanging.set(Mode::Hang);
    for _ in 0..5 {
        let stuck = endpoint(&app, &hanging.url, &new_secret(), &["link.created"]).await;
        sqlx::query(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload,
                                             next_attempt_at)
             SELECT 'msg_stuck_' || $1 || '_' || g, $1, 'link.created', '{}',
                    now() - interval '1 minute'
             FROM generate_series(1, 20) g",
        )
        .bind(stuck)
        .execute(&app.db)
        .await
        .expect("messages");
    }
    (app, hanging)
}

/// Inserts `per_link` messages about each of `links` links (link ids 1..=links) for
/// `endpoint`, in order: `{"data": {"link": l, "n": n}}`.
async fn queue(app: &TestApp, endpoint: i64, links: i64, per_link: i64) {
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, link_id, payload)
         SELECT 'msg_' || md5(random()::text) || n || '_' || l, $1, 'link.updated', l,
                jsonb_build_object('data', jsonb_build_object('link', l, 'n', n))
         FROM generate_series(1, $3) n, generate_series(1, $2) l
         ORDER BY n, l",
    )
    .bind(endpoint)
    .bind(links)
    .bind(per_link)
    .execute(&app.db)
    .await
    .expect("messages");
}

#[tokio::test]
async fn two_deliverers_on_one_database_send_each_message_once_in_order_per_link() {
    let mut config = config(&new_database().await);
    config.webhooks.timeout_ms = 5_000;
    let first = app_with(&config).await;
    let second = app_with(&config).await;
    let receiver = Receiver::start().await;
    let secret = new_secret();
    let endpoint = endpoint(&first, &receiver.url, &secret, &["link.updated"]).await;
    let (links, per_link) = (8, 25);
    queue(&first, endpoint, links, per_link).await;
    let _first = first.state.spawn_background();
    let _second = second.state.spawn_background();

    let total = usize::try_from(links * per_link).expect("small");
    receiver
        .wait_for("every message", |r| r.len() >= total)
        .await;
    wait_db::<i64>(
        &first,
        "all recorded",
        "SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'",
        |n| *n == 0,
    )
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), total, "each message once");
    let mut ids: Vec<&str> = received.iter().map(Received::id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "no id twice");
    for link in 1..=links {
        let order: Vec<i64> = received
            .iter()
            .map(Received::json)
            .filter(|body| body["data"]["link"] == link)
            .map(|body| body["data"]["n"].as_i64().expect("n"))
            .collect();
        assert_eq!(
            order,
            (1..=per_link).collect::<Vec<_>>(),
            "link {link} in order"
        );
    }
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_attempts")
        .fetch_one(&first.db)
        .await
        .expect("attempts");
    assert_eq!(attempts, links * per_link, "one attempt each");
}

#[tokio::test]
async fn a_delivery_being_sent_is_not_redelivered() {
    let mut config = config(&new_database().await);
    // Far longer than the test: the send stays under way.
    config.webhooks.timeout_ms = 60_000;
    let app = app_with(&config).await;
    let hanging = Receiver::start().await;
    hanging.set(Mode::Hang);
    let endpoint = endpoint(&app, &hanging.url, &new_secret(), &["link.updated"]).await;
    queue(&app, endpoint, 1, 1).await;
    let _background = app.state.spawn_background();
    hanging.wait_for("the send", |r| !r.is_empty()).await;
    let delivery: i64 = sqlx::query_scalar("SELECT id FROM webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .expect("delivery");

    let path = format!("/api/v1/webhooks/{endpoint}/deliveries/{delivery}/redeliver");
    let refused = app.api(Method::POST, &path, None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    assert_eq!(refused.error(StatusCode::CONFLICT).0, "delivery_in_flight");
    // Still leased by the send under way, and sent once.
    let leased: bool =
        sqlx::query_scalar("SELECT locked_until > now() FROM webhook_deliveries WHERE id = $1")
            .bind(delivery)
            .fetch_one(&app.db)
            .await
            .expect("lease");
    assert!(leased);
    assert_eq!(hanging.received().len(), 1);
}

#[tokio::test]
async fn an_older_message_is_not_redelivered_while_a_newer_one_of_its_link_is_pending() {
    let app = app(true, 100_000).await;
    let endpoint = endpoint(
        &app,
        "http://127.0.0.1:9/hook",
        &new_secret(),
        &["link.updated"],
    )
    .await;
    queue(&app, endpoint, 1, 2).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM webhook_deliveries ORDER BY id")
        .fetch_all(&app.db)
        .await
        .expect("ids");
    // The first delivered, the second waiting for a retry.
    sqlx::query("UPDATE webhook_deliveries SET state = 'delivered', attempts = 1 WHERE id = $1")
        .bind(ids[0])
        .execute(&app.db)
        .await
        .expect("delivered");
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = 1, next_attempt_at = now() + interval '1 hour'
         WHERE id = $1",
    )
    .bind(ids[1])
    .execute(&app.db)
    .await
    .expect("waiting");
    let redeliver = |id: i64| format!("/api/v1/webhooks/{endpoint}/deliveries/{id}/redeliver");
    let refused = app.api(Method::POST, &redeliver(ids[0]), None).await;
    assert_eq!(
        refused.error(StatusCode::CONFLICT).0,
        "newer_delivery_pending"
    );
    // The newer one itself may be tried now; and once it has gone, the older one too.
    let newer = app.api(Method::POST, &redeliver(ids[1]), None).await;
    assert_eq!(newer.status, StatusCode::ACCEPTED, "{}", newer.text());
    sqlx::query("UPDATE webhook_deliveries SET state = 'failed' WHERE id = $1")
        .bind(ids[1])
        .execute(&app.db)
        .await
        .expect("failed");
    let older = app.api(Method::POST, &redeliver(ids[0]), None).await;
    assert_eq!(older.status, StatusCode::ACCEPTED, "{}", older.text());
}

#[tokio::test]
async fn a_message_written_behind_one_waiting_for_its_retry_is_not_due_before_it() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Fail);
    endpoint(
        &app,
        &receiver.url,
        &new_secret(),
        &["link.created", "link.updated"],
    )
    .await;
    let _background = app.state.spawn_background();
    app.create(json!({"destination": "https://example.com/1", "code": "behind"}))
        .await;
    let logged = "SELECT count(*) FROM webhook_attempts WHERE status = 500";
    wait_db::<i64>(&app, "the create's failure", logged, |n| *n >= 1).await;
    // Written after the failure: due no sooner than the create's retry.
    let patched = app
        .api(
            Method::PATCH,
            "/api/v1/links/behind",
            Some(json!({"destination": "https://example.com/2"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    let (created_due, updated_due): (OffsetDateTime, OffsetDateTime) = sqlx::query_as(
        "SELECT c.next_attempt_at, u.next_attempt_at
         FROM webhook_deliveries c, webhook_deliveries u
         WHERE c.event_type = 'link.created' AND u.event_type = 'link.updated'",
    )
    .fetch_one(&app.db)
    .await
    .expect("both messages");
    assert!(
        updated_due >= created_due,
        "the update is due at {updated_due}, before the create's retry at {created_due}"
    );
}

#[tokio::test]
async fn a_failed_attempt_holds_back_its_links_later_messages_and_switching_off_parks_them() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Fail);
    let endpoint = endpoint(&app, &receiver.url, &new_secret(), &["link.updated"]).await;
    queue(&app, endpoint, 1, 3).await;
    let _background = app.state.spawn_background();

    // The first fails; the later two wait for its retry, not due before it.
    wait_db::<i64>(
        &app,
        "a failure",
        "SELECT count(*) FROM webhook_attempts",
        |n| *n >= 1,
    )
    .await;
    let before_retry: i64 = wait_db(
        &app,
        "the later ones pushed back",
        "SELECT count(*) FROM webhook_deliveries later, webhook_deliveries first
         WHERE first.id = (SELECT min(id) FROM webhook_deliveries) AND later.id > first.id
           AND later.next_attempt_at >= first.next_attempt_at",
        |n| *n == 2,
    )
    .await;
    assert_eq!(before_retry, 2);

    // Switched off by a person: every pending message parked.
    let path = format!("/api/v1/webhooks/{endpoint}");
    let off = app
        .api(Method::PATCH, &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text());
    let parked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries
         WHERE state = 'pending' AND next_attempt_at = 'infinity'",
    )
    .fetch_one(&app.db)
    .await
    .expect("parked");
    assert_eq!(parked, 3);

    // Switched on: all due at once (not parked for ever), and sent in order.
    receiver.set(Mode::Ok);
    let on = app
        .api(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text());
    receiver
        .wait_for("all three accepted", |r| {
            r.iter().filter(|r| r.answered == Mode::Ok).count() >= 3
        })
        .await;
    let order: Vec<Value> = receiver
        .accepted()
        .iter()
        .map(|r| r.json()["data"]["n"].clone())
        .collect();
    assert_eq!(order, [1, 2, 3].map(Value::from));

    // A message waiting hours for its retry goes at once to a new URL.
    let moved = Receiver::start().await;
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, link_id, payload,
                                         attempts, next_attempt_at)
         VALUES ('msg_waiting', $1, 'link.updated', 2, '{}', 6, now() + interval '10 hours')",
    )
    .bind(endpoint)
    .execute(&app.db)
    .await
    .expect("waiting");
    let changed = app
        // By name: the origin's own address (127.0.0.1) is refused as a receiver.
        .api(
            Method::PATCH,
            &path,
            Some(json!({"url": moved.url.replace("127.0.0.1", "localhost")})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    moved
        .wait_for("the waiting message", |r| !r.is_empty())
        .await;
}

#[tokio::test]
async fn kurz_switching_an_endpoint_off_parks_its_messages() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Gone);
    let endpoint = endpoint(&app, &receiver.url, &new_secret(), &["link.updated"]).await;
    queue(&app, endpoint, 2, 2).await;
    let _background = app.state.spawn_background();
    wait_db::<bool>(
        &app,
        "switched off",
        "SELECT NOT enabled FROM webhook_endpoints",
        |off| *off,
    )
    .await;
    let parked: Vec<bool> = sqlx::query_scalar(
        "SELECT next_attempt_at = 'infinity' FROM webhook_deliveries WHERE state = 'pending'",
    )
    .fetch_all(&app.db)
    .await
    .expect("pending");
    assert!(
        !parked.is_empty() && parked.iter().all(|p| *p),
        "{parked:?}"
    );
}

#[tokio::test]
async fn the_per_endpoint_cap_is_applied_by_the_claim() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut config = config(&new_database().await);
    config.webhooks.concurrency = 16;
    let app = app_with(&config).await;
    // Every claim (a lease taken) and every release (a lease given back unsent) counted.
    sqlx::raw_sql(
        "CREATE TABLE lease_log (kind TEXT NOT NULL);
         CREATE FUNCTION log_lease() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.locked_until IS NOT NULL
                AND NEW.locked_until IS DISTINCT FROM OLD.locked_until THEN
                 INSERT INTO lease_log VALUES ('claim');
             ELSIF OLD.locked_until IS NOT NULL AND NEW.locked_until IS NULL
                AND NEW.attempts = OLD.attempts THEN
                 INSERT INTO lease_log VALUES ('release');
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER log_lease AFTER UPDATE ON webhook_deliveries
             FOR EACH ROW EXECUTE FUNCTION log_lease();",
    )
    .execute(&app.db)
    .await
    .expect("trigger");
    // A receiver that takes a while and counts the requests under way at once.
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let slow = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (now, most) = (n.clone(), m.clone());
            async move {
                let under_way = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(under_way, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, slow).await });
    let busy = endpoint(&app, &url, &new_secret(), &["link.created"]).await;
    // 40 messages of no link: nothing but the cap holds them back.
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload)
         SELECT 'msg_cap' || g, $1, 'link.created', '{}' FROM generate_series(1, 40) g",
    )
    .bind(busy)
    .execute(&app.db)
    .await
    .expect("messages");
    let _background = app.state.spawn_background();

    wait_db::<i64>(
        &app,
        "all delivered",
        "SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'",
        |n| *n == 40,
    )
    .await;
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&most),
        "{most} sends at once to one endpoint"
    );
    let leases: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, count(*) FROM lease_log GROUP BY kind ORDER BY kind")
            .fetch_all(&app.db)
            .await
            .expect("leases");
    assert_eq!(
        leases,
        [("claim".to_owned(), 40)],
        "each message claimed once, none given back"
    );
}

/// A bulk import's backlog (20,000 `link.created`, all due) drains at a cost per message, not
/// per backlog: ranking every due message at each claim read all of them about once for every
/// four sent. Nor per endpoint: 2,000 with nothing to send are not looked into at each claim.
#[tokio::test]
async fn a_claim_reads_about_what_it_claims_not_the_whole_backlog() {
    const BACKLOG: i64 = 20_000;
    const SENT: usize = 200;
    let database_url = new_database().await;
    let mut config = config(&database_url);
    config.webhooks.concurrency = 16;
    let app = app_with(&config).await;
    let (busy, quiet) = (Receiver::start().await, Receiver::start().await);
    let bulk = endpoint(&app, &busy.url, &new_secret(), &["link.created"]).await;
    let other = endpoint(&app, &quiet.url, &new_secret(), &["link.created"]).await;
    sqlx::query(
        "INSERT INTO webhook_endpoints (workspace_id, url, events, secret)
         SELECT $1, 'https://idle-' || g || '.example/hook', ARRAY['link.created'], 'whsec_idle'
         FROM generate_series(1, 2000) g",
    )
    .bind(WORKSPACE)
    .execute(&app.db)
    .await
    .expect("idle endpoints");
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, link_id, payload)
         SELECT 'msg_bulk' || g, $1, 'link.created', g, '{}' FROM generate_series(1, $2) g",
    )
    .bind(bulk)
    .bind(BACKLOG)
    .execute(&app.db)
    .await
    .expect("backlog");
    // Behind the whole backlog: not held up by it.
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, link_id, payload)
         VALUES ('msg_quiet', $1, 'link.created', 1, '{}')",
    )
    .bind(other)
    .execute(&app.db)
    .await
    .expect("quiet message");
    let background = app.state.spawn_background();

    quiet.wait_for("its message", |r| !r.is_empty()).await;
    busy.wait_for("the first sends", |r| r.len() >= SENT).await;
    for task in &background {
        task.abort();
    }
    let mut conn = crate::support::end_other_backends(&database_url).await;
    let (scanned, fetched, probes): (i64, i64, i64) = sqlx::query_as(
        "SELECT seq_tup_read, coalesce(idx_tup_fetch, 0), coalesce(idx_scan, 0)
         FROM pg_stat_user_tables WHERE relname = 'webhook_deliveries'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("reads");
    let sent = i64::try_from(busy.received().len()).expect("a few hundred") + 1;
    // A message's own reads: the claim's (and the few leased rows ahead of it), the lock,
    // the lease, the settle; the ranking read every due message at each claim.
    assert!(
        scanned + fetched <= 30 * sent,
        "{scanned} rows scanned and {fetched} fetched for {sent} messages of {BACKLOG}"
    );
    // A claim's probes: the endpoints with messages, their first due ones, the order within
    // each link; looking into every endpoint made 2,000 a claim.
    assert!(
        probes <= 60 * sent,
        "{probes} index scans for {sent} messages"
    );
}

#[tokio::test]
async fn a_blocked_link_that_cannot_be_shown_is_disabled_without_its_webhook() {
    let app = app(true, 100_000).await;
    let receiver = Receiver::start().await;
    endpoint(&app, &receiver.url, &new_secret(), &["link.updated"]).await;
    app.create(json!({"destination": "https://phish.example/", "code": "phished"}))
        .await;
    // Written around the API: a tag no request could set, so the link cannot be shown.
    sqlx::query("UPDATE links SET tags = ARRAY['Not A Tag!'] WHERE code = 'phished'")
        .execute(&app.db)
        .await
        .expect("bad tag");
    let blocked = app
        .api(
            Method::POST,
            "/api/v1/abuse/blocklist",
            Some(json!({"rule": "phish.example", "reason": "phishing"})),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::CREATED, "{}", blocked.text());
    let disabled: bool = sqlx::query_scalar("SELECT disabled FROM links WHERE code = 'phished'")
        .fetch_one(&app.db)
        .await
        .expect("link");
    assert!(
        disabled,
        "blocked even though its webhook could not be made"
    );
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .expect("messages");
    assert_eq!(messages, 0);
}

/// Waits until the app's writing of a webhook message waits for a lock another transaction
/// holds.
async fn a_message_waits_for_a_lock(app: &TestApp) {
    wait_db::<i64>(
        app,
        "a message waiting for a lock",
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'
           AND ltrim(query) LIKE 'INSERT INTO webhook_deliveries%'",
        |waiting| *waiting > 0,
    )
    .await;
}

/// Deletes `endpoint` in a transaction that commits once a message's insert waits for it,
/// while `change` runs; `change`'s result.
async fn while_deleting<T>(
    app: &TestApp,
    endpoint: i64,
    change: impl std::future::Future<Output = T>,
) -> T {
    let mut deleting = app.db.begin().await.expect("begin");
    sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
        .bind(endpoint)
        .execute(&mut *deleting)
        .await
        .expect("delete the endpoint");
    let commit = async {
        a_message_waits_for_a_lock(app).await;
        deleting.commit().await.expect("commit");
    };
    let (result, ()) = tokio::join!(change, commit);
    result
}

/// An endpoint deleted while a message for it is written: the change that wrote it goes
/// through, with messages for the other endpoints only.
/// (Found by schemathesis: the message's INSERT saw the endpoint, its foreign-key check then
/// found it gone, and the link's delete failed with a 500.)
#[tokio::test]
async fn an_endpoint_deleted_while_a_message_for_it_is_written_fails_nothing() {
    let app = app(true, 100_000).await;
    let events = ["link.created", "link.deleted"];
    let kept = endpoint(&app, "https://hooks.example/kept", &new_secret(), &events).await;
    let going = endpoint(&app, "https://hooks.example/going", &new_secret(), &events).await;
    let created = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/", "code": "race"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());

    let deleted = while_deleting(
        &app,
        going,
        app.api(Method::DELETE, "/api/v1/links/race", None),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    let to: Vec<i64> = sqlx::query_scalar(
        "SELECT endpoint_id FROM webhook_deliveries WHERE event_type = 'link.deleted'",
    )
    .fetch_all(&app.db)
    .await
    .expect("messages");
    assert_eq!(to, [kept]);
}
