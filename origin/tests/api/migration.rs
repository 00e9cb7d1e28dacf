//! Workspaces came to a deployment with data: `0012_workspaces.sql` moves all of it into the
//! default workspace. Here a database at the schema before it (migrations up to 0011) is
//! filled as the previous release filled it, then migrated, and nothing may be lost.

use axum::http::{Method, StatusCode};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::support::{As, USER_PASSWORD, app_on, hour_start, new_database};

/// The last migration before workspaces.
const BEFORE_WORKSPACES: i64 = 11;

/// A key and its SHA-256, as the previous release stored them.
const OLD_KEY: &str = "kurz_0123456789abcdef0123456789abcdef0123456789abcdef";

/// Applies the migrations up to `last` only (copied to a directory of their own, so the
/// migrator sees the release before).
async fn migrate_up_to(database_url: &str, last: i64) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&source).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let version: i64 = name
            .split('_')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("version");
        if version <= last {
            std::fs::copy(&path, dir.path().join(name)).expect("copy");
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path())
        .await
        .expect("migrator");
    let mut conn = PgConnection::connect(database_url).await.expect("connect");
    migrator.run(&mut conn).await.expect("old migrations");
    conn.close().await.ok();
}

#[tokio::test]
async fn a_database_of_the_release_before_workspaces_keeps_everything() {
    let database_url = new_database().await;
    migrate_up_to(&database_url, BEFORE_WORKSPACES).await;
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    let password_hash = origin::accounts::hash_password(USER_PASSWORD).expect("hash");
    let key_hash: Vec<u8> = {
        use sha2::Digest;
        sha2::Sha256::digest(OLD_KEY.as_bytes()).to_vec()
    };
    // What the release before wrote: links (one deleted), a key, a user with a session,
    // clicks counted into the rollups of their links and of the account (link 0), one of
    // them still pending for both.
    let month_start = time::OffsetDateTime::now_utc()
        .replace_day(1)
        .expect("day")
        .replace_time(time::Time::MIDNIGHT);
    let hour = hour_start(time::Duration::ZERO);
    let partition = format!(
        "clicks_{:04}_{:02}",
        month_start.year(),
        u8::from(month_start.month())
    );
    let statements = [
        // Ids 1, 2 and 3, drawn from the sequence as the API did.
        "INSERT INTO links (code, destination) VALUES
             ('alpha', 'https://example.com/a'), ('beta', 'https://example.com/b')"
            .to_owned(),
        "INSERT INTO links (code, destination, deleted_at)
             VALUES ('gone', 'https://example.com/g', now())"
            .to_owned(),
        format!(
            "CREATE TABLE {partition} PARTITION OF clicks FOR VALUES FROM ('{}') TO ('{}')",
            month_start,
            month_start + time::Duration::days(32)
        ),
        format!(
            "INSERT INTO clicks (id, at, link_id, code, source, referrer_host, device, browser,
                                 os, bot, qr, head, visitor)
             VALUES ('c1', '{hour}', 1, 'alpha', 'edge', 'direct', 'desktop', 'Chrome',
                     'Windows', false, false, false, 'v1'),
                    ('c2', '{hour}', 1, 'alpha', 'edge', 'direct', 'desktop', 'Chrome',
                     'Windows', false, false, false, 'v2'),
                    ('c3', '{hour}', 2, 'beta', 'edge', 'direct', 'phone', 'Safari',
                     'iOS', false, true, false, 'v1')"
        ),
        // c1 and c2 counted; c3 still pending (for its link and for the account).
        format!(
            "INSERT INTO link_stats_hourly (link_id, hour, clicks, qr_scans, bots, uniques)
             VALUES (1, '{hour}', 2, 0, 0, 2), (0, '{hour}', 2, 0, 0, 2)"
        ),
        format!(
            "INSERT INTO link_breakdown_hourly (link_id, dimension, hour, value, hits, bots)
             VALUES (1, 'os', '{hour}', 'Windows', 2, 0), (0, 'os', '{hour}', 'Windows', 2, 0)"
        ),
        format!(
            "INSERT INTO link_breakdown_daily (link_id, dimension, day, value, hits, bots)
             VALUES (1, 'os', '{hour}'::date, 'Windows', 2, 0),
                    (0, 'os', '{hour}'::date, 'Windows', 2, 0)"
        ),
        format!(
            "INSERT INTO visitors_daily (link_id, day, visitor)
             VALUES (1, '{hour}'::date, 'v1'), (1, '{hour}'::date, 'v2'),
                    (0, '{hour}'::date, 'v1'), (0, '{hour}'::date, 'v2')"
        ),
        format!(
            "INSERT INTO clicks_pending (link_id, at, referrer_host, device, browser, os, bot,
                                         qr, visitor)
             VALUES (2, '{hour}', 'direct', 'phone', 'Safari', 'iOS', false, true, 'v1'),
                    (0, '{hour}', 'direct', 'phone', 'Safari', 'iOS', false, true, 'v1')"
        ),
    ];
    for statement in &statements {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    sqlx::query("INSERT INTO api_keys (name, key_hash, prefix) VALUES ('old', $1, 'kurz_012345')")
        .bind(&key_hash)
        .execute(&mut conn)
        .await
        .expect("old key");
    sqlx::query("INSERT INTO admin_users (username, password_hash) VALUES ('olduser', $1)")
        .bind(&password_hash)
        .execute(&mut conn)
        .await
        .expect("old user");
    sqlx::query(
        "INSERT INTO admin_sessions (token_hash, user_id, csrf_token, expires_at)
         SELECT '\\x00'::bytea, id, 'csrf', now() + interval '1 day' FROM admin_users",
    )
    .execute(&mut conn)
    .await
    .expect("old session");
    conn.close().await.ok();

    // The new release starts on it.
    let app = app_on(&database_url).await;

    // Everything is in the default workspace, on the default domain.
    let placed: Vec<(i64, i64, i64)> =
        sqlx::query_as("SELECT id, workspace_id, domain_id FROM links ORDER BY id")
            .fetch_all(&app.db)
            .await
            .expect("links");
    assert_eq!(placed, [(1, 1, 1), (2, 1, 1), (3, 1, 1)]);
    let account_rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM link_stats_hourly WHERE link_id = 0)
              + (SELECT count(*) FROM link_breakdown_hourly WHERE link_id = 0)
              + (SELECT count(*) FROM link_breakdown_daily WHERE link_id = 0)
              + (SELECT count(*) FROM visitors_daily WHERE link_id = 0)",
    )
    .fetch_one(&app.db)
    .await
    .expect("count");
    assert_eq!(account_rows, 0, "no rows of the made-up link 0 remain");

    // The old key still works, with every scope, in the default workspace.
    let old_key = As::Key(OLD_KEY.to_owned());
    let links = app.call(&old_key, Method::GET, "/api/v1/links", None).await;
    assert_eq!(links.status, StatusCode::OK);
    let codes: Vec<String> = links.json()["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["code"].as_str().expect("code").to_owned())
        .collect();
    assert_eq!(codes, ["beta", "alpha"]);
    let created = app
        .call(
            &old_key,
            Method::POST,
            "/api/v1/links",
            Some(serde_json::json!({"destination": "https://example.com/new", "code": "gone"})),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "a deleted link's code is free"
    );
    let scopes: Vec<String> =
        sqlx::query_scalar("SELECT unnest(scopes) FROM api_keys WHERE name = 'old'")
            .fetch_all(&app.db)
            .await
            .expect("scopes");
    assert_eq!(scopes.len(), 4);

    // The old user owns the default workspace and signs in as before; the old session
    // still works too (its cookie is gone with the test, so only the row is checked).
    let olduser = app.sign_in_as("olduser", USER_PASSWORD).await;
    let session = app
        .call(&olduser, Method::GET, "/api/v1/session", None)
        .await;
    assert_eq!(session.status, StatusCode::OK);
    let session = session.json();
    assert_eq!(session["workspace"]["id"], 1);
    assert_eq!(session["workspace"]["role"], "owner");
    let old_session: Option<i64> =
        sqlx::query_scalar("SELECT id FROM admin_sessions WHERE token_hash = '\\x00'::bytea")
            .fetch_optional(&app.db)
            .await
            .expect("old session");
    assert!(old_session.is_some());

    // The account's statistics are the default workspace's, the pending click included
    // once counted; the links' are as they were.
    app.state.count_clicks().await.expect("count");
    let stats = |path: &'static str| {
        let app = &app;
        let old_key = old_key.clone();
        async move {
            let response = app.call(&old_key, Method::GET, path, None).await;
            assert_eq!(response.status, StatusCode::OK, "{path}");
            response.json()
        }
    };
    let workspace: Value = stats("/api/v1/stats?interval=day").await;
    assert_eq!(workspace["totals"]["clicks"], 2);
    assert_eq!(workspace["totals"]["qr_scans"], 1);
    assert_eq!(
        workspace["totals"]["uniques"], 2,
        "v1 again is no new visitor"
    );
    assert_eq!(
        workspace["top"]["os"],
        serde_json::json!([{"value": "Windows", "count": 2}, {"value": "iOS", "count": 1}])
    );
    let alpha: Value = stats("/api/v1/links/alpha/stats?interval=day").await;
    assert_eq!(alpha["totals"]["clicks"], 2);
    let beta: Value = stats("/api/v1/links/beta/stats?interval=day").await;
    assert_eq!(beta["totals"]["qr_scans"], 1);
}

