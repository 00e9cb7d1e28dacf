//! A read replica (`KURZ_DATABASE_READ_URL`), against a real streaming replica: each test
//! starts a cluster of its own and a replica of it (`pg_basebackup -R`, devpg), because these
//! tests pause the replica's replay or kill it.
//!
//! Reads that may lag (lists, stats, redirects on a cache miss, the edge's resolve) are shown
//! to come from the replica by pausing its replay: they miss what the primary wrote since,
//! while writes and reads of one's own writes (they go to the primary) do not. A write sent
//! to the replica would fail (it is read-only), so every write of these tests working shows
//! that writes go to the primary.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use devpg::{Cluster, Durability};
use serde_json::{Value, json};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource};
use shortlink::signature;
use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;

use crate::support::{EDGE_SECRET, TestApp, app_with, config, random_hex};

/// An app whose reads that may lag go to a streaming replica of its database. Bind its
/// fields folders first (`let Replicated { _dirs, primary, replica, app } = ...`): locals drop
/// in reverse, so the app goes first and the folders last (a cluster whose folder is gone is
/// not stopped, [`clusters`]).
struct Replicated {
    app: TestApp,
    replica: Cluster,
    primary: Cluster,
    /// Dropped last: the clusters stop first.
    _dirs: [tempfile::TempDir; 2],
}

/// A primary, a replica of it caught up, and an app on both (with `edit` applied to its
/// configuration).
async fn replicated(edit: impl FnOnce(&mut origin::config::Config)) -> Replicated {
    let (dirs, primary, replica) = clusters();
    let mut config = config(&primary.url("postgres"));
    config.database_read_url = Some(replica.url("postgres"));
    config.edge_secret = Some(EDGE_SECRET.to_owned());
    edit(&mut config);
    let app = app_with(&config).await;
    // Reads go to a replica once its lag was measured (a serving origin does so every
    // second; these tests measure when they choose).
    caught_up_to_no_lag(&app, &replica).await;
    Replicated {
        app,
        replica,
        primary,
        _dirs: dirs,
    }
}

/// Their folders, a primary, and a streaming replica of it. Bound in this order (`let (_dirs,
/// primary, replica)`), the locals drop in reverse: the replica stops, then the primary, and
/// only then are the folders removed. Bound folders last, they went first, and a cluster
/// whose folder is gone is not stopped (`Cluster`'s drop finds no `postmaster.pid`): the
/// servers outlived the test.
fn clusters() -> ([tempfile::TempDir; 2], Cluster, Cluster) {
    let dirs = [
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    ];
    let primary = Cluster::start(dirs[0].path(), Durability::Throwaway).expect("start PostgreSQL");
    let replica = Cluster::start_replica(dirs[1].path(), &primary, Durability::Throwaway)
        .expect("start a replica");
    (dirs, primary, replica)
}

async fn connect(cluster: &Cluster) -> PgConnection {
    PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connect")
}

