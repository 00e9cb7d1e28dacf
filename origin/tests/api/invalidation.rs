//! Every origin's redirect cache follows the changes made through any other origin on the
//! same database within a second (LISTEN/NOTIFY), and drops everything when the listening
//! connection was lost, or went silent. The test apps cache for 300 s, so only a
//! notification makes these pass in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{TestApp, app_on, new_database, random_hex};

/// How the listening connection names itself in `pg_stat_activity`.
const LISTENER: &str = "kurz-origin cache invalidation";

/// Waits until `app` acts on notifications: a link inserted behind its back (in SQL) after it
/// cached "no such code" becomes visible. From then on its listener is past the cache clear
/// that follows each (re)connection.
async fn wait_for_listener(app: &TestApp) {
    let probe = format!("probe-{}", random_hex());
    assert_eq!(
        app.visit(Method::GET, &format!("/{probe}")).await.status,
        StatusCode::NOT_FOUND
    );
    sqlx::query("INSERT INTO links (code, destination) VALUES ($1, 'https://example.com/probe')")
        .bind(&probe)
        .execute(&app.db)
        .await
        .expect("insert a probe link");
    poll_until(app, &probe, Duration::from_secs(10), |status, _| {
        status == StatusCode::FOUND
    })
    .await;
}

/// Polls `app` for `/code` until `expected` says yes, failing after `within`.
/// Far below the caches' 300 s.
const NOTIFIED_WITHIN: Duration = Duration::from_secs(20);

