//! Delivery of link changes to the edge (`outbox.rs`), against a fake edge that checks
//! signatures and refuses a repeated one, and keeps KV the way the worker does (the newer
//! version wins): one deliverer at a time across origins, versions that order every change of
//! a code, batches bounded by bytes, a change the edge refuses that does not hold up the ones
//! behind it, and nothing parked when the edge refuses everything.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use shortlink::edge::{SYNC_PATH, SyncBatch};
use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::support::{EDGE_SECRET, TestApp, app_with, config, new_database};

/// What the fake edge holds for a code: the version, and the record (`None`: a tombstone).
type Kv = HashMap<String, (u64, Option<Value>)>;

/// A sync endpoint that verifies signatures and refuses one it saw before as the worker does
/// (`edge/src/signed.rs`), and keeps KV as the worker does.
#[derive(Default)]
struct FakeEdge {
    kv: Mutex<Kv>,
    /// Signatures of the requests received.
    seen: Mutex<HashSet<String>>,
    /// Every request's body size and status answered.
    requests: Mutex<Vec<(usize, u16)>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// How long each request takes.
    delay: Duration,
    /// Larger bodies get 413.
    body_limit: Option<usize>,
    /// A batch holding this code gets 400, as a worker that cannot read its change would answer.
    poison: Option<&'static str>,
    /// Batches holding any of these codes get 400 too.
    poisons: &'static [&'static str],
    /// Every batch gets 400, as a worker older than the origin would answer.
    refuse_all: AtomicBool,
    /// The first this many requests get 503 once received, as when a KV write failed.
    fail_first: usize,
}

