//! Click analytics against a real PostgreSQL: rollups against the raw rows, unique visitors,
//! idempotent re-ingest, retention, time zones, the stats API and CSV export.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource};
use time::{Duration, OffsetDateTime};

use crate::support::{TestApp, hour_start, spawn_app};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const FIREFOX_MAC: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:132.0) Gecko/20100101 Firefox/132.0";
const SLACKBOT: &str = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn event(id: &str, link_id: i64, code: &str, at: OffsetDateTime) -> ClickEvent {
    ClickEvent {
        id: id.to_owned(),
        link_id,
        code: ShortCode::parse(code).expect("code"),
        at,
        country: Some("DE".to_owned()),
        referrer: Some("https://news.example/item".to_owned()),
        user_agent: Some(CHROME.to_owned()),
        qr: false,
        head: false,
        source: ClickSource::Edge,
        visitor: Some(format!("{:032x}", 1)),
        variant: None,
    }
}

async fn link(app: &TestApp, code: &str) -> i64 {
    app.create(json!({"destination": format!("https://example.com/{code}"), "code": code}))
        .await["id"]
        .as_i64()
        .expect("id")
}

async fn stats(app: &TestApp, path: &str) -> Value {
    let response = app.api(Method::GET, path, None).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

/// Moves the days whose daily breakdowns are summed once over (0034) back to `day` and after,
/// as on a deployment whose current UTC day is `day`: a click of those days writes hourly
/// breakdown rows only, until its day is summed.
async fn open_days_from(app: &TestApp, day: time::Date) {
    sqlx::query(
        "UPDATE daily_breakdown_progress SET open_from = $1, summed_before = $1, next_id = 0",
    )
    .bind(day)
    .execute(&app.db)
    .await
    .expect("open days");
}

/// Sums the daily breakdowns of every day before `today` not summed yet, as the counters do
/// once a day is over.
async fn sum_days_before(app: &TestApp, today: time::Date) {
    while app
        .state
        .sum_breakdown_days_step(today)
        .await
        .expect("sum days")
    {}
}

/// The day before which both halves' daily breakdowns are summed, once no day is being summed.
async fn summed_before(app: &TestApp) -> time::Date {
    let rows: Vec<(time::Date, time::Date)> =
        sqlx::query_as("SELECT open_from, summed_before FROM daily_breakdown_progress")
            .fetch_all(&app.db)
            .await
            .expect("progress");
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|row| *row == rows[0] && row.0 == row.1),
        "{rows:?}"
    );
    rows[0].1
}

/// A small deterministic generator, seeded randomly and printed, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("randomness");
        let seed = u64::from_le_bytes(seed) | 1;
        println!("workload seed {seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

#[tokio::test]
async fn rollups_equal_a_group_by_over_the_raw_clicks_after_a_random_workload() {
    let app = spawn_app().await;
    let links = [
        link(&app, "one").await,
        link(&app, "two").await,
        link(&app, "three").await,
    ];
    let mut rng = Rng::new();
    let start = OffsetDateTime::now_utc() - Duration::days(3);
    // The first of the three days has its daily rows written by the batches (late clicks); the
    // other days and today are summed as they are over, which the loop below moves on to at
    // random moments between batches.
    let today = OffsetDateTime::now_utc().date();
    open_days_from(&app, today - Duration::days(2)).await;
    let mut events = Vec::new();
    for i in 0..1_500 {
        let index = rng.below(3) as usize;
        let mut e = event(
            &format!("ev{i}"),
            links[index],
            ["one", "two", "three"][index],
            start + Duration::minutes(rng.below(3 * 24 * 60) as i64),
        );
        e.user_agent = match rng.below(7) {
            0 => None,
            _ => Some(
                rng.pick(&[CHROME, IPHONE, FIREFOX_MAC, SLACKBOT, GOOGLEBOT, CHROME])
                    .to_owned(),
            ),
        };
        e.referrer = match rng.below(4) {
            0 => None,
            _ => Some(
                rng.pick(&[
                    "https://www.google.com/",
                    "https://t.co/x",
                    "https://news.example/a",
                ])
                .to_owned(),
            ),
        };
        e.country = match rng.below(5) {
            0 => None,
            _ => Some(rng.pick(&["DE", "US", "FR"]).to_owned()),
        };
        e.qr = rng.below(5) == 0;
        e.head = rng.below(20) == 0;
        e.visitor = (rng.below(10) != 0).then(|| format!("{:032x}", rng.below(40)));
        events.push(e);
    }
    // Delivered in random batches, a third of them twice (retries), out of order.
    let mut delivered = 0;
    while delivered < events.len() {
        let size = 1 + rng.below(300) as usize;
        let batch = &events[delivered..(delivered + size).min(events.len())];
        app.state.store_clicks(batch).await.expect("store");
        if rng.below(3) == 0 {
            assert_eq!(app.state.store_clicks(batch).await.expect("store again"), 0);
        }
        // Counted into the rollups now and then, as the background counter does; and now
        // and then a day is over.
        if rng.below(4) == 0 {
            app.state.count_clicks().await.expect("count");
        }
        // Now and then a link's tags change: its clicks counted so far move to the new tags
        // at the next count, and those counted before that count under the old ones first.
        if rng.below(3) == 0 {
            let index = rng.below(3) as usize;
            let tags: Vec<&str> = ["red", "blue", "green"]
                .into_iter()
                .filter(|_| rng.below(2) == 0)
                .collect();
            let response = app
                .api(
                    Method::PATCH,
                    &format!("/api/v1/links/{}", ["one", "two", "three"][index]),
                    Some(json!({ "tags": tags })),
                )
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        }
        // A step of summing the days that are over, between batches: late clicks of a day
        // come before, between and after the steps that sum it.
        if rng.below(2) == 0 {
            let today = today + Duration::days(rng.below(2) as i64);
            app.state
                .sum_breakdown_days_step(today)
                .await
                .expect("sum days");
        }
        delivered += size;
    }
    // And one more edit, so that some link is tagged whatever the workload did, and a move is
    // left for the last count.
    let response = app
        .api(
            Method::PATCH,
            "/api/v1/links/one",
            Some(json!({"tags": ["red", "blue"]})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    app.state.count_clicks().await.expect("count");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks_pending")
        .fetch_one(&app.db)
        .await
        .expect("pending");
    assert_eq!(pending, 0);

    let raw: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(raw, 1_500);

    // Hourly counters per link and per workspace, and uniques per UTC day. Below, a key is a
    // link's id, or minus a workspace's id (the workspace of the click's link).
    let mismatches: Vec<(i64, OffsetDateTime, String)> = sqlx::query_as(
        "WITH raw AS (
             SELECT l AS link_id, date_trunc('hour', at) AS hour,
                    count(*) FILTER (WHERE NOT bot AND NOT qr) AS clicks,
                    count(*) FILTER (WHERE NOT bot AND qr) AS qr_scans,
                    count(*) FILTER (WHERE bot) AS bots
             FROM clicks, LATERAL (VALUES (link_id), (-(SELECT workspace_id FROM links WHERE id = link_id))) AS v(l)
             GROUP BY 1, 2
         ), rolled AS (
             SELECT link_id, hour, clicks, qr_scans, bots FROM link_stats_hourly
             UNION ALL
             SELECT -workspace_id, hour, clicks, qr_scans, bots FROM workspace_stats_hourly
         )
         SELECT coalesce(r.link_id, s.link_id), coalesce(r.hour, s.hour), 'counters'
         FROM raw r FULL JOIN rolled s USING (link_id, hour)
         WHERE (r.clicks, r.qr_scans, r.bots) IS DISTINCT FROM (s.clicks, s.qr_scans, s.bots)",
    )
    .fetch_all(&app.db)
    .await
    .expect("compare counters");
    assert!(mismatches.is_empty(), "{mismatches:?}");

    let unique_mismatches: Vec<(i64, time::Date)> = sqlx::query_as(
        "WITH raw AS (
             SELECT l AS link_id, (at AT TIME ZONE 'UTC')::date AS day, count(DISTINCT visitor) AS uniques
             FROM clicks, LATERAL (VALUES (link_id), (-(SELECT workspace_id FROM links WHERE id = link_id))) AS v(l)
             WHERE NOT bot AND visitor IS NOT NULL
             GROUP BY 1, 2
         ), rolled AS (
             SELECT link_id, (hour AT TIME ZONE 'UTC')::date AS day, sum(uniques) AS uniques
             FROM (SELECT link_id, hour, uniques FROM link_stats_hourly
                   UNION ALL
                   SELECT -workspace_id, hour, uniques FROM workspace_stats_hourly) AS u
             GROUP BY 1, 2 HAVING sum(uniques) > 0
         )
         SELECT coalesce(r.link_id, s.link_id), coalesce(r.day, s.day)
         FROM raw r FULL JOIN rolled s USING (link_id, day)
         WHERE r.uniques IS DISTINCT FROM s.uniques",
    )
    .fetch_all(&app.db)
    .await
    .expect("compare uniques");
    assert!(unique_mismatches.is_empty(), "{unique_mismatches:?}");

    // The breakdowns: as the random steps left them, then once today is over too.
    compare_breakdowns(&app).await;
    let tomorrow = today + Duration::DAY;
    sum_days_before(&app, tomorrow).await;
    assert_eq!(summed_before(&app).await, tomorrow);
    compare_breakdowns(&app).await;

    // Each link's visits per UTC day, keyed by its workspace (top links and tags).
    let wrong: i64 = sqlx::query_scalar(
        "WITH raw AS (
             SELECT l.workspace_id, (c.at AT TIME ZONE 'UTC')::date AS day, c.link_id,
                    count(*) FILTER (WHERE NOT c.bot) AS hits, count(*) FILTER (WHERE c.bot) AS bots
             FROM clicks c JOIN links l ON l.id = c.link_id
             GROUP BY 1, 2, 3
         )
         SELECT count(*) FROM raw r FULL JOIN workspace_link_daily d
             USING (workspace_id, day, link_id)
         WHERE (r.hits, r.bots) IS DISTINCT FROM (d.hits, d.bots)",
    )
    .fetch_one(&app.db)
    .await
    .expect("compare the links' days");
    assert_eq!(wrong, 0, "workspace_link_daily differs from the raw clicks");

    // Each tag's visits per hour and day: the raw clicks of its links now. No move is left.
    let moves: i64 = sqlx::query_scalar("SELECT count(*) FROM link_tag_moves")
        .fetch_one(&app.db)
        .await
        .expect("moves");
    assert_eq!(moves, 0);
    for (table, grain) in [
        ("workspace_tag_hourly", "date_trunc('hour', c.at)"),
        ("workspace_tag_daily", "(c.at AT TIME ZONE 'UTC')::date"),
    ] {
        let time = if table.ends_with("hourly") {
            "hour"
        } else {
            "day"
        };
        let wrong: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
            "WITH raw AS (
                 SELECT l.workspace_id, {grain} AS t, tag,
                        count(*) FILTER (WHERE NOT c.bot) AS hits, count(*) FILTER (WHERE c.bot) AS bots
                 FROM clicks c JOIN links l ON l.id = c.link_id, unnest(l.tags) AS tag
                 GROUP BY 1, 2, 3
             ), rolled AS (
                 SELECT workspace_id, {time} AS t, tag, hits, bots FROM {table}
                 WHERE hits <> 0 OR bots <> 0
             )
             SELECT coalesce(r.tag, d.tag), coalesce(r.hits, 0), coalesce(d.hits, 0)
             FROM raw r FULL JOIN rolled d USING (workspace_id, t, tag)
             WHERE (r.hits, r.bots) IS DISTINCT FROM (d.hits, d.bots)"
        ))
        .fetch_all(&app.db)
        .await
        .expect("compare the tags");
        assert!(
            wrong.is_empty(),
            "{table} differs from the raw clicks in {} rows, such as {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
}

