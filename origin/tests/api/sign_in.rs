//! The sign-in limits under bursts: per (IP, username), per IP and per username, counted before
//! any hash so parallel guesses count, alike for known and unknown names, holding across two
//! instances on one database, and a cap on concurrent hashes that keeps memory flat.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures_util::StreamExt;
use origin::config::Config;
use serde_json::json;

use crate::support::{TestApp, TestResponse, app_with, config, new_database, random_hex};

const PASSWORD: &str = "correct horse battery staple";
/// Windows of a day: fixed windows start at multiples of their length, and one starting in the
/// middle of a test would let its counts begin again.
const WINDOW: u32 = 86_400;

/// The config of these tests: the client's address is read from `X-Forwarded-For`.
fn limits_config(database_url: &str) -> Config {
    let mut config = config(database_url);
    config.client_ip_header = Some("x-forwarded-for".to_owned());
    config.sign_in.window_secs = WINDOW;
    // A sign-in that finds no free hash is answered 503 and not counted: on a slow machine that
    // would change the counts these tests expect, so they wait (the burst tests do not).
    config.sign_in.hash_wait_ms = 60_000;
    config
}

async fn app_with_admin(config: &Config) -> TestApp {
    let app = app_with(config).await;
    origin::accounts::create_first_admin(&app.db, Some(PASSWORD))
        .await
        .expect("first admin");
    app
}

async fn sign_in_from(app: &TestApp, ip: &str, username: &str, password: &str) -> TestResponse {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .expect("request");
    app.send(request).await
}

/// How many answers had each status.
fn tally(responses: &[TestResponse]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for response in responses {
        *counts.entry(response.status.as_u16()).or_default() += 1;
    }
    counts
}