/// Waits until the replica replayed everything the primary wrote so far (inserted into its
/// WAL: with `synchronous_commit=off` a commit reaches the WAL's file, and so the replica,
/// a moment after it returned).
async fn caught_up(primary: &PgPool, replica: &Cluster) {
    let written: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(primary)
        .await
        .expect("primary's position");
    let mut conn = connect(replica).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replayed: bool =
            sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn")
                .bind(&written)
                .fetch_one(&mut conn)
                .await
                .expect("replica's position");
        if replayed {
            return;
        }
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the replica caught up and a measurement finds no lag. PostgreSQL writes WAL of
/// its own now and then (a checkpoint's, autovacuum's), which the replica replays a moment
/// later: a measurement in that moment finds the time since the last replayed commit.
async fn caught_up_to_no_lag(app: &TestApp, replica: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        caught_up(&app.db, replica).await;
        let lag = measure_lag(app).await;
        if lag == Duration::ZERO {
            return;
        }
        assert!(Instant::now() < deadline, "still {lag:?} behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Measures the replica's lag now, as a serving origin does every second.
async fn measure_lag(app: &TestApp) -> Duration {
    app.state
        .measure_replica_lag()
        .await
        .expect("a replica")
        .expect("lag measured")
}

/// Measures the replica's lag now, and expects the measurement to fail.
async fn measure_lag_fails(app: &TestApp) {
    let measured = app.state.measure_replica_lag().await.expect("a replica");
    assert!(measured.is_err(), "{measured:?}");
}

/// Pauses the replica's replay (it keeps receiving, but applies nothing more until resumed).
async fn pause_replay(replica: &Cluster) {
    let mut conn = connect(replica).await;
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut conn)
        .await
        .expect("pause");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
            .fetch_one(&mut conn)
            .await
            .expect("pause state");
        if state == "paused" {
            return;
        }
        assert!(Instant::now() < deadline, "replay never paused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn resume_replay(replica: &Cluster) {
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut connect(replica).await)
        .await
        .expect("resume");
}

fn codes(page: &Value) -> Vec<String> {
    let mut codes: Vec<String> = page["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|link| link["code"].as_str().expect("code").to_owned())
        .collect();
    codes.sort();
    codes
}

async fn ok_json(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let response = app.api(method, path, body).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{path}: {}",
        response.text()
    );
    response.json()
}

async fn health(app: &TestApp) -> Value {
    let response = app.visit(Method::GET, "/health").await;
    assert_eq!(response.status, StatusCode::OK);
    response.json()["read_replica"].clone()
}

fn click(link_id: i64, code: &str) -> ClickEvent {
    ClickEvent {
        id: random_hex(),
        link_id,
        code: ShortCode::parse(code).expect("code"),
        at: OffsetDateTime::now_utc(),
        country: Some("DE".to_owned()),
        referrer: None,
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Firefox/132.0".to_owned()),
        qr: false,
        head: false,
        source: ClickSource::Edge,
        visitor: Some(random_hex()),
        variant: None,
    }
}

async fn resolve(app: &TestApp, code: &str) -> StatusCode {
    let path = format!("/_edge/resolve/{code}");
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = signature::sign(EDGE_SECRET.as_bytes(), "GET", &path, timestamp, b"");
    let request = Request::builder()
        .uri(&path)
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, signature)
        .body(Body::empty())
        .expect("request");
    app.send(request).await.status
}

#[tokio::test]
async fn lists_and_stats_read_the_replica_and_own_writes_the_primary() {
    let Replicated {
        _dirs,
        primary: _primary,
        replica,
        app,
    } = replicated(|_| {}).await;
    let first = app
        .create(json!({"destination": "https://example.com/first", "code": "first"}))
        .await;
    let first_id = first["id"].as_i64().expect("id");
    app.state
        .store_clicks(&[click(first_id, "first")])
        .await
        .expect("store");
    app.state.count_clicks().await.expect("count");
    caught_up(&app.db, &replica).await;
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["first"]
    );

    pause_replay(&replica).await;
    // Written while the replica applies nothing: every write goes to the primary (the
    // replica, read-only, would refuse it), and answers.
    let second = app
        .create(json!({"destination": "https://example.com/second", "code": "second"}))
        .await;
    let second_id = second["id"].as_i64().expect("id");
    app.state
        .store_clicks(&[click(first_id, "first"), click(second_id, "second")])
        .await
        .expect("store");
    app.state.count_clicks().await.expect("count");
    let edited = ok_json(
        &app,
        Method::PATCH,
        "/api/v1/links/first",
        Some(json!({"destination": "https://example.com/first-edited"})),
    )
    .await;
    assert_eq!(edited["destination"], "https://example.com/first-edited");

    // The list and the stats come from the replica: they lag.
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["first"]
    );
    let account = ok_json(&app, Method::GET, "/api/v1/stats", None).await;
    assert_eq!(account["totals"]["clicks"], 1, "{account}");
    let of_first = ok_json(&app, Method::GET, "/api/v1/links/first/stats", None).await;
    assert_eq!(of_first["totals"]["clicks"], 1, "{of_first}");
    // One's own writes come from the primary: the new link, the edit, and the new link's
    // stats (found, though its counts lag).
    let got = ok_json(&app, Method::GET, "/api/v1/links/second", None).await;
    assert_eq!(got["destination"], "https://example.com/second");
    let got = ok_json(&app, Method::GET, "/api/v1/links/first", None).await;
    assert_eq!(got["destination"], "https://example.com/first-edited");
    let of_second = ok_json(&app, Method::GET, "/api/v1/links/second/stats", None).await;
    assert_eq!(of_second["totals"]["clicks"], 0, "{of_second}");

    resume_replay(&replica).await;
    caught_up(&app.db, &replica).await;
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["first", "second"]
    );
    let account = ok_json(&app, Method::GET, "/api/v1/stats", None).await;
    assert_eq!(account["totals"]["clicks"], 3, "{account}");
    // Every read the replica got, it answered.
    assert_eq!(
        health(&app).await,
        json!({"state": "up", "fallbacks": 0, "failures": 0, "lag_seconds": 0.0, "behind": false})
    );
}

