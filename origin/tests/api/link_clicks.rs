//! Clicks in the links list (#17): each link's clicks in all (imported ones included) and in the
//! last 7 days, from the rollups (`link_click_totals`, kept by the rollup counter), and the
//! list sorted by either with keyset pages; deleted links and other workspaces left out; who
//! may list.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource};
use time::{Duration, OffsetDateTime};

use crate::support::{As, TestApp, spawn_app};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// A visit to `link` (id, code) at `at`, stored as the edge's ingest stores it.
fn click(link: &(i64, String), at: OffsetDateTime, qr: bool, agent: &str) -> ClickEvent {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("randomness");
    ClickEvent {
        id: hex::encode(id),
        link_id: link.0,
        code: ShortCode::parse(&link.1).expect("code"),
        at,
        country: Some("DE".to_owned()),
        referrer: None,
        user_agent: Some(agent.to_owned()),
        qr,
        head: false,
        source: ClickSource::Edge,
        visitor: Some(hex::encode(id)),
        variant: None,
    }
}

/// Stores the clicks (ingest) and counts them into the rollups (the counter).
async fn record(app: &TestApp, events: &[ClickEvent]) {
    assert_eq!(
        app.state.store_clicks(events).await.expect("store"),
        events.len() as u64
    );
    app.state.count_clicks().await.expect("count");
}

async fn create(app: &TestApp, who: &As, body: Value) -> (i64, String) {
    let response = app
        .call(who, Method::POST, "/api/v1/links", Some(body))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let link = response.json();
    (
        link["id"].as_i64().expect("id"),
        link["code"].as_str().expect("code").to_owned(),
    )
}

/// One page of the list as `who`.
async fn page(app: &TestApp, who: &As, query: &str) -> Value {
    let response = app
        .call(who, Method::GET, &format!("/api/v1/links?{query}"), None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

/// Every page of the list with `query`, `limit` a page: (code, total, last 7 days) in order.
async fn every_page(app: &TestApp, query: &str, limit: usize) -> Vec<(String, u64, u64)> {
    let mut links = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{query}&limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let body = page(app, &As::Key(app.api_key.clone()), &url).await;
        let shown = body["links"].as_array().expect("links");
        assert!(shown.len() <= limit);
        links.extend(shown.iter().map(|link| {
            (
                link["code"].as_str().expect("code").to_owned(),
                link["click_counts"]["total"].as_u64().expect("total"),
                link["click_counts"]["last_7_days"]
                    .as_u64()
                    .expect("7 days"),
            )
        }));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return links,
        }
    }
}

