//! The test harness: an app on its own database, and requests without a socket.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use origin::config::{Config, DatabaseConfig, Gateway, LogFormat, SignInLimits};
use serde_json::Value;
use shortlink::CodeScrambler;
use sqlx::{Connection, PgConnection, PgPool};
use tower::ServiceExt;

pub const CODE_KEY: &str = "000102030405060708090a0b0c0d0e0f";
pub const PUBLIC_URL: &str = "https://kurz.test";
/// The edge secret of apps made by [`spawn_app_with_edge`].
pub const EDGE_SECRET: &str = "edge-secret-of-the-integration-tests-0123456789";

pub struct TestApp {
    pub state: origin::State,
    pub router: Router,
    pub db: PgPool,
    pub api_key: String,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &header::HeaderName) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("ASCII header")
    }

    /// Asserts the API's error shape and returns (code, field).
    pub fn error(&self, status: StatusCode) -> (String, Option<String>) {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        let error = &body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message in {body}"
        );
        (
            error["code"].as_str().expect("error code").to_owned(),
            error["field"].as_str().map(str::to_owned),
        )
    }
}

/// The admin URL of the test cluster that `cargo xtask test` starts.
fn admin_url() -> String {
    std::env::var("KURZ_TEST_DATABASE_URL").expect(
        "KURZ_TEST_DATABASE_URL is not set: run the tests with `cargo xtask test`, \
         or point it at a PostgreSQL server where databases may be created",
    )
}

/// An app on a new, migrated database of the shared test cluster.
pub async fn spawn_app() -> TestApp {
    let database_url = new_database().await;
    app_on(&database_url).await
}

/// An app for a test's burst of parallel requests: a connection for each (up to 60), so that
/// none waits past the pool's 2 s for one while the others queue on a row lock.
pub async fn spawn_app_for_a_burst() -> TestApp {
    let mut config = config(&new_database().await);
    config.database.db_max_connections = 60;
    app_with(&config).await
}

/// An app whose `/_edge/*` routes are on, signed with [`EDGE_SECRET`] (no edge to sync to).
pub async fn spawn_app_with_edge() -> TestApp {
    let database_url = new_database().await;
    let mut config = config(&database_url);
    config.edge_secret = Some(EDGE_SECRET.to_owned());
    app_with(&config).await
}

/// How many statements on this test's database wait on a lock, of those whose text is
/// `LIKE like` (`"%"`: any).
pub async fn lock_waiters(db: &PgPool, like: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1",
    )
    .bind(like)
    .fetch_one(db)
    .await
    .expect("pg_stat_activity")
}

/// Ends every other connection to the database at `url` (the app's) and waits until they are
/// gone; a connection of its own. A backend reports what it read (`pg_stat_user_tables`) when
/// it ends: read the counts on the connection returned.
pub async fn end_other_backends(url: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let others = "FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    sqlx::query(&format!("SELECT pg_terminate_backend(pid) {others}"))
        .execute(&mut conn)
        .await
        .expect("end the app's connections");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) {others}"))
        .fetch_one(&mut conn)
        .await
        .expect("backends")
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the app's connections did not end"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    conn
}

/// Two exports of `path` (GET, the app's key) begun and left unread hold the workspace's two
/// places (a third: 503 `busy`) only until their task gives up on them: with the wait shortened
/// to 5 s (long enough for the third to be refused first on a loaded machine), two fresh ones
/// are soon taken at once. The first stalled answer, read late, ends in an error, not cleanly.
/// The export must be longer than a piece (64 KiB).
pub async fn stalled_exports_give_their_places_up(app: &TestApp, path: &str) {
    app.state
        .set_export_stall(std::time::Duration::from_secs(5));
    let start = || {
        let request = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", app.api_key))
            .body(Body::empty())
            .expect("request");
        app.router.clone().oneshot(request)
    };
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let response = start().await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        stalled.push(response);
    }
    let refused = app.api(Method::GET, path, None).await;
    assert_eq!(refused.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        // Held together: both places free at once.
        let mut fresh = Vec::new();
        for _ in 0..2 {
            fresh.push(start().await.expect("infallible"));
        }
        let statuses: Vec<StatusCode> =
            fresh.iter().map(axum::response::Response::status).collect();
        if statuses.iter().all(|status| *status == StatusCode::OK) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path}: stalled exports kept their places: {statuses:?}"
        );
        drop(fresh);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The fresh ones dropped: their places free once their tasks run.
    tokio::task::yield_now().await;
    app.state
        .set_export_stall(std::time::Duration::from_secs(30));
    let late = stalled
        .pop()
        .expect("an answer")
        .into_body()
        .collect()
        .await;
    assert!(
        late.is_err(),
        "{path}: a stalled export read to a clean end"
    );
}

