//! Link rules at the origin's redirect: targeting, the A/B split, UTM, disabled links and
//! fallbacks, passwords (the form, its limits and the unlock cookie), the exact click limit
//! (the origin's own clicks and the edge's ingested ones), and the stats by variant and tag.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::support::{TestApp, TestResponse, app_with, config, new_database, spawn_app};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
const CURL: &str = "curl/8.5.0";
const PASSWORD: &str = "hunter22 & more";

/// An app that reads the visitor's address from `x-real-ip` (so tests can be many visitors).
async fn app_with_addresses() -> TestApp {
    let mut config = config(&new_database().await);
    config.client_ip_header = Some("x-real-ip".to_owned());
    app_with(&config).await
}

fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Body) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).expect("request")
}

async fn visit(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    app.send(request(Method::GET, path, headers, Body::empty()))
        .await
}

/// Posts the password form from `address`.
async fn post_password(app: &TestApp, path: &str, address: &str, password: &str) -> TestResponse {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("password", password)
        .finish();
    app.send(request(
        Method::POST,
        path,
        &[
            ("x-real-ip", address),
            ("content-type", "application/x-www-form-urlencoded"),
            ("user-agent", CHROME),
        ],
        Body::from(body),
    ))
    .await
}

fn location(response: &TestResponse) -> &str {
    response.header(&header::LOCATION)
}

/// Stores the clicks the recorder holds (its background task must run) and counts them.
async fn store_recorded_clicks(app: &TestApp) {
    app.state.drain_clicks(Duration::from_secs(5)).await;
    app.state.count_clicks().await.expect("count");
}