/// 0032 keys `audit_log` and `link_click_counts` by workspace, and 0033 `link_click_totals`
/// (distributing on Citus needs it): a database at 0031 with a limited link's counted clicks
/// in a second workspace and audit entries keeps them, each count under its link's
/// workspace, and the API reads them.
#[tokio::test]
async fn the_workspace_keys_of_0032_keep_counts_and_audit_entries() {
    let database_url = new_database().await;
    migrate_up_to(&database_url, 31).await;
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    for statement in [
        "INSERT INTO workspaces (id, name) OVERRIDING SYSTEM VALUE VALUES (7, 'second')",
        "INSERT INTO links (id, workspace_id, code, destination, max_clicks)
         VALUES (101, 1, 'one', 'https://example.com/1', 10),
                (102, 7, 'seven', 'https://example.com/7', 10)",
        "INSERT INTO link_click_counts (link_id, used) VALUES (101, 3), (102, 4)",
        "INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                                target_kind, target_id)
         VALUES (1, 'operator', 0, 'operator', 'link.created', 'link', 101),
                (7, 'operator', 0, 'operator', 'link.created', 'link', 102)",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    let app = app_on(&database_url).await;
    let counts: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT workspace_id, link_id, used FROM link_click_counts ORDER BY link_id",
    )
    .fetch_all(&app.db)
    .await
    .expect("counts");
    assert_eq!(counts, [(1, 101, 3), (7, 102, 4)]);
    let audit: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT workspace_id, target_id FROM audit_log WHERE target_kind = 'link' ORDER BY 2",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(audit, [(1, 101), (7, 102)]);
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid IN ('audit_log'::regclass, 'link_click_counts'::regclass,
                           'link_click_totals'::regclass)
           AND contype = 'p' ORDER BY conrelid::regclass::text",
    )
    .fetch_all(&app.db)
    .await
    .expect("keys");
    assert_eq!(
        keys,
        [
            "PRIMARY KEY (workspace_id, id)",
            "PRIMARY KEY (workspace_id, link_id)",
            "PRIMARY KEY (workspace_id, link_id)"
        ]
    );
    // The API reads the count through the new key: the link of the default workspace
    // (the test key's) shows its 3 clicks used.
    let link = app.api(Method::GET, "/api/v1/links/one", None).await;
    assert_eq!(link.status, StatusCode::OK, "{}", link.text());
    assert_eq!(link.json()["clicks_used"], 3, "{}", link.text());
}