/// Compares the breakdowns, per link and per workspace (minus its id), with a `GROUP BY` over
/// the raw clicks: every hour, and the days summed of each half (`daily_breakdown_progress`);
/// the days not summed yet have no daily rows, and the one being summed is left out.
async fn compare_breakdowns(app: &TestApp) {
    for (table, workspace_table, grain) in [
        (
            "link_breakdown_hourly",
            "workspace_breakdown_hourly",
            "date_trunc('hour', at)",
        ),
        (
            "link_breakdown_daily",
            "workspace_breakdown_daily",
            "(at AT TIME ZONE 'UTC')::date",
        ),
    ] {
        let (time_column, wrong) = if table.ends_with("daily") {
            (
                "day",
                "(SELECT CASE WHEN coalesce(r.t, s.t) < p.summed_before THEN differs
                              WHEN coalesce(r.t, s.t) >= p.open_from THEN s.t IS NOT NULL
                              ELSE false END
                  FROM daily_breakdown_progress p
                  WHERE p.part = CASE WHEN coalesce(r.link_id, s.link_id) > 0
                                      THEN 'links' ELSE 'workspaces' END)",
            )
        } else {
            ("hour", "differs")
        };
        let sql = format!(
            "WITH raw AS (
                 SELECT l AS link_id, d.dimension, {grain} AS t, d.value,
                        count(*) FILTER (WHERE NOT bot) AS hits, count(*) FILTER (WHERE bot) AS bots
                 FROM clicks,
                      LATERAL (VALUES (link_id), (-(SELECT workspace_id FROM links WHERE id = link_id))) AS v(l),
                      LATERAL (VALUES ('referrer', CASE WHEN NOT bot THEN referrer_host END),
                                      ('country', coalesce(country, 'unknown')),
                                      ('device', device), ('browser', browser), ('os', os)) AS d(dimension, value)
                 -- Bots' referrers are not kept.
                 WHERE d.value IS NOT NULL
                 GROUP BY 1, 2, 3, 4
             )
             SELECT count(*) FROM raw r FULL JOIN (
                 SELECT link_id, dimension, {time_column} AS t, value, hits, bots FROM {table}
                 UNION ALL
                 SELECT -workspace_id, dimension, {time_column}, value, hits, bots FROM {workspace_table}) s
                 USING (link_id, dimension, t, value)
             CROSS JOIN LATERAL (SELECT (r.hits, r.bots) IS DISTINCT FROM (s.hits, s.bots) AS differs) AS d
             WHERE {wrong}"
        );
        let wrong: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&app.db)
            .await
            .expect("compare breakdowns");
        assert_eq!(wrong, 0, "{table} differs from the raw clicks");
    }
}

#[tokio::test]
async fn a_day_is_summed_in_steps_and_its_late_clicks_count_once() {
    let app = spawn_app().await;
    let today = OffsetDateTime::now_utc().date();
    let yesterday = today - Duration::DAY;
    open_days_from(&app, yesterday).await;
    // More links with clicks yesterday than one step sums (2,000), and one without.
    for chunk in 0..3 {
        let links: Vec<Value> = (0..700)
            .map(
                |i| json!({"destination": "https://example.com/", "code": format!("s{chunk}x{i}")}),
            )
            .collect();
        let response = app
            .api(
                Method::POST,
                "/api/v1/links/bulk",
                Some(json!({"links": links})),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    let quiet = link(&app, "quiet").await;
    let ids: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, code FROM links WHERE code LIKE 's%' ORDER BY id")
            .fetch_all(&app.db)
            .await
            .expect("links");
    assert_eq!(ids.len(), 2_100);
    let noon = yesterday.with_hms(12, 0, 0).expect("noon").assume_utc();
    let click = |name: String, (id, code): &(i64, String), at: OffsetDateTime, country: &str| {
        let mut e = event(&name, *id, code, at);
        e.country = Some(country.to_owned());
        e
    };
    let mut events: Vec<ClickEvent> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, link)| {
            [
                click(format!("a{i}"), link, noon - Duration::hours(3), "DE"),
                click(format!("b{i}"), link, noon + Duration::hours(5), "FR"),
            ]
        })
        .collect();
    events.push(click(
        "today".to_owned(),
        &ids[0],
        today.midnight().assume_utc(),
        "US",
    ));
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");
    let progress = || async {
        sqlx::query_as::<_, (String, time::Date, time::Date, i64)>(
            "SELECT part, open_from, summed_before, next_id FROM daily_breakdown_progress
             ORDER BY part",
        )
        .fetch_all(&app.db)
        .await
        .expect("progress")
    };
    let stats_of = |code: String| {
        let app = &app;
        async move {
            let from = rfc(yesterday.midnight().assume_utc());
            let to = rfc((today + Duration::DAY).midnight().assume_utc());
            stats(
                app,
                &format!("/api/v1/links/{code}/stats?from={from}&to={to}&interval=day"),
            )
            .await["top"]["country"]
                .clone()
        }
    };
    let before = stats_of(ids[0].1.clone()).await;
    assert_eq!(
        before,
        json!([{"value": "DE", "count": 1}, {"value": "FR", "count": 1}, {"value": "US", "count": 1}])
    );

    // The first step opens yesterday's daily rows to its late clicks; a late click comes.
    let step = || async {
        app.state
            .sum_breakdown_days_step(today)
            .await
            .expect("step")
    };
    assert!(step().await);
    let late = [
        click("late0".to_owned(), &ids[0], noon, "DE"),
        click("late1".to_owned(), &ids[2_050], noon, "DE"),
    ];
    app.state.store_clicks(&late).await.expect("store");
    app.state.count_clicks().await.expect("count");
    // The first 2,000 links with clicks, in the order of their ids; the workspaces in one step.
    assert!(step().await);
    assert_eq!(
        progress().await,
        [
            ("links".to_owned(), today, yesterday, ids[1_999].0 + 1),
            ("workspaces".to_owned(), today, today, 0),
        ]
    );
    compare_breakdowns(&app).await;
    // Then the other 100; the one without clicks is never read.
    assert!(step().await);
    assert_eq!(
        progress().await,
        [
            ("links".to_owned(), today, today, 0),
            ("workspaces".to_owned(), today, today, 0),
        ]
    );
    assert!(!step().await);
    compare_breakdowns(&app).await;
    let daily: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM link_breakdown_daily WHERE link_id = $1 OR day = $2",
    )
    .bind(quiet)
    .bind(today)
    .fetch_one(&app.db)
    .await
    .expect("daily");
    assert_eq!(
        daily, 0,
        "no daily rows for a link without clicks, or for today"
    );
    // Read from the daily rows now, the same.
    assert_eq!(
        stats_of(ids[0].1.clone()).await,
        json!([{"value": "DE", "count": 2}, {"value": "FR", "count": 1}, {"value": "US", "count": 1}])
    );
    assert_eq!(
        stats_of(ids[2_050].1.clone()).await,
        json!([{"value": "DE", "count": 2}, {"value": "FR", "count": 1}])
    );
}

#[tokio::test]
async fn a_serving_origin_sums_the_days_that_are_over() {
    let app = spawn_app().await;
    let id = link(&app, "days").await;
    // As after two days without a counter: two days over and not summed.
    let today = OffsetDateTime::now_utc().date();
    open_days_from(&app, today - Duration::days(2)).await;
    let events: Vec<ClickEvent> = (0..3)
        .map(|d| {
            let at = (today - Duration::days(d)).midnight().assume_utc() + Duration::minutes(1);
            event(&format!("d{d}"), id, "days", at)
        })
        .collect();
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");
    let background = app.state.spawn_background();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let progress: Vec<(time::Date, time::Date)> =
            sqlx::query_as("SELECT open_from, summed_before FROM daily_breakdown_progress")
                .fetch_all(&app.db)
                .await
                .expect("progress");
        if progress.iter().all(|row| *row == (today, today)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the days were not summed: {progress:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    background.iter().for_each(tokio::task::JoinHandle::abort);
    compare_breakdowns(&app).await;
    let days: i64 = sqlx::query_scalar("SELECT count(DISTINCT day) FROM link_breakdown_daily")
        .fetch_one(&app.db)
        .await
        .expect("days");
    assert_eq!(days, 2, "the two days over, not today");
}

#[tokio::test]
async fn parallel_ingests_and_counters_count_each_click_once() {
    let app = spawn_app().await;
    let id = link(&app, "busy").await;
    let at = OffsetDateTime::now_utc() - Duration::minutes(5);
    // Four ingests at once, each delivering every batch twice, while two counters (as two
    // origins would run) count what is pending.
    let ingests = (0..4).map(|t| {
        let state = app.state.clone();
        tokio::spawn(async move {
            for b in 0..10 {
                let mut events: Vec<ClickEvent> = (0..100)
                    .map(|i| event(&format!("p{t}-{b}-{i}"), id, "busy", at))
                    .collect();
                events[0].visitor = Some(format!("{:032x}", 1_000 + t * 100 + b));
                assert_eq!(state.store_clicks(&events).await.expect("store"), 100);
                assert_eq!(state.store_clicks(&events).await.expect("again"), 0);
            }
        })
    });
    let counters = (0..2).map(|_| {
        let state = app.state.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                state.count_clicks().await.expect("count");
                tokio::task::yield_now().await;
            }
        })
    });
    for task in ingests.chain(counters).collect::<Vec<_>>() {
        task.await.expect("task");
    }
    app.state.count_clicks().await.expect("count");

    let body = stats(&app, "/api/v1/links/busy/stats?interval=day").await;
    assert_eq!(body["totals"]["clicks"], 4_000);
    // Visitor 1 everywhere, plus one more in the first event of each of the 40 batches.
    assert_eq!(body["totals"]["uniques"], 41);
    assert_eq!(
        body["top"]["referrer"],
        json!([{"value": "news.example", "count": 4_000}])
    );
    let account = stats(&app, "/api/v1/stats?interval=day").await;
    assert_eq!(account["totals"]["clicks"], 4_000);
}