/// A 429 of the sign-in limits, with its Retry-After within the window.
fn assert_limited(response: &TestResponse, window_secs: u32) {
    assert_eq!(
        response.error(StatusCode::TOO_MANY_REQUESTS).0,
        "too_many_sign_ins"
    );
    let retry_after: u32 = response
        .header(&header::RETRY_AFTER)
        .parse()
        .expect("seconds");
    assert!((1..=window_secs).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn parallel_wrong_guesses_for_one_user_from_one_address_reach_the_hash_only_n_times() {
    let app = app_with_admin(&limits_config(&new_database().await)).await;
    let guesses = futures_util::future::join_all((0..40).map(|n| {
        let app = &app;
        async move { sign_in_from(app, "198.51.100.7", "admin", &format!("guess {n}")).await }
    }))
    .await;
    // A 401 comes only after a hash: exactly the pair's limit got that far.
    assert_eq!(tally(&guesses), BTreeMap::from([(401, 5), (429, 35)]));
    for limited in guesses.iter().filter(|r| r.status == 429) {
        assert_limited(limited, WINDOW);
    }
    // From there even the right password waits...
    let blocked = sign_in_from(&app, "198.51.100.7", "admin", PASSWORD).await;
    assert_limited(&blocked, WINDOW);
    // ...but the real user elsewhere signs in.
    let real = sign_in_from(&app, "203.0.113.20", "admin", PASSWORD).await;
    assert_eq!(real.status, StatusCode::OK);
    // A success clears its own pair's failures: four wrong, right, then five wrong again.
    for _ in 0..4 {
        let wrong = sign_in_from(&app, "203.0.113.20", "admin", "typo").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let right = sign_in_from(&app, "203.0.113.20", "admin", PASSWORD).await;
    assert_eq!(right.status, StatusCode::OK);
    for _ in 0..5 {
        let wrong = sign_in_from(&app, "203.0.113.20", "admin", "typo").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    assert_limited(
        &sign_in_from(&app, "203.0.113.20", "admin", "typo").await,
        WINDOW,
    );
}

#[tokio::test]
async fn known_and_unknown_usernames_are_limited_and_answered_alike() {
    let mut config = limits_config(&new_database().await);
    config.sign_in.per_user = 8;
    let app = app_with_admin(&config).await;
    // From a new address each time: only the per-user limit applies.
    let mut answers = Vec::new();
    for username in ["admin", "nobody"] {
        let mut statuses = Vec::new();
        for n in 0..12 {
            let ip = format!("192.0.2.{}", n + if username == "admin" { 0 } else { 100 });
            let response = sign_in_from(&app, &ip, username, "wrong password").await;
            let code = response.error(response.status).0;
            if response.status == StatusCode::TOO_MANY_REQUESTS {
                assert_limited(&response, WINDOW);
            }
            statuses.push((response.status, code));
        }
        answers.push(statuses);
    }
    let expected: Vec<_> =
        std::iter::repeat_n((StatusCode::UNAUTHORIZED, "sign_in_failed".to_owned()), 8)
            .chain(std::iter::repeat_n(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_sign_ins".to_owned(),
                ),
                4,
            ))
            .collect();
    assert_eq!(answers[0], expected, "admin");
    assert_eq!(answers[1], expected, "nobody");
    // The same body, word for word (the seconds aside, read at the same moment).
    let admin = sign_in_from(&app, "192.0.2.250", "admin", "wrong password").await;
    let nobody = sign_in_from(&app, "192.0.2.251", "nobody", "wrong password").await;
    let without_digits = |response: &TestResponse| {
        String::from_utf8_lossy(&response.body).replace(|c: char| c.is_ascii_digit(), "")
    };
    assert_eq!(without_digits(&admin), without_digits(&nobody));
    assert_eq!(admin.headers.len(), nobody.headers.len());
}

#[tokio::test]
async fn one_address_cannot_spray_many_usernames() {
    let app = app_with_admin(&limits_config(&new_database().await)).await;
    let sprayed =
        futures_util::future::join_all(
            (0..45).map(|n| {
                let app = &app;
                async move {
                    sign_in_from(app, "2001:db8:7:7::1", &format!("user{n}"), "password1").await
                }
            }),
        )
        .await;
    assert_eq!(tally(&sprayed), BTreeMap::from([(401, 30), (429, 15)]));
    // Another host of the same IPv6 /64 is the same address.
    let neighbour = sign_in_from(&app, "2001:db8:7:7:abcd::9", "admin", PASSWORD).await;
    assert_limited(&neighbour, WINDOW);
    let elsewhere = sign_in_from(&app, "2001:db8:7:8::1", "admin", PASSWORD).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
}

#[tokio::test]
async fn strangers_cannot_lock_the_real_user_out_of_where_it_signs_in() {
    let mut config = limits_config(&new_database().await);
    config.sign_in.per_user = 10;
    let app = app_with_admin(&config).await;
    let home = "203.0.113.5";
    assert_eq!(
        sign_in_from(&app, home, "admin", PASSWORD).await.status,
        StatusCode::OK
    );
    // Strangers from many addresses use up the user's budget, a few guesses each.
    let guesses = futures_util::future::join_all((0..30).map(|n| {
        let app = &app;
        async move { sign_in_from(app, &format!("198.51.100.{n}"), "admin", "guess").await }
    }))
    .await;
    assert_eq!(tally(&guesses), BTreeMap::from([(401, 10), (429, 20)]));
    assert_limited(
        &sign_in_from(&app, "198.51.100.200", "admin", PASSWORD).await,
        WINDOW,
    );
    // Where the user signed in before, it still can, and still only with the right password.
    assert_eq!(
        sign_in_from(&app, home, "admin", "typo").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_from(&app, home, "admin", PASSWORD).await.status,
        StatusCode::OK
    );
    // An operator's password reset lifts the per-user limit everywhere.
    origin::accounts::set_admin(
        &app.db,
        &crate::support::CODE_KEY.parse().expect("code key"),
        "admin",
        "a new long password",
        true,
    )
    .await
    .expect("reset");
    assert_eq!(
        sign_in_from(&app, "198.51.100.201", "admin", "a new long password")
            .await
            .status,
        StatusCode::OK
    );
}

/// A new password ends the exemption from the per-user limit of the addresses the old one
/// signed in from: changed because someone else had it, it left them free to guess the new
/// one past that limit, from every address they had signed in from. The address the change
/// came from keeps it; after an operator's reset, none does.
#[tokio::test]
async fn a_new_password_ends_the_old_ones_known_addresses() {
    let mut config = limits_config(&new_database().await);
    config.sign_in.per_user = 10;
    let app = app_with_admin(&config).await;
    let (home, thief) = ("203.0.113.5", "192.0.2.66");
    let signed_in = sign_in_from(&app, home, "admin", PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::OK);
    let cookie = signed_in
        .header(&header::SET_COOKIE)
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let csrf = signed_in.json()["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_owned();
    assert_eq!(
        sign_in_from(&app, thief, "admin", PASSWORD).await.status,
        StatusCode::OK
    );
    let new = "a new long password";
    let change = Request::builder()
        .method(Method::PUT)
        .uri("/api/v1/me/password")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, cookie)
        .header("x-csrf-token", csrf)
        .header("x-forwarded-for", home)
        .body(Body::from(
            json!({"current_password": PASSWORD, "new_password": new}).to_string(),
        ))
        .expect("request");
    let changed = app.send(change).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text());
    // Strangers use up the user's budget: the thief's address is one of theirs now.
    let strangers = |round: u8| {
        let app = &app;
        futures_util::future::join_all((0..30).map(move |n| async move {
            sign_in_from(app, &format!("198.51.{round}.{n}"), "admin", "guess").await
        }))
    };
    assert_eq!(
        tally(&strangers(100).await),
        BTreeMap::from([(401, 10), (429, 20)])
    );
    assert_limited(&sign_in_from(&app, thief, "admin", new).await, WINDOW);
    assert_eq!(
        sign_in_from(&app, home, "admin", new).await.status,
        StatusCode::OK
    );
    // An operator's reset: no address keeps it.
    let newer = "a third long password";
    origin::accounts::set_admin(
        &app.db,
        &crate::support::CODE_KEY.parse().expect("code key"),
        "admin",
        newer,
        true,
    )
    .await
    .expect("reset");
    assert_eq!(
        tally(&strangers(101).await),
        BTreeMap::from([(401, 10), (429, 20)])
    );
    assert_limited(&sign_in_from(&app, home, "admin", newer).await, WINDOW);
}

#[tokio::test]
async fn the_limits_hold_across_two_instances_on_one_database() {
    let database_url = new_database().await;
    let config = limits_config(&database_url);
    let first = app_with_admin(&config).await;
    let second = app_with(&config).await;
    let guesses = futures_util::future::join_all((0..40).map(|n| {
        let app = if n % 2 == 0 { &first } else { &second };
        sign_in_from(app, "198.51.100.9", "admin", "guess")
    }))
    .await;
    assert_eq!(tally(&guesses), BTreeMap::from([(401, 5), (429, 35)]));
    let sprayed = futures_util::future::join_all((0..40).map(|n| {
        let app = if n % 2 == 0 { &first } else { &second };
        let name = format!("user{n}");
        async move { sign_in_from(app, "198.51.100.10", &name, "guess").await }
    }))
    .await;
    assert_eq!(tally(&sprayed), BTreeMap::from([(401, 30), (429, 10)]));
}

#[tokio::test]
async fn counts_of_ended_windows_and_old_known_addresses_are_deleted() {
    let app = app_with_admin(&limits_config(&new_database().await)).await;
    for ip in ["192.0.2.1", "192.0.2.2"] {
        let wrong = sign_in_from(&app, ip, "nobody", "guess").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    for ip in ["192.0.2.3", "192.0.2.4"] {
        let right = sign_in_from(&app, ip, "admin", PASSWORD).await;
        assert_eq!(right.status, StatusCode::OK);
    }
    let count = |table: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&db)
                .await
                .expect("count")
        }
    };
    // Two wrong guesses: a pair and an address each, and one username.
    assert_eq!(count("sign_in_attempts").await, 5);
    assert_eq!(count("sign_in_known_addresses").await, 2);
    // The pairs' window ended a window ago, the addresses' just ended (a sign-in that began
    // before the boundary may still count there); one address was last used 31 days ago.
    sqlx::query(
        "UPDATE sign_in_attempts SET window_start = window_start - make_interval(secs => $1)
         * CASE scope WHEN 'pair' THEN 2 WHEN 'ip' THEN 1 ELSE 0 END",
    )
    .bind(f64::from(WINDOW))
    .execute(&app.db)
    .await
    .expect("age attempts");
    sqlx::query(
        "UPDATE sign_in_known_addresses SET last_success_at = now() - interval '31 days'
         WHERE address = (SELECT address FROM sign_in_known_addresses ORDER BY address LIMIT 1)",
    )
    .execute(&app.db)
    .await
    .expect("age an address");
    app.state
        .forget_old_sign_in_attempts()
        .await
        .expect("forget");
    let left: Vec<String> = sqlx::query_scalar("SELECT scope FROM sign_in_attempts ORDER BY scope")
        .fetch_all(&app.db)
        .await
        .expect("scopes");
    assert_eq!(left, ["ip", "ip", "user"]);
    assert_eq!(count("sign_in_known_addresses").await, 1);
}