/// (total, last 7 days) of each link of the first page, by code.
fn counts(body: &Value) -> std::collections::HashMap<String, (u64, u64)> {
    body["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|link| {
            (
                link["code"].as_str().expect("code").to_owned(),
                (
                    link["click_counts"]["total"].as_u64().expect("total"),
                    link["click_counts"]["last_7_days"]
                        .as_u64()
                        .expect("7 days"),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_list_shows_each_links_clicks_from_the_rollups() {
    let app = spawn_app().await;
    let owner = As::Key(app.api_key.clone());
    let imported = create(
        &app,
        &owner,
        json!({"destination": "https://example.com/a", "code": "imported", "imported_clicks": 40}),
    )
    .await;
    let clicked = create(
        &app,
        &owner,
        json!({"destination": "https://example.com/b", "code": "clicked"}),
    )
    .await;
    create(
        &app,
        &owner,
        json!({"destination": "https://example.com/c", "code": "quiet"}),
    )
    .await;
    // Another workspace's link, clicked more than any of these.
    let other = app.workspace("other").await;
    let other_key = app
        .key(other, &["links:read", "links:write", "stats:read"])
        .await;
    let elsewhere = create(
        &app,
        &other_key,
        json!({"destination": "https://example.com/x", "code": "elsewhere"}),
    )
    .await;

    let now = OffsetDateTime::now_utc();
    let events = [
        // People's clicks and a QR scan count; a bot's visit does not.
        click(&clicked, now - Duration::hours(1), false, CHROME),
        click(&clicked, now - Duration::hours(30), true, CHROME),
        click(&clicked, now - Duration::hours(2), false, GOOGLEBOT),
        // Counted in all, but older than 7 days.
        click(&clicked, now - Duration::days(9), false, CHROME),
        click(&imported, now - Duration::days(20), false, CHROME),
        click(&imported, now - Duration::minutes(5), false, CHROME),
        click(&elsewhere, now - Duration::hours(1), false, CHROME),
        click(&elsewhere, now - Duration::hours(1), false, CHROME),
    ];
    record(&app, &events).await;

    let body = page(&app, &owner, "").await;
    let expected = [
        ("imported".to_owned(), (42, 1)),
        ("clicked".to_owned(), (3, 2)),
        ("quiet".to_owned(), (0, 0)),
    ];
    assert_eq!(counts(&body), expected.into_iter().collect());
    // The same counts the export has in all.
    let export = app
        .api(Method::GET, "/api/v1/links/export?format=jsonl", None)
        .await;
    for line in export.text().lines() {
        let exported: Value = serde_json::from_str(line).expect("JSON");
        let code = exported["code"].as_str().expect("code");
        assert_eq!(
            Some(exported["clicks"].as_u64().expect("clicks")),
            counts(&body).get(code).map(|c| c.0),
            "{code}"
        );
    }
    // A link's own answer has no counts (only the list does).
    let one = app.api(Method::GET, "/api/v1/links/clicked", None).await;
    assert!(one.json().get("click_counts").is_none(), "{}", one.text());

    // Every role lists, with the counts; the other workspace sees its own link only.
    for role in ["owner", "admin", "editor", "viewer"] {
        let person = app.user(&format!("{role}-1"), &[(1, role)]).await;
        let body = page(&app, &person, "sort=clicks").await;
        let codes: Vec<&str> = body["links"]
            .as_array()
            .expect("links")
            .iter()
            .map(|link| link["code"].as_str().expect("code"))
            .collect();
        assert_eq!(codes, ["imported", "clicked", "quiet"], "{role}");
    }
    let theirs = page(&app, &other_key, "sort=clicks_7d").await;
    assert_eq!(
        counts(&theirs),
        [("elsewhere".to_owned(), (2, 2))].into_iter().collect()
    );
    let viewer_elsewhere = app.user("viewer-2", &[(other, "viewer")]).await;
    let theirs = page(&app, &viewer_elsewhere, "sort=clicks").await;
    assert_eq!(theirs["links"].as_array().expect("links").len(), 1);

    for query in ["", "?sort=clicks", "?sort=clicks_7d"] {
        let refused = app
            .call(
                &As::Nobody,
                Method::GET,
                &format!("/api/v1/links{query}"),
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{query}");
    }
}

#[tokio::test]
async fn the_seven_day_counts_drop_clicks_as_their_hours_leave_the_window() {
    let app = spawn_app().await;
    let owner = As::Key(app.api_key.clone());
    let link = create(
        &app,
        &owner,
        json!({"destination": "https://example.com/a", "code": "week"}),
    )
    .await;
    let now = OffsetDateTime::now_utc();
    record(
        &app,
        &[
            click(&link, now - Duration::days(6), false, CHROME),
            click(&link, now - Duration::days(4), false, CHROME),
            click(&link, now - Duration::hours(1), false, CHROME),
        ],
    )
    .await;
    assert_eq!(counts(&page(&app, &owner, "").await)["week"], (3, 3));

    // Two days pass: everything the database holds is two days older (the rollups and the
    // window's start alike), and the next run of the counter moves the window on.
    sqlx::query("UPDATE link_stats_hourly SET hour = hour - interval '2 days'")
        .execute(&app.db)
        .await
        .expect("older rollups");
    sqlx::query("UPDATE link_clicks_window SET start = start - interval '2 days'")
        .execute(&app.db)
        .await
        .expect("older window");
    app.state.count_clicks().await.expect("count");
    assert_eq!(counts(&page(&app, &owner, "").await)["week"], (3, 2));
    // A late click dated older than the window counts in all only.
    record(
        &app,
        &[click(&link, now - Duration::days(8), false, CHROME)],
    )
    .await;
    assert_eq!(counts(&page(&app, &owner, "").await)["week"], (4, 2));
}

#[tokio::test]
async fn sorted_by_clicks_pages_hold_every_link_once_ties_newest_first() {
    let app = spawn_app().await;
    let owner = As::Key(app.api_key.clone());
    // 23 links: clicks in all and this week made to tie often, in a different order.
    let now = OffsetDateTime::now_utc();
    let mut links = Vec::new();
    let mut events = Vec::new();
    for i in 0..23_u64 {
        let imported = if i % 5 == 0 { 3 } else { 0 };
        let link = create(
            &app,
            &owner,
            json!({"destination": format!("https://example.com/{i}"), "code": format!("l{i:02}"),
                   "imported_clicks": imported}),
        )
        .await;
        let (recent, old) = (i % 4, i % 3);
        for _ in 0..recent {
            events.push(click(&link, now - Duration::hours(3), false, CHROME));
        }
        for _ in 0..old {
            events.push(click(&link, now - Duration::days(12), false, CHROME));
        }
        links.push((link, imported + recent + old, recent));
    }
    record(&app, &events).await;

    for (sort, key) in [("clicks", 0), ("clicks_7d", 1)] {
        let mut expected: Vec<(i64, String, u64, u64)> = links
            .iter()
            .map(|((id, code), total, recent)| (*id, code.clone(), *total, *recent))
            .collect();
        expected.sort_by(|a, b| {
            let (x, y) = if key == 0 { (a.2, b.2) } else { (a.3, b.3) };
            y.cmp(&x).then(b.0.cmp(&a.0))
        });
        let expected: Vec<(String, u64, u64)> = expected
            .into_iter()
            .map(|(_, code, total, recent)| (code, total, recent))
            .collect();
        for limit in [1, 4, 23, 50] {
            let shown = every_page(&app, &format!("sort={sort}"), limit).await;
            assert_eq!(shown, expected, "{sort}, {limit} a page");
        }
    }
    // Filters apply to the sorted list too.
    let tagged = every_page(&app, "sort=clicks&q=l1", 2).await;
    assert!(tagged.iter().all(|(code, ..)| code.starts_with("l1")));
    assert_eq!(tagged.len(), 10);

    // A cursor of another sort's shape is refused, not misread.
    for query in [
        "sort=clicks&cursor=17",
        "sort=clicks_7d&cursor=abc_1",
        "sort=newest&cursor=3_4",
    ] {
        let response = app
            .api(Method::GET, &format!("/api/v1/links?{query}"), None)
            .await;
        let (code, field) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), field.as_deref()),
            ("invalid_input", Some("cursor")),
            "{query}"
        );
    }
}

#[tokio::test]
async fn deleted_links_leave_the_sorted_list_and_new_ones_join_it() {
    let app = spawn_app().await;
    let owner = As::Key(app.api_key.clone());
    let gone = create(
        &app,
        &owner,
        json!({"destination": "https://example.com/a", "code": "gone"}),
    )
    .await;
    let kept = create(
        &app,
        &owner,
        json!({"destination": "https://example.com/b", "code": "kept"}),
    )
    .await;
    let now = OffsetDateTime::now_utc();
    record(
        &app,
        &[
            click(&gone, now - Duration::hours(1), false, CHROME),
            click(&kept, now - Duration::hours(1), false, CHROME),
        ],
    )
    .await;
    let deleted = app.api(Method::DELETE, "/api/v1/links/gone", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM link_click_totals WHERE link_id = $1")
        .bind(gone.0)
        .fetch_one(&app.db)
        .await
        .expect("rows");
    assert_eq!(rows, 0);
    // A click of the deleted link arriving late is stored and counted, but brings no row back.
    record(
        &app,
        &[click(&gone, now - Duration::minutes(1), false, CHROME)],
    )
    .await;
    // Links made by a bulk create are in the sorted list from the start, with their imports.
    let bulk = app
        .api(
            Method::POST,
            "/api/v1/links/bulk",
            Some(json!({"links": [
                {"destination": "https://example.com/c", "code": "bulk1", "imported_clicks": 9},
                {"destination": "https://example.com/d", "code": "bulk2"},
            ]})),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.text());
    let shown = every_page(&app, "sort=clicks", 10).await;
    assert_eq!(
        shown,
        [
            ("bulk1".to_owned(), 9, 0),
            ("kept".to_owned(), 1, 1),
            ("bulk2".to_owned(), 0, 0),
        ]
    );
}

/// Clicks are statistics: a key with `links:read` but not `stats:read` lists and exports the
/// links without their clicks, and may not rank them by clicks (403 naming the scope). Before,
/// it read every link's clicks through the list and the export while the stats refused it.
#[tokio::test]
async fn a_key_that_may_not_read_stats_gets_links_without_their_clicks() {
    let app = spawn_app().await;
    let owner = As::Key(app.api_key.clone());
    let link = create(
        &app,
        &owner,
        json!({"destination": "https://example.com/s", "code": "counted", "imported_clicks": 4}),
    )
    .await;
    record(
        &app,
        &[click(
            &link,
            OffsetDateTime::now_utc() - Duration::minutes(5),
            false,
            CHROME,
        )],
    )
    .await;
    let links_only = app.key(1, &["links:read"]).await;
    let both = app.key(1, &["links:read", "stats:read"]).await;

    for (who, counts) in [
        (&links_only, None),
        (&both, Some(json!({"total": 5, "last_7_days": 1}))),
    ] {
        let shown = page(&app, who, "").await;
        assert_eq!(
            shown["links"][0].get("click_counts").cloned(),
            counts,
            "{who:?}"
        );
        let export = app
            .call(who, Method::GET, "/api/v1/links/export", None)
            .await;
        let line: Value = serde_json::from_slice(&export.body).expect("one line");
        assert_eq!(line.get("clicks").is_some(), counts.is_some(), "{line}");
        let csv = app
            .call(who, Method::GET, "/api/v1/links/export?format=csv", None)
            .await;
        let csv = csv.text();
        let row: Vec<&str> = csv.lines().nth(1).expect("a row").split(',').collect();
        assert_eq!(row[7], if counts.is_some() { "5" } else { "" }, "{csv}");
    }
    for sort in ["clicks", "clicks_7d"] {
        let response = app
            .call(
                &links_only,
                Method::GET,
                &format!("/api/v1/links?sort={sort}"),
                None,
            )
            .await;
        let (code, _) = response.error(StatusCode::FORBIDDEN);
        assert_eq!(code, "forbidden", "{sort}");
        assert!(
            response.text().contains("stats:read"),
            "{}",
            response.text()
        );
        assert_eq!(
            page(&app, &both, &format!("sort={sort}")).await["links"][0]["code"],
            "counted"
        );
    }
}