impl FakeEdge {
    async fn start(self) -> (Arc<Self>, String) {
        let edge = Arc::new(self);
        let handler_edge = edge.clone();
        let router = axum::Router::new().route(
            SYNC_PATH,
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let edge = handler_edge.clone();
                async move { edge.sync(&headers, &body).await }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        (edge, url)
    }

    async fn sync(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let status = self.answer(headers, body);
        self.requests
            .lock()
            .expect("lock")
            .push((body.len(), status.as_u16()));
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        status
    }

    fn answer(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let verified = signature::verify(
            EDGE_SECRET.as_bytes(),
            "POST",
            SYNC_PATH,
            header(TIMESTAMP_HEADER),
            header(SIGNATURE_HEADER),
            body,
            now,
        );
        if verified.is_err() {
            return StatusCode::UNAUTHORIZED;
        }
        let signature = header(SIGNATURE_HEADER).unwrap_or_default().to_owned();
        let mut seen = self.seen.lock().expect("lock");
        if !seen.insert(signature) {
            return StatusCode::UNAUTHORIZED;
        }
        if seen.len() <= self.fail_first {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        drop(seen);
        if self.refuse_all.load(Ordering::SeqCst) {
            return StatusCode::BAD_REQUEST;
        }
        if self.body_limit.is_some_and(|limit| body.len() > limit) {
            return StatusCode::PAYLOAD_TOO_LARGE;
        }
        let Ok(batch) = serde_json::from_slice::<SyncBatch>(body) else {
            return StatusCode::BAD_REQUEST;
        };
        if let Some(poison) = self.poison
            && batch
                .changes
                .iter()
                .any(|change| change.code.as_str() == poison)
        {
            return StatusCode::BAD_REQUEST;
        }
        if batch
            .changes
            .iter()
            .any(|change| self.poisons.contains(&change.code.as_str()))
        {
            return StatusCode::BAD_REQUEST;
        }
        let mut kv = self.kv.lock().expect("lock");
        for change in batch.changes {
            let newer = kv
                .get(change.code.as_str())
                .is_none_or(|(held, _)| change.version > *held);
            if newer {
                let record = change
                    .record
                    .map(|record| serde_json::to_value(record).expect("JSON"));
                kv.insert(change.code.to_string(), (change.version, record));
            }
        }
        StatusCode::OK
    }

    fn get(&self, code: &str) -> Option<(u64, Option<Value>)> {
        self.kv.lock().expect("lock").get(code).cloned()
    }

    fn statuses(&self) -> Vec<u16> {
        let requests = self.requests.lock().expect("lock");
        requests.iter().map(|(_, status)| *status).collect()
    }
}

/// An origin on `database_url` that delivers to `edge_url`, with its background tasks running.
async fn origin_with_edge(database_url: &str, edge_url: &str) -> TestApp {
    let mut config = config(database_url);
    config.edge_url = Some(edge_url.to_owned());
    config.edge_secret = Some(EDGE_SECRET.to_owned());
    let app = app_with(&config).await;
    app.state.spawn_background();
    app
}

/// Generous: the whole test suite shares the machine.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1_200 {
        if let Some(value) = check() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 60 s");
}

async fn versions(app: &TestApp, code: &str) -> Vec<(i64, bool)> {
    sqlx::query_as("SELECT version, deleted_at IS NULL FROM links WHERE code = $1 ORDER BY id")
        .bind(code)
        .fetch_all(&app.db)
        .await
        .expect("versions")
}

#[tokio::test]
async fn one_origin_delivers_at_a_time() {
    let (edge, url) = FakeEdge {
        delay: Duration::from_millis(800),
        ..FakeEdge::default()
    }
    .start()
    .await;
    let database_url = new_database().await;
    let a = origin_with_edge(&database_url, &url).await;
    let b = origin_with_edge(&database_url, &url).await;

    a.create(json!({"destination": "https://example.com/a", "code": "from-a"}))
        .await;
    eventually("a's delivery is under way", || {
        (edge.in_flight.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    // B has a change of its own to deliver while A's request is still at the edge: before
    // the deliverer's lock, B sent it at once, and two requests raced each other to KV.
    b.create(json!({"destination": "https://example.com/b", "code": "from-b"}))
        .await;
    eventually("both links reach the edge", || {
        (edge.get("from-a").is_some() && edge.get("from-b").is_some()).then_some(())
    })
    .await;
    assert_eq!(edge.most_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_change_of_a_code_reaches_the_edge_with_a_higher_version() {
    let (edge, url) = FakeEdge::default().start().await;
    let app = origin_with_edge(&new_database().await, &url).await;

    app.create(json!({"destination": "https://example.com/1", "code": "life"}))
        .await;
    let created = eventually("the link at the edge", || edge.get("life")).await;
    let edited = app
        .api(
            axum::http::Method::PATCH,
            "/api/v1/links/life",
            Some(json!({"destination": "https://example.com/2"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK);
    let edited = eventually("the edit at the edge", || {
        edge.get("life").filter(|(version, _)| *version > created.0)
    })
    .await;
    assert_eq!(
        edited.1.as_ref().map(|record| &record["destination"]),
        Some(&json!("https://example.com/2"))
    );
    assert_eq!(
        edited.1.as_ref().map(|r| &r["version"]),
        Some(&json!(edited.0))
    );

    // The delete leaves a tombstone above the edit, so an edit delivered late loses to it.
    let deleted = app
        .api(axum::http::Method::DELETE, "/api/v1/links/life", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let tombstone = eventually("the tombstone at the edge", || {
        edge.get("life").filter(|(_, record)| record.is_none())
    })
    .await;
    assert!(tombstone.0 > edited.0, "{tombstone:?} after {edited:?}");
    let rows = versions(&app, "life").await;
    assert_eq!(rows, [(tombstone.0 as i64, false)]);

    // A new link on the freed code is above the tombstone.
    app.create(json!({"destination": "https://example.com/3", "code": "life"}))
        .await;
    let reused = eventually("the new link at the edge", || {
        edge.get("life").filter(|(_, record)| record.is_some())
    })
    .await;
    assert!(reused.0 > tombstone.0);
    assert_eq!(
        reused.1.map(|record| record["destination"].clone()),
        Some(json!("https://example.com/3"))
    );
}

#[tokio::test]
async fn a_new_link_below_its_codes_tombstone_is_given_a_new_version() {
    let (edge, url) = FakeEdge::default().start().await;
    let database_url = new_database().await;
    let app = app_with(&config(&database_url)).await;
    // What a create that took its version just before a concurrent delete of the code's old
    // link (and then waited for it) leaves behind, made by hand with the trigger off.
    sqlx::raw_sql(
        "SELECT setval('link_version_seq', 100);
         INSERT INTO links (code, destination, deleted_at)
             VALUES ('raced', 'https://example.com/old', now());
         ALTER TABLE links DISABLE TRIGGER links_version;
         INSERT INTO links (code, destination, version)
             VALUES ('raced', 'https://example.com/new', 100);
         ALTER TABLE links ENABLE TRIGGER links_version;
         INSERT INTO edge_outbox (code) VALUES ('raced');",
    )
    .execute(&app.db)
    .await
    .expect("setup");
    let deleted_version = versions(&app, "raced").await[0].0;
    edge.kv
        .lock()
        .expect("lock")
        .insert("raced".into(), (deleted_version as u64, None));

    let _delivering = origin_with_edge(&database_url, &url).await;
    let (version, record) = eventually("the new link at the edge", || {
        edge.get("raced").filter(|(_, record)| record.is_some())
    })
    .await;
    assert!(version > deleted_version as u64);
    assert_eq!(
        record.map(|record| record["destination"].clone()),
        Some(json!("https://example.com/new"))
    );
    assert_eq!(versions(&app, "raced").await[1], (version as i64, true));
}

#[tokio::test]
async fn large_batches_are_split_and_a_refused_code_does_not_hold_up_the_rest() {
    // An edge whose limit is below the origin's own, so 413 and halving happen too, and that
    // cannot take one code's change at all.
    let (edge, url) = FakeEdge {
        body_limit: Some(100 * 1024),
        poison: Some("poison"),
        ..FakeEdge::default()
    }
    .start()
    .await;
    let database_url = new_database().await;
    let app = app_with(&config(&database_url)).await;
    // Backslashes double in JSON: 200 of these were one 1.6 MiB batch.
    let heavy = app
        .create(json!({"destination": format!("https://example.com/?q={}", "\\".repeat(4000)), "code": "big0"}))
        .await;
    let destination = heavy["destination"].as_str().expect("destination");
    assert!(destination.matches('\\').count() >= 4000, "{destination}");
    sqlx::query(
        "INSERT INTO links (code, destination)
             SELECT 'big' || i, $1 FROM generate_series(1, 199) AS i",
    )
    .bind(destination)
    .execute(&app.db)
    .await
    .expect("links");
    sqlx::raw_sql(
        "INSERT INTO links (code, destination) VALUES ('poison', 'https://example.com/p');
         INSERT INTO edge_outbox (code) SELECT 'big' || i FROM generate_series(0, 99) AS i;
         INSERT INTO edge_outbox (code) VALUES ('poison');
         INSERT INTO edge_outbox (code) SELECT 'big' || i FROM generate_series(100, 199) AS i;",
    )
    .execute(&app.db)
    .await
    .expect("outbox");
    // A takedown behind all of them.
    app.create(json!({"destination": "https://example.com/bad", "code": "takedown"}))
        .await;
    let deleted = app
        .api(axum::http::Method::DELETE, "/api/v1/links/takedown", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    sqlx::query("INSERT INTO edge_outbox (code) VALUES ('takedown'), ('takedown')")
        .execute(&app.db)
        .await
        .expect("outbox");

    let _delivering = origin_with_edge(&database_url, &url).await;
    eventually("the takedown at the edge", || {
        edge.get("takedown").filter(|(_, record)| record.is_none())
    })
    .await;
    eventually("every large link at the edge", || {
        (0..200)
            .all(|i| edge.get(&format!("big{i}")).is_some())
            .then_some(())
    })
    .await;
    assert_eq!(edge.get("poison"), None);
    let parked: Vec<(String, String)> = sqlx::query_as("SELECT code, error FROM edge_outbox_dead")
        .fetch_all(&app.db)
        .await
        .expect("parked");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].0, "poison");
    assert!(parked[0].1.contains("400"), "{parked:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM edge_outbox")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(left, 0);
    let requests = edge.requests.lock().expect("lock").clone();
    assert!(
        // The origin's own limit (`MAX_BATCH_BYTES`), a quarter of the worker's.
        requests.iter().all(|(size, _)| *size <= 256 * 1024),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|(_, status)| *status == 413),
        "{requests:?}"
    );
}

/// More refused codes in a row at the head of the outbox than are set aside before a backoff:
/// they stay aside through it, so the changes behind them (a takedown too) still arrive, and
/// then they are parked. Dropped at the backoff, every try walked down to the same codes again.
#[tokio::test]
async fn a_run_of_refused_codes_at_the_head_does_not_hold_up_the_changes_behind_it() {
    const POISONS: &[&str] = &[
        "poison0", "poison1", "poison2", "poison3", "poison4", "poison5", "poison6", "poison7",
        "poison8", "poison9",
    ];
    let (edge, url) = FakeEdge {
        poisons: POISONS,
        ..FakeEdge::default()
    }
    .start()
    .await;
    let database_url = new_database().await;
    let app = app_with(&config(&database_url)).await;
    for code in POISONS.iter().copied().chain(["good", "takedown"]) {
        app.create(json!({"destination": format!("https://example.com/{code}"), "code": code}))
            .await;
    }
    let deleted = app
        .api(axum::http::Method::DELETE, "/api/v1/links/takedown", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // This origin has no edge to record changes for: the poisoned codes first.
    sqlx::query("INSERT INTO edge_outbox (code) SELECT code FROM links ORDER BY id")
        .execute(&app.db)
        .await
        .expect("outbox");

    let _delivering = origin_with_edge(&database_url, &url).await;
    eventually("the good link at the edge", || {
        edge.get("good").filter(|(_, record)| record.is_some())
    })
    .await;
    eventually("the takedown at the edge", || {
        edge.get("takedown").filter(|(_, record)| record.is_none())
    })
    .await;
    let parked = async || -> Vec<String> {
        sqlx::query_scalar("SELECT code FROM edge_outbox_dead ORDER BY code")
            .fetch_all(&app.db)
            .await
            .expect("parked")
    };
    for _ in 0..1_200 {
        if parked().await.len() == POISONS.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(parked().await, POISONS);
    assert!(POISONS.iter().all(|code| edge.get(code).is_none()));
}

/// A batch sent again right after a failure carries the same changes: with a signature over
/// the same body and second it was refused as a replay until the clock turned.
#[tokio::test]
async fn a_batch_sent_again_at_once_is_not_a_replay() {
    // Three tries within 0.6 s (backoff 0.2 s, then 0.4 s): two of them share a second.
    let (edge, url) = FakeEdge {
        fail_first: 2,
        ..FakeEdge::default()
    }
    .start()
    .await;
    let app = origin_with_edge(&new_database().await, &url).await;
    app.create(json!({"destination": "https://example.com/again", "code": "again"}))
        .await;
    eventually("the link at the edge", || edge.get("again")).await;
    assert_eq!(edge.statuses(), [503, 503, 200]);
}

/// A worker that refuses every batch (say, one older than the origin) must not have every
/// change parked one by one, takedowns included: the rows wait until it takes them.
#[tokio::test]
async fn nothing_is_parked_while_the_edge_refuses_everything() {
    let (edge, url) = FakeEdge::default().start().await;
    edge.refuse_all.store(true, Ordering::SeqCst);
    let database_url = new_database().await;
    let app = app_with(&config(&database_url)).await;
    for i in 0..20 {
        app.create(
            json!({"destination": format!("https://example.com/{i}"), "code": format!("keep{i}")}),
        )
        .await;
    }
    let deleted = app
        .api(axum::http::Method::DELETE, "/api/v1/links/keep0", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // This origin has no edge to record changes for.
    sqlx::query("INSERT INTO edge_outbox (code) SELECT code FROM links ORDER BY id")
        .execute(&app.db)
        .await
        .expect("outbox");
    let rows = async || -> (i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM edge_outbox), (SELECT count(*) FROM edge_outbox_dead)",
        )
        .fetch_one(&app.db)
        .await
        .expect("counts")
    };
    let before = rows().await;
    assert_eq!(before, (20, 0));

    let _delivering = origin_with_edge(&database_url, &url).await;
    // More refusals than it takes to walk every code down to a batch of its own.
    eventually("the edge refused many batches", || {
        (edge.statuses().len() > 40).then_some(())
    })
    .await;
    assert_eq!(rows().await, before);
    assert!(edge.statuses().iter().all(|status| *status == 400));

    edge.refuse_all.store(false, Ordering::SeqCst);
    eventually("every change at the edge", || {
        (1..20)
            .all(|i| {
                edge.get(&format!("keep{i}"))
                    .is_some_and(|(_, r)| r.is_some())
            })
            .then_some(())
    })
    .await;
    eventually("the takedown at the edge", || {
        edge.get("keep0").filter(|(_, record)| record.is_none())
    })
    .await;
    let after = rows().await;
    assert_eq!(after.1, 0, "nothing parked");
}

/// A link whose record JSON cannot hold (an expiry before year 0, which RFC 3339 cannot
/// write, set around the API) is withdrawn from the edge like a row that cannot make a
/// record, and the changes behind it still go: every attempt failed on it before, and no
/// change of any link reached the edge again.
#[tokio::test]
async fn a_record_that_cannot_be_written_is_withdrawn_and_holds_nothing_up() {
    let (edge, url) = FakeEdge::default().start().await;
    let app = origin_with_edge(&new_database().await, &url).await;
    app.create(json!({"destination": "https://example.com/", "code": "ancient"}))
        .await;
    let (held, _) = eventually("the link at the edge", || edge.get("ancient")).await;
    sqlx::raw_sql(
        "UPDATE links SET expires_at = '0100-01-01 00:00:00+00 BC' WHERE code = 'ancient';
         INSERT INTO edge_outbox (code) VALUES ('ancient');",
    )
    .execute(&app.db)
    .await
    .expect("a row written around the API");
    app.create(json!({"destination": "https://example.com/", "code": "behind"}))
        .await;
    eventually("the change behind it at the edge", || edge.get("behind")).await;
    let (_, record) = eventually("the withdrawal at the edge", || {
        edge.get("ancient").filter(|(version, _)| *version > held)
    })
    .await;
    assert_eq!(record, None, "withdrawn, not left at its old state");
    let noted: Vec<(String, String)> = sqlx::query_as("SELECT code, error FROM edge_outbox_dead")
        .fetch_all(&app.db)
        .await
        .expect("noted");
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert_eq!(noted[0].0, "ancient");
    assert!(noted[0].1.contains("cannot be written"), "{noted:?}");
}

/// A `KURZ_EDGE_URL` that redirects (an `http://` one a proxy sends to `https://`) is not
/// followed: nothing reaches where it points, and the changes stay queued until the URL is
/// set right. Followed, a 308 sent the signed batch on, and a 301 turned it into a GET the
/// edge refused with 405, a message that said nothing of the URL.
#[tokio::test]
async fn a_redirecting_edge_url_is_not_followed() {
    let (edge, url) = FakeEdge::default().start().await;
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let redirector = axum::Router::new().route(
        SYNC_PATH,
        axum::routing::post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let to = format!("{url}{SYNC_PATH}");
            async move {
                (
                    StatusCode::PERMANENT_REDIRECT,
                    [(axum::http::header::LOCATION, to)],
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let redirecting = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, redirector).await });

    let database_url = new_database().await;
    let app = origin_with_edge(&database_url, &redirecting).await;
    app.create(json!({"destination": "https://example.com/", "code": "kept"}))
        .await;
    eventually("the sync tried twice", || {
        (asked.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert!(edge.statuses().is_empty(), "{:?}", edge.statuses());
    assert_eq!(edge.get("kept"), None);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM edge_outbox WHERE code = 'kept'")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert!(queued >= 1, "the change stays queued");
}

/// What a create that took its version just before a concurrent delete of the code's old link
/// (and then waited for it) leaves behind, made by hand with the trigger off: a live link
/// below its code's tombstone. Returns the live link's id.
async fn raced_link(app: &TestApp, code: &str) -> i64 {
    sqlx::raw_sql(&format!(
        "SELECT setval('link_version_seq', 100);
         INSERT INTO links (code, destination, deleted_at)
             VALUES ('{code}', 'https://example.com/old', now());
         ALTER TABLE links DISABLE TRIGGER links_version;
         INSERT INTO links (code, destination, version)
             VALUES ('{code}', 'https://example.com/new', 100);
         ALTER TABLE links ENABLE TRIGGER links_version;
         INSERT INTO edge_outbox (code) VALUES ('{code}');"
    ))
    .execute(&app.db)
    .await
    .expect("setup");
    sqlx::query_scalar("SELECT id FROM links WHERE code = $1 AND deleted_at IS NULL")
        .bind(code)
        .fetch_one(&app.db)
        .await
        .expect("live link")
}

/// An edit that commits while the deliverer re-versions the link it read must not have the
/// old state sent under the new version (the edit's own delivery would then be stale at the
/// edge, and the old destination stay there).
#[tokio::test]
async fn an_edit_during_a_reversioning_is_what_reaches_the_edge() {
    let (edge, url) = FakeEdge::default().start().await;
    let database_url = new_database().await;
    let app = app_with(&config(&database_url)).await;
    let id = raced_link(&app, "edited").await;
    // The edit takes the row's lock first, so the deliverer's re-versioning waits for it.
    let mut edit = app.db.begin().await.expect("begin");
    sqlx::query("SELECT id FROM links WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *edit)
        .await
        .expect("lock");

    let delivering = origin_with_edge(&database_url, &url).await;
    for _ in 0..600 {
        let waiting = crate::support::lock_waiters(&app.db, "UPDATE links SET version = 0%").await;
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query("UPDATE links SET destination = 'https://example.com/edited' WHERE id = $1")
        .bind(id)
        .execute(&mut *edit)
        .await
        .expect("edit");
    sqlx::query("INSERT INTO edge_outbox (code) VALUES ('edited')")
        .execute(&mut *edit)
        .await
        .expect("outbox");
    edit.commit().await.expect("commit");

    eventually("the outbox delivered", || {
        edge.get("edited")
            .filter(|(_, record)| record.is_some())
            .map(drop)
    })
    .await;
    for _ in 0..600 {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM edge_outbox")
            .fetch_one(&delivering.db)
            .await
            .expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (version, record) = edge.get("edited").expect("at the edge");
    assert_eq!(
        record.map(|record| record["destination"].clone()),
        Some(json!("https://example.com/edited")),
        "version {version}"
    );
    assert_eq!(versions(&app, "edited").await[1], (version as i64, true));
}

/// The re-versioning does not hold the link's row lock while the batch is at the edge: an
/// edit of the link goes through at once.
#[tokio::test]
async fn a_reversioning_does_not_block_edits_while_the_edge_answers() {
    let (edge, url) = FakeEdge {
        delay: Duration::from_secs(8),
        ..FakeEdge::default()
    }
    .start()
    .await;
    let database_url = new_database().await;
    let app = app_with(&config(&database_url)).await;
    raced_link(&app, "slowedge").await;
    let delivering = origin_with_edge(&database_url, &url).await;
    eventually("the delivery is under way", || {
        (edge.in_flight.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let edited = delivering
        .api(
            axum::http::Method::PATCH,
            "/api/v1/links/slowedge",
            Some(json!({"destination": "https://example.com/patched"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK);
    // Done while the first batch is still at the edge (none answered yet): the edit did not
    // wait for it.
    assert_eq!(
        (
            edge.in_flight.load(Ordering::SeqCst),
            edge.requests.lock().expect("lock").len()
        ),
        (1, 0),
        "the edit waited for the edge"
    );
    eventually("the edit at the edge", || {
        edge.get("slowedge").filter(|(_, record)| {
            record.as_ref().map(|r| r["destination"].clone())
                == Some(json!("https://example.com/patched"))
        })
    })
    .await;
}

/// A live link whose stored row cannot make a record (a value written around the API) is
/// withdrawn from the edge: a tombstone at the row's version replaces the older record the
/// edge held, so a takedown written beside the bad value stops the redirect at the edge as it
/// does at the origin. The fault is noted in `edge_outbox_dead`. Parked unsent, the edge
/// kept redirecting to the link's last good state for as long as KV held it.
#[tokio::test]
async fn a_link_whose_row_cannot_make_a_record_is_withdrawn_from_the_edge() {
    let (edge, url) = FakeEdge::default().start().await;
    let app = origin_with_edge(&new_database().await, &url).await;
    app.create(json!({"destination": "https://example.com/", "code": "spoiled"}))
        .await;
    let (held, _) = eventually("the link at the edge", || edge.get("spoiled")).await;

    // As a script would write it: a bad value beside a takedown, and the row in the outbox.
    sqlx::raw_sql(
        "UPDATE links SET utm = '\"not an object\"', disabled = true WHERE code = 'spoiled';
         INSERT INTO edge_outbox (code) VALUES ('spoiled');",
    )
    .execute(&app.db)
    .await
    .expect("a row written around the API");
    let (version, record) = eventually("the change at the edge", || {
        edge.get("spoiled").filter(|(version, _)| *version > held)
    })
    .await;
    assert_eq!(record, None, "withdrawn, not left at its old state");
    assert_eq!(versions(&app, "spoiled").await, [(version as i64, true)]);
    let noted: Vec<(String, String)> = sqlx::query_as("SELECT code, error FROM edge_outbox_dead")
        .fetch_all(&app.db)
        .await
        .expect("noted");
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert_eq!(noted[0].0, "spoiled");
    assert!(noted[0].1.contains("utm"), "{noted:?}");
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM edge_outbox")
        .fetch_one(&app.db)
        .await
        .expect("outbox");
    assert_eq!(outbox, 0);
}