#[tokio::test]
async fn a_replica_lagging_more_than_allowed_is_left_until_it_catches_up() {
    let Replicated {
        _dirs,
        primary: _primary,
        replica,
        app,
    } = replicated(|config| config.replica_max_lag_secs = 1).await;
    app.create(json!({"destination": "https://example.com/first", "code": "first"}))
        .await;
    caught_up_to_no_lag(&app, &replica).await;

    pause_replay(&replica).await;
    app.create(json!({"destination": "https://example.com/second", "code": "second"}))
        .await;
    // Within the bound the replica still answers, as it lags.
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["first"]
    );
    // The replica's last replayed commit is over a second older than the primary's state.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let lag = measure_lag(&app).await;
    assert!(lag > Duration::from_secs(1), "{lag:?}");
    let behind = health(&app).await;
    assert_eq!(behind["behind"], true, "{behind}");
    assert!(
        behind["lag_seconds"].as_f64().expect("lag") > 1.0,
        "{behind}"
    );
    // Reads go to the primary: the list has what the replica has not replayed.
    let fallbacks = behind["fallbacks"].as_u64().expect("fallbacks");
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["first", "second"]
    );
    let after = health(&app).await;
    assert!(
        after["fallbacks"].as_u64().expect("fallbacks") > fallbacks,
        "{after}"
    );
    assert_eq!(after["state"], "up", "not a failure: {after}");

    // Caught up, it answers again.
    resume_replay(&replica).await;
    caught_up_to_no_lag(&app, &replica).await;
    let back = health(&app).await;
    assert_eq!(back["behind"], false, "{back}");
    let fallbacks = back["fallbacks"].clone();
    pause_replay(&replica).await;
    app.create(json!({"destination": "https://example.com/third", "code": "third"}))
        .await;
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["first", "second"],
        "read from the replica again"
    );
    assert_eq!(health(&app).await["fallbacks"], fallbacks);
}

#[tokio::test]
async fn a_replica_whose_lag_is_not_known_is_not_read() {
    let Replicated {
        _dirs,
        primary: _primary,
        replica,
        app,
    } = replicated(|_| {}).await;
    app.create(json!({"destination": "https://example.com/first", "code": "first"}))
        .await;
    caught_up(&app.db, &replica).await;
    replica.kill().expect("kill the replica");
    // The measurement fails: the lag is not known, the replica rests as after a failed read,
    // and reads go to the primary without trying it first.
    measure_lag_fails(&app).await;
    let unknown = health(&app).await;
    assert_eq!(unknown["lag_seconds"], Value::Null, "{unknown}");
    assert_eq!(unknown["behind"], true, "{unknown}");
    assert_eq!(unknown["state"], "down", "{unknown}");
    assert_eq!(unknown["failures"], 1, "the measurement's: {unknown}");
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["first"]
    );
    // A second failed measurement, while the replica rests, starts no new rest.
    measure_lag_fails(&app).await;
    let after = health(&app).await;
    assert_eq!(after["failures"], 1, "the replica was not tried: {after}");
    assert_eq!(after["state"], "down", "{after}");
    // Back, the next measurement finds it answering: up, and read again.
    replica
        .restart(Durability::Throwaway)
        .expect("restart the replica");
    caught_up_to_no_lag(&app, &replica).await;
    let back = health(&app).await;
    assert_eq!(back["state"], "up", "{back}");
    assert_eq!(back["behind"], false, "{back}");
    let fallbacks = back["fallbacks"].clone();
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["first"]
    );
    assert_eq!(
        health(&app).await["fallbacks"],
        fallbacks,
        "read from the replica"
    );
}

