//! Click totals exact at any load (#16): clicks of the origin's redirects that find the
//! recorder's queue full are counted into the rollups without their raw event, so the stats
//! API and the links list count every redirect; only the details are shed, and `/health`
//! says how many. The overflow's map is bounded, survives a database outage, and is written
//! by the shutdown.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use devpg::{Cluster, Durability};
use serde_json::{Value, json};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::support::{TestApp, app_with, config, new_database};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// An app on a new database whose recorder queues at most `queue` clicks.
async fn app_with_queue(database_url: &str, queue: u32) -> TestApp {
    let mut config = config(database_url);
    config.click_queue = queue;
    app_with(&config).await
}

fn click(link_id: i64, code: &str, n: u64, at: OffsetDateTime) -> ClickEvent {
    ClickEvent {
        id: format!("overflow-{link_id}-{n}"),
        link_id,
        code: ShortCode::parse(code).expect("code"),
        at,
        country: Some("DE".to_owned()),
        referrer: None,
        user_agent: Some(FIREFOX.to_owned()),
        qr: false,
        head: false,
        source: ClickSource::Origin,
        visitor: None,
        variant: None,
    }
}

async fn create_link(app: &TestApp, code: &str) -> i64 {
    app.create(json!({"destination": "https://example.com/overflow", "code": code}))
        .await["id"]
        .as_i64()
        .expect("id")
}

async fn raw_clicks(db: &PgPool) -> u64 {
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks")
        .fetch_one(db)
        .await
        .expect("count clicks");
    stored.unsigned_abs()
}

async fn health(app: &TestApp) -> Value {
    let response = app.visit(Method::GET, "/health").await;
    assert_eq!(response.status, StatusCode::OK);
    response.json()
}