/// Sends the request `make` gives to `router` until it is not refused busy (503), in a task:
/// a request whose body is still on its way holds its place (of `places.rs`) once in. Its
/// answer, once it has one.
pub fn send_until_admitted(
    router: &Router,
    make: impl Fn() -> Request<Body> + Send + 'static,
) -> tokio::task::JoinHandle<(StatusCode, Bytes)> {
    let router = router.clone();
    tokio::spawn(async move {
        loop {
            let response = router.clone().oneshot(make()).await.expect("infallible");
            if response.status() != StatusCode::SERVICE_UNAVAILABLE {
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                return (status, body);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
}

/// A new, empty database on the test cluster; its URL.
pub async fn new_database() -> String {
    let admin = admin_url();
    let name = format!("test_{}", random_hex());
    let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|err| {
        panic!(
            "connect to the test cluster at {admin}: {err} (a server that stopped mid-run: \
                 `cargo xtask test` prints the end of its log after the failed step)"
        )
    });
    drop_old_databases(&mut conn).await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    conn.close().await.ok();
    let (base, _) = admin.rsplit_once('/').expect("URL with a database");
    format!("{base}/{name}")
}

/// Drops, once per test process, the databases [`new_database`] made over an hour ago (no test
/// runs that long), so that a server named by `KURZ_TEST_DATABASE_URL` does not fill its disk
/// run after run (`cargo xtask test` throws its own cluster away). Only names of this harness's
/// pattern are touched; one still in use is left for a later sweep. Reading a database's age
/// (`pg_stat_file`) needs a superuser, as the test cluster's `postgres` is: without one, no
/// sweep.
async fn drop_old_databases(conn: &mut PgConnection) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(old) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database \
         WHERE datname ~ '^test_[0-9a-f]{16}$' \
           AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification \
               < now() - interval '1 hour'",
    )
    .fetch_all(&mut *conn)
    .await
    else {
        return;
    };
    for name in old {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut *conn)
            .await;
    }
}

pub fn config(database_url: &str) -> Config {
    Config {
        database: DatabaseConfig {
            database_url: database_url.to_owned(),
            db_max_connections: 4,
        },
        database_read_url: None,
        replica_max_lag_secs: 10,
        bind: "127.0.0.1:0".parse().expect("address"),
        public_url: PUBLIC_URL.parse().expect("public URL"),
        code_key: CODE_KEY.parse().expect("code key"),
        cache_mib: 64,
        cache_ttl_secs: 300,
        negative_cache_ttl_secs: 300,
        edge_url: None,
        edge_secret: None,
        click_retention_days: 400,
        audit_retention_days: 400,
        record_clicks: true,
        click_queue: 50_000,
        client_ip_header: None,
        trusted_proxies: 1,
        own_hosts: Vec::new(),
        admin_password: None,
        // Inside `target/`, which Cargo gives integration tests for their files: the first
        // start's secrets do not pile up in the machine's temporary folder.
        first_start_file: std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("kurz-first-start-{}.txt", random_hex())),
        admin_dir: None,
        log_format: LogFormat::Text,
        shutdown_grace_secs: 10,
        sign_in: SignInLimits::default(),
        gateway: Gateway::default(),
        // Tests that make many calls must not meet the deployment's budgets;
        // `rate_limits.rs` tests the defaults and sets its own.
        rate_limits: origin::config::RateLimits {
            api_per_min: 1_000_000,
            create_per_min: 1_000_000,
            stats_per_min: 1_000_000,
            ..origin::config::RateLimits::DEFAULT
        },
        metrics: origin::config::MetricsConfig::default(),
        // The tests' receivers listen on 127.0.0.1.
        webhooks: origin::config::WebhookConfig {
            allow_private: true,
            ..origin::config::WebhookConfig::DEFAULT
        },
    }
}

/// An app on `database_url`, migrated, with an API key.
pub async fn app_on(database_url: &str) -> TestApp {
    app_with(&config(database_url)).await
}

pub async fn app_with(config: &Config) -> TestApp {
    let state = origin::State::new(config).expect("state");
    state.migrate().await.expect("migrations");
    let api_key = origin::auth::create_default_key(state.db(), "tests")
        .await
        .expect("API key");
    TestApp {
        db: state.db().clone(),
        router: origin::app(state.clone()),
        state,
        api_key,
    }
}

pub fn scrambler() -> CodeScrambler {
    let key: origin::config::CodeKey = CODE_KEY.parse().expect("code key");
    key.scrambler()
}