async fn stats(app: &TestApp, path: &str) -> Value {
    let response = app.api(Method::GET, path, None).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

#[tokio::test]
async fn targeting_picks_the_first_rule_that_matches_and_utm_is_merged() {
    let mut config = config(&new_database().await);
    config.gateway.country_header = HeaderName::from_static("x-country");
    let app = app_with(&config).await;
    app.create(json!({
        "destination": "https://example.com/x?keep=1&utm_source=old",
        "code": "targeted",
        "targets": [
            {"when": {"country": ["DE", "AT"]}, "destination": "https://de.example/"},
            {"when": {"device": ["mobile"]}, "destination": "https://m.example/"},
            {"when": {"os": ["macos"]}, "destination": "https://mac.example/"},
            {"when": {"language": ["fr"]}, "destination": "https://fr.example/"},
            {"when": {"query": {"param": "ref", "value": "mail list"}}, "destination": "https://q.example/"}
        ],
        "utm": {"source": "kurz", "campaign": "launch"}
    }))
    .await;
    let utm = "utm_source=kurz&utm_campaign=launch";
    /// (what it shows, path, request headers, where it goes)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], String);
    let cases: &[Case<'_>] = &[
        (
            "nothing matches: the destination, its own utm_source replaced",
            "/targeted",
            &[("user-agent", CHROME)],
            format!("https://example.com/x?keep=1&{utm}"),
        ),
        (
            "country, from the configured header",
            "/targeted",
            &[("user-agent", CHROME), ("x-country", "at")],
            format!("https://de.example/?{utm}"),
        ),
        (
            "another header is not the country",
            "/targeted",
            &[("user-agent", CHROME), ("cf-ipcountry", "DE")],
            format!("https://example.com/x?keep=1&{utm}"),
        ),
        (
            "first match wins",
            "/targeted",
            &[("user-agent", IPHONE), ("x-country", "DE")],
            format!("https://de.example/?{utm}"),
        ),
        (
            "device",
            "/targeted",
            &[("user-agent", IPHONE)],
            format!("https://m.example/?{utm}"),
        ),
        (
            "os",
            "/targeted",
            &[("user-agent", MAC)],
            format!("https://mac.example/?{utm}"),
        ),
        (
            "language",
            "/targeted",
            &[
                ("user-agent", CHROME),
                ("accept-language", "fr-CH, en;q=0.8"),
            ],
            format!("https://fr.example/?{utm}"),
        ),
        (
            "query of the short URL",
            "/targeted?x=1&ref=mail+list",
            &[("user-agent", CHROME)],
            format!("https://q.example/?{utm}"),
        ),
    ];
    for (name, path, headers, expected) in cases {
        let response = visit(&app, path, headers).await;
        assert_eq!(response.status, StatusCode::FOUND, "{name}");
        assert_eq!(location(&response), expected, "{name}");
        // An answer that depends on the visitor is never kept by a browser or proxy.
        assert_eq!(
            response.header(&header::CACHE_CONTROL),
            "private, no-store",
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_split_keeps_each_visitor_on_one_variant_and_follows_the_weights() {
    let app = app_with_addresses().await;
    let background = app.state.spawn_background();
    app.create(json!({
        "destination": "https://example.com/control",
        "code": "ab",
        "split": [
            {"destination": "https://a.example/", "weight": 30},
            {"destination": "https://b.example/", "weight": 70}
        ]
    }))
    .await;
    let visitors = 300;
    let mut on_a = 0;
    for i in 0..visitors {
        let address = format!("10.1.{}.{}", i / 256, i % 256);
        let headers = [("x-real-ip", address.as_str()), ("user-agent", CHROME)];
        let first = visit(&app, "/ab", &headers).await;
        assert_eq!(first.status, StatusCode::FOUND);
        let again = visit(&app, "/ab", &headers).await;
        assert_eq!(location(&again), location(&first), "visitor {address}");
        match location(&first) {
            "https://a.example/" => on_a += 1,
            "https://b.example/" => {}
            other => panic!("{other}"),
        }
    }
    // 30 % of 300 is 90; the bound is over five standard deviations wide.
    assert!((50..=130).contains(&on_a), "{on_a} of {visitors} on A");

    store_recorded_clicks(&app).await;
    let body = stats(&app, "/api/v1/links/ab/stats").await;
    let on_b = visitors - on_a;
    let mut expected = vec![
        json!({"value": "0", "count": 2 * on_a}),
        json!({"value": "1", "count": 2 * on_b}),
    ];
    expected.sort_by_key(|ranked| -ranked["count"].as_i64().expect("count"));
    assert_eq!(body["top"]["variant"], json!(expected), "{body}");
    let variants: Vec<(Option<i16>, i64)> =
        sqlx::query_as("SELECT variant, count(*) FROM clicks GROUP BY 1 ORDER BY 1")
            .fetch_all(&app.db)
            .await
            .expect("variants");
    assert_eq!(
        variants,
        [
            (Some(0), i64::from(2 * on_a)),
            (Some(1), i64::from(2 * on_b))
        ]
    );
    // The export names each click's variant.
    let csv = app
        .api(Method::GET, "/api/v1/links/ab/clicks.csv", None)
        .await;
    let csv = csv.text();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2 * visitors as usize, "{csv}");
    assert!(
        csv.lines()
            .next()
            .is_some_and(|header| header.ends_with(",variant"))
    );
    assert!(
        rows.iter()
            .all(|row| row.ends_with(",0") || row.ends_with(",1")),
        "{csv}"
    );
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

/// Sends `visitors` visitors (from addresses under `net`) to `/{code}` once each; returns how
/// many went to each destination, by destination.
async fn visit_split(
    app: &TestApp,
    code: &str,
    net: u8,
    visitors: u32,
) -> std::collections::BTreeMap<String, i64> {
    let mut went = std::collections::BTreeMap::new();
    for i in 0..visitors {
        let address = format!("10.{net}.{}.{}", i / 256, i % 256);
        let headers = [("x-real-ip", address.as_str()), ("user-agent", CHROME)];
        let response = visit(app, &format!("/{code}"), &headers).await;
        assert_eq!(response.status, StatusCode::FOUND);
        *went.entry(location(&response).to_owned()).or_insert(0) += 1;
    }
    went
}

/// Changes the split of `/{code}` to `split`; the split the link has after it.
async fn change_split(app: &TestApp, code: &str, split: Value) -> Value {
    let path = format!("/api/v1/links/{code}");
    let changed = app
        .api(Method::PATCH, &path, Some(json!({ "split": split })))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    changed.json()["split"].clone()
}

#[tokio::test]
async fn a_variant_keeps_its_clicks_when_the_split_is_changed() {
    let app = app_with_addresses().await;
    let background = app.state.spawn_background();
    let (a, b, c) = (
        "https://a.example/",
        "https://b.example/",
        "https://c.example/",
    );
    let created = app
        .create(json!({
            "destination": "https://example.com/control",
            "code": "ab",
            "split": [{"destination": a, "weight": 50}, {"destination": b, "weight": 50}]
        }))
        .await;
    assert_eq!(
        created["split"],
        json!([{"id": 0, "destination": a, "weight": 50}, {"id": 1, "destination": b, "weight": 50}])
    );
    let first = visit_split(&app, "ab", 1, 100).await;

    // A removed, B moved first, C added: B keeps its id (by its destination), C takes one
    // never used.
    let changed = change_split(
        &app,
        "ab",
        json!([{"destination": b, "weight": 60}, {"destination": c, "weight": 40}]),
    )
    .await;
    assert_eq!(
        changed,
        json!([{"id": 1, "destination": b, "weight": 60}, {"id": 2, "destination": c, "weight": 40}])
    );
    let second = visit_split(&app, "ab", 2, 100).await;
    // B's destination changed under its id (the dashboard sends it): still B's clicks. A's
    // destination back without an id is a new variant: A's id stays A's.
    let b2 = "https://b2.example/";
    let changed = change_split(
        &app,
        "ab",
        json!([{"id": 1, "destination": b2, "weight": 50}, {"destination": a, "weight": 50}]),
    )
    .await;
    assert_eq!(
        changed,
        json!([{"id": 1, "destination": b2, "weight": 50}, {"id": 3, "destination": a, "weight": 50}])
    );
    let third = visit_split(&app, "ab", 3, 100).await;
    // The highest id removed, one added: still an id never given (not 3 again).
    let changed = change_split(
        &app,
        "ab",
        json!([
            {"id": 1, "destination": b2, "weight": 50},
            {"destination": "https://d.example/", "weight": 50}
        ]),
    )
    .await;
    assert_eq!(
        changed[1],
        json!({"id": 4, "destination": "https://d.example/", "weight": 50})
    );

    store_recorded_clicks(&app).await;
    let count = |went: &std::collections::BTreeMap<String, i64>, to: &str| {
        went.get(to).copied().unwrap_or(0)
    };
    let mut expected = vec![
        json!({"value": "0", "count": count(&first, a)}),
        json!({"value": "1", "count": count(&first, b) + count(&second, b) + count(&third, b2)}),
        json!({"value": "2", "count": count(&second, c)}),
        json!({"value": "3", "count": count(&third, a)}),
    ];
    expected.retain(|ranked| ranked["count"] != 0);
    let body = stats(&app, "/api/v1/links/ab/stats").await;
    let mut top = body["top"]["variant"].as_array().expect("variants").clone();
    // Equal counts come in any order.
    top.sort_by_key(|ranked| {
        (
            -ranked["count"].as_i64().expect("count"),
            ranked["value"].to_string(),
        )
    });
    expected.sort_by_key(|ranked| {
        (
            -ranked["count"].as_i64().expect("count"),
            ranked["value"].to_string(),
        )
    });
    assert_eq!(top, expected, "{body}");
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn a_split_stored_before_variant_ids_shows_its_positions_and_keeps_its_counted_ids() {
    let app = app_with_addresses().await;
    let (a, b) = ("https://a.example/", "https://b.example/");
    let link = app
        .create(json!({
            "destination": "https://example.com/control",
            "code": "old",
            "split": [{"destination": a, "weight": 50}, {"destination": b, "weight": 50}]
        }))
        .await;
    let id = link["id"].as_i64().expect("id");
    // As an earlier release left it: no ids, no count of them, and clicks under variants
    // since removed (positions 2 and 4).
    sqlx::query("UPDATE links SET split = $2, split_ids_used = NULL WHERE id = $1;")
        .bind(id)
        .bind(json!([{"destination": a, "weight": 50}, {"destination": b, "weight": 50}]))
        .execute(&app.db)
        .await
        .expect("an old split");
    sqlx::query(
        "INSERT INTO link_breakdown_daily (workspace_id, link_id, dimension, day, value, hits, bots)
         VALUES (1, $1, 'variant', current_date - 3, '2', 40, 0),
                (1, $1, 'variant', current_date - 3, '0', 10, 0)",
    )
    .bind(id)
    .execute(&app.db)
    .await
    .expect("counted clicks");
    // And one not counted yet, under a fifth (position 4).
    sqlx::query(
        "INSERT INTO clicks_pending (link_id, link_workspace_id, at, referrer_host, device,
                                     browser, os, bot, qr, variant)
         VALUES ($1, 1, now(), 'direct', 'desktop', 'Chrome', 'Windows', false, false, 4)",
    )
    .bind(id)
    .execute(&app.db)
    .await
    .expect("a click to count");
    let shown = app.api(Method::GET, "/api/v1/links/old", None).await.json();
    assert_eq!(
        shown["split"],
        json!([{"id": 0, "destination": a, "weight": 50}, {"id": 1, "destination": b, "weight": 50}])
    );
    // The dashboard sends the ids it was shown: A's new destination keeps A's clicks; a new
    // variant takes an id after every one its clicks name.
    let split = change_split(
        &app,
        "old",
        json!([
            {"id": 0, "destination": "https://a2.example/", "weight": 40},
            {"id": 1, "destination": b, "weight": 30},
            {"destination": "https://c.example/", "weight": 30}
        ]),
    )
    .await;
    let ids: Vec<Value> = split
        .as_array()
        .expect("variants")
        .iter()
        .map(|variant| variant["id"].clone())
        .collect();
    assert_eq!(ids, [json!(0), json!(1), json!(5)]);
    // Two variants naming one id: refused at the split, saying so.
    let twice = app
        .api(
            Method::PATCH,
            "/api/v1/links/old",
            Some(json!({"split": [
                {"id": 0, "destination": a, "weight": 50},
                {"id": 0, "destination": b, "weight": 50}
            ]})),
        )
        .await;
    let (code, field) = twice.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("invalid_input", Some("split"))
    );
    assert!(twice.text().contains("the id 0"), "{}", twice.text());
    // A save without a split (the dashboard sends an empty one) of a link from before ids
    // gives no id, so it does not read the link's clicks for them.
    sqlx::query("UPDATE links SET split = '[]', split_ids_used = NULL WHERE id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .expect("an old link without a split");
    let saved = app
        .api(
            Method::PATCH,
            "/api/v1/links/old",
            Some(json!({"split": [], "note": "saved"})),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text());
    let used: Option<i16> = sqlx::query_scalar("SELECT split_ids_used FROM links WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("the count");
    assert_eq!(used, None);
}

#[tokio::test]
async fn disabled_expired_and_used_up_links_go_to_their_fallback_without_a_click() {
    let app = app_with_addresses().await;
    let background = app.state.spawn_background();
    let fallback = "https://example.com/sorry";
    app.create(json!({"destination": "https://example.com/a", "code": "off", "disabled": true}))
        .await;
    app.create(json!({"destination": "https://example.com/b", "code": "off-fb", "disabled": true, "fallback_url": fallback}))
        .await;
    for code in ["late", "late-fb"] {
        let mut body = json!({"destination": "https://example.com/c", "code": code, "expires_at": "2099-01-01T00:00:00Z"});
        if code == "late-fb" {
            body["fallback_url"] = json!(fallback);
        }
        app.create(body).await;
    }
    sqlx::query(
        "UPDATE links SET expires_at = now() - interval '1 minute' WHERE code LIKE 'late%'",
    )
    .execute(&app.db)
    .await
    .expect("expire");

    let headers = [("user-agent", CHROME), ("x-real-ip", "192.0.2.1")];
    let off = visit(&app, "/off", &headers).await;
    assert_eq!(off.status, StatusCode::NOT_FOUND);
    assert!(off.text().contains("Link not found"));
    assert_eq!(off.header(&header::CACHE_CONTROL), "no-store");
    let head = app
        .send(request(Method::HEAD, "/off", &headers, Body::empty()))
        .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert!(head.body.is_empty());
    let late = visit(&app, "/late", &headers).await;
    assert_eq!(late.status, StatusCode::GONE);
    assert!(late.text().contains("Link expired"));
    for code in ["off-fb", "late-fb"] {
        let response = visit(&app, &format!("/{code}"), &headers).await;
        assert_eq!(response.status, StatusCode::FOUND, "{code}");
        assert_eq!(location(&response), fallback, "{code}");
        assert_eq!(
            response.header(&header::CACHE_CONTROL),
            "private, no-store",
            "{code}"
        );
    }
    store_recorded_clicks(&app).await;
    let clicks: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks")
        .fetch_one(&app.db)
        .await
        .expect("clicks");
    assert_eq!(clicks, 0, "no answer here is a click");
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

/// The unlock cookie is `Secure` only for a visitor who came over HTTPS: an origin served over
/// plain HTTP (an intranet's go links) set a `Secure` cookie the browser drops, and the right
/// password brought the form back every time.
#[tokio::test]
async fn the_unlock_cookie_is_secure_over_https_only() {
    for (public_url, forwarded, secure) in [
        ("http://go.corp", None, false),
        ("http://go.corp", Some("https"), true),
        ("https://kurz.test", None, true),
    ] {
        let mut config = config(&new_database().await);
        config.public_url = public_url.parse().expect("public URL");
        let app = app_with(&config).await;
        app.create(
            json!({"destination": "https://example.com/s", "code": "secret", "password": PASSWORD}),
        )
        .await;
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("password", PASSWORD)
            .finish();
        let mut headers = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("user-agent", CHROME),
        ];
        headers.extend(forwarded.map(|proto| ("x-forwarded-proto", proto)));
        let right = app
            .send(request(Method::POST, "/secret", &headers, Body::from(body)))
            .await;
        assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.text());
        let cookie = right.header(&header::SET_COOKIE);
        assert!(cookie.starts_with("kurz_pw_"), "{cookie}");
        assert_eq!(
            cookie.contains("; Secure"),
            secure,
            "{public_url} {forwarded:?}: {cookie}"
        );
    }
}

#[tokio::test]
async fn a_password_unlocks_one_link_for_its_cookie_and_wrong_answers_are_limited() {
    let app = app_with_addresses().await;
    let background = app.state.spawn_background();
    let secret = app
        .create(json!({"destination": "https://example.com/secret", "code": "secret", "password": PASSWORD}))
        .await;
    let other = app
        .create(json!({"destination": "https://example.com/other", "code": "other", "password": PASSWORD}))
        .await;
    app.create(json!({"destination": "https://example.com/plain", "code": "plain"}))
        .await;
    let browser = [("user-agent", CHROME), ("x-real-ip", "192.0.2.10")];

    let form = visit(&app, "/secret?x=1", &browser).await;
    assert_eq!(form.status, StatusCode::UNAUTHORIZED);
    assert_eq!(form.header(&header::CACHE_CONTROL), "no-store");
    assert!(
        form.text().contains("<form method=\"post\""),
        "{}",
        form.text()
    );
    let head = app
        .send(request(Method::HEAD, "/secret", &browser, Body::empty()))
        .await;
    assert_eq!(head.status, StatusCode::UNAUTHORIZED);
    assert!(head.body.is_empty());

    let wrong = post_password(&app, "/secret?x=1", "192.0.2.10", "hunter23").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("not right"), "{}", wrong.text());
    let right = post_password(&app, "/secret?x=1", "192.0.2.10", PASSWORD).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.text());
    assert_eq!(location(&right), "/secret?x=1");
    let set_cookie = right.header(&header::SET_COOKIE).to_owned();
    let id = secret["id"].as_i64().expect("id");
    assert!(
        set_cookie.starts_with(&format!("kurz_pw_{id}=")) && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    // Only wrong answers are limited: right ones, again and again, are never turned away.
    for _ in 0..8 {
        let again = post_password(&app, "/secret?x=1", "192.0.2.10", PASSWORD).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());
    }

    let unlocked = visit(
        &app,
        "/secret?x=1",
        &[browser[0], browser[1], ("cookie", &cookie)],
    )
    .await;
    assert_eq!(unlocked.status, StatusCode::FOUND);
    assert_eq!(location(&unlocked), "https://example.com/secret");
    // The cookie beside another of the domain's whose value is UTF-8 (as browsers send it),
    // and in a second `Cookie` field (as HTTP/2 may send them): still unlocked.
    let beside = |fields: &[Vec<u8>]| {
        let mut request = request(
            Method::GET,
            "/secret?x=1",
            &[browser[0], browser[1]],
            Body::empty(),
        );
        for field in fields {
            let value = header::HeaderValue::from_bytes(field).expect("obs-text is a header value");
            request.headers_mut().append(header::COOKIE, value);
        }
        request
    };
    let utf8 = format!("theme=caf\u{e9}; {cookie}").into_bytes();
    let split = [b"theme=dark".to_vec(), cookie.clone().into_bytes()];
    for fields in [vec![utf8], split.to_vec()] {
        let unlocked = app.send(beside(&fields)).await;
        assert_eq!(unlocked.status, StatusCode::FOUND, "{fields:?}");
    }
    // The cookie is this link's: another link with the same password stays locked, even
    // under the other link's cookie name.
    let other_id = other["id"].as_i64().expect("id");
    for cookie in [
        cookie.clone(),
        cookie.replacen(
            &format!("kurz_pw_{id}="),
            &format!("kurz_pw_{other_id}="),
            1,
        ),
    ] {
        let locked = visit(&app, "/other", &[browser[0], ("cookie", &cookie)]).await;
        assert_eq!(locked.status, StatusCode::UNAUTHORIZED, "{cookie}");
    }

    // Five answers per link and address in the window; the sixth is refused unhashed.
    for _ in 0..5 {
        let wrong = post_password(&app, "/other", "198.51.100.7", "wrong!").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    for password in ["wrong!", PASSWORD] {
        let limited = post_password(&app, "/other", "198.51.100.7", password).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = limited
            .header(&header::RETRY_AFTER)
            .parse()
            .expect("seconds");
        assert!((1..=300).contains(&retry_after), "{retry_after}");
        assert!(limited.text().contains("Too many wrong answers"));
    }
    // Another address, or another link, is not held up by them.
    let right = post_password(&app, "/other", "198.51.100.8", PASSWORD).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);

    // A link without a password has no form; a form over 4 KiB is refused unread.
    let plain = post_password(&app, "/plain", "192.0.2.10", PASSWORD).await;
    assert_eq!(plain.status, StatusCode::METHOD_NOT_ALLOWED);
    let huge = post_password(&app, "/secret", "192.0.2.11", &"x".repeat(5_000)).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Only the three unlocked visits were clicks, and no stored column holds the password.
    store_recorded_clicks(&app).await;
    let clicks: Vec<String> = sqlx::query_scalar("SELECT row_to_json(c)::text FROM clicks c")
        .fetch_all(&app.db)
        .await
        .expect("clicks");
    assert_eq!(clicks.len(), 3, "{clicks:?}");
    assert!(
        clicks.iter().all(|row| !row.contains("hunter")),
        "{clicks:?}"
    );
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

/// Answers that find the origin busy (no hash permit within 2 s) are told so (503), and are
/// not counted as wrong: a visitor who tried during a flood still gets in with the password.
#[tokio::test]
async fn answers_while_the_origin_is_busy_are_not_counted_as_wrong() {
    let app = app_with_addresses().await;
    app.create(
        json!({"destination": "https://example.com/busy", "code": "busy", "password": PASSWORD}),
    )
    .await;
    let held = app.state.hold_password_hashes().await.expect("permits");
    let busy = futures_util::future::join_all(
        (0..shortlink::password::WRONG_ANSWERS)
            .map(|_| post_password(&app, "/busy", "192.0.2.44", PASSWORD)),
    )
    .await;
    for response in &busy {
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.header(&header::RETRY_AFTER), "1");
    }
    drop(held);
    let right = post_password(&app, "/busy", "192.0.2.44", PASSWORD).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.text());
    assert!(right.header(&header::SET_COOKIE).starts_with("kurz_pw_"));
}

#[tokio::test]
async fn a_burst_of_password_answers_from_many_addresses_stays_within_the_bound() {
    let app = app_with_addresses().await;
    app.create(
        json!({"destination": "https://example.com/s", "code": "burst", "password": PASSWORD}),
    )
    .await;
    // The real bound is 10,000 pairs; a smaller one shows the same without 10,000 hashes.
    app.state.set_password_attempts_capacity(40);
    let mut refused = 0;
    for i in 0..200 {
        let address = format!("10.2.{}.{}", i / 256, i % 256);
        let response = post_password(&app, "/burst", &address, "wrong!").await;
        match response.status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!(app.state.password_attempts(), 40);
    assert_eq!(refused, 160);
}

/// How many clicks of `link_id` are counted against its limit.
async fn used(app: &TestApp, link_id: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce((SELECT used FROM link_click_counts WHERE link_id = $1), 0)",
    )
    .bind(link_id)
    .fetch_one(&app.db)
    .await
    .expect("used")
}

async fn exhausted(app: &TestApp, link_id: i64) -> bool {
    sqlx::query_scalar("SELECT exhausted_at IS NOT NULL FROM links WHERE id = $1")
        .bind(link_id)
        .fetch_one(&app.db)
        .await
        .expect("exhausted")
}

#[tokio::test]
async fn a_visit_takes_a_click_as_its_stored_click_is_classified() {
    let app = spawn_app().await;
    let link = app
        .create(
            json!({"destination": "https://example.com/long", "code": "long", "max_clicks": 10}),
        )
        .await;
    let id = link["id"].as_i64().expect("id");
    let background = app.state.spawn_background();
    // A click's event keeps 512 bytes of its user agent: a bot's word past them is not kept,
    // so neither the stored click nor the visit is a bot's; one within them makes both so.
    let padding = "a".repeat(600);
    for agent in [
        format!("{CHROME} {padding} Googlebot/2.1"),
        format!("Googlebot/2.1 {CHROME} {padding}"),
    ] {
        let response = app
            .send(request(
                Method::GET,
                "/long",
                &[("user-agent", &agent)],
                Body::empty(),
            ))
            .await;
        assert_eq!(response.status, StatusCode::FOUND);
    }
    store_recorded_clicks(&app).await;
    let people: i64 =
        sqlx::query_scalar("SELECT count(*) FROM clicks WHERE link_id = $1 AND NOT bot")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .expect("clicks");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks WHERE link_id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("clicks");
    assert_eq!((stored, people, used(&app, id).await), (2, 1, 1));
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_click_limit_lets_exactly_its_clicks_through_however_many_come_at_once() {
    let app = crate::support::spawn_app_for_a_burst().await;
    let link = app
        .create(json!({"destination": "https://example.com/ten", "code": "ten", "max_clicks": 10}))
        .await;
    let id = link["id"].as_i64().expect("id");
    // Bots and HEAD requests are redirected without using a click.
    for (method, agent) in [
        (Method::GET, CURL),
        (Method::GET, "Twitterbot/1.0"),
        (Method::HEAD, CHROME),
    ] {
        let response = app
            .send(request(
                method,
                "/ten",
                &[("user-agent", agent)],
                Body::empty(),
            ))
            .await;
        assert_eq!(response.status, StatusCode::FOUND, "{agent}");
    }
    assert_eq!(used(&app, id).await, 0);

    let visits: Vec<_> = (0..50)
        .map(|_| {
            let router = app.router.clone();
            tokio::spawn(async move {
                router
                    .oneshot(request(
                        Method::GET,
                        "/ten",
                        &[("user-agent", CHROME)],
                        Body::empty(),
                    ))
                    .await
                    .expect("infallible")
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for visit in visits {
        statuses.push(visit.await.expect("visit"));
    }
    let redirected = statuses.iter().filter(|s| **s == StatusCode::FOUND).count();
    let gone = statuses.iter().filter(|s| **s == StatusCode::GONE).count();
    assert_eq!((redirected, gone), (10, 40), "{statuses:?}");
    assert_eq!(used(&app, id).await, 10);
    assert!(exhausted(&app, id).await);
    // Used up for everyone now, bots included.
    let bot = visit(&app, "/ten", &[("user-agent", CURL)]).await;
    assert_eq!(bot.status, StatusCode::GONE);
    let shown = app.api(Method::GET, "/api/v1/links/ten", None).await.json();
    assert_eq!(shown["clicks_used"], 10, "{shown}");

    // With a fallback, the visit after the last click goes there.
    app.create(json!({"destination": "https://example.com/once", "code": "once", "max_clicks": 1, "fallback_url": "https://example.com/sold-out"}))
        .await;
    let first = visit(&app, "/once", &[("user-agent", CHROME)]).await;
    assert_eq!(location(&first), "https://example.com/once");
    let second = visit(&app, "/once", &[("user-agent", CHROME)]).await;
    assert_eq!(second.status, StatusCode::FOUND);
    assert_eq!(location(&second), "https://example.com/sold-out");
}

#[tokio::test]
async fn the_limit_in_the_database_decides_not_the_one_in_a_stale_cache() {
    // No background tasks: nothing tells this instance's cache about changes made in SQL, as
    // when another origin's edit has not reached it yet.
    let app = spawn_app().await;
    let link = app
        .create(json!({"destination": "https://example.com/two", "code": "two", "max_clicks": 2}))
        .await;
    let id = link["id"].as_i64().expect("id");
    let chrome = [("user-agent", CHROME)];
    assert_eq!(visit(&app, "/two", &chrome).await.status, StatusCode::FOUND);
    // Raised to 4 elsewhere: the cached record still says 2.
    sqlx::query("UPDATE links SET max_clicks = 4 WHERE id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .expect("raise");
    for n in 2..=4 {
        let response = visit(&app, "/two", &chrome).await;
        assert_eq!(response.status, StatusCode::FOUND, "click {n} of 4");
        assert_eq!(exhausted(&app, id).await, n == 4, "after click {n}");
    }
    assert_eq!(visit(&app, "/two", &chrome).await.status, StatusCode::GONE);
    assert_eq!(used(&app, id).await, 4);

    // Removed elsewhere: the cached record still has a limit, the database none. Visits go
    // through, and none is counted against a limit that is gone.
    let three = app
        .create(
            json!({"destination": "https://example.com/three", "code": "three", "max_clicks": 3}),
        )
        .await;
    let three = three["id"].as_i64().expect("id");
    assert_eq!(
        visit(&app, "/three", &chrome).await.status,
        StatusCode::FOUND
    );
    sqlx::query("UPDATE links SET max_clicks = NULL WHERE id = $1")
        .bind(three)
        .execute(&app.db)
        .await
        .expect("remove");
    for n in 0..5 {
        let response = visit(&app, "/three", &chrome).await;
        assert_eq!(response.status, StatusCode::FOUND, "visit {n}");
    }
    assert_eq!(used(&app, three).await, 1);
    assert!(!exhausted(&app, three).await);

    // Switched off or deleted elsewhere (a takedown; or while the visit waited its turn behind
    // a hot link's clicks): the cached record still redirects, the database does not. No
    // click is taken, nobody is sent on, and the visitor is asked to come again (503).
    for (code, change) in [
        ("off", "UPDATE links SET disabled = true WHERE id = $1"),
        ("gone", "UPDATE links SET deleted_at = now() WHERE id = $1"),
    ] {
        let link = app
            .create(json!({"destination": "https://example.com/x", "code": code, "max_clicks": 5}))
            .await;
        let id = link["id"].as_i64().expect("id");
        let path = format!("/{code}");
        assert_eq!(visit(&app, &path, &chrome).await.status, StatusCode::FOUND);
        sqlx::query(change)
            .bind(id)
            .execute(&app.db)
            .await
            .expect("change");
        let response = visit(&app, &path, &chrome).await;
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{code}");
        assert_eq!(response.header(&header::RETRY_AFTER), "1");
        // The stale record is dropped: the visitor's retry reads the link as it is now.
        let again = visit(&app, &path, &chrome).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{code}");
        assert_eq!(used(&app, id).await, 1, "{code}");
        assert!(!exhausted(&app, id).await, "{code}");
    }
}

fn edge_click(id: &str, link_id: i64, code: &str, user_agent: &str) -> ClickEvent {
    ClickEvent {
        id: id.to_owned(),
        link_id,
        code: ShortCode::parse(code).expect("code"),
        at: OffsetDateTime::now_utc(),
        country: Some("DE".to_owned()),
        referrer: None,
        user_agent: Some(user_agent.to_owned()),
        qr: false,
        head: false,
        source: ClickSource::Edge,
        visitor: None,
        variant: None,
    }
}

async fn outbox_rows(app: &TestApp, code: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM edge_outbox WHERE code = $1")
        .bind(code)
        .fetch_one(&app.db)
        .await
        .expect("outbox")
}

#[tokio::test]
async fn the_edges_clicks_use_up_a_limit_and_the_last_one_exhausts_the_link() {
    let mut config = config(&new_database().await);
    config.edge_secret = Some(crate::support::EDGE_SECRET.to_owned());
    // Outbox rows are written; nothing delivers them (no background tasks).
    config.edge_url = Some("http://127.0.0.1:9".to_owned());
    let app = app_with(&config).await;
    let link = app
        .create(
            json!({"destination": "https://example.com/e", "code": "edge-limit", "max_clicks": 3}),
        )
        .await;
    let id = link["id"].as_i64().expect("id");
    let plain = app
        .create(json!({"destination": "https://example.com/p", "code": "edge-plain"}))
        .await;
    let queued = outbox_rows(&app, "edge-limit").await;

    let two = [
        edge_click("e1", id, "edge-limit", CHROME),
        edge_click("e2", id, "edge-limit", IPHONE),
        edge_click(
            "p1",
            plain["id"].as_i64().expect("id"),
            "edge-plain",
            CHROME,
        ),
    ];
    assert_eq!(app.state.store_clicks(&two).await.expect("store"), 3);
    // Delivered again, a bot, a HEAD and an origin's click: none uses a click.
    let mut head = edge_click("e4", id, "edge-limit", CHROME);
    head.head = true;
    let mut origin = edge_click("e5", id, "edge-limit", CHROME);
    origin.source = ClickSource::Origin;
    let none = [
        two[0].clone(),
        edge_click("e3", id, "edge-limit", CURL),
        head,
        origin,
    ];
    assert_eq!(app.state.store_clicks(&none).await.expect("store"), 3);
    assert_eq!(used(&app, id).await, 2);
    assert!(!exhausted(&app, id).await);
    assert_eq!(outbox_rows(&app, "edge-limit").await, queued);
    let not_limited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM link_click_counts WHERE link_id <> $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .expect("counts");
    assert_eq!(not_limited, 0, "a link without a limit has no count");

    // The edge may let a click or two more through than the limit: all are counted.
    let last = [
        edge_click("e6", id, "edge-limit", CHROME),
        edge_click("e7", id, "edge-limit", MAC),
    ];
    assert_eq!(app.state.store_clicks(&last).await.expect("store"), 2);
    assert_eq!(used(&app, id).await, 4);
    assert!(exhausted(&app, id).await);
    assert_eq!(outbox_rows(&app, "edge-limit").await, queued + 1);
    let response = visit(&app, "/edge-limit", &[("user-agent", CHROME)]).await;
    assert_eq!(response.status, StatusCode::GONE);
}

#[tokio::test]
async fn workspace_stats_rank_tags_by_their_links_visits() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (code, tags) in [
        ("t-one", json!(["promo", "spring"])),
        ("t-two", json!(["promo"])),
        ("t-none", json!([])),
    ] {
        let link = app
            .create(json!({"destination": format!("https://example.com/{code}"), "code": code, "tags": tags}))
            .await;
        ids.push((link["id"].as_i64().expect("id"), code));
    }
    // A link of another workspace with its own tag, clicked too.
    let workspace = app.workspace("elsewhere").await;
    let key = app.key(workspace, &["links:write"]).await;
    let response = app
        .call(
            &key,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/x", "code": "t-else", "tags": ["secret"]})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    ids.push((response.json()["id"].as_i64().expect("id"), "t-else"));

    let mut events = Vec::new();
    for (n, (id, code)) in ids.iter().enumerate() {
        for i in 0..=n {
            events.push(edge_click(&format!("{code}-{i}"), *id, code, CHROME));
        }
    }
    events.push(edge_click("t-one-bot", ids[0].0, "t-one", CURL));
    app.state.store_clicks(&events).await.expect("store");
    app.state.count_clicks().await.expect("count");

    let body = stats(&app, "/api/v1/stats").await;
    // t-one: 1 click (and a bot), t-two: 2.
    assert_eq!(
        body["top"]["tag"],
        json!([{"value": "promo", "count": 3}, {"value": "spring", "count": 1}]),
        "{body}"
    );
    let with_bots = stats(&app, "/api/v1/stats?bots=true").await;
    assert_eq!(
        with_bots["top"]["tag"],
        json!([{"value": "promo", "count": 4}, {"value": "spring", "count": 2}]),
        "{with_bots}"
    );
    // Links have no tag breakdown, and no variant without a split.
    let link = stats(&app, "/api/v1/links/t-one/stats").await;
    assert!(link["top"].get("tag").is_none(), "{link}");
    assert!(link["top"].get("variant").is_none(), "{link}");
}