/// Waits until every one of `sent` clicks is either stored raw or counted without details,
/// then counts the stored ones into the rollups; returns the raw clicks stored.
async fn settled(app: &TestApp, sent: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let raw = raw_clicks(&app.db).await;
        let details_shed = app.state.clicks_details_shed();
        if raw + details_shed == sent && app.state.clicks_overflow_waiting().0 == 0 {
            app.state.count_clicks().await.expect("count");
            return raw;
        }
        assert!(
            raw + details_shed <= sent,
            "{raw} stored + {details_shed} counted > {sent} sent"
        );
        assert!(
            Instant::now() < deadline,
            "only {raw} stored + {details_shed} counted of {sent}; waiting {:?}, shed {}",
            app.state.clicks_overflow_waiting(),
            app.state.clicks_shed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stats(app: &TestApp, path: &str) -> Value {
    let response = app.api(Method::GET, path, None).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()["totals"].clone()
}

/// The link's (total, last 7 days) in the links list.
async fn click_counts(app: &TestApp, code: &str) -> (u64, u64) {
    let response = app.api(Method::GET, "/api/v1/links?limit=100", None).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    let link = body["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|link| link["code"] == code)
        .cloned()
        .expect("the link is listed");
    (
        link["click_counts"]["total"].as_u64().expect("total"),
        link["click_counts"]["last_7_days"]
            .as_u64()
            .expect("7 days"),
    )
}

#[tokio::test]
async fn a_burst_far_over_the_queue_is_counted_exactly_and_only_details_are_shed() {
    let app = app_with_queue(&new_database().await, 100).await;
    create_link(&app, "burst").await;
    let background = app.state.spawn_background();
    // People's clicks, QR scans and bots, as the rollups count them apart.
    const SENT: u64 = 3_000;
    let (mut people, mut scans, mut bots) = (0, 0, 0);
    for n in 0..SENT {
        let (path, agent) = match n % 10 {
            0 => {
                scans += 1;
                ("/burst?qr=1", Some(FIREFOX))
            }
            1 => {
                bots += 1;
                ("/burst", Some(GOOGLEBOT))
            }
            2 => {
                bots += 1;
                ("/burst", None)
            }
            _ => {
                people += 1;
                ("/burst", Some(FIREFOX))
            }
        };
        let mut request = Request::builder().method(Method::GET).uri(path);
        if let Some(agent) = agent {
            request = request.header(header::USER_AGENT, agent);
        }
        let response = app
            .send(request.body(Body::empty()).expect("request"))
            .await;
        assert_eq!(response.status, StatusCode::FOUND, "{}", response.text());
    }

    let raw = settled(&app, SENT).await;
    let details_shed = app.state.clicks_details_shed();
    assert!(
        details_shed > SENT / 2,
        "a burst 30 times the queue overflowed only {details_shed} clicks"
    );
    let health = health(&app).await;
    assert_eq!(health["clicks_details_shed"], SENT - raw, "{health}");
    assert_eq!(health["clicks_shed"], 0, "{health}");
    assert_eq!(health["clicks_overflow_waiting"], 0, "{health}");

    let link = stats(&app, "/api/v1/links/burst/stats?interval=day&bots=true").await;
    assert_eq!(
        (&link["clicks"], &link["qr_scans"], &link["bots"]),
        (&json!(people), &json!(scans), &json!(bots)),
        "{link}"
    );
    assert_eq!(link["total"], SENT, "{link}");
    // The stats say how many of the counted visits have no details: the breakdowns (here the
    // devices, which every stored click has) fall short of the total by as many.
    assert_eq!(link["details_shed"], details_shed, "{link}");
    let answer = app
        .api(
            Method::GET,
            "/api/v1/links/burst/stats?interval=day&bots=true",
            None,
        )
        .await
        .json();
    let devices: u64 = answer["top"]["device"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|device| device["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(devices, SENT - details_shed, "{answer}");
    let workspace = stats(&app, "/api/v1/stats?interval=day&bots=true").await;
    assert_eq!(workspace["total"], SENT, "{workspace}");
    assert_eq!(workspace["details_shed"], details_shed, "{workspace}");
    // The workspace's top links and tags read the per-day rollup of its links, which the
    // overflow's counts reach too.
    let response = app
        .api(Method::GET, "/api/v1/stats?interval=day&bots=true", None)
        .await;
    let top_links = response.json()["top_links"].clone();
    assert_eq!(top_links[0]["count"], SENT, "{top_links}");
    // The list counts people's clicks and scans, not bots.
    assert_eq!(
        click_counts(&app, "burst").await,
        (people + scans, people + scans)
    );
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn the_overflow_map_is_bounded_in_links_and_what_it_cannot_hold_is_counted_as_lost() {
    // A queue of 10 clicks: a map of 20 (link, hour) buckets.
    let app = app_with_queue(&new_database().await, 10).await;
    let at = OffsetDateTime::now_utc();
    // Clicks count for links that exist (a click of no link counts for nothing).
    const LINKS: i64 = 500;
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO links (code, destination)
         SELECT 'many' || i, 'https://example.com/many' FROM generate_series(1, $1) AS i
         RETURNING id",
    )
    .bind(LINKS)
    .fetch_all(&app.db)
    .await
    .expect("links");
    // Nothing stores yet: 10 clicks fill the queue, then each click of a new link takes a
    // bucket until 20 are taken, and a click of any further link is lost.
    for &link in &ids {
        app.state.record_click(click(link, "many", 0, at));
    }
    // The links that have a bucket keep counting, however many their clicks.
    for n in 1..=1_000 {
        app.state
            .record_click(click(ids[10 + (n % 20) as usize], "many", n, at));
    }
    assert_eq!(app.state.clicks_overflow_waiting(), (20 + 1_000, 20));
    assert_eq!(app.state.clicks_shed(), LINKS as u64 - 10 - 20);
    assert_eq!(health(&app).await["clicks_shed"], LINKS - 30);

    let background = app.state.spawn_background();
    let raw = settled(&app, 10 + 20 + 1_000).await;
    assert_eq!(raw, 10);
    let counted: i64 =
        sqlx::query_scalar("SELECT sum(clicks + qr_scans + bots)::int8 FROM link_stats_hourly")
            .fetch_one(&app.db)
            .await
            .expect("rollups");
    assert_eq!(counted, 10 + 20 + 1_000);
    // The map is empty again: new links find room.
    assert_eq!(app.state.clicks_overflow_waiting(), (0, 0));
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn a_database_outage_while_clicks_overflow_loses_no_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(dir.path(), Durability::Throwaway).expect("start PostgreSQL");
    let app = app_with_queue(&cluster.url("postgres"), 50).await;
    let link_id = create_link(&app, "outage").await;
    let background = app.state.spawn_background();
    cluster.stop().expect("stop PostgreSQL");

    const SENT: u64 = 1_000;
    let at = OffsetDateTime::now_utc();
    for n in 0..SENT {
        app.state.record_click(click(link_id, "outage", n, at));
    }
    // The writes of the overflow fail every second meanwhile; their counts go back into the
    // map each time.
    // Seen between two writes (one under way holds the bucket out of the map).
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.state.clicks_overflow_waiting() != (SENT - 50, 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            app.state.clicks_overflow_waiting()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.state.clicks_details_shed(), 0);

    cluster
        .restart(Durability::Throwaway)
        .expect("restart PostgreSQL");
    let raw = settled(&app, SENT).await;
    assert_eq!(raw, 50);
    assert_eq!(app.state.clicks_shed(), 0);
    assert_eq!(app.state.clicks_in_doubt(), 0);
    let link = stats(&app, "/api/v1/links/outage/stats?interval=day").await;
    assert_eq!(link["clicks"], SENT, "{link}");
    assert_eq!(click_counts(&app, "outage").await, (SENT, SENT));
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn a_shutdown_writes_the_overflowing_counts() {
    let database_url = new_database().await;
    let mut config = config(&database_url);
    config.click_queue = 20;
    let app = app_with(&config).await;
    let link_id = create_link(&app, "closing").await;
    let (stop, served, _) = crate::recorder::serve(&app.state, config.clone()).await;
    const SENT: u64 = 2_000;
    let at = OffsetDateTime::now_utc();
    for n in 0..SENT {
        app.state.record_click(click(link_id, "closing", n, at));
    }
    stop.send(()).expect("stop");
    served.await.expect("join").expect("serve");

    // The shutdown closed the app's pool.
    let db = PgPool::connect(&database_url).await.expect("connect");
    let raw = raw_clicks(&db).await;
    assert_eq!(app.state.clicks_shed(), 0);
    assert_eq!(app.state.clicks_details_shed(), SENT - raw);
    assert!(raw < SENT, "nothing overflowed");
    // Once stopped, a click is neither stored nor counted, and counted as lost.
    app.state.record_click(click(link_id, "closing", SENT, at));
    assert_eq!(app.state.clicks_shed(), 1);
    assert_eq!(app.state.clicks_overflow_waiting(), (0, 0));

    let after = origin::State::new(&config).expect("state");
    after.count_clicks().await.expect("count");
    let counted: i64 =
        sqlx::query_scalar("SELECT sum(clicks)::int8 FROM link_stats_hourly WHERE link_id = $1")
            .bind(link_id)
            .fetch_one(&db)
            .await
            .expect("rollups");
    assert_eq!(counted.unsigned_abs(), SENT);
}

#[tokio::test]
async fn a_click_limit_holds_and_every_redirect_counts_when_clicks_overflow() {
    // A queue of 1: nearly every click of the burst overflows. The limit is taken in
    // PostgreSQL before the redirect, never from stored clicks, so it is untouched by that.
    let app = app_with_queue(&new_database().await, 1).await;
    let link = app
        .create(json!({"destination": "https://example.com/ten", "code": "ten", "max_clicks": 10}))
        .await;
    // Nothing stores until the burst is over: one click is queued, the others overflow.
    let mut redirected = 0;
    for _ in 0..40 {
        let request = Request::builder()
            .uri("/ten")
            .header(header::USER_AGENT, FIREFOX)
            .body(Body::empty())
            .expect("request");
        let response = app.send(request).await;
        match response.status {
            StatusCode::FOUND => redirected += 1,
            StatusCode::GONE => {}
            other => panic!("{other}: {}", response.text()),
        }
    }
    assert_eq!(redirected, 10);
    assert_eq!(app.state.clicks_overflow_waiting(), (9, 1));
    let background = app.state.spawn_background();
    settled(&app, 10).await;
    let shown = app.api(Method::GET, "/api/v1/links/ten", None).await.json();
    assert_eq!(shown["clicks_used"], 10, "{shown}");
    let stats = stats(&app, "/api/v1/links/ten/stats?interval=day").await;
    assert_eq!(stats["clicks"], 10, "{stats}");
    assert_eq!(click_counts(&app, "ten").await, (10, 10));
    assert_eq!(app.state.clicks_details_shed(), 9, "{link}");
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn a_write_of_the_overflow_unanswered_at_the_shutdown_deadline_is_counted_in_doubt() {
    let app = app_with_queue(&new_database().await, 5).await;
    let link_id = create_link(&app, "hung").await;
    let background = app.state.spawn_background();
    // The overflow's writes update link_click_totals: they wait on this lock.
    let mut locker = app.db.begin().await.expect("begin");
    sqlx::query("LOCK TABLE link_click_totals IN EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .expect("lock");
    let at = OffsetDateTime::now_utc();
    for n in 0..100 {
        app.state.record_click(click(link_id, "hung", n, at));
    }
    // The periodic write takes the overflowing counts and waits on the lock.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for n in 100..110 {
        app.state.record_click(click(link_id, "hung", n, at));
    }
    app.state.drain_clicks(Duration::from_millis(500)).await;
    locker.rollback().await.expect("release the lock");
    background.iter().for_each(tokio::task::JoinHandle::abort);

    // Every click is accounted for once: stored, or counted in doubt (the write may have
    // committed), or lost (what the map held when the write was given up on).
    let raw = raw_clicks(&app.db).await;
    let (in_doubt, shed) = (app.state.clicks_in_doubt(), app.state.clicks_shed());
    assert_eq!(app.state.clicks_details_shed(), 0);
    assert!(in_doubt > 0, "raw {raw}, shed {shed}");
    assert_eq!(
        raw + in_doubt + shed,
        110,
        "raw {raw}, in doubt {in_doubt}, shed {shed}"
    );
    assert_eq!(app.state.clicks_overflow_waiting(), (0, 0));
}
