//! The API's rate limits (per caller: `api`, `create`, `stats`; per workspace by the operator)
//! and the origin's redirect limit (per client address, off by default) under bursts: exact
//! counts of answers and refusals, the IETF headers on every answer to a caller, and the
//! limiters' memory at its cap whatever arrives.
//!
//! Budgets here are a few requests per minute, so one cell refills in 12 s or more: far
//! longer than a burst takes, so the counts are exact on a slow machine too.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use futures_util::StreamExt;
use origin::config::RateLimits;
use origin::rate_limit::WorkspaceLimits;
use serde_json::json;

use crate::support::{As, TestApp, TestResponse, app_with, config, new_database, random_hex};

/// An app whose rate limits are the deployment's defaults (not the other tests' generous
/// ones) changed by `edit`; clients' addresses are read from `X-Forwarded-For`.
async fn app_with_limits(edit: impl FnOnce(&mut RateLimits)) -> TestApp {
    let mut config = config(&new_database().await);
    config.client_ip_header = Some("x-forwarded-for".to_owned());
    config.rate_limits = RateLimits::DEFAULT;
    edit(&mut config.rate_limits);
    app_with(&config).await
}

/// How many answers had each status.
fn tally(responses: &[TestResponse]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for response in responses {
        *counts.entry(response.status.as_u16()).or_default() += 1;
    }
    counts
}

/// `RateLimit: "<name>";r=<remaining>;t=<seconds>` read back.
fn standing(response: &TestResponse) -> (String, u32, u64) {
    let value = response.header(&header::HeaderName::from_static("ratelimit"));
    let mut parts = value.split(';');
    let name = parts.next().expect("a policy").trim_matches('"').to_owned();
    let mut remaining = None;
    let mut reset = None;
    for part in parts {
        match part.split_once('=') {
            Some(("r", r)) => remaining = r.parse().ok(),
            Some(("t", t)) => reset = t.parse().ok(),
            _ => panic!("unexpected parameter in {value:?}"),
        }
    }
    (
        name,
        remaining.unwrap_or_else(|| panic!("no r in {value:?}")),
        reset.unwrap_or_else(|| panic!("no t in {value:?}")),
    )
}

fn policy(response: &TestResponse) -> &str {
    response.header(&header::HeaderName::from_static("ratelimit-policy"))
}

/// A 429 of budget `limit` in the API's error shape, with a `Retry-After` within one cell's
/// refill (`60 / per_min` seconds).
fn assert_limited(response: &TestResponse, limit: &str, per_min: u64) {
    assert_eq!(
        response.error(StatusCode::TOO_MANY_REQUESTS).0,
        "rate_limited"
    );
    let retry_after: u64 = response
        .header(&header::RETRY_AFTER)
        .parse()
        .expect("seconds");
    assert!(
        (1..=60 / per_min).contains(&retry_after),
        "{retry_after} for {per_min}/min"
    );
    let (name, remaining, reset) = standing(response);
    assert_eq!(
        (name.as_str(), remaining),
        (limit, 0),
        "{}",
        response.text()
    );
    assert!(reset >= retry_after && reset <= 60, "{reset}");
}

fn create_body() -> serde_json::Value {
    json!({ "destination": format!("https://example.com/{}", random_hex()) })
}

/// `n` calls at once as `who`.
async fn burst(
    app: &TestApp,
    who: &As,
    n: usize,
    method: Method,
    path: &str,
    body: impl Fn() -> Option<serde_json::Value>,
) -> Vec<TestResponse> {
    futures_util::future::join_all((0..n).map(|_| app.call(who, method.clone(), path, body())))
        .await
}