async fn poll_until(
    app: &TestApp,
    code: &str,
    within: Duration,
    expected: impl Fn(StatusCode, Option<&str>) -> bool,
) {
    let started = Instant::now();
    loop {
        let response = app.visit(Method::GET, &format!("/{code}")).await;
        let location = response
            .headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok());
        if expected(response.status, location) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "/{code} still {} {location:?} after {within:?}",
            response.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Within seconds, where the caches (positive and negative) keep entries for 300 s: only the
/// notification can have done it. (The deadline is generous: a loaded machine stalls.)
#[tokio::test]
async fn changes_through_one_origin_reach_another_by_notification() {
    let database_url = new_database().await;
    let a = app_on(&database_url).await;
    let b = app_on(&database_url).await;
    let background: Vec<_> = [&a, &b]
        .iter()
        .flat_map(|app| app.state.spawn_background())
        .collect();
    wait_for_listener(&a).await;
    wait_for_listener(&b).await;

    a.create(json!({"destination": "https://example.com/before", "code": "moving"}))
        .await;
    // B caches the link, and "no such code" for a code A creates next.
    let response = b.visit(Method::GET, "/moving").await;
    assert_eq!(
        response.header(&header::LOCATION),
        "https://example.com/before"
    );
    assert_eq!(
        b.visit(Method::GET, "/arriving").await.status,
        StatusCode::NOT_FOUND
    );

    let response = a
        .api(
            Method::PATCH,
            "/api/v1/links/moving",
            Some(json!({"destination": "https://example.com/after"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    poll_until(&b, "moving", NOTIFIED_WITHIN, |_, location| {
        location == Some("https://example.com/after")
    })
    .await;

    a.create(json!({"destination": "https://example.com/new", "code": "arriving"}))
        .await;
    poll_until(&b, "arriving", NOTIFIED_WITHIN, |status, _| {
        status == StatusCode::FOUND
    })
    .await;

    let response = a.api(Method::DELETE, "/api/v1/links/moving", None).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    poll_until(&b, "moving", NOTIFIED_WITHIN, |status, _| {
        status == StatusCode::NOT_FOUND
    })
    .await;
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn a_lost_listening_connection_drops_the_whole_cache() {
    let database_url = new_database().await;
    let app = app_on(&database_url).await;
    let background = app.state.spawn_background();
    app.create(json!({"destination": "https://example.com/before", "code": "quiet"}))
        .await;
    // Past the notification of that insert too (they arrive in commit order).
    wait_for_listener(&app).await;
    let response = app.visit(Method::GET, "/quiet").await;
    assert_eq!(
        response.header(&header::LOCATION),
        "https://example.com/before"
    );

    // A change whose notification never arrives, as one sent while the connection was down:
    // made with triggers off (`session_replication_role = replica`). The cache must keep
    // serving its entry. On a loaded machine the whole cache may have been dropped for a
    // reason of its own meanwhile (a ping to the listener unanswered for 5 s): then the
    // destination is put back with triggers on and the setup tried again, a few times.
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    let mut kept = false;
    for _ in 0..3 {
        sqlx::query("SET session_replication_role = replica")
            .execute(&mut conn)
            .await
            .expect("triggers off");
        sqlx::query(
            "UPDATE links SET destination = 'https://example.com/after' WHERE code = 'quiet'",
        )
        .execute(&mut conn)
        .await
        .expect("update");
        let response = app.visit(Method::GET, "/quiet").await;
        if response.header(&header::LOCATION) == "https://example.com/before" {
            kept = true;
            break;
        }
        sqlx::query("SET session_replication_role = origin")
            .execute(&mut conn)
            .await
            .expect("triggers on");
        sqlx::query(
            "UPDATE links SET destination = 'https://example.com/before' WHERE code = 'quiet'",
        )
        .execute(&mut conn)
        .await
        .expect("update");
        wait_for_listener(&app).await;
        poll_until(&app, "quiet", Duration::from_secs(5), |_, location| {
            location == Some("https://example.com/before")
        })
        .await;
    }
    assert!(kept, "without a notification the cache keeps its entry");

    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(LISTENER)
    .fetch_all(&mut conn)
    .await
    .expect("terminate the listener");
    assert_eq!(terminated, [true]);
    // Generous: a reconnect on a loaded 2-core machine; the second's bound is another test's.
    poll_until(&app, "quiet", Duration::from_secs(15), |_, location| {
        location == Some("https://example.com/after")
    })
    .await;
    // And it listens again: a change made elsewhere (triggers on) arrives as before.
    wait_for_listener(&app).await;
    sqlx::query("SET session_replication_role = origin")
        .execute(&mut conn)
        .await
        .expect("triggers on");
    sqlx::query("UPDATE links SET destination = 'https://example.com/later' WHERE code = 'quiet'")
        .execute(&mut conn)
        .await
        .expect("update");
    poll_until(&app, "quiet", Duration::from_secs(5), |_, location| {
        location == Some("https://example.com/later")
    })
    .await;
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

/// A TCP proxy to PostgreSQL that can make the cache listener's connections go silent: they
/// stay open but carry nothing more either way, like a connection a NAT or firewall forgot
/// (no FIN, no RST). Other connections, and the listener's later ones, pass untouched.
struct SilencingProxy {
    address: std::net::SocketAddr,
    /// Connections numbered below this are silenced (if they are the listener's).
    silence_below: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
}

impl SilencingProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = Self {
            address: listener.local_addr().expect("address"),
            silence_below: Arc::new(AtomicU64::new(0)),
            next: Arc::new(AtomicU64::new(0)),
        };
        let (silence_below, next) = (proxy.silence_below.clone(), proxy.next.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = next.fetch_add(1, Ordering::SeqCst);
                let silence_below = silence_below.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let is_listener = Arc::new(AtomicBool::new(false));
                    let silenced = {
                        let is_listener = is_listener.clone();
                        move || {
                            is_listener.load(Ordering::SeqCst)
                                && id < silence_below.load(Ordering::SeqCst)
                        }
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let spot = Some(is_listener);
                    tokio::join!(
                        pipe(client_read, server_write, spot, silenced.clone()),
                        pipe(server_read, client_write, None, silenced),
                    );
                });
            }
        });
        proxy
    }

    /// Silences the listener's connections open now.
    fn silence_the_listener(&self) {
        self.silence_below
            .store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes, or forever once `silenced` says so; `spot`
/// marks the connection as the listener's when its start-up names the listener.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    spot: Option<Arc<AtomicBool>>,
    silenced: impl Fn() -> bool,
) {
    let mut start = Vec::new();
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        if let Some(is_listener) = &spot
            && start.len() < 4096
        {
            start.extend_from_slice(&buffer[..read]);
            if start
                .windows(LISTENER.len())
                .any(|w| w == LISTENER.as_bytes())
            {
                is_listener.store(true, Ordering::SeqCst);
            }
        }
        if silenced() {
            // Keep both ends open, carry nothing.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_listening_connection_gone_silent_is_noticed_and_the_cache_dropped() {
    let database_url = new_database().await;
    let (base, _) = database_url.rsplit_once('/').expect("URL with a database");
    let upstream = base
        .rsplit_once('@')
        .map_or(base, |(_, host)| host)
        .trim_start_matches("postgres://")
        .parse()
        .expect("the test cluster's address is an IP and port");
    let proxy = SilencingProxy::start(upstream).await;
    let proxied = database_url.replacen(&upstream.to_string(), &proxy.address.to_string(), 1);
    assert_ne!(proxied, database_url);
    let app = app_on(&proxied).await;
    app.state.set_invalidation_ping(Duration::from_millis(300));
    let background = app.state.spawn_background();
    app.create(json!({"destination": "https://example.com/before", "code": "hushed"}))
        .await;
    wait_for_listener(&app).await;
    let response = app.visit(Method::GET, "/hushed").await;
    assert_eq!(
        response.header(&header::LOCATION),
        "https://example.com/before"
    );

    proxy.silence_the_listener();
    // Notified as usual, but the notification cannot get through the silent connection.
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    sqlx::query("UPDATE links SET destination = 'https://example.com/after' WHERE code = 'hushed'")
        .execute(&mut conn)
        .await
        .expect("update");
    // A ping after 0.3 s of silence, unanswered for 5 s: a new connection, the cache dropped.
    poll_until(&app, "hushed", Duration::from_secs(10), |_, location| {
        location == Some("https://example.com/after")
    })
    .await;
    wait_for_listener(&app).await;
    background.iter().for_each(tokio::task::JoinHandle::abort);
}
