//! The recorder of the origin's own clicks: a shutdown stores what is queued (or counts it as
//! shed when PostgreSQL is gone), and an event PostgreSQL refuses is parked without holding
//! up the events behind it.

use std::time::{Duration, Instant};

use devpg::{Cluster, Durability};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource};
use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

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
        variant: None,
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
pub(crate) async fn serve(
    state: &origin::State,
    config: origin::config::Config,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    std::net::SocketAddr,
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
            return (stop, served, address);
        }
        assert!(Instant::now() < deadline, "the origin never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_shutdown_stores_every_queued_click() {
    let database_url = new_database().await;
    let state = origin::State::new(&config(&database_url)).expect("state");
    let (stop, served, _) = serve(&state, config(&database_url)).await;
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
async fn a_request_that_never_ends_holds_up_the_shutdown_only_for_its_grace() {
    let database_url = new_database().await;
    let mut config = config(&database_url);
    config.shutdown_grace_secs = 1;
    let state = origin::State::new(&config).expect("state");
    let (stop, served, address) = serve(&state, config.clone()).await;
    // A client that sends a request's head and never its whole body: the request stays in
    // flight, waiting for the rest.
    let mut held = TcpStream::connect(address).await.expect("connect");
    held.write_all(
        b"POST /api/v1/session HTTP/1.1\r\nhost: kurz.test\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"username\"",
    )
    .await
    .expect("send a partial request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    const SENT: i64 = 2_000;
    for n in 0..SENT {
        state.record_click(click(format!("held-{n}")));
    }
    let started = Instant::now();
    stop.send(()).expect("stop");
    let budget = config.shutdown_grace() + origin::SHUTDOWN_DRAIN + Duration::from_secs(3);
    tokio::time::timeout(budget, served)
        .await
        .expect("the shutdown waited for the held request past its grace")
        .expect("join")
        .expect("serve");
    assert!(
        started.elapsed() >= config.shutdown_grace(),
        "the request in flight was not given its grace: {:?}",
        started.elapsed()
    );

    let db = PgPool::connect(&database_url).await.expect("connect");
    assert_eq!(stored_clicks(&db).await, SENT);
    assert_eq!(state.clicks_shed(), 0);
    drop(held);
}

#[tokio::test]
async fn a_shutdown_with_the_database_gone_counts_the_unstored_clicks_as_shed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(dir.path(), Durability::Throwaway).expect("start PostgreSQL");
    let database_url = cluster.url("postgres");
    let state = origin::State::new(&config(&database_url)).expect("state");
    let (stop, served, _) = serve(&state, config(&database_url)).await;
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

/// A month's partition this origin knew that is gone (dropped by hand, or lost to a failover
/// or a restore) is made again: its clicks are stored, none parked. Before, PostgreSQL's
/// refusal (SQLSTATE 23514) blamed each event, and every click of the month was parked until
/// the origin restarted.
#[tokio::test]
async fn a_partition_gone_from_under_the_origin_is_made_again() {
    let app = spawn_app().await;
    let background = app.state.spawn_background();
    app.state.record_click(click("first".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_clicks(&app.db).await < 1 {
        assert!(Instant::now() < deadline, "the first click is not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = OffsetDateTime::now_utc();
    let month = format!("clicks_{:04}_{:02}", now.year(), now.month() as u8);
    sqlx::query(&format!("DROP TABLE {month}"))
        .execute(&app.db)
        .await
        .expect("drop the partition");
    for n in 0..10 {
        app.state.record_click(click(format!("after-{n}")));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_clicks(&app.db).await < 10 {
        assert!(
            Instant::now() < deadline,
            "only {} of 10 clicks stored, {} parked",
            stored_clicks(&app.db).await,
            app.state.clicks_parked()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.state.clicks_parked(), 0);
    background.iter().for_each(tokio::task::JoinHandle::abort);
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

/// A click parked before the shutdown's deadline is counted, whatever the rest of its batch
/// came to. Before, a batch whose refused click was parked and whose other half could not be
/// stored until the deadline lost the park from `/health` and the metric (and an unparkable
/// click from the shed).
#[tokio::test]
async fn a_click_parked_before_the_deadline_is_counted() {
    let app = spawn_app().await;
    // One click PostgreSQL refuses for its value, and one it cannot take for as long as the
    // test runs (an outage's error, retried).
    sqlx::query(
        "CREATE FUNCTION refuse_two() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.id = 'refused' THEN
                 RAISE check_violation USING MESSAGE = 'refused by the test';
             END IF;
             IF NEW.id = 'stuck' THEN
                 RAISE serialization_failure USING MESSAGE = 'not now (the test)';
             END IF;
             RETURN NEW;
         END $$",
    )
    .execute(&app.db)
    .await
    .expect("function");
    sqlx::query(
        "CREATE TRIGGER refuse_two BEFORE INSERT ON clicks
         FOR EACH ROW EXECUTE FUNCTION refuse_two()",
    )
    .execute(&app.db)
    .await
    .expect("trigger");
    let background = app.state.spawn_background();
    // One batch (the recorder waits 200 ms for company): refused whole, then in halves.
    app.state.record_click(click("refused".to_owned()));
    app.state.record_click(click("stuck".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks_parked")
            .fetch_one(&app.db)
            .await
            .expect("parked");
        if parked == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the refused click is not parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.state.drain_clicks(Duration::from_millis(300)).await;
    background.iter().for_each(tokio::task::JoinHandle::abort);
    assert_eq!(app.state.clicks_parked(), 1);
    assert_eq!(app.state.clicks_shed(), 1, "the stuck click");
    assert_eq!(stored_clicks(&app.db).await, 0);
}

/// Records `sent` clicks while a transaction holds `clicks_pending` locked, so that their
/// store is under way and waiting when the shutdown's drain (of `within`) reaches its
/// deadline; the lock is let go `release_after` the drain began. Returns the clicks stored.
async fn drain_with_a_store_in_flight(
    app: &crate::support::TestApp,
    sent: i64,
    within: Duration,
    release_after: Duration,
) -> i64 {
    let background = app.state.spawn_background();
    let mut locker = app.db.begin().await.expect("begin");
    sqlx::query("LOCK TABLE clicks_pending IN EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .expect("lock");
    for n in 0..sent {
        app.state.record_click(click(format!("in-flight-{n}")));
    }
    // The recorder waits 200 ms for company, then its store waits on the lock: until it does.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting = crate::support::lock_waiters(&app.db, "%").await;
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state = app.state.clone();
    let drained = tokio::spawn(async move { state.drain_clicks(within).await });
    tokio::time::sleep(release_after).await;
    locker.commit().await.expect("release the lock");
    drained.await.expect("drain");
    background.iter().for_each(tokio::task::JoinHandle::abort);
    stored_clicks(&app.db).await
}

#[tokio::test]
async fn a_store_under_way_at_the_shutdown_deadline_may_finish_and_is_not_counted_as_shed() {
    let app = spawn_app().await;
    // The deadline passes at 0.5 s; the store is let through at 0.8 s, well within its grace
    // (which ends at 2.5 s).
    let stored = drain_with_a_store_in_flight(
        &app,
        100,
        Duration::from_millis(500),
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(stored, 100);
    assert_eq!(app.state.clicks_shed(), 0);
    assert_eq!(app.state.clicks_in_doubt(), 0);
}

#[tokio::test]
async fn a_store_unanswered_past_its_grace_is_counted_in_doubt_not_shed() {
    let app = spawn_app().await;
    // The deadline passes at 0.5 s and the grace at 2.5 s; the lock holds until 4 s.
    let stored = drain_with_a_store_in_flight(
        &app,
        100,
        Duration::from_millis(500),
        Duration::from_secs(4),
    )
    .await;
    // Cut off before its commit, this one was not stored; but the recorder cannot know.
    let in_doubt = i64::try_from(app.state.clicks_in_doubt()).expect("in doubt");
    let shed = i64::try_from(app.state.clicks_shed()).expect("shed");
    assert_eq!((shed, in_doubt), (0, 100), "stored {stored}");
    assert!(stored + shed + in_doubt >= 100 && stored + shed <= 100);
}