#[tokio::test]
async fn a_burst_of_creates_gets_exactly_the_create_budget() {
    let app = app_with_limits(|limits| limits.create_per_min = 5).await;
    let key = As::Key(app.api_key.clone());
    let answers = burst(&app, &key, 20, Method::POST, "/api/v1/links", || {
        Some(create_body())
    })
    .await;
    assert_eq!(tally(&answers), BTreeMap::from([(201, 5), (429, 15)]));
    let taken = "\"api\";q=1200;w=60, \"workspace_api\";q=12000;w=60, \"create\";q=5;w=60";
    for answer in &answers {
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            // Refused by the caller's own budget: the workspace's is not reached.
            assert_eq!(policy(answer), taken);
            assert_limited(answer, "create", 5);
        } else {
            assert_eq!(
                policy(answer),
                format!("{taken}, \"workspace_create\";q=50;w=60")
            );
            let (name, remaining, _) = standing(answer);
            assert_eq!(name, "create");
            assert!(remaining < 5, "{remaining}");
        }
    }
    let mut remaining: Vec<u32> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .map(|a| standing(a).1)
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, [0, 1, 2, 3, 4]);
    // Only 5 links exist; reading them is not a creation.
    let list = app.api(Method::GET, "/api/v1/links", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["links"].as_array().map(Vec::len), Some(5));
    let (name, remaining, _) = standing(&list);
    // 21 requests taken from `api` (the refused creates too), less what refilled meanwhile.
    assert_eq!(name, "api");
    assert!((1200 - 21..1200).contains(&remaining), "{remaining}");
}

#[tokio::test]
async fn a_bulk_create_takes_one_unit_of_the_create_budget_whatever_its_size() {
    let app = app_with_limits(|limits| limits.create_per_min = 3).await;
    let key = As::Key(app.api_key.clone());
    let bulk = |n: usize| json!({ "links": (0..n).map(|_| create_body()).collect::<Vec<_>>() });
    // 10 items within a budget of 3: one unit, not ten.
    let first = app
        .call(&key, Method::POST, "/api/v1/links/bulk", Some(bulk(10)))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.json()["created"], 10);
    assert_eq!(
        policy(&first),
        "\"api\";q=1200;w=60, \"workspace_api\";q=12000;w=60, \"create\";q=3;w=60, \
         \"workspace_create\";q=30;w=60"
    );
    let (name, remaining, _) = standing(&first);
    assert_eq!((name.as_str(), remaining), ("create", 2));
    // Bulk and single creates share the budget: 2 left, so of 3 bulks and 2 singles at once,
    // exactly 2 pass.
    let bulks = burst(&app, &key, 3, Method::POST, "/api/v1/links/bulk", || {
        Some(bulk(2))
    });
    let singles = burst(&app, &key, 2, Method::POST, "/api/v1/links", || {
        Some(create_body())
    });
    let (bulks, singles) = futures_util::join!(bulks, singles);
    let answers: Vec<TestResponse> = bulks.into_iter().chain(singles).collect();
    let passed = answers.iter().filter(|a| a.status.is_success()).count();
    assert_eq!(passed, 2, "{:?}", tally(&answers));
    for refused in answers.iter().filter(|a| !a.status.is_success()) {
        assert_limited(refused, "create", 3);
    }
    // A dry run creates nothing, yet it is a request like the others: refused too.
    let dry = json!({ "links": [create_body()], "dry_run": true });
    let dry = app
        .call(&key, Method::POST, "/api/v1/links/bulk", Some(dry))
        .await;
    assert_limited(&dry, "create", 3);
}

#[tokio::test]
async fn every_answer_tells_the_remaining_budget_until_it_is_used_up() {
    let app = app_with_limits(|limits| limits.api_per_min = 3).await;
    let mut seen = Vec::new();
    // An answer of any status takes from the budget and says so: a list, an unknown link.
    for path in ["/api/v1/links", "/api/v1/links/nothere", "/api/v1/links"] {
        let answer = app.api(Method::GET, path, None).await;
        assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(
            policy(&answer),
            "\"api\";q=3;w=60, \"workspace_api\";q=30;w=60"
        );
        let (name, remaining, reset) = standing(&answer);
        assert_eq!(name, "api");
        assert!((1..=60).contains(&reset), "{reset}");
        seen.push(remaining);
    }
    assert_eq!(seen, [2, 1, 0]);
    let refused = app.api(Method::GET, "/api/v1/links", None).await;
    assert_limited(&refused, "api", 3);
}