#[tokio::test]
async fn unique_visitors_are_counted_once_per_day_across_a_day_boundary() {
    let app = spawn_app().await;
    let id = link(&app, "uniq").await;
    let day = (OffsetDateTime::now_utc() - Duration::days(2)).date();
    let at = |h: u8, m: u8| day.with_hms(h, m, 0).expect("time").assume_utc();
    let next = |h: u8, m: u8| {
        (day + Duration::DAY)
            .with_hms(h, m, 0)
            .expect("time")
            .assume_utc()
    };
    let mut events = vec![
        event("a", id, "uniq", at(23, 40)),
        event("b", id, "uniq", at(23, 50)), // same visitor, same day
        event("c", id, "uniq", next(0, 10)), // same visitor, next day: counted again
    ];
    let mut other = event("d", id, "uniq", next(0, 20));
    other.visitor = Some(format!("{:032x}", 2));
    events.push(other);
    let mut bot = event("e", id, "uniq", next(0, 30));
    bot.user_agent = Some(SLACKBOT.to_owned());
    bot.visitor = Some(format!("{:032x}", 3)); // bots are no visitors
    events.push(bot);
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");

    let from = day.with_hms(0, 0, 0).expect("time").assume_utc();
    let body = stats(
        &app,
        &format!(
            "/api/v1/links/uniq/stats?from={}&to={}&interval=day",
            rfc(from),
            rfc(from + Duration::days(2))
        ),
    )
    .await;
    let series = body["series"].as_array().expect("series");
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["uniques"], 1);
    assert_eq!(series[0]["clicks"], 2);
    assert_eq!(series[1]["uniques"], 2);
    assert_eq!(series[1]["clicks"], 2);
    assert_eq!(series[1]["bots"], 1);
    assert_eq!(body["totals"]["uniques"], 3);
    assert_eq!(body["totals"]["total"], 4, "bots are left out by default");
    let with_bots = stats(
        &app,
        &format!(
            "/api/v1/links/uniq/stats?from={}&to={}&interval=day&bots=true",
            rfc(from),
            rfc(from + Duration::days(2))
        ),
    )
    .await;
    assert_eq!(with_bots["totals"]["total"], 5);
}

fn rfc(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
        .replace('+', "%2B")
}

/// The `nth` Sunday of `month` most recently before `now`'s day (this year's or last year's).
fn last_nth_sunday(now: OffsetDateTime, month: time::Month, nth: u8) -> time::Date {
    [now.year(), now.year() - 1]
        .into_iter()
        .filter_map(|year| {
            time::Date::from_calendar_date(year, month, 1)
                .ok()
                .and_then(time::Date::previous_day)
                // Strictly after the day before the first: the first may be a Sunday.
                .map(|eve| eve.nth_next_occurrence(time::Weekday::Sunday, nth))
        })
        .find(|day| *day < now.date())
        .expect("a day of last year is past")
}

#[tokio::test]
async fn hourly_series_count_every_hour_once_where_clocks_change() {
    let app = spawn_app().await;
    let id = link(&app, "dst").await;
    let now = OffsetDateTime::now_utc();
    let hour = |day: time::Date, h: u8| day.with_hms(h, 0, 0).expect("time").assume_utc();
    // New York's clocks go forward at 07:00 UTC on March's second Sunday (02:00 EST is
    // 03:00 EDT: the local hour 02:00 does not exist) and back at 06:00 UTC on November's
    // first Sunday (01:00 local comes twice). Both within the clicks kept (400 days).
    let spring = last_nth_sunday(now, time::Month::March, 2);
    let autumn = last_nth_sunday(now, time::Month::November, 1);
    // (from, to, points expected)
    let cases = [
        // Local 00, 01, 03, 04: four buckets, no bucket twice.
        (hour(spring, 5), hour(spring, 9), 4),
        // Local 22, 23, 00 and 01 (EDT): the range ends inside the hour that comes again.
        (hour(autumn, 2), hour(autumn, 6), 4),
        // Local 22, 23, 00, 01 (EDT and EST, one bucket), 02.
        (hour(autumn, 2), hour(autumn, 8), 5),
    ];
    // One click in each UTC hour of both windows, so a range's clicks are its hours.
    let mut n = 0;
    for (from, to) in [
        (hour(spring, 5), hour(spring, 9)),
        (hour(autumn, 2), hour(autumn, 8)),
    ] {
        let mut at = from;
        let mut events = Vec::new();
        while at < to {
            n += 1;
            events.push(event(
                &format!("dst{n}"),
                id,
                "dst",
                at + Duration::minutes(30),
            ));
            at += Duration::HOUR;
        }
        app.state.store_clicks(&events).await.expect("store");
    }
    app.state.count_clicks().await.expect("count");
    for (from, to, points) in cases {
        let body = stats(
            &app,
            &format!(
                "/api/v1/links/dst/stats?from={}&to={}&interval=hour&tz=America/New_York",
                rfc(from),
                rfc(to)
            ),
        )
        .await;
        let series = body["series"].as_array().expect("series");
        let hours = (to - from).whole_hours();
        let sum: i64 = series
            .iter()
            .map(|p| p["clicks"].as_i64().expect("n"))
            .sum();
        let mut ts: Vec<&str> = series.iter().map(|p| p["t"].as_str().expect("t")).collect();
        assert_eq!(
            sum, hours,
            "{from}..{to}: every click once in the series: {series:?}"
        );
        assert_eq!(body["totals"]["clicks"], hours, "{from}..{to}: the totals");
        assert_eq!(series.len(), points, "{from}..{to}: {series:?}");
        ts.dedup();
        assert_eq!(
            ts.len(),
            points,
            "{from}..{to}: no bucket twice: {series:?}"
        );
    }
}

/// Where clocks go back by two hours (Antarctica/Troll: 03:00 +02 becomes 01:00 +00 at 01:00
/// UTC on October's last Sunday), every hour still has its bucket. The buckets ran from the
/// local time of the range's start to that of its last hour: backwards there, so a range of
/// its first two hours had no bucket at all, and a longer one lost the hour at 01:00 UTC.
#[tokio::test]
async fn hourly_series_count_every_hour_once_where_clocks_go_back_two_hours() {
    let app = spawn_app().await;
    let id = link(&app, "troll").await;
    let now = OffsetDateTime::now_utc();
    let back = last_nth_sunday(now, time::Month::November, 1) - Duration::days(7);
    let hour = |h: u8| back.with_hms(h, 0, 0).expect("time").assume_utc();
    let events: Vec<_> = (0..4)
        .map(|h| {
            event(
                &format!("troll{h}"),
                id,
                "troll",
                hour(h) + Duration::minutes(30),
            )
        })
        .collect();
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");
    // (to, points): local 02 (+02) and 01 (+00); then 02 (+00, one bucket with 02 +02) and 03.
    for (to, points) in [(hour(2), 2), (hour(4), 3)] {
        let body = stats(
            &app,
            &format!(
                "/api/v1/links/troll/stats?from={}&to={}&interval=hour&tz=Antarctica/Troll",
                rfc(hour(0)),
                rfc(to)
            ),
        )
        .await;
        let series = body["series"].as_array().expect("series");
        let sum: i64 = series
            .iter()
            .map(|p| p["clicks"].as_i64().expect("n"))
            .sum();
        let hours = (to - hour(0)).whole_hours();
        assert_eq!(
            sum, hours,
            "..{to}: every click once in the series: {series:?}"
        );
        assert_eq!(series.len(), points, "..{to}: {series:?}");
    }
}

