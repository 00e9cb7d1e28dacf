//! `/metrics` on its own listener (`KURZ_METRICS_BIND`): requests counted and timed by route,
//! the redirect cache, the outbox and the pool, HELP lines for every metric, the optional
//! token, and labels that stay bounded whatever paths and methods arrive.
//!
//! The recorder is one per process and these tests share it with every other test of the
//! binary, so they look at what moved (deltas, at least what they did), never at totals.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::{config, new_database, random_hex};

/// Gauges are the process's too: a scrape sets them from its own origin. One test scrapes at
/// a time, so a test reads the gauges its own scrape set.
static SCRAPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOKEN: &str = "metrics-token-of-the-tests";

struct Served {
    address: SocketAddr,
    metrics: SocketAddr,
    api_key: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// An origin serving on a free port, its metrics on another, with `edit` applied to the
/// configuration.
async fn serve(edit: impl FnOnce(&mut origin::config::Config)) -> Served {
    let database_url = new_database().await;
    let mut config = config(&database_url);
    // Bound now and kept: a port found free and bound later may be taken in between.
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics = metrics_listener.local_addr().expect("address");
    config.metrics.bind = Some(metrics);
    edit(&mut config);
    let state = origin::State::new(&config).expect("state");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = state.clone();
    tokio::spawn(async move {
        let shutdown = async {
            stopped.await.ok();
        };
        origin::serve_listening(serving, &config, listener, Some(metrics_listener), shutdown).await
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("http://{address}/ready"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the origin never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api_key = origin::auth::create_default_key(state.db(), "tests")
        .await
        .expect("API key");
    Served {
        address,
        metrics,
        api_key,
        client,
        _stop: stop,
    }
}

impl Served {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    async fn api(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> StatusCode {
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.address))
            .bearer_auth(&self.api_key);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        request.send().await.expect("request").status()
    }

    async fn scrape_with(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("http://{}/metrics", self.metrics));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("scrape")
    }

    /// The scrape's text and its samples by series (name and labels as rendered).
    async fn scrape(&self) -> (String, HashMap<String, f64>) {
        let response = self.scrape_with(None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()
                .expect("ASCII")
                .starts_with("text/plain; version=0.0.4"),
            "{:?}",
            response.headers()
        );
        let text = response.text().await.expect("text");
        let samples = samples(&text);
        (text, samples)
    }
}

fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            (
                series.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("value of {line}")),
            )
        })
        .collect()
}

/// How much `series` grew between two scrapes (a series not yet there counts as 0).
fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    let now = after
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in the scrape"));
    now - before.get(series).copied().unwrap_or(0.0)
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!(r#"kurz_http_requests_total{{route="{route}",method="{method}",status="{status}"}}"#)
}