/// The sign-in route is outside the API's concurrency cap, and each sign-in makes several
/// queries: at most a quarter of the pool's connections (2 of the tests' 4) check sign-ins at
/// once, and one more waits its turn for as long as for a hash, then is told to come back,
/// before any query. Keyed callers still get connections. Before, sign-ins queued on one
/// address's count each held a connection, until none was left for anyone.
#[tokio::test]
async fn sign_ins_waiting_on_the_database_leave_connections_to_other_callers() {
    let mut config = limits_config(&new_database().await);
    config.sign_in.hash_wait_ms = 300;
    let app = std::sync::Arc::new(app_with_admin(&config).await);
    // The counts' table held, as parallel guesses at one row hold each other.
    let mut lock = app.db.begin().await.expect("begin");
    sqlx::query("LOCK TABLE sign_in_attempts IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    let held: Vec<_> = (0..2)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                sign_in_from(&app, &format!("198.51.100.{n}"), "admin", "guess").await
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while crate::support::lock_waiters(&app.db, "%sign_in_attempts%").await < 2 {
        assert!(std::time::Instant::now() < deadline, "the sign-ins wait");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let turned_away = tokio::time::timeout(
        Duration::from_secs(10),
        sign_in_from(&app, "198.51.100.9", "admin", "guess"),
    )
    .await
    .expect("answered, not queued on a connection");
    assert_eq!(turned_away.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
    let listed = tokio::time::timeout(
        Duration::from_secs(10),
        app.api(Method::GET, "/api/v1/links", None),
    )
    .await
    .expect("a keyed call gets a connection");
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
    lock.rollback().await.expect("release");
    for sign_in in held {
        let answer = sign_in.await.expect("joined");
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
    }
}

#[tokio::test]
async fn a_burst_of_random_usernames_hashes_at_most_the_cap_at_once() {
    let mut config = limits_config(&new_database().await);
    config.sign_in.hashes = Some(2);
    config.sign_in.hash_wait_ms = 300;
    let app = app_with_admin(&config).await;
    // 600 sign-ins with random names, each from its own address (no count stops them), 300 at
    // a time: only the hash cap stands between them and 600 × 19 MiB.
    let answers: Vec<TestResponse> = futures_util::stream::iter(0..600)
        .map(|n| {
            let app = &app;
            async move {
                let ip = format!("10.{}.{}.1", n / 250, n % 250);
                sign_in_from(app, &ip, &random_hex(), "password1").await
            }
        })
        .buffer_unordered(300)
        .collect()
        .await;
    let counts = tally(&answers);
    assert_eq!(counts.values().sum::<usize>(), 600);
    assert!(counts.keys().all(|s| [401, 503].contains(s)), "{counts:?}");
    assert!(counts.get(&503).is_some_and(|n| *n > 0), "{counts:?}");
    for busy in answers.iter().filter(|r| r.status == 503) {
        assert_eq!(busy.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
        assert_eq!(busy.header(&header::RETRY_AFTER), "1");
    }
    let peak = app.state.peak_sign_in_hashes();
    assert!((1..=2).contains(&peak), "{peak} hashes at once");
    // Attempts turned away as busy were given back: those addresses may try again.
    let busy_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sign_in_attempts WHERE attempts = 0")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(busy_rows, 0);
    let hashed_pairs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sign_in_attempts WHERE scope = 'pair'")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(hashed_pairs, i64::try_from(counts[&401]).expect("small"));
    // The real user is not held up once the burst is over.
    assert_eq!(
        sign_in_from(&app, "203.0.113.1", "admin", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_stored_keys_hide_the_address_and_depend_on_the_code_key() {
    use sha2::{Digest, Sha256};
    let database = new_database().await;
    let one = app_with_admin(&limits_config(&database)).await;
    let mut other_config = limits_config(&database);
    other_config.code_key = "0f0e0d0c0b0a09080706050403020100"
        .parse()
        .expect("code key");
    let other = app_with(&other_config).await;
    for app in [&one, &other] {
        let wrong = sign_in_from(app, "192.0.2.77", "admin", "guess").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let keys: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT key FROM sign_in_attempts WHERE scope = 'ip' ORDER BY key")
            .fetch_all(&one.db)
            .await
            .expect("keys");
    // One address, two deployments' secrets: two keys, neither a plain hash of the address.
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(keys[0], keys[1]);
    for plain in [&b"ip\x00192.0.2.77\x00"[..], b"192.0.2.77"] {
        let hashed = Sha256::digest(plain).to_vec();
        assert!(!keys.contains(&hashed), "SHA-256 of {plain:?} stored");
    }
}

#[tokio::test]
async fn attempts_turned_away_as_busy_are_given_back_in_the_window_they_were_counted_in() {
    let mut config = limits_config(&new_database().await);
    // Windows of a second, and a wait for a hash of a second: every attempt turned away as
    // busy was counted in a window that has ended when it is given back.
    config.sign_in.window_secs = 1;
    config.sign_in.hashes = Some(1);
    config.sign_in.hash_wait_ms = 1_000;
    let app = app_with_admin(&config).await;
    let answers: Vec<TestResponse> = futures_util::stream::iter(0..100)
        .map(|n| {
            let app = &app;
            async move {
                let ip = format!("10.9.{n}.1");
                sign_in_from(app, &ip, &random_hex(), "password1").await
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let counts = tally(&answers);
    assert!(counts.keys().all(|s| [401, 503].contains(s)), "{counts:?}");
    assert!(counts.get(&503).is_some_and(|n| *n > 0), "{counts:?}");
    // Only the hashed attempts are still counted, whichever window they fell in.
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(attempts), 0)::int8 FROM sign_in_attempts WHERE scope = 'pair'",
    )
    .fetch_one(&app.db)
    .await
    .expect("count");
    assert_eq!(
        counted,
        i64::try_from(counts[&401]).expect("small"),
        "{counts:?}"
    );
}

/// The real binary's resident memory, in KiB: now (`VmRSS`) or its peak (`VmHWM`).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

#[tokio::test]
async fn the_real_origin_keeps_its_memory_flat_under_a_sign_in_burst() {
    let database_url = new_database().await;
    let port = crate::support::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut origin = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &database_url)
        .env("KURZ_BIND", format!("127.0.0.1:{port}"))
        .env("KURZ_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("KURZ_CODE_KEY", crate::support::CODE_KEY)
        .env("KURZ_FIRST_START_FILE", dir.path().join("first-start.txt"))
        .env("KURZ_ADMIN_PASSWORD", PASSWORD)
        .env("KURZ_CLIENT_IP_HEADER", "x-forwarded-for")
        .env("KURZ_SIGN_IN_HASHES", "2")
        .env("KURZ_SIGN_IN_WINDOW_SECS", WINDOW.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the origin binary");
    let pid = origin.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let sign_in = |ip: String, username: String, password: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/v1/session");
        async move {
            client
                .post(url)
                .header("x-forwarded-for", ip)
                .header(header::CONTENT_TYPE.as_str(), "application/json")
                .body(json!({"username": username, "password": password}).to_string())
                .send()
                .await
                .map(|response| response.status().as_u16())
                .unwrap_or(0)
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Ready, and the first admin made (a sign-in works); it also warms up one hash.
    while sign_in("203.0.113.1".into(), "admin".into(), PASSWORD).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the origin never let admin in"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = memory_kib(pid, "VmRSS");
    let mut counts = BTreeMap::<u16, usize>::new();
    let mut from_one_address = BTreeMap::<u16, usize>::new();
    // 600 random usernames 300 at a time, then the same again from one address (the limits).
    for round in 0..2 {
        let statuses: Vec<u16> = futures_util::stream::iter(0..600)
            .map(|n| {
                let ip = if round == 0 {
                    format!("10.{}.{}.1", n / 250, n % 250)
                } else {
                    "198.51.100.1".to_owned()
                };
                sign_in(ip, random_hex(), "password1")
            })
            .buffer_unordered(300)
            .collect()
            .await;
        for status in statuses {
            *counts.entry(status).or_default() += 1;
            if round == 1 {
                *from_one_address.entry(status).or_default() += 1;
            }
        }
    }
    let ok = sign_in("203.0.113.1".into(), "admin".into(), PASSWORD).await;
    let peak = memory_kib(pid, "VmHWM");
    let after = memory_kib(pid, "VmRSS");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = origin.wait();
    assert_eq!(ok, 200);
    assert_eq!(counts.values().sum::<usize>(), 1200, "{counts:?}");
    // From one address, at most the per-address limit reached a hash (a 401); the rest were
    // refused, or turned away busy and not counted.
    assert!(
        from_one_address.get(&401).is_some_and(|n| *n <= 30),
        "{from_one_address:?}"
    );
    assert!(
        from_one_address.get(&429).is_some_and(|n| *n >= 300),
        "{from_one_address:?}"
    );
    assert!(
        counts.keys().all(|s| [401, 429, 503].contains(s)),
        "{counts:?}"
    );
    // Two hashes' working memory is 38 MiB (one exists already); unbounded, 300 hashes at once
    // would take 5.7 GB, and fresh memory per hash left 800 MiB resident with two at a time.
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(
        growth_mib < 100,
        "resident memory grew by {growth_mib} MiB: {before} KiB before the burst, peak {peak} \
         KiB, {after} KiB after; answers {counts:?}"
    );
}