/// 0036 keys a link's rollups (hourly stats, breakdowns, visitors of the day) by its
/// workspace first, and pending clicks carry their link's workspace in both halves: a
/// database at 0035 with counted and pending clicks of links in two workspaces keeps every
/// count under its link's workspace (rows of a link that does not exist go: nothing could read
/// them), and the counter and the stats API go on from there.
#[tokio::test]
async fn the_link_rollup_keys_of_0036_keep_every_count_under_its_workspace() {
    let database_url = new_database().await;
    migrate_up_to(&database_url, 35).await;
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    let hour = hour_start(time::Duration::ZERO);
    let statements = [
        "INSERT INTO workspaces (id, name) OVERRIDING SYSTEM VALUE VALUES (7, 'second')".to_owned(),
        "INSERT INTO links (id, workspace_id, code, destination)
         VALUES (101, 1, 'one', 'https://example.com/1'),
                (102, 7, 'seven', 'https://example.com/7')"
            .to_owned(),
        // Counted: two clicks of 101, one of 102, and one of link 999, which does not exist.
        format!(
            "INSERT INTO link_stats_hourly (link_id, hour, clicks, qr_scans, bots, uniques)
             VALUES (101, '{hour}', 2, 0, 0, 2), (102, '{hour}', 1, 0, 0, 1),
                    (999, '{hour}', 1, 0, 0, 1)"
        ),
        format!(
            "INSERT INTO link_breakdown_hourly (link_id, dimension, hour, value, hits, bots)
             VALUES (101, 'os', '{hour}', 'Windows', 2, 0), (102, 'os', '{hour}', 'iOS', 1, 0),
                    (999, 'os', '{hour}', 'iOS', 1, 0)"
        ),
        format!(
            "INSERT INTO link_breakdown_daily (link_id, dimension, day, value, hits, bots)
             VALUES (101, 'os', '{hour}'::date - 1, 'Windows', 5, 0),
                    (999, 'os', '{hour}'::date - 1, 'iOS', 1, 0)"
        ),
        format!(
            "INSERT INTO visitors_daily (link_id, day, visitor)
             VALUES (101, '{hour}'::date, 'v1'), (101, '{hour}'::date, 'v2'),
                    (102, '{hour}'::date, 'v1'), (999, '{hour}'::date, 'v1')"
        ),
        // Pending: a click of 101 (v1 again: no new visitor) in both halves, and the link
        // half of a click of 999.
        format!(
            "INSERT INTO clicks_pending (link_id, workspace_id, at, referrer_host, device,
                                         browser, os, bot, qr, visitor)
             VALUES (101, NULL, '{hour}', 'direct', 'desktop', 'Firefox', 'Linux', false,
                     false, 'v1'),
                    (101, 1, '{hour}', 'direct', 'desktop', 'Firefox', 'Linux', false,
                     false, 'v1'),
                    (999, NULL, '{hour}', 'direct', 'desktop', 'Firefox', 'Linux', false,
                     false, 'v9')"
        ),
    ];
    for statement in &statements {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    conn.close().await.ok();

    let app = app_on(&database_url).await;
    let pending: Vec<(i64, Option<i64>, i64)> = sqlx::query_as(
        "SELECT link_id, workspace_id, link_workspace_id FROM clicks_pending
         ORDER BY workspace_id NULLS FIRST",
    )
    .fetch_all(&app.db)
    .await
    .expect("pending");
    assert_eq!(pending, [(101, None, 1), (101, Some(1), 1)]);
    // An origin of the release before, still running, queues clicks without their link's
    // workspace: completed with it (a click of link 102 in both halves, as it queued them),
    // and a click of no link is not queued, as ingest does now.
    sqlx::query(
        "INSERT INTO clicks_pending (link_id, workspace_id, at, referrer_host, device, browser,
                                     os, bot, qr, visitor)
         VALUES (102, NULL, $1, 'direct', 'phone', 'Safari', 'iOS', false, false, 'v7'),
                (102, 7, $1, 'direct', 'phone', 'Safari', 'iOS', false, false, 'v7'),
                (999, NULL, $1, 'direct', 'phone', 'Safari', 'iOS', false, false, 'v9')",
    )
    .bind(hour)
    .execute(&app.db)
    .await
    .expect("an older origin's ingest");
    let pending: Vec<(i64, Option<i64>, i64)> = sqlx::query_as(
        "SELECT link_id, workspace_id, link_workspace_id FROM clicks_pending
         ORDER BY link_id, workspace_id NULLS FIRST",
    )
    .fetch_all(&app.db)
    .await
    .expect("pending");
    assert_eq!(
        pending,
        [
            (101, None, 1),
            (101, Some(1), 1),
            (102, None, 7),
            (102, Some(7), 7)
        ]
    );
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT 'stats', workspace_id, link_id FROM link_stats_hourly
         UNION ALL SELECT 'hourly', workspace_id, link_id FROM link_breakdown_hourly
         UNION ALL SELECT 'daily', workspace_id, link_id FROM link_breakdown_daily
         UNION ALL SELECT 'visitors', workspace_id, link_id FROM visitors_daily
         ORDER BY 1, 2, 3",
    )
    .fetch_all(&app.db)
    .await
    .expect("rows");
    let expected = [
        ("daily", 1, 101),
        ("hourly", 1, 101),
        ("hourly", 7, 102),
        ("stats", 1, 101),
        ("stats", 7, 102),
        ("visitors", 1, 101),
        ("visitors", 1, 101),
        ("visitors", 7, 102),
    ]
    .map(|(table, workspace, link)| (table.to_owned(), workspace, link));
    assert_eq!(rows, expected);
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid IN ('link_stats_hourly'::regclass, 'link_breakdown_hourly'::regclass,
                            'link_breakdown_daily'::regclass, 'visitors_daily'::regclass)
           AND contype = 'p' ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .expect("keys");
    let expected = [
        (
            "link_breakdown_daily",
            "(workspace_id, link_id, day, dimension, value)",
        ),
        (
            "link_breakdown_hourly",
            "(workspace_id, link_id, hour, dimension, value)",
        ),
        ("link_stats_hourly", "(workspace_id, link_id, hour)"),
        ("visitors_daily", "(workspace_id, link_id, day, visitor)"),
    ]
    .map(|(table, key)| (table.to_owned(), format!("PRIMARY KEY {key}")));
    assert_eq!(keys, expected);

    // The pending click is counted under the new keys, and the stats API (the default
    // workspace's key) reads link 101's clicks through them.
    app.state.count_clicks().await.expect("count");
    let stats = app
        .api(Method::GET, "/api/v1/links/one/stats?interval=day", None)
        .await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text());
    let totals = &stats.json()["totals"];
    assert_eq!(totals["clicks"], 3, "{totals}");
    assert_eq!(totals["uniques"], 2, "v1 again is no new visitor: {totals}");
    // The older origin's click of 102 counts under workspace 7, for the link and for the
    // workspace.
    let seven: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT (SELECT sum(clicks)::int8 FROM link_stats_hourly
                 WHERE workspace_id = 7 AND link_id = 102),
                (SELECT sum(clicks)::int8 FROM workspace_stats_hourly WHERE workspace_id = 7)",
    )
    .fetch_all(&app.db)
    .await
    .expect("workspace 7");
    assert_eq!(seven, [(2, 1)]);
}

