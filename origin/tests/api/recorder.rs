//! The recorder of the origin's own clicks: a shutdown stores what is queued (or counts it as
//! shed when PostgreSQL is gone), and an event PostgreSQL refuses is parked without holding
//! up the events behind it.

use std::time::{Duration, Instant};

use devpg::{Cluster, Durability};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource};
use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::support::{config, new_database, spawn_app};

fn click(id: String) -> ClickEvent {
    ClickEvent {
        id,
        link_id: 1,
        code: ShortCode::parse("clicked").expect("code"),
        at: OffsetDateTime::now_utc(),
        country: Some("DE".to_owned()),
        referrer: None,
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0".to_owned()),
        qr: false,
        head: false,
        source: ClickSource::Origin,
        visitor: None,
    }
}

async fn stored_clicks(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM clicks")
        .fetch_one(db)
        .await
        .expect("count clicks")
}

/// An origin serving on a free port until the returned sender is used; the handle yields
/// what `serve_with` returned.
async fn serve(
    state: &origin::State,
    config: origin::config::Config,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = state.clone();
    let served = tokio::spawn(async move {
        let shutdown = async {
            stopped.await.ok();
        };
        origin::serve_with(state, &config, listener, shutdown).await
    });
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("http://{address}/ready"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return (stop, served);
        }
        assert!(Instant::now() < deadline, "the origin never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_shutdown_stores_every_queued_click() {
    let database_url = new_database().await;
    let state = origin::State::new(&config(&database_url)).expect("state");
    let (stop, served) = serve(&state, config(&database_url)).await;
    const SENT: i64 = 5_000;
    for n in 0..SENT {
        state.record_click(click(format!("drain-{n}")));
    }
    stop.send(()).expect("stop");
    served.await.expect("join").expect("serve");

    let db = PgPool::connect(&database_url).await.expect("connect");
    assert_eq!(stored_clicks(&db).await, SENT);
    assert_eq!(state.clicks_shed(), 0);
    // Once stopped, a click is shed and counted, not silently dropped.
    state.record_click(click("late".to_owned()));
    assert_eq!(state.clicks_shed(), 1);
}

#[tokio::test]
async fn a_shutdown_with_the_database_gone_counts_the_unstored_clicks_as_shed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(dir.path(), Durability::Throwaway).expect("start PostgreSQL");
    let database_url = cluster.url("postgres");
    let state = origin::State::new(&config(&database_url)).expect("state");
    let (stop, served) = serve(&state, config(&database_url)).await;
    const BEFORE: i64 = 300;
    const AFTER: i64 = 2_000;
    for n in 0..BEFORE {
        state.record_click(click(format!("before-{n}")));
    }
    // Stored while the database is up...
    let db = PgPool::connect(&database_url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_clicks(&db).await < BEFORE {
        assert!(Instant::now() < deadline, "clicks not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await;
    // ... and none after it is gone, with the shutdown under way.
    cluster.stop().expect("stop PostgreSQL");
    for n in 0..AFTER {
        state.record_click(click(format!("after-{n}")));
    }
    let started = Instant::now();
    stop.send(()).expect("stop");
    served.await.expect("join").expect("serve");
    assert!(
        started.elapsed() < origin::SHUTDOWN_DRAIN + Duration::from_secs(3),
        "the shutdown took {:?}",
        started.elapsed()
    );

    cluster
        .restart(Durability::Throwaway)
        .expect("restart PostgreSQL");
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks")
        .fetch_one(&mut conn)
        .await
        .expect("count clicks");
    let shed = i64::try_from(state.clicks_shed()).expect("shed");
    assert_eq!(
        stored + shed,
        BEFORE + AFTER,
        "stored {stored} + shed {shed}"
    );
    assert!(shed > 0, "the database was gone, yet nothing was shed");
}

#[tokio::test]
async fn a_click_the_database_refuses_is_parked_and_the_others_are_stored() {
    let app = spawn_app().await;
    let background = app.state.spawn_background();
    // PostgreSQL refuses a NUL byte in text ("invalid byte sequence for encoding UTF8").
    let mut poison = click("poison".to_owned());
    poison.user_agent = Some("Mozilla/5.0\0".to_owned());
    // One batch (the recorder waits 200 ms for company): good, poison, good; then more.
    for n in 0..10 {
        app.state.record_click(click(format!("ahead-{n}")));
    }
    app.state.record_click(poison);
    for n in 0..10 {
        app.state.record_click(click(format!("behind-{n}")));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..10 {
        app.state.record_click(click(format!("later-{n}")));
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_clicks(&app.db).await < 30 {
        assert!(
            Instant::now() < deadline,
            "only {} of 30 good clicks stored",
            stored_clicks(&app.db).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_clicks(&app.db).await, 30);
    let parked: Vec<(String, String)> =
        sqlx::query_as("SELECT error, event::text FROM clicks_parked")
            .fetch_all(&app.db)
            .await
            .expect("parked clicks");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].1.contains(r#""id":"poison""#), "{parked:?}");
    assert!(parked[0].0.contains("0x00"), "{parked:?}");
    assert_eq!(app.state.clicks_parked(), 1);
    assert_eq!(app.state.clicks_shed(), 0);
    background.iter().for_each(tokio::task::JoinHandle::abort);
}