#[tokio::test]
async fn a_link_just_created_or_changed_redirects_as_it_is_now_while_the_replica_lags() {
    let Replicated {
        _dirs,
        primary: _primary,
        replica,
        app,
    } = replicated(|_| {}).await;
    app.create(json!({"destination": "https://example.com/old", "code": "moved"}))
        .await;
    caught_up(&app.db, &replica).await;
    pause_replay(&replica).await;

    // Created on the primary, not on the replica yet: the replica's "none" is asked of the
    // primary before a 404 is answered (and cached).
    app.create(json!({"destination": "https://example.com/fresh", "code": "fresh"}))
        .await;
    let visit = app.visit(Method::GET, "/fresh").await;
    assert_eq!(visit.status, StatusCode::FOUND);
    assert_eq!(
        visit.header(&axum::http::header::LOCATION),
        "https://example.com/fresh"
    );
    assert_eq!(resolve(&app, "fresh").await, StatusCode::OK);
    // Changed on the primary: its next visit reads the primary, not the replica's old row
    // (which the cache would keep until its TTL).
    ok_json(
        &app,
        Method::PATCH,
        "/api/v1/links/moved",
        Some(json!({"destination": "https://example.com/new"})),
    )
    .await;
    let visit = app.visit(Method::GET, "/moved").await;
    assert_eq!(
        visit.header(&axum::http::header::LOCATION),
        "https://example.com/new"
    );
    // Deleted on the primary: gone at once, though the replica still has it.
    let deleted = app.api(Method::DELETE, "/api/v1/links/moved", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    assert_eq!(
        app.visit(Method::GET, "/moved").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(resolve(&app, "moved").await, StatusCode::NOT_FOUND);
    // Unknown anywhere: a 404.
    assert_eq!(
        app.visit(Method::GET, "/never-made").await.status,
        StatusCode::NOT_FOUND
    );
    resume_replay(&replica).await;
}

#[tokio::test]
async fn redirects_on_a_miss_read_the_replica() {
    // The cache off, so that every visit reads PostgreSQL.
    let Replicated {
        _dirs,
        primary,
        replica,
        app,
    } = replicated(|config| config.cache_mib = 0).await;
    // Created by another instance: this one has not seen the link change lately.
    let other = crate::support::app_on(&primary.url("postgres")).await;
    other
        .create(json!({"destination": "https://example.com/a", "code": "direct"}))
        .await;
    caught_up(&app.db, &replica).await;
    pause_replay(&replica).await;
    // Changed behind the origin's back (no invalidation of its own, so nothing marks the
    // link changed): visits keep the replica's row until it replays the change.
    sqlx::query("UPDATE links SET destination = 'https://example.com/b' WHERE code = 'direct'")
        .execute(&app.db)
        .await
        .expect("update");
    let visit = app.visit(Method::GET, "/direct").await;
    assert_eq!(
        visit.header(&axum::http::header::LOCATION),
        "https://example.com/a"
    );
    resume_replay(&replica).await;
    caught_up(&app.db, &replica).await;
    let visit = app.visit(Method::GET, "/direct").await;
    assert_eq!(
        visit.header(&axum::http::header::LOCATION),
        "https://example.com/b"
    );
}

/// With the cache off, a link changed through another instance is still read from the
/// primary while the replica lags: the change's notification marks it changed lately. Before,
/// only a cache started the listener, so such an instance served the replica's old row (an
/// old destination, a disabled or deleted link still redirecting) for up to the allowed lag.
#[tokio::test]
async fn without_a_cache_a_link_changed_elsewhere_is_read_from_the_primary() {
    let Replicated {
        _dirs,
        primary,
        replica,
        app,
    } = replicated(|config| config.cache_mib = 0).await;
    let tasks = app.state.spawn_background();
    let other = crate::support::app_on(&primary.url("postgres")).await;
    other
        .create(json!({"destination": "https://example.com/a", "code": "elsewhere"}))
        .await;
    caught_up(&app.db, &replica).await;
    pause_replay(&replica).await;
    ok_json(
        &other,
        Method::PATCH,
        "/api/v1/links/elsewhere",
        Some(json!({"destination": "https://example.com/b"})),
    )
    .await;
    // The notification arrives within moments; the replica still has the old row.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let visit = app.visit(Method::GET, "/elsewhere").await;
        if visit.header(&axum::http::header::LOCATION) == "https://example.com/b" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica's old row was served: {}",
            visit.header(&axum::http::header::LOCATION)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    resume_replay(&replica).await;
}

/// The samples of a `/metrics` scrape, by series as rendered.
async fn scrape(client: &reqwest::Client, metrics: std::net::SocketAddr) -> Vec<(String, f64)> {
    let text = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(name, _)| name == series)
        .unwrap_or_else(|| panic!("no {series} in {samples:?}"))
        .1
}

#[tokio::test]
async fn a_lost_replica_falls_back_to_the_primary_and_is_used_again_once_back() {
    let (_dirs, primary, replica) = clusters();
    let mut config = config(&primary.url("postgres"));
    config.database_read_url = Some(replica.url("postgres"));
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics = metrics_listener.local_addr().expect("address");
    config.metrics.bind = Some(metrics);
    let app = app_with(&config).await;
    // Served as well, for its metrics listener.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = app.state.clone();
    let served_config = config.clone();
    tokio::spawn(async move {
        let shutdown = async {
            stopped.await.ok();
        };
        origin::serve_listening(
            serving,
            &served_config,
            listener,
            Some(metrics_listener),
            shutdown,
        )
        .await
    });
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the metrics never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for code in ["one", "two"] {
        app.create(json!({"destination": format!("https://example.com/{code}"), "code": code}))
            .await;
    }
    caught_up(&app.db, &replica).await;
    // Reads go to the replica only once a lag measurement found it close. The serving
    // origin's first measurement ran at its start, before the replica had replayed any
    // transaction (lag not known), and its next may come a second later: measure now, so
    // the reads below try the replica and find it lost (else they would go to the primary
    // as "behind", and the replica would not be taken for down).
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(&app).await["behind"] != false {
        assert!(
            Instant::now() < deadline,
            "the replica's lag was never measured"
        );
        measure_lag(&app).await;
    }
    let before = health(&app).await["fallbacks"].clone();
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["one", "two"]
    );
    let up = health(&app).await;
    assert_eq!(up["state"], "up", "{up}");
    assert_eq!(
        up["fallbacks"], before,
        "the replica answered the list: {up}"
    );

    replica.kill().expect("kill the replica");
    // Read from the replica, which fails, then from the primary.
    assert_eq!(
        codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
        ["one", "two"]
    );
    let down = health(&app).await;
    assert_eq!(down["state"], "down", "{down}");
    assert_eq!(down["failures"], 1, "{down}");
    // While it rests, reads go straight to the primary: they do not wait for it each.
    const READS: u64 = 30;
    for _ in 0..READS / 3 {
        assert_eq!(
            codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
            ["one", "two"]
        );
        ok_json(&app, Method::GET, "/api/v1/stats", None).await;
    }
    for code in ["one", "two"] {
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        assert_eq!(visit.status, StatusCode::FOUND, "{}", visit.text());
    }
    let down = health(&app).await;
    let fallbacks = down["fallbacks"].as_u64().expect("fallbacks");
    let failures = down["failures"].as_u64().expect("failures");
    // Each list is two reads (links, their counts), each stats two (the range's check, the
    // counts).
    assert!(fallbacks > READS, "{down}");
    assert!(
        failures * 2 < fallbacks,
        "the replica was tried too often: {down}"
    );
    let samples = scrape(&client, metrics).await;
    assert_eq!(sample(&samples, "kurz_replica_up"), 0.0);
    assert!(sample(&samples, "kurz_replica_fallbacks_total{reason=\"failed\"}") >= 1.0);
    assert!(sample(&samples, "kurz_replica_fallbacks_total{reason=\"resting\"}") >= READS as f64);

    // Back: after its rest, one read tries it again, and it answers.
    replica
        .restart(Durability::Throwaway)
        .expect("restart the replica");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        ok_json(&app, Method::GET, "/api/v1/links", None).await;
        if health(&app).await["state"] == "up" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica was never used again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = health(&app).await["fallbacks"].clone();
    ok_json(&app, Method::GET, "/api/v1/links", None).await;
    assert_eq!(health(&app).await["fallbacks"], before);
    let samples = scrape(&client, metrics).await;
    assert_eq!(sample(&samples, "kurz_replica_up"), 1.0);
}