#[tokio::test]
async fn a_click_lands_on_the_local_day_of_the_asked_time_zone() {
    let app = spawn_app().await;
    let id = link(&app, "tz").await;
    let base = (OffsetDateTime::now_utc() - Duration::days(10)).date();
    // 23:30 UTC: the same day in New York, the next day in Berlin and Tokyo.
    let at = base.with_hms(23, 30, 0).expect("time").assume_utc();
    app.state
        .store_clicks(&[event("tz1", id, "tz", at)])
        .await
        .expect("store");
    app.state.count_clicks().await.expect("count");
    let from = base.with_hms(0, 0, 0).expect("time").assume_utc() - Duration::days(1);
    let to = from + Duration::days(4);
    for (tz, local_day) in [
        ("UTC", base),
        ("America/New_York", base),
        ("Europe/Berlin", base + Duration::DAY),
        ("Asia/Tokyo", base + Duration::DAY),
    ] {
        let body = stats(
            &app,
            &format!(
                "/api/v1/links/tz/stats?from={}&to={}&interval=day&tz={tz}",
                rfc(from),
                rfc(to)
            ),
        )
        .await;
        let days: Vec<(String, i64)> = body["series"]
            .as_array()
            .expect("series")
            .iter()
            .filter(|p| p["clicks"].as_i64() != Some(0))
            .map(|p| {
                (
                    p["t"].as_str().expect("t").to_owned(),
                    p["clicks"].as_i64().expect("n"),
                )
            })
            .collect();
        assert_eq!(days.len(), 1, "{tz}: {days:?}");
        let t = OffsetDateTime::parse(&days[0].0, &time::format_description::well_known::Rfc3339)
            .expect("t");
        // The bucket starts at local midnight of the expected day.
        let offset_hours = match tz {
            "America/New_York" => -5,
            "Europe/Berlin" => 1,
            "Asia/Tokyo" => 9,
            _ => 0,
        };
        let local = t.to_offset(time::UtcOffset::from_hms(offset_hours, 0, 0).expect("offset"));
        assert_eq!((local.date(), local.hour()), (local_day, 0), "{tz}: {t}");
    }
    // A zone PostgreSQL's zone database does not name is the caller's mistake, on `tz`,
    // whatever else is asked; so are an abbreviation PostgreSQL reads as a fixed offset (CET
    // has summer time; `AT TIME ZONE 'CET'` does not) and a POSIX rule (UTC+3 is three hours
    // west). Before, those were answered with buckets in the offset PostgreSQL took.
    for path in [
        "/api/v1/stats?tz=CET",
        "/api/v1/stats?tz=WET",
        "/api/v1/stats?tz=est&interval=day",
        "/api/v1/stats?tz=UTC%2B3",
        "/api/v1/links/tz/stats?tz=FOOBAR0",
        "/api/v1/links/tz/stats?tz=Mars/Olympus",
        "/api/v1/stats?tz=Mars/Olympus",
        "/api/v1/stats?tz=Mars/Olympus&interval=day",
        // A NUL, which PostgreSQL's text refuses with another error than an unknown zone's.
        "/api/v1/stats?tz=%00",
        "/api/v1/links/tz/stats?tz=Europe/Berlin%00",
        "/api/v1/stats?tz=Europe%0ABerlin&interval=day",
    ] {
        let bad = app.api(Method::GET, path, None).await;
        assert_eq!(
            bad.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
            Some("tz"),
            "{path}"
        );
    }
    for tz in ["UTC", "utc", "GMT", "Zulu", "Etc/GMT%2B3", "europe/paris"] {
        let good = app
            .api(Method::GET, &format!("/api/v1/stats?tz={tz}"), None)
            .await;
        assert_eq!(good.status, StatusCode::OK, "{tz}: {}", good.text());
    }
}

#[tokio::test]
async fn retention_drops_raw_clicks_and_keeps_the_rollups() {
    let app = spawn_app().await;
    let id = link(&app, "old").await;
    let old = OffsetDateTime::now_utc() - Duration::days(70);
    let recent = OffsetDateTime::now_utc() - Duration::hours(1);
    app.state
        .store_clicks(&[
            event("o1", id, "old", old),
            event("o2", id, "old", old + Duration::minutes(1)),
            event("r1", id, "old", recent),
        ])
        .await
        .expect("store");
    app.state.count_clicks().await.expect("count");
    let before = stats(
        &app,
        &format!(
            "/api/v1/links/old/stats?interval=week&from={}",
            rfc(old - Duration::days(1))
        ),
    )
    .await;
    // Later: the old month has passed the retention (400 days), the recent one not yet.
    let dropped = app
        .state
        .drop_expired_clicks(old + Duration::days(400 + 40))
        .await
        .expect("retention");
    assert!(!dropped.is_empty());
    let raw: Vec<String> = sqlx::query_scalar("SELECT id FROM clicks ORDER BY id")
        .fetch_all(&app.db)
        .await
        .expect("raw");
    assert_eq!(raw, ["r1"], "only the recent click is kept raw");
    let after = stats(
        &app,
        &format!(
            "/api/v1/links/old/stats?interval=week&from={}",
            rfc(old - Duration::days(1))
        ),
    )
    .await;
    assert_eq!(before["totals"], after["totals"]);
    assert_eq!(after["totals"]["clicks"], 3);
    // Clicks older than the retention are refused at ingest (their month is gone).
    let ancient = event(
        "x",
        id,
        "old",
        OffsetDateTime::now_utc() - Duration::days(500),
    );
    assert_eq!(app.state.store_clicks(&[ancient]).await.expect("store"), 0);
}

/// A click that arrives late (the edge's queue holds an outage's clicks up to 4 days) is
/// counted for 7 days whatever the retention, once however often it comes: with a retention
/// of one day, a 3-day-old click was refused and counted nowhere, after the edge had let it go.
/// Raw months are kept as long, so a second delivery meets the first's row.
#[tokio::test]
async fn late_clicks_count_for_a_week_whatever_the_retention() {
    let database_url = crate::support::new_database().await;
    let mut config = crate::support::config(&database_url);
    config.click_retention_days = 1;
    let app = crate::support::app_with(&config).await;
    let id = link(&app, "late").await;
    let now = OffsetDateTime::now_utc();
    let late = now - Duration::days(3);
    app.state.drop_expired_clicks(now).await.expect("retention");
    for _ in 0..2 {
        app.state
            .store_clicks(&[
                event("late", id, "late", late),
                event("too-late", id, "late", now - Duration::days(8)),
            ])
            .await
            .expect("store");
    }
    app.state.count_clicks().await.expect("count");
    let body = stats(
        &app,
        &format!(
            "/api/v1/links/late/stats?interval=day&from={}",
            rfc(late - Duration::days(1))
        ),
    )
    .await;
    assert_eq!(body["totals"]["clicks"], 1, "{body}");
    // A month's raw clicks stay until 7 days after it, not one: a late click's second
    // delivery would find no row to meet and count again.
    sqlx::query(
        "CREATE TABLE clicks_2020_01 PARTITION OF clicks
         FOR VALUES FROM ('2020-01-01 00:00:00+00') TO ('2020-02-01 00:00:00+00')",
    )
    .execute(&app.db)
    .await
    .expect("an old month");
    let day = |d: u8| {
        time::Date::from_calendar_date(2020, time::Month::February, d)
            .expect("date")
            .midnight()
            .assume_utc()
    };
    let dropped = app
        .state
        .drop_expired_clicks(day(7))
        .await
        .expect("retention");
    assert!(
        !dropped.contains(&"clicks_2020_01".to_owned()),
        "{dropped:?}"
    );
    let dropped = app
        .state
        .drop_expired_clicks(day(9))
        .await
        .expect("retention");
    assert!(
        dropped.contains(&"clicks_2020_01".to_owned()),
        "{dropped:?}"
    );
}

/// The next month's partition of raw clicks is made ahead of its clicks (making it when they
/// come would lock the whole table on the ingest path).
#[tokio::test]
async fn the_next_months_partition_is_made_ahead() {
    let app = spawn_app().await;
    let background = app.state.spawn_background();
    let now = OffsetDateTime::now_utc();
    let (year, month) = match now.month() {
        time::Month::December => (now.year() + 1, 1),
        month => (now.year(), u8::from(month) + 1),
    };
    let next = format!("clicks_{year:04}_{month:02}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let made: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&next)
            .fetch_one(&app.db)
            .await
            .expect("catalogue");
        if made {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no {next} yet");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

/// Dropping a month of raw clicks locks the whole table: behind a long reader of it (a dump),
/// the drop gives up after a while rather than hold every store of clicks behind it.
#[tokio::test]
async fn retention_gives_way_to_a_long_reader_of_the_clicks() {
    let app = spawn_app().await;
    let id = link(&app, "dump").await;
    let old = OffsetDateTime::now_utc() - Duration::days(70);
    let recent = OffsetDateTime::now_utc() - Duration::hours(1);
    // Both months' partitions exist before the reader starts (making one waits for it too).
    app.state
        .store_clicks(&[
            event("o1", id, "dump", old),
            event("r0", id, "dump", recent),
        ])
        .await
        .expect("store");
    let mut reader = app.db.begin().await.expect("begin");
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks")
        .fetch_one(&mut *reader)
        .await
        .expect("read");
    let later = old + Duration::days(400 + 40);
    let state = app.state.clone();
    let dropping = tokio::spawn(async move { state.drop_expired_clicks(later).await });
    // A store that arrives while the drop waits for its lock waits at most as long as the
    // drop does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting = crate::support::lock_waiters(&app.db, "DROP TABLE%").await;
        // (On a loaded machine the drop may have given up before this looks.)
        if waiting == 1 || dropping.is_finished() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the drop never waited on the reader's lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stored = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        app.state.store_clicks(&[event("r1", id, "dump", recent)]),
    )
    .await
    .expect("a store is not held behind the drop")
    .expect("store");
    assert_eq!(stored, 1);
    let gave_up = tokio::time::timeout(std::time::Duration::from_secs(20), dropping)
        .await
        .expect("the drop gives up")
        .expect("task");
    assert!(gave_up.is_err(), "{gave_up:?}");
    // Once the reader is done, the next run drops the month.
    reader.commit().await.expect("commit");
    let dropped = app
        .state
        .drop_expired_clicks(later)
        .await
        .expect("retention");
    assert_eq!(dropped.len(), 1, "{dropped:?}");
}

/// A link's clicks as CSV stream from a task holding one of 4 places, given up when its client
/// stops reading: four stalled downloads do not shut every workspace's, and their pages (up
/// to tens of MB) are not held without bound.
#[tokio::test]
async fn click_exports_are_capped_and_stalled_ones_give_their_places_up() {
    let app = spawn_app().await;
    let id = link(&app, "exported").await;
    let now = OffsetDateTime::now_utc() - Duration::minutes(5);
    // ~600 B a row, ~600 KB: more than one piece handed to the answer at a time.
    let agent = format!("{IPHONE} {}", "x".repeat(400));
    let events: Vec<ClickEvent> = (0..1_000)
        .map(|i| {
            let mut e = event(&format!("e{i}"), id, "exported", now);
            e.user_agent = Some(agent.clone());
            e
        })
        .collect();
    app.state.store_clicks(&events).await.expect("store");
    crate::support::stalled_exports_give_their_places_up(&app, "/api/v1/links/exported/clicks.csv")
        .await;
    let response = app
        .api(Method::GET, "/api/v1/links/exported/clicks.csv", None)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text().lines().count(), 1 + 1_000);
    // Without `to`, an export ends at the moment it began, as documented: a click dated
    // after it (here a minute ahead: a visitor's clock) is not in it; asked for, it is.
    // Before, the end was a day ahead, and a long export took the clicks that came meanwhile.
    let ahead = OffsetDateTime::now_utc() + Duration::minutes(1);
    app.state
        .store_clicks(&[event("ahead", id, "exported", ahead)])
        .await
        .expect("store");
    let now = app
        .api(Method::GET, "/api/v1/links/exported/clicks.csv", None)
        .await;
    assert_eq!(now.text().lines().count(), 1 + 1_000);
    let later = rfc(ahead + Duration::minutes(1));
    let asked = app
        .api(
            Method::GET,
            &format!("/api/v1/links/exported/clicks.csv?to={later}"),
            None,
        )
        .await;
    assert_eq!(asked.text().lines().count(), 1 + 1_001);
}

#[tokio::test]
async fn account_stats_top_links_breakdowns_and_csv_export() {
    let app = spawn_app().await;
    let a = link(&app, "alpha").await;
    let b = link(&app, "beta").await;
    let now = OffsetDateTime::now_utc() - Duration::minutes(5);
    let mut events = Vec::new();
    for i in 0..3 {
        let mut e = event(&format!("a{i}"), a, "alpha", now);
        e.referrer = Some("https://www.google.com/search".to_owned());
        e.user_agent = Some(IPHONE.to_owned());
        events.push(e);
    }
    let mut e = event("b0", b, "beta", now);
    e.referrer = Some("with, \"quotes\"".to_owned());
    e.qr = true;
    events.push(e);
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");

    let body = stats(&app, "/api/v1/stats?interval=hour&tz=Europe/Berlin").await;
    assert_eq!(body["totals"]["clicks"], 3);
    assert_eq!(body["totals"]["qr_scans"], 1);
    assert_eq!(
        body["top_links"],
        json!([{"code": "alpha", "link_id": a, "count": 3}, {"code": "beta", "link_id": b, "count": 1}])
    );
    assert_eq!(
        body["top"]["referrer"],
        json!([{"value": "google.com", "count": 3}, {"value": "direct", "count": 1}])
    );
    assert_eq!(
        body["top"]["device"][0],
        json!({"value": "mobile", "count": 3})
    );
    assert_eq!(body["top"]["os"][0], json!({"value": "iOS", "count": 3}));
    assert_eq!(body["series"].as_array().expect("series").len(), 7 * 24);

    let response = app
        .api(Method::GET, "/api/v1/links/beta/clicks.csv", None)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response
            .header(&axum::http::header::CONTENT_TYPE)
            .starts_with("text/csv")
    );
    let csv = String::from_utf8(response.body.to_vec()).expect("utf-8");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,at,country,referrer,referrer_host,user_agent,device,browser,os,bot,qr,source,variant"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with("b0,") && lines[1].contains("\"with, \"\"quotes\"\"\""),
        "{}",
        lines[1]
    );

    for (path, field) in [
        (
            "/api/v1/stats?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
        ),
        (
            "/api/v1/stats?interval=hour&from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z",
            "interval",
        ),
        ("/api/v1/stats?top=0", "top"),
        ("/api/v1/stats?interval=month", "interval"),
    ] {
        let response = app.api(Method::GET, path, None).await;
        assert_eq!(
            response
                .error(StatusCode::UNPROCESSABLE_ENTITY)
                .1
                .as_deref(),
            Some(field),
            "{path}"
        );
    }
    let response = app.api(Method::GET, "/api/v1/links/nope/stats", None).await;
    assert_eq!(response.error(StatusCode::NOT_FOUND).0, "not_found");
    let response = app.visit(Method::GET, "/api/v1/stats").await;
    assert_eq!(response.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
}