impl TestApp {
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// An authenticated API call with an optional JSON body.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.api_key));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send(request.body(body).expect("request")).await
    }

    /// A visitor's request: no credentials.
    pub async fn visit(&self, method: Method, path: &str) -> TestResponse {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        self.send(request).await
    }

    /// Creates a link through the API and returns its JSON.
    pub async fn create(&self, body: Value) -> Value {
        let response = self.api(Method::POST, "/api/v1/links", Some(body)).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        response.json()
    }

    /// The codes of every page of `GET /api/v1/links?{query}&limit={limit}`, following
    /// `next_cursor` to the end; each page holds at most `limit` links.
    pub async fn all_link_pages(&self, query: &str, limit: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..1_000 {
            let page = self
                .api(
                    Method::GET,
                    &format!("/api/v1/links?{query}&limit={limit}&cursor={cursor}"),
                    None,
                )
                .await
                .json();
            let links = page["links"].as_array().expect("links");
            assert!(links.len() <= limit, "{query}: {} links", links.len());
            seen.extend(
                links
                    .iter()
                    .map(|link| link["code"].as_str().expect("code").to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return seen,
            }
        }
        panic!("{query}: no last page after 1,000: {seen:?}");
    }
}

/// The start of the UTC hour `ago` before now: a whole hour, the same for every call within
/// that hour (events are identified by id and time).
pub fn hour_start(ago: time::Duration) -> time::OffsetDateTime {
    (time::OffsetDateTime::now_utc() - ago)
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .expect("the start of an hour is a valid time")
}

/// A free loopback port for a process started next ([`devpg::free_port`]: below the
/// ephemeral range, so no connection takes it before the process binds it).
pub fn free_port() -> u16 {
    devpg::free_port().expect("a free port")
}

pub fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("randomness");
    hex::encode(bytes)
}

/// Whose credentials a request carries.
#[derive(Debug, Clone)]
pub enum As {
    /// No credentials at all.
    Nobody,
    /// `Authorization: Bearer <key>`.
    Key(String),
    /// A signed-in browser: the session cookie, and the CSRF token it sends with changes.
    Session {
        cookie: String,
        csrf: String,
        user_id: i64,
    },
}

/// The password of every user made by [`TestApp::user`].
pub const USER_PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// A call as `who`, with an optional JSON body.
    pub async fn call(
        &self,
        who: &As,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
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
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send(request.body(body).expect("request")).await
    }

    /// A new workspace (made in SQL, with no members); its id.
    pub async fn workspace(&self, name: &str) -> i64 {
        sqlx::query_scalar("INSERT INTO workspaces (name) VALUES ($1) RETURNING id")
            .bind(name)
            .fetch_one(&self.db)
            .await
            .expect("workspace")
    }

    /// A key of `workspace` with these scopes (`links:read`, ...).
    pub async fn key(&self, workspace: i64, scopes: &[&str]) -> As {
        let scopes: Vec<shortlink::workspace::Scope> = scopes
            .iter()
            .map(|s| shortlink::workspace::Scope::parse(s).expect("a scope"))
            .collect();
        As::Key(
            origin::auth::create_operator_key(&self.db, workspace, "test key", &scopes)
                .await
                .expect("key"),
        )
    }

    /// A new user (password [`USER_PASSWORD`]), a member of each `(workspace, role)`, signed
    /// in: their session works in the first of those workspaces.
    pub async fn user(&self, username: &str, memberships: &[(i64, &str)]) -> As {
        let hash = origin::accounts::hash_password(USER_PASSWORD).expect("hash");
        let user_id: i64 = sqlx::query_scalar(
            "INSERT INTO admin_users (username, password_hash) VALUES ($1, $2) RETURNING id",
        )
        .bind(username)
        .bind(hash)
        .fetch_one(&self.db)
        .await
        .expect("user");
        for (i, (workspace, role)) in memberships.iter().enumerate() {
            sqlx::query(
                "INSERT INTO workspace_members (workspace_id, user_id, role, joined_at)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            )
            .bind(workspace)
            .bind(user_id)
            .bind(role)
            .bind(i as f64)
            .execute(&self.db)
            .await
            .expect("membership");
        }
        self.sign_in_as(username, USER_PASSWORD).await
    }

    /// Signs in through the API; panics unless it succeeds.
    pub async fn sign_in_as(&self, username: &str, password: &str) -> As {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/session")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::json!({"username": username, "password": password}).to_string(),
            ))
            .expect("request");
        let response = self.send(request).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "sign-in: {}",
            String::from_utf8_lossy(&response.body)
        );
        let cookie = response
            .header(&header::SET_COOKIE)
            .split(';')
            .next()
            .expect("cookie")
            .to_owned();
        let body = response.json();
        As::Session {
            cookie,
            csrf: body["csrf_token"].as_str().expect("csrf").to_owned(),
            user_id: body["user_id"].as_i64().expect("user id"),
        }
    }
}