#[tokio::test]
async fn a_replica_that_never_answers_is_not_read() {
    // Accepts connections and never says a word: each connection attempt waits for the
    // replica's acquire timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = silent.local_addr().expect("address");
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let mut config = config(&crate::support::new_database().await);
    config.database_read_url = Some(format!("postgres://postgres@{address}/postgres"));
    let app = app_with(&config).await;
    app.create(json!({"destination": "https://example.com/x", "code": "silent"}))
        .await;
    // Its lag cannot be measured (no connection within the acquire timeout): not known, and
    // the replica rests as after a failed read, so no read waits for it.
    measure_lag_fails(&app).await;

    const LISTS: u64 = 10;
    for _ in 0..LISTS {
        assert_eq!(
            codes(&ok_json(&app, Method::GET, "/api/v1/links", None).await),
            ["silent"]
        );
    }
    let health = health(&app).await;
    // Two reads a list, all the primary's, and none tried the replica first: the one failure
    // is the measurement's.
    assert_eq!(
        health,
        json!({"state": "down", "fallbacks": 2 * LISTS, "failures": 1, "lag_seconds": null, "behind": true})
    );
    holding.abort();
}

/// A TCP relay to `target` that can go silent: from then on it forwards nothing and closes
/// nothing, as a server that vanished in a fail-over (or behind a dead link) looks to a
/// client whose connection is already open.
struct Relay {
    address: std::net::SocketAddr,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Reads forwarded so far, either way.
    forwarded: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let silent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let forwarded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (quiet, counted) = (silent.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (from_client, from_server) = (client.into_split(), server.into_split());
                for (mut from, mut to) in [
                    (from_client.0, from_server.1),
                    (from_server.0, from_client.1),
                ] {
                    let (quiet, counted) = (quiet.clone(), counted.clone());
                    tokio::spawn(async move {
                        let mut buffer = vec![0; 16 * 1024];
                        while let Ok(read) = from.read(&mut buffer).await {
                            if read == 0 {
                                break;
                            }
                            if quiet.load(Ordering::Acquire) {
                                // Holds both halves open, forwarding nothing.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buffer[..read]).await.is_err() {
                                break;
                            }
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        });
        Self {
            address,
            silent,
            forwarded,
            task,
        }
    }

    /// Waits until nothing has passed for a while (a connection back in its pool is idle).
    async fn settle(&self) {
        let forwarded = || self.forwarded.load(std::sync::atomic::Ordering::Relaxed);
        let mut before = forwarded();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = forwarded();
            if now == before {
                return;
            }
            before = now;
        }
    }

    fn go_silent(&self) {
        self.silent
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A replica that goes silent mid-query (its connection open, no answer ever) is given up on
/// after a look-up's 2 s: the visit is answered from the primary within its own deadline (5
/// s), and the replica rests. Without the cut, the look-up would wait until TCP gives up (minutes),
/// and every cache miss behind it would get 503.
#[tokio::test]
async fn a_replica_gone_silent_mid_query_is_given_up() {
    let database_url = crate::support::new_database().await;
    let parsed = url::Url::parse(&database_url).expect("url");
    let target = format!(
        "{}:{}",
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(5432)
    );
    let relay = Relay::start(target).await;
    let mut through_relay = parsed.clone();
    through_relay
        .set_port(Some(relay.address.port()))
        .expect("port");
    let mut config = config(&database_url);
    // The primary itself, through the relay: not a standby, so no lag to wait for.
    config.database_read_url = Some(through_relay.to_string());
    let app = app_with(&config).await;
    assert_eq!(measure_lag(&app).await, Duration::ZERO);
    // The measurement's connection is back in the pool, idle: the look-up takes it, and its
    // query is what goes unanswered (not a new connection's handshake, which the pool's
    // acquire timeout cuts already).
    relay.settle().await;
    relay.go_silent();
    // A code nobody changed lately (those are read from the primary): the look-up asks the
    // replica first, and only the primary says there is no such link.
    let visit = app.visit(Method::GET, "/gone").await;
    assert_eq!(visit.status, StatusCode::NOT_FOUND);
    let health = health(&app).await;
    assert_eq!(health["state"], "down", "{health}");
    assert_eq!(health["failures"], 1, "{health}");
}