#[tokio::test]
async fn the_stats_budget_counts_stats_and_exports_only() {
    let app = app_with_limits(|limits| limits.stats_per_min = 3).await;
    let link = app.create(create_body()).await;
    let code = link["code"].as_str().expect("code");
    let paths = [
        "/api/v1/stats".to_owned(),
        format!("/api/v1/links/{code}/stats"),
        format!("/api/v1/links/{code}/clicks.csv"),
    ];
    let mut answers = Vec::new();
    for round in 0..3 {
        for path in &paths {
            let answer = app.api(Method::GET, path, None).await;
            answers.push(answer);
        }
        // Links are not stats: never refused meanwhile.
        let links = app.api(Method::GET, "/api/v1/links", None).await;
        assert_eq!(links.status, StatusCode::OK, "round {round}");
    }
    assert_eq!(tally(&answers), BTreeMap::from([(200, 3), (429, 6)]));
    assert!(answers[..3].iter().all(|a| a.status == StatusCode::OK));
    for refused in &answers[3..] {
        assert_limited(refused, "stats", 3);
    }
}

#[tokio::test]
async fn each_key_and_person_has_its_own_budget_and_workspaces_are_apart() {
    let app = app_with_limits(|limits| limits.api_per_min = 2).await;
    let first = As::Key(app.api_key.clone());
    let second = app.key(1, &["links:read"]).await;
    let person = app.user("ada", &[(1, "editor")]).await;
    let other_workspace = app.workspace("Other").await;
    let elsewhere = app.key(other_workspace, &["links:read"]).await;
    let used = burst(&app, &first, 5, Method::GET, "/api/v1/links", || None).await;
    assert_eq!(tally(&used), BTreeMap::from([(200, 2), (429, 3)]));
    for who in [&second, &person, &elsewhere] {
        let answers = burst(&app, who, 3, Method::GET, "/api/v1/links", || None).await;
        assert_eq!(
            tally(&answers),
            BTreeMap::from([(200, 2), (429, 1)]),
            "{who:?}"
        );
    }
    // One person has a budget in each workspace: one call and the switch use the first's,
    // the second's is whole.
    let both = app
        .user("grace", &[(1, "viewer"), (other_workspace, "viewer")])
        .await;
    let here = app.call(&both, Method::GET, "/api/v1/links", None).await;
    assert_eq!(here.status, StatusCode::OK);
    let switched = app
        .call(
            &both,
            Method::PUT,
            "/api/v1/session/workspace",
            Some(json!({"workspace_id": other_workspace})),
        )
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.text());
    let there = burst(&app, &both, 3, Method::GET, "/api/v1/links", || None).await;
    assert_eq!(tally(&there), BTreeMap::from([(200, 2), (429, 1)]));
    let back = app.call(&both, Method::GET, "/api/v1/links", None).await;
    assert_eq!(back.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn create_as(app: &TestApp, who: &As) -> TestResponse {
    app.call(who, Method::POST, "/api/v1/links", Some(create_body()))
        .await
}

#[tokio::test]
async fn a_workspaces_keys_share_its_budgets_however_many_it_makes_and_people_keep_theirs() {
    // Each caller 2 requests and 1 create a minute; the workspace's keys together 2 × that.
    let app = app_with_limits(|limits| {
        limits.api_per_min = 2;
        limits.create_per_min = 1;
        limits.workspace_keys = 2;
    })
    .await;
    let first = As::Key(app.api_key.clone());
    let second = app.key(1, &["links:read", "links:write"]).await;
    let created = create_as(&app, &first).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        policy(&created),
        "\"api\";q=2;w=60, \"workspace_api\";q=4;w=60, \"create\";q=1;w=60, \
         \"workspace_create\";q=2;w=60"
    );
    // Over its own create budget, a key takes nothing from the shared one: the second key
    // still gets the shared budget's last create.
    let refused = create_as(&app, &first).await;
    assert_limited(&refused, "create", 1);
    assert_eq!(create_as(&app, &second).await.status, StatusCode::CREATED);
    // A key made now finds the keys' shared budgets used up, though its own are whole: the
    // creates' (2), then the requests' (4: three creates and the refused one).
    let minted = app.key(1, &["links:read", "links:write"]).await;
    assert_limited(&create_as(&app, &minted).await, "workspace_create", 2);
    let read = app.call(&minted, Method::GET, "/api/v1/links", None).await;
    assert_limited(&read, "workspace_api", 4);
    // People keep their own budgets: keys flooding the shared one do not lock them out (of
    // revoking those keys, say).
    let person = app.user("ada", &[(1, "admin")]).await;
    let answers = burst(&app, &person, 3, Method::GET, "/api/v1/keys", || None).await;
    assert_eq!(tally(&answers), BTreeMap::from([(200, 2), (429, 1)]));
    for answer in answers.iter().filter(|a| a.status == StatusCode::OK) {
        assert_eq!(policy(answer), "\"api\";q=2;w=60");
    }
    // Another workspace's keys share their own.
    let other_workspace = app.workspace("Other").await;
    let elsewhere = app.key(other_workspace, &["links:read"]).await;
    let answer = app
        .call(&elsewhere, Method::GET, "/api/v1/links", None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn without_credentials_it_is_401_never_429_and_no_budget_is_told() {
    let app = app_with_limits(|limits| limits.api_per_min = 1).await;
    let wrong = As::Key(format!("kurz_{}", "0".repeat(48)));
    for who in [As::Nobody, wrong] {
        let answers = burst(&app, &who, 10, Method::GET, "/api/v1/links", || None).await;
        for answer in &answers {
            assert_eq!(answer.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
            assert!(!answer.headers.contains_key("ratelimit"), "{who:?}");
            assert!(!answer.headers.contains_key("ratelimit-policy"), "{who:?}");
        }
    }
    // The key's own budget is still whole.
    let answer = app.api(Method::GET, "/api/v1/links", None).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn the_operator_sets_a_workspaces_own_limits_and_members_cannot() {
    let app = app_with_limits(|_| {}).await;
    let workspace = app.workspace("Limited").await;
    let owner = app.user("olga", &[(workspace, "owner")]).await;
    let key = app.key(workspace, &["links:read", "links:write"]).await;
    let set = WorkspaceLimits {
        api: None,
        create: Some(2),
        stats: Some(0),
    };
    let now = origin::rate_limit::set_workspace_limits(&app.db, workspace, set, false)
        .await
        .expect("set");
    assert_eq!(now, set);
    let answers = burst(&app, &key, 6, Method::POST, "/api/v1/links", || {
        Some(create_body())
    })
    .await;
    assert_eq!(tally(&answers), BTreeMap::from([(201, 2), (429, 4)]));
    assert!(policy(&answers[0]).contains("\"create\";q=2;w=60"));
    // The default workspace keeps the deployment's figures.
    let default = burst(
        &app,
        &As::Key(app.api_key.clone()),
        6,
        Method::POST,
        "/api/v1/links",
        || Some(create_body()),
    )
    .await;
    assert_eq!(tally(&default), BTreeMap::from([(201, 6)]));
    // The owner may rename the workspace, not change its limits.
    let renamed = app
        .call(
            &owner,
            Method::PATCH,
            "/api/v1/workspace",
            Some(json!({"name": "Renamed", "rate_create_per_min": 1_000_000})),
        )
        .await;
    assert!(
        renamed.status == StatusCode::OK || renamed.status.is_client_error(),
        "{}",
        renamed.text()
    );
    let stored: Option<i32> =
        sqlx::query_scalar("SELECT rate_create_per_min FROM workspaces WHERE id = $1")
            .bind(workspace)
            .fetch_one(&app.db)
            .await
            .expect("workspace");
    assert_eq!(stored, Some(2));
    // Only the given figure changes; --clear drops them all first; each change is audited.
    let raised = WorkspaceLimits {
        api: Some(10),
        ..WorkspaceLimits::default()
    };
    let now = origin::rate_limit::set_workspace_limits(&app.db, workspace, raised, false)
        .await
        .expect("set");
    assert_eq!(
        now,
        WorkspaceLimits {
            api: Some(10),
            create: Some(2),
            stats: Some(0)
        }
    );
    let now = origin::rate_limit::set_workspace_limits(&app.db, workspace, raised, true)
        .await
        .expect("clear");
    assert_eq!(now, raised);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log
         WHERE workspace_id = $1 AND action = 'workspace.rate_limits_changed'
           AND actor_kind = 'operator'",
    )
    .bind(workspace)
    .fetch_one(&app.db)
    .await
    .expect("audit");
    assert_eq!(audited, 3);
    // Figures the limiter cannot use are refused, and so is an unknown workspace.
    for refused in [
        WorkspaceLimits {
            api: Some(0),
            ..WorkspaceLimits::default()
        },
        WorkspaceLimits {
            stats: Some(1_000_001),
            ..WorkspaceLimits::default()
        },
    ] {
        let result =
            origin::rate_limit::set_workspace_limits(&app.db, workspace, refused, false).await;
        assert!(result.is_err(), "{refused:?}");
    }
    let unknown = WorkspaceLimits::default();
    assert!(
        origin::rate_limit::set_workspace_limits(&app.db, 999_999, unknown, true)
            .await
            .is_err()
    );
}

/// A visit of `path` from `address`: in `X-Forwarded-For`, or as the connection's peer.
async fn visit_from(
    app: &TestApp,
    method: Method,
    path: &str,
    address: &str,
    peer: bool,
) -> TestResponse {
    let mut request = Request::builder().method(method).uri(path);
    if !peer {
        request = request.header("x-forwarded-for", address);
    }
    let mut request = request.body(Body::empty()).expect("request");
    if peer {
        let address: std::net::IpAddr = address.parse().expect("address");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(address, 40_000)));
    }
    app.send(request).await
}

#[tokio::test]
async fn redirects_are_not_limited_by_default() {
    let app = app_with_limits(|_| {}).await;
    let code = app.create(create_body()).await["code"]
        .as_str()
        .expect("code")
        .to_owned();
    for _ in 0..50 {
        let answer = visit_from(&app, Method::GET, &format!("/{code}"), "203.0.113.5", false).await;
        assert_eq!(answer.status, StatusCode::FOUND);
    }
    assert_eq!(app.state.rate_limit_entries().await.1, 0);
}

#[tokio::test]
async fn redirects_are_limited_per_address_when_configured() {
    let app = app_with_limits(|limits| limits.redirect_per_min = Some(3)).await;
    let code = app.create(create_body()).await["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let path = format!("/{code}");
    let answers: Vec<TestResponse> = futures_util::future::join_all(
        (0..10).map(|_| visit_from(&app, Method::GET, &path, "203.0.113.5", false)),
    )
    .await;
    assert_eq!(tally(&answers), BTreeMap::from([(302, 3), (429, 7)]));
    for refused in answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
    {
        let retry_after: u64 = refused.header(&header::RETRY_AFTER).parse().expect("secs");
        assert!((1..=20).contains(&retry_after), "{retry_after}");
        assert!(
            refused
                .header(&header::CONTENT_TYPE)
                .starts_with("text/html")
        );
        assert_eq!(refused.header(&header::CACHE_CONTROL), "no-store");
        assert!(refused.text().contains("Too many requests"));
    }
    // The password form's route is limited too (405 for a link without a password).
    let posted = visit_from(&app, Method::POST, &path, "203.0.113.5", false).await;
    assert_eq!(posted.status, StatusCode::TOO_MANY_REQUESTS);
    // Only the 3 redirects were clicks: nothing else reached the recorder.
    assert_eq!(
        app.state
            .drain_clicks(std::time::Duration::from_secs(1))
            .await,
        3
    );
    // Another address has its own budget; an IPv6 /64 is one address.
    let other = visit_from(&app, Method::GET, &path, "198.51.100.9", false).await;
    assert_eq!(other.status, StatusCode::FOUND);
    let mut statuses = Vec::new();
    for host in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff::9",
        "2001:db8:1:2::3",
    ] {
        let answer = visit_from(&app, Method::GET, "/nothere", host, false).await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(statuses, [404, 404, 404, 429]);
    let next_network = visit_from(&app, Method::GET, "/nothere", "2001:db8:1:3::1", false).await;
    assert_eq!(next_network.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_client_ip_header_the_peer_address_is_limited() {
    let mut config = config(&new_database().await);
    config.rate_limits.redirect_per_min = Some(2);
    let app = app_with(&config).await;
    let mut statuses = BTreeMap::<&str, Vec<u16>>::new();
    for peer in ["192.0.2.1", "192.0.2.2"] {
        for _ in 0..3 {
            // A forged header is not read: the peer counts.
            let request = Request::builder()
                .uri("/nothere")
                .header("x-forwarded-for", random_ip())
                .body(Body::empty())
                .expect("request");
            let mut request = request;
            request.extensions_mut().insert(ConnectInfo(SocketAddr::new(
                peer.parse().expect("address"),
                40_000,
            )));
            statuses
                .entry(peer)
                .or_default()
                .push(app.send(request).await.status.as_u16());
        }
    }
    for (peer, got) in statuses {
        assert_eq!(got, [404, 404, 429], "{peer}");
    }
}

fn random_ip() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("randomness");
    std::net::Ipv4Addr::from(bytes).to_string()
}

#[tokio::test]
async fn a_flood_of_distinct_addresses_keeps_the_redirect_limiters_at_their_cap() {
    const CAP: u64 = 100;
    let app = app_with_limits(|limits| {
        limits.redirect_per_min = Some(1);
        limits.entries = CAP;
    })
    .await;
    let statuses: Vec<u16> = futures_util::stream::iter(0..20_000u32)
        .map(|n| {
            let address = std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string();
            let app = &app;
            async move {
                visit_from(app, Method::GET, "/nothere", &address, false)
                    .await
                    .status
                    .as_u16()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    // Every address sent one request, within its budget.
    assert!(statuses.iter().all(|s| *s == 404));
    let (_, held) = app.state.rate_limit_entries().await;
    assert!((1..=CAP).contains(&held), "{held}");
    // One address over its budget is still refused while the cache is full: a new one may
    // be turned away by the cache's admission once (its first limiter forgotten), never more.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = visit_from(&app, Method::GET, "/nothere", "198.51.100.1", false).await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(statuses[0], 404);
    let let_through = statuses.iter().filter(|s| **s == 404).count();
    assert!(let_through <= 2, "{statuses:?}");
}

#[tokio::test]
async fn many_callers_keep_the_api_limiters_at_their_cap() {
    const CAP: u64 = 20;
    let app = app_with_limits(|limits| limits.entries = CAP).await;
    for _ in 0..60 {
        let key = app.key(1, &["links:read"]).await;
        let answer = app.call(&key, Method::GET, "/api/v1/links", None).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let (held, _) = app.state.rate_limit_entries().await;
    assert!((1..=CAP).contains(&held), "{held}");
}

/// `kurz_rate_limited_total{limit="<limit>"}` in a scrape of `metrics`.
async fn refusals(client: &reqwest::Client, metrics: SocketAddr, limit: &str) -> f64 {
    let text = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let series = format!("kurz_rate_limited_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {series}in {text}"))
}

#[tokio::test]
async fn every_refusal_is_counted_by_its_limit() {
    let mut config = config(&new_database().await);
    config.rate_limits = RateLimits {
        create_per_min: 1,
        redirect_per_min: Some(1),
        ..RateLimits::DEFAULT
    };
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics = metrics_listener.local_addr().expect("address");
    config.metrics.bind = Some(metrics);
    let state = origin::State::new(&config).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = state.clone();
    let server = tokio::spawn(async move {
        let shutdown = async {
            stopped.await.ok();
        };
        origin::serve_listening(serving, &config, listener, Some(metrics_listener), shutdown).await
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !client
        .get(format!("http://{address}/ready"))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
    {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let key = origin::auth::create_default_key(state.db(), "tests")
        .await
        .expect("key");
    let before = (
        refusals(&client, metrics, "create").await,
        refusals(&client, metrics, "redirect").await,
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let created = client
            .post(format!("http://{address}/api/v1/links"))
            .bearer_auth(&key)
            .header(header::CONTENT_TYPE.as_str(), "application/json")
            .body(create_body().to_string())
            .send()
            .await
            .expect("create");
        statuses.push(created.status().as_u16());
    }
    for _ in 0..3 {
        let visited = client
            .get(format!("http://{address}/nothere"))
            .send()
            .await
            .expect("visit");
        statuses.push(visited.status().as_u16());
    }
    assert_eq!(statuses, [201, 429, 429, 404, 429, 429]);
    let after = (
        refusals(&client, metrics, "create").await,
        refusals(&client, metrics, "redirect").await,
    );
    // The recorder is the process's: other tests may add to it, never take from it.
    assert!(after.0 - before.0 >= 2.0, "{before:?} -> {after:?}");
    assert!(after.1 - before.1 >= 2.0, "{before:?} -> {after:?}");
    stop.send(()).ok();
    server.await.expect("server").expect("served");
}