#[tokio::test]
async fn requests_the_cache_and_the_backlog_are_measured_on_their_own_listener() {
    let _scraping = SCRAPING.lock().await;
    // An edge nobody answers at: the link's change stays in the outbox.
    let served = serve(|config| {
        config.edge_url = Some("http://127.0.0.1:1".to_owned());
        config.edge_secret = Some(crate::support::EDGE_SECRET.to_owned());
    })
    .await;
    let (_, before) = served.scrape().await;

    let code = format!("m{}", random_hex());
    let created = served
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/metrics", "code": code})),
        )
        .await;
    assert_eq!(created, StatusCode::CREATED);
    assert_eq!(
        served.api(Method::GET, "/api/v1/links", None).await,
        StatusCode::OK
    );
    // A miss, then a hit.
    let redirect = served.get(&format!("/{code}")).await.status();
    assert!(redirect.is_redirection(), "{redirect}");
    assert_eq!(served.get(&format!("/{code}")).await.status(), redirect);
    // An unknown code: a miss, then a negative hit.
    let unknown = format!("u{}", random_hex());
    for _ in 0..2 {
        assert_eq!(
            served.get(&format!("/{unknown}")).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    // No route at all.
    assert_eq!(
        served.get("/no/such/route").await.status(),
        StatusCode::NOT_FOUND
    );
    // The public port does not serve the metrics: `/metrics` is just an unknown code there.
    let public = served.get("/metrics").await;
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    assert!(!public.text().await.expect("text").contains("kurz_"));

    let (text, after) = served.scrape().await;
    let redirect = redirect.as_u16();
    assert!(moved(&before, &after, &requests("/{code}", "GET", redirect)) >= 2.0);
    assert!(moved(&before, &after, &requests("/{code}", "GET", 404)) >= 3.0);
    assert!(moved(&before, &after, &requests("/api/v1/links", "POST", 201)) >= 1.0);
    assert!(moved(&before, &after, &requests("/api/v1/links", "GET", 200)) >= 1.0);
    assert!(moved(&before, &after, &requests("unmatched", "GET", 404)) >= 1.0);
    // Never the path a client sent.
    assert!(!text.contains(&code) && !text.contains(&unknown), "{text}");
    assert!(!text.contains("/no/such/route"), "{text}");

    let redirects = r#"kurz_http_request_duration_seconds_count{route="/{code}",method="GET"}"#;
    assert!(moved(&before, &after, redirects) >= 5.0);
    let within_30s =
        r#"kurz_http_request_duration_seconds_bucket{route="/{code}",method="GET",le="30"}"#;
    assert!(moved(&before, &after, within_30s) >= 5.0);

    let cache = |result: &str| format!(r#"kurz_redirect_cache_total{{result="{result}"}}"#);
    assert!(moved(&before, &after, &cache("hit")) >= 1.0);
    assert!(moved(&before, &after, &cache("miss")) >= 2.0);
    assert!(moved(&before, &after, &cache("negative_hit")) >= 1.0);

    // Read at the scrape from this origin. A read that took longer than its second keeps the
    // last values (and a scrape elsewhere in the process sets them from its own origin), so
    // it is scraped again until its read shows the outbox.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (text, after) = loop {
        let (text, after) = served.scrape().await;
        let outbox = |name: &str| after.get(name).copied().unwrap_or_default();
        if outbox("kurz_outbox_rows") >= 1.0 && outbox("kurz_outbox_lag_seconds") > 0.0 {
            break (text, after);
        }
        assert!(Instant::now() < deadline, "the outbox never showed: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(after.contains_key("kurz_clicks_pending"), "{text}");
    assert_eq!(after["kurz_db_pool_max_connections"], 4.0);
    let open = after[r#"kurz_db_pool_connections{state="idle"}"#]
        + after[r#"kurz_db_pool_connections{state="busy"}"#];
    assert!((1.0..=4.0).contains(&open), "{text}");

    // Every metric is described, and the refusals of the limits show before the first one.
    for name in [
        "kurz_http_requests_total",
        "kurz_http_request_duration_seconds",
        "kurz_redirect_cache_total",
        "kurz_rate_limited_total",
        "kurz_clicks_shed_total",
        "kurz_clicks_parked_total",
        "kurz_clicks_refused_total",
        "kurz_clicks_details_shed_total",
        "kurz_clicks_overflow_waiting",
        "kurz_clicks_overflow_buckets",
        "kurz_outbox_rows",
        "kurz_outbox_lag_seconds",
        "kurz_clicks_pending",
        "kurz_db_pool_connections",
        "kurz_db_pool_max_connections",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
    }
    assert!(text.contains("# TYPE kurz_http_request_duration_seconds histogram"));
    assert!(after.contains_key(r#"kurz_rate_limited_total{limit="sign_in"}"#));
    assert!(after.contains_key("kurz_clicks_shed_total"));
    assert!(after.contains_key("kurz_clicks_details_shed_total"));
    assert!(after.contains_key("kurz_clicks_refused_total"));
    assert!(after.contains_key("kurz_clicks_overflow_waiting"));

    // The metrics listener serves nothing else.
    let elsewhere = served
        .client
        .get(format!("http://{}/api/v1/links", served.metrics))
        .send()
        .await
        .expect("request");
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn refused_sign_ins_are_counted_as_rate_limited() {
    let _scraping = SCRAPING.lock().await;
    let served = serve(|config| config.sign_in.per_pair = 1).await;
    let (_, before) = served.scrape().await;
    let sign_in = || {
        served
            .client
            .post(format!("http://{}/api/v1/session", served.address))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({"username": "nobody", "password": "wrong password"}).to_string())
            .send()
    };
    assert_eq!(
        sign_in().await.expect("sign-in").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in().await.expect("sign-in").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let (_, after) = served.scrape().await;
    assert!(
        moved(
            &before,
            &after,
            r#"kurz_rate_limited_total{limit="sign_in"}"#
        ) >= 1.0
    );
    assert!(moved(&before, &after, &requests("/api/v1/session", "POST", 429)) >= 1.0);
}

#[tokio::test]
async fn a_configured_token_is_required() {
    let _scraping = SCRAPING.lock().await;
    let served = serve(|config| config.metrics.token = Some(TOKEN.parse().expect("token"))).await;
    let without = served.scrape_with(None).await;
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        without.headers()[reqwest::header::WWW_AUTHENTICATE],
        "Bearer"
    );
    assert!(!without.text().await.expect("text").contains("kurz_"));
    let wrong = served.scrape_with(Some("not-the-metrics-token")).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = served.scrape_with(Some(TOKEN)).await;
    assert_eq!(right.status(), StatusCode::OK);
    assert!(
        right
            .text()
            .await
            .expect("text")
            .contains("kurz_http_requests_total")
    );
}

#[tokio::test]
async fn a_flood_of_unknown_paths_and_methods_adds_no_labels() {
    let _scraping = SCRAPING.lock().await;
    let served = serve(|_| {}).await;
    let series = |samples: &HashMap<String, f64>| {
        samples
            .keys()
            .filter(|series| series.starts_with("kurz_http_"))
            .count()
    };
    // Every kind of request of the flood, once, so that its series exist before.
    served.get("/warm/up").await;
    served.get("/warmup").await;
    served
        .client
        .request(
            Method::from_bytes(b"WARM").expect("method"),
            format!("http://{}/warm/up", served.address),
        )
        .send()
        .await
        .expect("request");
    let (_, before) = served.scrape().await;

    const FLOOD: usize = 5_000;
    let answered: Vec<StatusCode> = futures_util::stream::iter(0..FLOOD)
        .map(|n| {
            let served = &served;
            async move {
                let url = match n % 5 {
                    // Distinct codes that may exist: each is looked up.
                    0 => format!("http://{}/c{n}x{}", served.address, random_hex()),
                    _ => format!("http://{}/{}/{n}/x", served.address, random_hex()),
                };
                let method = if n % 7 == 0 {
                    Method::from_bytes(format!("M{n}").as_bytes()).expect("method")
                } else {
                    Method::GET
                };
                let response = served
                    .client
                    .request(method, url)
                    .send()
                    .await
                    .expect("request");
                response.status()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(answered.len(), FLOOD);
    assert!(answered.iter().all(StatusCode::is_client_error));

    let (text, after) = served.scrape().await;
    let added = series(&after) - series(&before);
    // Other tests of the binary may add a few series of their own meanwhile; the flood's
    // would be thousands.
    assert!(added <= 40, "{added} series added: {text}");
    let all_requests: f64 = after
        .iter()
        .filter(|(series, _)| series.starts_with("kurz_http_requests_total{"))
        .map(|(series, value)| value - before.get(series).copied().unwrap_or(0.0))
        .sum();
    assert!(all_requests >= FLOOD as f64, "{all_requests}");
    assert!(moved(&before, &after, &requests("unmatched", "GET", 404)) >= 3_000.0);
}