#[tokio::test]
async fn the_origins_own_redirects_are_counted() {
    let app = spawn_app().await;
    let background = app.state.spawn_background();
    link(&app, "counted").await;
    let request = axum::http::Request::builder()
        .uri("/counted?qr=1")
        .header("user-agent", IPHONE)
        .header("referer", "https://t.co/abc")
        .body(axum::body::Body::empty())
        .expect("request");
    assert_eq!(app.send(request).await.status, StatusCode::FOUND);
    assert_eq!(
        app.visit(Method::HEAD, "/counted").await.status,
        StatusCode::FOUND
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        // The totals and the breakdowns are read side by side, each as of its own moment: a
        // batch counted between the two shows in one only, until the next read.
        let body = stats(&app, "/api/v1/links/counted/stats").await;
        if body["totals"]["qr_scans"] == 1
            && body["totals"]["bots"] == 1
            && body["top"]["referrer"] == json!([{"value": "t.co", "count": 1}])
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the clicks were not stored: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let source: String = sqlx::query_scalar("SELECT DISTINCT source FROM clicks")
        .fetch_one(&app.db)
        .await
        .expect("source");
    assert_eq!(source, "origin");
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn breakdowns_count_every_click_of_any_range() {
    let app = spawn_app().await;
    let id = link(&app, "ranges").await;
    let day = (OffsetDateTime::now_utc() - Duration::days(5)).date();
    // The days are still to be summed when the clicks come (as on the day itself).
    open_days_from(&app, day).await;
    let at = |d: i64, h: u8| day.with_hms(h, 30, 0).expect("time").assume_utc() + Duration::days(d);
    // Clicks on three UTC days, early and late in each.
    let clicks: Vec<OffsetDateTime> = [(0, 2), (0, 20), (1, 1), (1, 23), (2, 5), (2, 9)]
        .into_iter()
        .map(|(d, h)| at(d, h))
        .collect();
    let events: Vec<ClickEvent> = clicks
        .iter()
        .enumerate()
        .map(|(i, t)| event(&format!("r{i}"), id, "ranges", *t))
        .collect();
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");
    let hour =
        |d: i64, h: u8| day.with_hms(h, 0, 0).expect("time").assume_utc() + Duration::days(d);
    // (from, to): less than a day across midnight, inside one day, whole days with ragged
    // ends, exactly whole days, and a range ending at a midnight.
    let cases = [
        (hour(0, 8), hour(1, 9)),
        (hour(1, 0), hour(1, 5)),
        (hour(0, 10), hour(2, 8)),
        (hour(0, 0), hour(3, 0)),
        (hour(0, 21), hour(2, 0)),
    ];
    // Read with none of the days summed, then the first, the first two, and all of them.
    let today = OffsetDateTime::now_utc().date();
    for summed in [day, day + Duration::DAY, day + Duration::days(2), today] {
        sum_days_before(&app, summed).await;
        for (from, to) in cases {
            let expected = clicks.iter().filter(|t| **t >= from && **t < to).count() as i64;
            let body = stats(
                &app,
                &format!(
                    "/api/v1/links/ranges/stats?from={}&to={}&interval=hour",
                    rfc(from),
                    rfc(to)
                ),
            )
            .await;
            assert_eq!(body["totals"]["clicks"], expected, "{from}..{to}");
            for dimension in ["referrer", "country", "device", "browser", "os"] {
                let sum: i64 = body["top"][dimension]
                    .as_array()
                    .expect("dimension")
                    .iter()
                    .map(|r| r["count"].as_i64().expect("count"))
                    .sum();
                assert_eq!(
                    sum, expected,
                    "{dimension} of {from}..{to}, summed before {summed}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_flood_of_referrers_keeps_a_bounded_breakdown_and_exact_totals() {
    let app = spawn_app().await;
    let id = link(&app, "flood").await;
    // A bucket of a day that is over.
    let hour = hour_start(Duration::DAY);
    let at = |i: usize| hour + Duration::milliseconds(i as i64);
    let visit = |name: String, i: usize, referrer: String| {
        let mut e = event(&name, id, "flood", at(i));
        e.referrer = Some(referrer);
        e
    };
    // A referrer seen before the flood keeps its row and adds to it after.
    let known: Vec<ClickEvent> = (0..50)
        .map(|i| visit(format!("k{i}"), i, "https://news.example/a".to_owned()))
        .collect();
    app.state.store_clicks(&known).await.expect("store");
    app.state.count_clicks().await.expect("count");
    // 3,000 made-up referrers in one hour, counted in several batches, and bots with
    // referrers of their own.
    let flood: Vec<ClickEvent> = (0..3_000)
        .map(|i| visit(format!("f{i}"), i, format!("https://r{i}.flood.example/")))
        .collect();
    for batch in flood.chunks(700) {
        app.state.store_clicks(batch).await.expect("store");
        app.state.count_clicks().await.expect("count");
    }
    let bots: Vec<ClickEvent> = (0..30)
        .map(|i| {
            let mut e = visit(format!("b{i}"), i, format!("https://b{i}.crawl.example/"));
            e.user_agent = Some(GOOGLEBOT.to_owned());
            e
        })
        .collect();
    let late: Vec<ClickEvent> = (0..10)
        .map(|i| visit(format!("l{i}"), i, "https://news.example/b".to_owned()))
        .collect();
    app.state
        .store_clicks(&[bots, late].concat())
        .await
        .expect("store");
    app.state.count_clicks().await.expect("count");

    let people = 3_060_i64;
    // As the batches wrote the day's rows, then as summed from its hourly rows once the day is
    // over (the same values: the first ones were the most visited).
    let day = hour.date();
    for summed in [false, true] {
        if summed {
            open_days_from(&app, day).await;
            sum_days_before(&app, day + Duration::DAY).await;
        }
        for (part, time) in [("breakdown_hourly", "hour"), ("breakdown_daily", "day")] {
            // At most 100 values per link and bucket plus the other values; 1,000 for the
            // workspace. Every dimension adds up to every click.
            for (owner, link_id, bound, other) in [
                ("link", id, 100, 3_000 - 99),
                ("workspace", 1, 1_000, 3_000 - 999),
            ] {
                let table = format!("{owner}_{part}");
                let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(&format!(
                    "SELECT dimension, count(*), count(DISTINCT {time}), sum(hits)::int8,
                            sum(bots)::int8
                     FROM {table} WHERE {owner}_id = $1 GROUP BY 1 ORDER BY 1"
                ))
                .bind(link_id)
                .fetch_all(&app.db)
                .await
                .expect("rows");
                for (dimension, values, buckets, hits, bots) in rows {
                    assert_eq!(buckets, 1, "{table} {dimension}");
                    assert_eq!(hits, people, "{table} {dimension} of link {link_id}");
                    if dimension == "referrer" {
                        assert_eq!(values, bound + 1, "{table} of link {link_id}");
                        assert_eq!(bots, 0, "bots' referrers are left out");
                    } else {
                        assert!(values <= 3, "{table} {dimension}: {values}");
                        assert_eq!(bots, 30, "{table} {dimension} of link {link_id}");
                    }
                }
                let counts: Vec<(String, i64)> = sqlx::query_as(&format!(
                    "SELECT value, hits FROM {table}
                     WHERE {owner}_id = $1 AND dimension = 'referrer'
                       AND value IN ('news.example', '(other values)') ORDER BY 1"
                ))
                .bind(link_id)
                .fetch_all(&app.db)
                .await
                .expect("counts");
                assert_eq!(
                    counts,
                    [
                        ("(other values)".to_owned(), other),
                        ("news.example".to_owned(), 60)
                    ],
                    "{table} of link {link_id}"
                );
            }
        }
    }
    let crawled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM link_breakdown_hourly WHERE value LIKE '%crawl.example'",
    )
    .fetch_one(&app.db)
    .await
    .expect("crawled");
    assert_eq!(crawled, 0, "a bot's referrer has no row");

    let body = stats(
        &app,
        &format!(
            "/api/v1/links/flood/stats?top=3&bots=true&from={}&to={}",
            rfc(hour - Duration::HOUR),
            rfc(hour + Duration::HOUR)
        ),
    )
    .await;
    assert_eq!(body["totals"]["clicks"], people);
    assert_eq!(body["totals"]["bots"], 30);
    assert_eq!(
        body["top"]["referrer"],
        json!([
            {"value": "(other values)", "count": 3_000 - 99},
            {"value": "news.example", "count": 60},
            {"value": "r0.flood.example", "count": 1},
        ])
    );
}

/// A batch whose values, held and new, only seem too many for their bucket (most of them are
/// held already) keeps them all: the counter ranks them, and every one fits.
#[tokio::test]
async fn a_bucket_keeps_every_value_it_has_room_for() {
    let app = spawn_app().await;
    let id = link(&app, "room").await;
    // A bucket of a day that is over.
    let hour = hour_start(Duration::DAY);
    let visits = |batch: &str, referrers: std::ops::Range<usize>| -> Vec<ClickEvent> {
        referrers
            .map(|i| {
                let mut e = event(
                    &format!("{batch}{i}"),
                    id,
                    "room",
                    hour + Duration::milliseconds(i as i64),
                );
                e.referrer = Some(format!("https://r{i}.example/"));
                e
            })
            .collect()
    };
    // 80 values held; then those 80 again and 20 new (100 in all, the bound); then one more.
    for batch in [
        visits("a", 0..80),
        visits("b", 0..100),
        visits("c", 100..101),
    ] {
        app.state.store_clicks(&batch).await.expect("store");
        app.state.count_clicks().await.expect("count");
    }
    let mut rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT value, hits FROM link_breakdown_hourly
         WHERE link_id = $1 AND dimension = 'referrer'",
    )
    .bind(id)
    .fetch_all(&app.db)
    .await
    .expect("rows");
    let mut expected: Vec<(String, i64)> = (0..100)
        .map(|i| (format!("r{i}.example"), if i < 80 { 2 } else { 1 }))
        .collect();
    expected.push(("(other values)".to_owned(), 1));
    expected.sort();
    rows.sort();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn a_late_click_never_counts_a_visitor_twice() {
    let app = spawn_app().await;
    let id = link(&app, "late").await;
    let today = OffsetDateTime::now_utc().date();
    let noon = |days_ago: i64| {
        (today - Duration::days(days_ago))
            .with_hms(12, 0, 0)
            .expect("time")
            .assume_utc()
    };
    let day_stats = |days_ago: i64| {
        let app = &app;
        async move {
            let body = stats(
                app,
                &format!(
                    "/api/v1/links/late/stats?interval=day&from={}&to={}",
                    rfc(noon(days_ago) - Duration::hours(12)),
                    rfc(noon(days_ago) + Duration::hours(12))
                ),
            )
            .await;
            (
                body["totals"]["clicks"].clone(),
                body["totals"]["uniques"].clone(),
            )
        }
    };
    // Three days back the visitor keys are kept: a visitor counts once however often
    // their clicks are delivered.
    for (i, id_) in ["in1", "in2"].into_iter().enumerate() {
        app.state
            .store_clicks(&[event(
                id_,
                id,
                "late",
                noon(3) + Duration::minutes(i as i64),
            )])
            .await
            .expect("store");
        app.state.count_clicks().await.expect("count");
    }
    assert_eq!(day_stats(3).await, (json!(2), json!(1)));

    // Ten days back the day's keys are gone (retention dropped them; here, as when its
    // first click was counted while it was recent, one is left to be dropped): its clicks
    // count as clicks, never as new visitors.
    sqlx::query(
        "INSERT INTO visitors_daily (workspace_id, link_id, day, visitor)
         SELECT workspace_id, id, $2, $3 FROM links WHERE id = $1",
    )
    .bind(id)
    .bind(noon(10).date())
    .bind(format!("{:032x}", 1))
    .execute(&app.db)
    .await
    .expect("an old key");
    app.state
        .drop_expired_clicks(OffsetDateTime::now_utc())
        .await
        .expect("retention");
    let kept: Vec<time::Date> =
        sqlx::query_scalar("SELECT DISTINCT day FROM visitors_daily ORDER BY 1")
            .fetch_all(&app.db)
            .await
            .expect("kept");
    assert_eq!(kept, [noon(3).date()], "the old day's keys are dropped");
    for (i, id_) in ["out1", "out2"].into_iter().enumerate() {
        let mut replayed = event(id_, id, "late", noon(10) + Duration::minutes(i as i64));
        replayed.visitor = Some(format!("{:032x}", 1 + i));
        app.state.store_clicks(&[replayed]).await.expect("store");
        app.state.count_clicks().await.expect("count");
    }
    assert_eq!(day_stats(10).await, (json!(2), json!(0)));
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM visitors_daily WHERE day = $1")
        .bind(noon(10).date())
        .fetch_one(&app.db)
        .await
        .expect("keys");
    assert_eq!(keys, 0, "no key is stored for a day past the window");
}

#[tokio::test]
async fn top_links_leave_deleted_links_out() {
    let app = spawn_app().await;
    let old = link(&app, "reused").await;
    let kept = link(&app, "kept").await;
    let at = OffsetDateTime::now_utc() - Duration::hours(2);
    let mut events: Vec<ClickEvent> = (0..5)
        .map(|i| event(&format!("old{i}"), old, "reused", at))
        .collect();
    events.push(event("kept0", kept, "kept", at));
    app.state.store_clicks(&events).await.expect("store");
    let deleted = app.api(Method::DELETE, "/api/v1/links/reused", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // The code is free again, and another link takes it.
    let new = link(&app, "reused").await;
    app.state
        .store_clicks(&[
            event("new0", new, "reused", at),
            event("new1", new, "reused", at),
        ])
        .await
        .expect("store");
    app.state.count_clicks().await.expect("count");

    let body = stats(&app, "/api/v1/stats").await;
    assert_eq!(
        body["top_links"],
        json!([
            {"code": "reused", "link_id": new, "count": 2},
            {"code": "kept", "link_id": kept, "count": 1},
        ])
    );
    // The deleted link's clicks still count for the account.
    assert_eq!(body["totals"]["clicks"], 8);
}

/// Top links and tags read whole UTC days from the per-day rollup and the hours at either end
/// from the hourly one: every range, ragged or not, counts what a sum over the raw clicks
/// counts. Deleted links count under their tags but are no top link; untagged links under no
/// tag; another workspace's links nowhere.
#[tokio::test]
async fn top_links_and_tags_count_every_click_of_any_range() {
    let app = spawn_app().await;
    // (code, tags, deleted after its clicks)
    let mut links: [(&str, &[&str], bool); 4] = [
        ("ta", &["x"], false),
        ("tb", &["x", "y"], false),
        ("tc", &[], false),
        ("td", &["y"], true),
    ];
    let mut ids = Vec::new();
    for (code, tags, _) in links {
        let link = app
            .create(json!({"destination": format!("https://example.com/{code}"), "code": code, "tags": tags}))
            .await;
        ids.push(link["id"].as_i64().expect("id"));
    }
    let workspace = app.workspace("elsewhere").await;
    let key = app.key(workspace, &["links:write"]).await;
    let response = app
        .call(
            &key,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/e", "code": "te", "tags": ["x"]})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let other = response.json()["id"].as_i64().expect("id");

    let day = (OffsetDateTime::now_utc() - Duration::days(7)).date();
    let hour =
        |d: i64, h: u8| day.with_hms(h, 0, 0).expect("time").assume_utc() + Duration::days(d);
    // Clicks early and late in UTC days, in the hours at the ranges' ends and between.
    let times = [
        (0, 0),
        (0, 12),
        (0, 13),
        (0, 23),
        (1, 0),
        (1, 5),
        (1, 23),
        (2, 12),
        (3, 0),
        (3, 23),
        (4, 6),
        (4, 7),
        (4, 20),
    ];
    // (link index or 4 for the other workspace's, at, bot)
    let mut clicks: Vec<(usize, OffsetDateTime, bool)> = Vec::new();
    let mut events = Vec::new();
    for (t, (d, h)) in times.into_iter().enumerate() {
        for link in 0..5 {
            let people = (link * 3 + t) % 4;
            for n in 0..=people {
                let at = hour(d, h) + Duration::minutes(n as i64);
                let bot = n == 1 && t % 3 == 0;
                let (id, code) = match link {
                    4 => (other, "te"),
                    _ => (ids[link], links[link].0),
                };
                let mut e = event(&format!("k{link}-{t}-{n}"), id, code, at);
                if bot {
                    e.user_agent = Some(GOOGLEBOT.to_owned());
                }
                events.push(e);
                clicks.push((link, at, bot));
            }
        }
    }
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");
    let deleted = app.api(Method::DELETE, "/api/v1/links/td", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    // Mid-day to mid-day, whole days, inside one day, across one midnight, ending at one.
    let cases = [
        (hour(0, 13), hour(4, 7)),
        (hour(0, 0), hour(5, 0)),
        (hour(1, 5), hour(1, 6)),
        (hour(0, 23), hour(1, 1)),
        (hour(2, 12), hour(4, 0)),
        (hour(0, 1), hour(3, 23)),
    ];
    // Then once more after "ta" moved from tag x to tags y and z: its earlier clicks with it.
    for round in 0..2 {
        if round == 1 {
            let response = app
                .api(
                    Method::PATCH,
                    "/api/v1/links/ta",
                    Some(json!({"tags": ["y", "z"]})),
                )
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
            links[0].1 = &["y", "z"];
            app.state.count_clicks().await.expect("move");
        }
        for (from, to) in cases {
            for bots in [false, true] {
                let count = |link: usize| {
                    clicks
                        .iter()
                        .filter(|(l, at, bot)| {
                            *l == link && *at >= from && *at < to && (bots || !bot)
                        })
                        .count() as i64
                };
                let mut expected_links: Vec<(i64, &str)> = (0..4)
                    .filter(|l| !links[*l].2 && count(*l) > 0)
                    .map(|l| (count(l), links[l].0))
                    .collect();
                expected_links.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
                let mut expected_tags: Vec<(i64, &str)> = ["x", "y", "z"]
                    .into_iter()
                    .map(|tag| {
                        let sum = (0..4)
                            .filter(|l| links[*l].1.contains(&tag))
                            .map(count)
                            .sum::<i64>();
                        (sum, tag)
                    })
                    .filter(|(sum, _)| *sum > 0)
                    .collect();
                expected_tags.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));

                let body = stats(
                    &app,
                    &format!(
                        "/api/v1/stats?from={}&to={}&interval=day&bots={bots}",
                        rfc(from),
                        rfc(to)
                    ),
                )
                .await;
                let got_links: Vec<(i64, String)> = body["top_links"]
                    .as_array()
                    .expect("top links")
                    .iter()
                    .map(|l| {
                        (
                            l["count"].as_i64().expect("count"),
                            l["code"].as_str().expect("code").to_owned(),
                        )
                    })
                    .collect();
                let got_tags: Vec<(i64, String)> = body["top"]["tag"]
                    .as_array()
                    .expect("tags")
                    .iter()
                    .map(|t| {
                        (
                            t["count"].as_i64().expect("count"),
                            t["value"].as_str().expect("value").to_owned(),
                        )
                    })
                    .collect();
                let want = |v: &[(i64, &str)]| -> Vec<(i64, String)> {
                    v.iter().map(|(n, s)| (*n, (*s).to_owned())).collect()
                };
                assert_eq!(
                    got_links,
                    want(&expected_links),
                    "links {from}..{to} bots {bots}"
                );
                assert_eq!(
                    got_tags,
                    want(&expected_tags),
                    "tags {from}..{to} bots {bots} round {round}"
                );
            }
        }
    }
}

/// The top links are found by reading each day's most visited links until no link further
/// down can rank (`analytics/top_links.rs`). Here the most visited link of the range is never
/// among the first 45 of any day: each day 45 other links have one more visit than it. On top,
/// deleted links crowd the first day, and one link's visits of a partial day fall before the
/// range (its day's total would rank it first). Every answer equals a sum over the hourly
/// rollup of the range, for several `top` and with and without bots.
#[tokio::test]
async fn top_links_find_a_link_that_never_tops_a_day() {
    let app = spawn_app().await;
    let steady = link(&app, "steady").await;
    let workspace: i64 = sqlx::query_scalar("SELECT workspace_id FROM links WHERE id = $1")
        .bind(steady)
        .fetch_one(&app.db)
        .await
        .expect("workspace");
    let day0 = (OffsetDateTime::now_utc() - Duration::days(40)).replace_time(time::Time::MIDNIGHT);
    let from = day0 + Duration::hours(6);
    let to = day0 + Duration::days(29) + Duration::hours(18);
    // Links: 45 a day for 30 days that top that day only, 50 deleted ones, one clicked before
    // the range starts and one at its end.
    sqlx::query(
        "INSERT INTO links (workspace_id, code, destination)
         SELECT $1, 'f' || d || 'x' || i, 'https://example.com/f'
         FROM generate_series(0, 29) AS d, generate_series(0, 44) AS i
         UNION ALL
         SELECT $1, 'gone' || i, 'https://example.com/g' FROM generate_series(0, 49) AS i
         UNION ALL
         SELECT $1, code, 'https://example.com/e' FROM unnest(ARRAY['early', 'late']) AS code",
    )
    .bind(workspace)
    .execute(&app.db)
    .await
    .expect("links");
    // The hourly rollup, then each link's days from it, as the counter keeps them.
    sqlx::query(
        "INSERT INTO link_stats_hourly (workspace_id, link_id, hour, clicks, qr_scans, bots,
                                        uniques)
         SELECT l.workspace_id, l.id, $2 + make_interval(days => v.day, hours => v.hour), v.clicks, 0, v.bots, 0
         FROM links l,
              LATERAL (SELECT split_part(substr(l.code, 2), 'x', 1)::int AS day, 12 AS hour,
                              100 AS clicks, split_part(l.code, 'x', 2)::int % 3 AS bots
                       WHERE l.code LIKE 'f%'
                       UNION ALL
                       SELECT d, 12, 99, 1 FROM generate_series(0, 29) AS d WHERE l.code = 'steady'
                       UNION ALL
                       SELECT 0, 8, 500, 0 WHERE l.code LIKE 'gone%'
                       UNION ALL
                       SELECT 0, 3, 5000, 0 WHERE l.code = 'early'
                       UNION ALL
                       SELECT 29, 17, 150, 40 WHERE l.code = 'late') AS v
         WHERE l.workspace_id = $1",
    )
    .bind(workspace)
    .bind(day0)
    .execute(&app.db)
    .await
    .expect("hourly");
    sqlx::query(
        "INSERT INTO workspace_link_daily (workspace_id, day, link_id, hits, bots)
         SELECT $1, (s.hour AT TIME ZONE 'UTC')::date, s.link_id, sum(s.clicks + s.qr_scans), sum(s.bots)
         FROM link_stats_hourly s JOIN links l ON l.id = s.link_id
         WHERE l.workspace_id = $1
         GROUP BY 1, 2, 3",
    )
    .bind(workspace)
    .execute(&app.db)
    .await
    .expect("daily");
    sqlx::query("UPDATE links SET deleted_at = now() WHERE code LIKE 'gone%'")
        .execute(&app.db)
        .await
        .expect("delete");

    top_links_are_the_rollups_sums(&app, workspace, (from, to), &[1, 5, 46, 100]).await;
    // The first is the link that tops no day.
    let body = stats(
        &app,
        &format!(
            "/api/v1/stats?from={}&to={}&interval=day&top=1",
            rfc(from),
            rfc(to)
        ),
    )
    .await;
    assert_eq!(body["top_links"][0]["code"], "steady", "{body}");
}

/// Where every link has about the visits of every other each day (a campaign's link per
/// recipient), no depth of the days' lists tells the top links: past that, the range's rows
/// are summed in PostgreSQL (`top_links::summed`), and the answer is the same as for skewed
/// visits: a sum over the hourly rollup, ties by code, deleted links left out.
#[tokio::test]
async fn top_links_of_flat_visits_are_summed() {
    let app = spawn_app().await;
    let first = link(&app, "flat0").await;
    let workspace: i64 = sqlx::query_scalar("SELECT workspace_id FROM links WHERE id = $1")
        .bind(first)
        .fetch_one(&app.db)
        .await
        .expect("workspace");
    let day0 = (OffsetDateTime::now_utc() - Duration::days(40)).replace_time(time::Time::MIDNIGHT);
    let from = day0 + Duration::hours(6);
    let to = day0 + Duration::days(3) + Duration::hours(18);
    // 600 links with 10 visits and a bot at noon of each of four days (two of them partial in
    // the range); three with one more on the last, partial day; one deleted.
    seed_noon_visits(
        &app,
        workspace,
        ("flat", 599),
        (day0, 4),
        "10 + CASE WHEN d = 3 AND l.code IN ('flat7', 'flat70', 'flat700') THEN 1 ELSE 0 END",
        1,
    )
    .await;
    sqlx::query("UPDATE links SET deleted_at = now() WHERE code = 'flat1'")
        .execute(&app.db)
        .await
        .expect("delete");
    top_links_are_the_rollups_sums(&app, workspace, (from, to), &[1, 3, 10, 100]).await;
}

/// `links` more links `{prefix}1`… in `workspace`, and for every link of the workspace whose
/// code starts with `prefix` the hourly rollup's row at noon of each of `days` days from
/// `day0`: `clicks` (SQL of the link `l` and the day's number `d`) and `bots`; the daily
/// lists summed from them.
async fn seed_noon_visits(
    app: &crate::support::TestApp,
    workspace: i64,
    (prefix, links): (&str, i32),
    (day0, days): (OffsetDateTime, i32),
    clicks: &str,
    bots: i32,
) {
    sqlx::query(
        "INSERT INTO links (workspace_id, code, destination)
         SELECT $1, $2 || i, 'https://example.com/f' FROM generate_series(1, $3) AS i",
    )
    .bind(workspace)
    .bind(prefix)
    .bind(links)
    .execute(&app.db)
    .await
    .expect("links");
    sqlx::query(&format!(
        "INSERT INTO link_stats_hourly (workspace_id, link_id, hour, clicks, qr_scans, bots,
                                        uniques)
         SELECT l.workspace_id, l.id, $2 + make_interval(days => d, hours => 12), {clicks}, 0,
                $5, 0
         FROM links l, generate_series(0, $4 - 1) AS d
         WHERE l.workspace_id = $1 AND starts_with(l.code, $3)"
    ))
    .bind(workspace)
    .bind(day0)
    .bind(prefix)
    .bind(days)
    .bind(bots)
    .execute(&app.db)
    .await
    .expect("hourly");
    sqlx::query(
        "INSERT INTO workspace_link_daily (workspace_id, day, link_id, hits, bots)
         SELECT $1, (hour AT TIME ZONE 'UTC')::date, link_id, sum(clicks), sum(bots)
         FROM link_stats_hourly WHERE workspace_id = $1 GROUP BY 1, 2, 3",
    )
    .bind(workspace)
    .execute(&app.db)
    .await
    .expect("daily");
}

/// The workspace's top links of `range`, for each of `tops` and with and without bots, are
/// a sum over the hourly rollup of the range: live links only, ties by code.
async fn top_links_are_the_rollups_sums(
    app: &crate::support::TestApp,
    workspace: i64,
    (from, to): (OffsetDateTime, OffsetDateTime),
    tops: &[i64],
) {
    for &top in tops {
        for bots in [false, true] {
            let expected: Vec<(String, i64)> = sqlx::query_as(
                "SELECT l.code, sum(s.clicks + s.qr_scans + CASE WHEN $4 THEN s.bots ELSE 0 END)::int8 AS n
                 FROM link_stats_hourly s JOIN links l ON l.id = s.link_id
                 WHERE l.workspace_id = $1 AND l.deleted_at IS NULL AND s.hour >= $2 AND s.hour < $3
                 GROUP BY l.code HAVING sum(s.clicks + s.qr_scans + CASE WHEN $4 THEN s.bots ELSE 0 END) > 0
                 ORDER BY n DESC, l.code COLLATE \"C\" LIMIT $5",
            )
            .bind(workspace)
            .bind(from)
            .bind(to)
            .bind(bots)
            .bind(top)
            .fetch_all(&app.db)
            .await
            .expect("expected");
            let body = stats(
                app,
                &format!(
                    "/api/v1/stats?from={}&to={}&interval=day&bots={bots}&top={top}",
                    rfc(from),
                    rfc(to)
                ),
            )
            .await;
            let got: Vec<(String, i64)> = body["top_links"]
                .as_array()
                .expect("top links")
                .iter()
                .map(|l| {
                    (
                        l["code"].as_str().expect("code").to_owned(),
                        l["count"].as_i64().expect("count"),
                    )
                })
                .collect();
            assert_eq!(got, expected, "top {top} bots {bots}");
        }
    }
}

/// A range without a whole UTC day (the dashboard's "last 24 hours") reads the tops of its
/// days' lists, not the lists whole: the links seen get their hours at either end counted
/// exactly. Before, no link seen had more than nothing for sure, and each of the two days'
/// lists of 3,000 links was read to its end at every poll.
#[tokio::test]
async fn top_links_of_a_range_without_a_whole_day_read_the_tops_of_the_lists() {
    let database_url = crate::support::new_database().await;
    let app = crate::support::app_with(&crate::support::config(&database_url)).await;
    let first = link(&app, "first").await;
    let workspace: i64 = sqlx::query_scalar("SELECT workspace_id FROM links WHERE id = $1")
        .bind(first)
        .fetch_one(&app.db)
        .await
        .expect("workspace");
    let day0 = (OffsetDateTime::now_utc() - Duration::days(40)).replace_time(time::Time::MIDNIGHT);
    let from = day0 + Duration::hours(6);
    let to = day0 + Duration::days(1) + Duration::hours(18);
    // 3,000 links, each clicked at noon of both days, one visit fewer each.
    seed_noon_visits(
        &app,
        workspace,
        ("many", 3000),
        (day0, 2),
        "5000 - substr(l.code, 5)::int",
        0,
    )
    .await;
    let runs = 5;
    for _ in 0..runs {
        let body = stats(
            &app,
            &format!(
                "/api/v1/stats?from={}&to={}&interval=hour&top=10",
                rfc(from),
                rfc(to)
            ),
        )
        .await;
        let got: Vec<(&str, i64)> = body["top_links"]
            .as_array()
            .expect("top links")
            .iter()
            .map(|l| {
                (
                    l["code"].as_str().expect("code"),
                    l["count"].as_i64().expect("count"),
                )
            })
            .collect();
        let expected: Vec<(String, i64)> = (1..=10)
            .map(|i| (format!("many{i}"), 2 * (5000 - i)))
            .collect();
        let expected: Vec<(&str, i64)> = expected.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        assert_eq!(got, expected);
    }
    let mut conn = crate::support::end_other_backends(&database_url).await;
    let read: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(idx_tup_read), 0)::int8 FROM pg_stat_user_indexes
         WHERE relname = 'workspace_link_daily'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("read");
    // A run reads the first 40 of each of the two days' lists.
    assert!(
        read <= 100 * runs,
        "{read} index entries read in {runs} runs"
    );
}

/// A burst of tag edits is moved in bounded steps (500 links each, `analytics/tags.rs`), and
/// the tags count every click once the last step is done: the edits' old tag ends at zero,
/// the new one holds them all.
#[tokio::test]
async fn a_burst_of_tag_edits_moves_in_bounded_steps() {
    let app = spawn_app().await;
    const LINKS: usize = 520;
    let mut events = Vec::new();
    for n in 0..LINKS {
        let code = format!("burst{n}");
        let link = app
            .create(json!({"destination": "https://example.com/b", "code": code, "tags": ["old"]}))
            .await;
        let id = link["id"].as_i64().expect("id");
        events.push(event(
            &format!("b{n}"),
            id,
            &code,
            OffsetDateTime::now_utc() - Duration::hours(2),
        ));
    }
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");
    for n in 0..LINKS {
        let response = app
            .api(
                Method::PATCH,
                &format!("/api/v1/links/burst{n}"),
                Some(json!({"tags": ["new"]})),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    let tag_total = |tag: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT coalesce(sum(hits), 0)::int8 FROM workspace_tag_daily WHERE tag = $1",
            )
            .bind(tag)
            .fetch_one(&db)
            .await
            .expect("tag total")
        }
    };
    assert_eq!(tag_total("old").await, LINKS as i64);
    let mut steps = Vec::new();
    loop {
        let moved = app.state.move_tag_counts_step().await.expect("move");
        steps.push(moved);
        if moved == 0 {
            break;
        }
    }
    assert_eq!(steps, [500, 20, 0]);
    assert_eq!(tag_total("old").await, 0);
    assert_eq!(tag_total("new").await, LINKS as i64);
    let body = stats(&app, "/api/v1/stats?interval=day").await;
    assert_eq!(
        body["top"]["tag"],
        json!([{"value": "new", "count": LINKS}])
    );
}

/// A link that holds nearly every breakdown row (a deployment with one popular link), and a
/// workspace that holds them all (a deployment of one team): their breakdowns are still read
/// as ranges of the rollups' keys, never by a scan of a whole table. Planned for the range's
/// bounds, or for any, a query whose bounds PostgreSQL cannot see until it runs (the summed
/// days, `daily_breakdown_progress`) expected a third of the owner's rows, so all of them for
/// such a link, and scanned the table (0047: one link's 190,552 hourly rows alone, 57–112 ms
/// for its 90 days and 46–69 ms for its last day, where its key ranges take 5–11 and ~2 ms).
#[tokio::test]
async fn the_breakdowns_of_an_owner_of_most_rows_are_read_by_key_ranges() {
    let database_url = crate::support::new_database().await;
    let app = crate::support::app_on(&database_url).await;
    let id = link(&app, "popular").await;
    let workspace: i64 = sqlx::query_scalar("SELECT workspace_id FROM links WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("workspace");
    // 60 days of hours, and of days before today (all summed), 33 values in each: as many
    // rows for the link and its workspace.
    let values = "(VALUES ('referrer', 10), ('country', 10), ('device', 3), ('browser', 5),
                           ('os', 5)) AS d (dimension, n),
                  LATERAL generate_series(1, d.n) AS v";
    for (part, key, owner) in [
        (
            "link",
            "workspace_id, link_id",
            format!("{workspace}, {id}"),
        ),
        ("workspace", "workspace_id", workspace.to_string()),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {part}_breakdown_hourly ({key}, dimension, hour, value, hits, bots)
             SELECT {owner}, d.dimension, date_trunc('hour', now()) - make_interval(hours => h),
                    d.dimension || '-' || v, 10 + v, 1
             FROM generate_series(0, 60 * 24 - 1) AS h, {values}"
        ))
        .execute(&app.db)
        .await
        .expect("hourly rows");
        sqlx::query(&format!(
            "INSERT INTO {part}_breakdown_daily ({key}, dimension, day, value, hits, bots)
             SELECT {owner}, d.dimension, (now() AT TIME ZONE 'UTC')::date - g,
                    d.dimension || '-' || v, 240 + 24 * v, 24
             FROM generate_series(1, 60) AS g, {values}"
        ))
        .execute(&app.db)
        .await
        .expect("daily rows");
    }
    sqlx::query("ANALYZE")
        .execute(&app.db)
        .await
        .expect("analyze");
    // Runs on each of the pool's connections: a prepared statement is planned for its
    // parameters five times on a connection, then maybe for any.
    let from = rfc(OffsetDateTime::now_utc() - Duration::days(30));
    let runs = 24;
    for _ in 0..runs {
        for path in [
            format!("/api/v1/links/popular/stats?interval=day&from={from}"),
            format!("/api/v1/stats?interval=day&from={from}"),
        ] {
            let body = stats(&app, &path).await;
            assert_eq!(
                body["top"]["device"][0]["value"], "device-3",
                "{path}: {body}"
            );
        }
    }
    // A backend reports what it read when it ends: end the app's, and read the counts once
    // they are gone.
    let mut conn = crate::support::end_other_backends(&database_url).await;
    let scans: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT relname::text, seq_tup_read, coalesce(idx_scan, 0), coalesce(idx_tup_fetch, 0)
         FROM pg_stat_user_tables
         WHERE relname IN ('link_breakdown_hourly', 'link_breakdown_daily',
                           'workspace_breakdown_hourly', 'workspace_breakdown_daily')
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("scans");
    assert_eq!(scans.len(), 4, "{scans:?}");
    for (table, scanned, ranges, fetched) in &scans {
        assert_eq!(
            *scanned, 0,
            "rows of {table} read by a scan of the whole table: {scans:?}"
        );
        assert!(
            *ranges >= runs,
            "{table} read by key fewer times than asked: {scans:?}"
        );
        // A run's rows: 29–30 whole days, or the hours at either end (under 49), 33 values
        // each; reading the owner's rows whole would fetch 60 days of them.
        let most = if table.ends_with("_daily") { 31 } else { 50 } * 33 * runs;
        assert!(
            *fetched <= most,
            "{table}: {fetched} rows fetched, at most {most}: {scans:?}"
        );
    }
}