/// 0037–0042 move a live code's uniqueness from `links` to `link_codes` and key `links` by
/// `(workspace_id, id)`: a database at 0036 with live and deleted links in two workspaces (one
/// code deleted and taken again) keeps every live link reachable by its code, frees the
/// deleted ones, and keeps the click counts and totals tied to their links. SQL written around
/// the origin (an operator's, or an origin of the release before) keeps the table right.
#[tokio::test]
async fn the_link_codes_of_0037_route_every_live_code_and_only_those() {
    let database_url = new_database().await;
    migrate_up_to(&database_url, 36).await;
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    for statement in [
        "INSERT INTO workspaces (id, name) OVERRIDING SYSTEM VALUE VALUES (7, 'second')",
        "INSERT INTO links (id, workspace_id, code, destination, max_clicks, deleted_at)
         VALUES (101, 1, 'one', 'https://example.com/old-one', NULL, now() - interval '1 day'),
                (102, 1, 'one', 'https://example.com/one', 5, NULL),
                (103, 7, 'seven', 'https://example.com/seven', NULL, NULL),
                (104, 7, 'gone', 'https://example.com/gone', NULL, now())",
        "INSERT INTO link_click_counts (workspace_id, link_id, used) VALUES (1, 102, 2)",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    conn.close().await.ok();

    let app = app_on(&database_url).await;
    let routes: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT code, workspace_id, link_id FROM link_codes ORDER BY code")
            .fetch_all(&app.db)
            .await
            .expect("link codes");
    assert_eq!(
        routes,
        [("one".to_owned(), 1, 102), ("seven".to_owned(), 7, 103)]
    );
    let key: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'links_pkey'",
    )
    .fetch_one(&app.db)
    .await
    .expect("links' key");
    assert_eq!(key, "PRIMARY KEY (workspace_id, id)");
    let unchecked: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE contype = 'f' AND NOT convalidated AND conrelid IN
             ('link_click_counts'::regclass, 'link_click_totals'::regclass, 'links'::regclass)",
    )
    .fetch_all(&app.db)
    .await
    .expect("constraints");
    assert_eq!(
        unchecked,
        Vec::<String>::new(),
        "0041 checked the new foreign keys"
    );

    // Live codes redirect, in either workspace; a deleted one does not.
    let one = app.visit(Method::GET, "/one").await;
    assert_eq!(one.status, StatusCode::FOUND, "{}", one.text());
    assert_eq!(one.headers["location"], "https://example.com/one");
    let seven = app.visit(Method::GET, "/seven").await;
    assert_eq!(seven.headers["location"], "https://example.com/seven");
    assert_eq!(
        app.visit(Method::GET, "/gone").await.status,
        StatusCode::NOT_FOUND
    );
    // The count is still the link's, and the API takes a deleted link's code again.
    let link = app.api(Method::GET, "/api/v1/links/one", None).await;
    assert_eq!(link.json()["clicks_used"], 2, "{}", link.text());
    let taken = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(serde_json::json!({"destination": "https://example.com/x", "code": "one"})),
        )
        .await;
    assert_eq!(taken.error(StatusCode::CONFLICT).0, "code_taken");

    // SQL written around the origin: a live link inserted without its row gets it; a code
    // taken is refused; deleting, by hand or for good, frees the code.
    sqlx::query("INSERT INTO links (workspace_id, code, destination) VALUES (7, 'by-hand', 'https://example.com/h')")
        .execute(&app.db)
        .await
        .expect("a link inserted by hand");
    assert_eq!(
        app.visit(Method::GET, "/by-hand").await.headers["location"],
        "https://example.com/h"
    );
    let err = sqlx::query(
        "INSERT INTO links (code, destination) VALUES ('seven', 'https://example.com/dup')",
    )
    .execute(&app.db)
    .await
    .expect_err("a taken code");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("link_codes_pkey"),
        "{err}"
    );
    sqlx::query("UPDATE links SET deleted_at = now() WHERE code = 'by-hand'")
        .execute(&app.db)
        .await
        .expect("a soft delete by hand");
    sqlx::query("DELETE FROM links WHERE code = 'seven'")
        .execute(&app.db)
        .await
        .expect("a delete for good");
    let routes: Vec<String> = sqlx::query_scalar("SELECT code FROM link_codes ORDER BY code")
        .fetch_all(&app.db)
        .await
        .expect("link codes");
    assert_eq!(routes, ["one"]);
    app.create(serde_json::json!({"destination": "https://example.com/s", "code": "seven"}))
        .await;
}

/// 0051 traces the keys made by keys before 0048 (stored with no maker) to their makers from
/// the audit log: a revocation of the maker reaches them from then on, and those whose person
/// is no longer a member are revoked at once, with an audit entry. A key whose maker was
/// revoked before stays (keys were rotated so), as does one whose entry is gone.
#[tokio::test]
async fn the_keys_made_by_keys_before_0048_are_traced_to_their_makers() {
    let database_url = new_database().await;
    migrate_up_to(&database_url, 47).await;
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    for statement in [
        "INSERT INTO admin_users (id, username, password_hash) OVERRIDING SYSTEM VALUE
         VALUES (501, 'stays', 'x'), (502, 'left', 'x')",
        "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (1, 501, 'admin')",
        // 601 made by a member, 602 by 601, 603 by 602; 604 by one who left (revoked with
        // their removal), 605 by 604; 606 by a key whose entry is gone; 607 by the member,
        // revoked once it made 608.
        "INSERT INTO api_keys (id, name, key_hash, prefix, workspace_id, scopes, created_by,
                               revoked_at)
         OVERRIDING SYSTEM VALUE
         SELECT id, 'k' || id, sha256(id::text::bytea), 'kurz_' || id, 1,
                '{links:read,workspace:admin}', maker, CASE WHEN revoked THEN now() END
         FROM (VALUES (601, 501, false), (602, NULL, false), (603, NULL, false),
                      (604, 502, true), (605, NULL, false), (606, NULL, false),
                      (607, 501, true), (608, NULL, false)) AS k (id, maker, revoked)",
        "INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                                target_kind, target_id)
         VALUES (1, 'user', 501, 'stays', 'key.created', 'key', 601),
                (1, 'key', 601, 'k601', 'key.created', 'key', 602),
                (1, 'key', 602, 'k602', 'key.created', 'key', 603),
                (1, 'user', 502, 'left', 'key.created', 'key', 604),
                (1, 'key', 604, 'k604', 'key.created', 'key', 605),
                (1, 'user', 501, 'stays', 'key.created', 'key', 607),
                (1, 'key', 607, 'k607', 'key.created', 'key', 608)",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    let app = app_on(&database_url).await;
    let keys = async || -> Vec<(i64, Option<i64>, Option<i64>, bool)> {
        sqlx::query_as(
            "SELECT id, created_by, made_by_key, revoked_at IS NOT NULL FROM api_keys
             WHERE id > 600 ORDER BY id",
        )
        .fetch_all(&app.db)
        .await
        .expect("keys")
    };
    assert_eq!(
        keys().await,
        [
            (601, Some(501), None, false),
            (602, Some(501), Some(601), false),
            (603, Some(501), Some(602), false),
            (604, Some(502), None, true),
            (605, Some(502), Some(604), true),
            (606, None, None, false),
            (607, Some(501), None, true),
            (608, Some(501), Some(607), false),
        ]
    );
    let revoked: Vec<(i64, String)> = sqlx::query_as(
        "SELECT target_id, actor_name FROM audit_log WHERE action = 'key.revoked' ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0].0, 605);
    assert!(revoked[0].1.starts_with("upgrade"), "{revoked:?}");
    // Revoking the first key now reaches the two made from it.
    let response = app.api(Method::DELETE, "/api/v1/keys/601", None).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    let live: Vec<i64> = keys()
        .await
        .into_iter()
        .filter(|key| !key.3)
        .map(|key| key.0)
        .collect();
    assert_eq!(live, [606, 608]);
}

/// 0055: a person still a member whose role was lowered before 0051 ran kept the keys made by
/// their keys (the demotion revoked only the keys they made themselves): an editor held a live
/// `workspace:admin` key, enough to make themselves admin again. Those beyond the role are
/// revoked with what they made; those within it stay.
#[tokio::test]
async fn the_keys_beyond_a_demoted_makers_role_are_revoked_on_upgrade() {
    let database_url = new_database().await;
    migrate_up_to(&database_url, 47).await;
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    for statement in [
        "INSERT INTO admin_users (id, username, password_hash) OVERRIDING SYSTEM VALUE
         VALUES (503, 'demoted', 'x'), (504, 'viewer now', 'x'), (505, 'admin still', 'x')",
        "INSERT INTO workspace_members (workspace_id, user_id, role)
         VALUES (1, 503, 'editor'), (1, 504, 'viewer'), (1, 505, 'admin')",
        // Each person made a key (the editor's and the viewer's revoked by their demotion),
        // which made keys: 612 and 622 beyond their person's role now, 613 made by 612, 614
        // within the editor's role, 632 the admin's.
        "INSERT INTO api_keys (id, name, key_hash, prefix, workspace_id, scopes, created_by,
                               revoked_at)
         OVERRIDING SYSTEM VALUE
         SELECT id, 'k' || id, sha256(id::text::bytea), 'kurz_' || id, 1, scopes::text[], maker,
                CASE WHEN revoked THEN now() END
         FROM (VALUES (611, 503, true, '{links:read,workspace:admin}'),
                      (612, NULL, false, '{links:read,workspace:admin}'),
                      (613, NULL, false, '{links:read}'),
                      (614, NULL, false, '{links:read,links:write}'),
                      (621, 504, true, '{links:write}'),
                      (622, NULL, false, '{links:read,links:write}'),
                      (631, 505, false, '{links:read,workspace:admin}'),
                      (632, NULL, false, '{links:read,workspace:admin}'))
              AS k (id, maker, revoked, scopes)",
        "INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                                target_kind, target_id)
         VALUES (1, 'user', 503, 'demoted', 'key.created', 'key', 611),
                (1, 'key', 611, 'k611', 'key.created', 'key', 612),
                (1, 'key', 612, 'k612', 'key.created', 'key', 613),
                (1, 'key', 611, 'k611', 'key.created', 'key', 614),
                (1, 'user', 504, 'viewer now', 'key.created', 'key', 621),
                (1, 'key', 621, 'k621', 'key.created', 'key', 622),
                (1, 'user', 505, 'admin still', 'key.created', 'key', 631),
                (1, 'key', 631, 'k631', 'key.created', 'key', 632)",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    let app = app_on(&database_url).await;
    let live: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM api_keys WHERE id > 600 AND revoked_at IS NULL ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .expect("keys");
    assert_eq!(live, [614, 631, 632]);
    let revoked: Vec<(i64, String)> = sqlx::query_as(
        "SELECT target_id, actor_name FROM audit_log WHERE action = 'key.revoked' ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    let ids: Vec<i64> = revoked.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [612, 613, 622]);
    assert!(
        revoked.iter().all(|(_, by)| by.starts_with("upgrade")),
        "{revoked:?}"
    );
}

/// 0054: expiries written around the API that the origin cannot read (`infinity`, a year past
/// 9999) become what they meant, each a change for the edge, and no such value can be written
/// again. Before, reading one panicked the edge's sync task, and every link's change stopped
/// reaching the edge.
#[tokio::test]
async fn the_expiries_of_0054_are_all_readable() {
    let database_url = new_database().await;
    migrate_up_to(&database_url, 53).await;
    let mut conn = PgConnection::connect(&database_url).await.expect("connect");
    sqlx::query(
        "INSERT INTO links (workspace_id, code, destination, expires_at)
         VALUES (1, 'never', 'https://example.com/n', 'infinity'),
                (1, 'far', 'https://example.com/f', '12000-01-01'),
                (1, 'always', 'https://example.com/a', '-infinity'),
                (1, 'plain', 'https://example.com/p', '2030-01-01')",
    )
    .execute(&mut conn)
    .await
    .expect("links");
    let before: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, version FROM links ORDER BY code")
            .fetch_all(&mut conn)
            .await
            .expect("versions");
    conn.close().await.ok();

    let app = app_on(&database_url).await;
    for (code, status) in [
        ("never", StatusCode::FOUND),
        ("far", StatusCode::FOUND),
        ("always", StatusCode::GONE),
        ("plain", StatusCode::FOUND),
    ] {
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        assert_eq!(visit.status, status, "{code}");
    }
    let after: Vec<(String, i64)> = sqlx::query_as("SELECT code, version FROM links ORDER BY code")
        .fetch_all(&app.db)
        .await
        .expect("versions");
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(old, new)| old.1 != new.1)
        .map(|(old, _)| old.0.as_str())
        .collect();
    assert_eq!(changed, ["always", "far", "never"]);
    let queued: Vec<String> =
        sqlx::query_scalar("SELECT code FROM edge_outbox WHERE code IN ('always', 'far', 'never', 'plain') ORDER BY code")
            .fetch_all(&app.db)
            .await
            .expect("outbox");
    assert!(
        ["always", "far", "never"]
            .iter()
            .all(|code| queued.iter().any(|q| q == code)),
        "{queued:?}"
    );
    let refused = sqlx::query("UPDATE links SET expires_at = 'infinity' WHERE code = 'plain'")
        .execute(&app.db)
        .await
        .expect_err("no longer writable");
    assert!(
        refused.to_string().contains("links_expires_at_readable"),
        "{refused}"
    );
}
