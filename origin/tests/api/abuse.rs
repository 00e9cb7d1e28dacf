//! Abuse protection: the blocklist refuses links to blocked destinations (per field) and
//! disables existing ones in every workspace as a `PATCH` would (new versions, outbox rows,
//! audit entries); `/report` stores visitors' reports within its limits; only the operator
//! workspace's admins manage either.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use shortlink::signature;

use crate::support::{self, As, TestApp};

const BLOCKLIST: &str = "/api/v1/abuse/blocklist";
const REPORTS: &str = "/api/v1/abuse/reports";

async fn block(app: &TestApp, rule: &str) -> Value {
    let response = app
        .api(
            Method::POST,
            BLOCKLIST,
            Some(json!({"rule": rule, "reason": "phishing campaign"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    response.json()
}

/// An app whose link changes go to the outbox (its edge is never reached: no background).
async fn app_with_outbox() -> TestApp {
    let database_url = support::new_database().await;
    let mut config = support::config(&database_url);
    config.edge_url = Some("http://127.0.0.1:9".to_owned());
    config.edge_secret = Some(support::EDGE_SECRET.to_owned());
    support::app_with(&config).await
}

#[tokio::test]
async fn blocked_destinations_are_refused_naming_the_field() {
    let app = support::spawn_app().await;
    block(&app, "Evil.Example.").await;
    block(&app, "example.com/phish/*").await;
    let cases = [
        (
            json!({"destination": "https://www.evil.example/x"}),
            "destination",
        ),
        (
            json!({"destination": "https://example.com/phish/login"}),
            "destination",
        ),
        // The same path to a server, spelt with encoded unreserved characters.
        (
            json!({"destination": "https://example.com/%70%68ish/login"}),
            "destination",
        ),
        (
            json!({"destination": "https://ok.example/", "fallback_url": "http://EVIL.example:8080/"}),
            "fallback_url",
        ),
        (
            json!({"destination": "https://ok.example/", "targets": [
                {"when": {"country": ["de"]}, "destination": "https://ok.example/de"},
                {"when": {"country": ["fr"]}, "destination": "https://a.evil.example/"}]}),
            "targets[1].destination",
        ),
        (
            json!({"destination": "https://ok.example/", "split": [
                {"destination": "https://ok.example/a", "weight": 50},
                {"destination": "https://evil.example/b", "weight": 50}]}),
            "split[1].destination",
        ),
        // A disabled link still sends visitors to its fallback.
        (
            json!({"destination": "https://ok.example/", "disabled": true, "fallback_url": "https://evil.example/"}),
            "fallback_url",
        ),
    ];
    for (body, field) in &cases {
        let response = app
            .api(Method::POST, "/api/v1/links", Some(body.clone()))
            .await;
        let (code, at) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(*field)),
            "{body}"
        );
    }
    // Neighbours of the rules are not blocked.
    let neighbours = [
        "https://notevil.example/",
        "https://evil.example.com/",
        "https://example.com/phish",
        "https://ok.example/?u=https://evil.example/",
    ];
    for destination in neighbours {
        app.create(json!({"destination": destination})).await;
    }
    // A bulk create checks all its items at once, each as a single create: every case fails
    // alone naming its own field, and the neighbours between them are created.
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for (index, (body, field)) in cases.iter().enumerate() {
        items.push(body.clone());
        expected.push(("failed", Some(*field)));
        let neighbour = neighbours[index % neighbours.len()];
        items.push(json!({"destination": neighbour}));
        expected.push(("created", None));
    }
    let response = app
        .api(
            Method::POST,
            "/api/v1/links/bulk",
            Some(json!({"links": items})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let answer = response.json();
    let outcomes: Vec<(&str, Option<&str>)> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| {
            let status = result["status"].as_str().expect("status");
            if status == "failed" {
                assert_eq!(result["error"]["code"], "invalid_input", "{result}");
            }
            (status, result["error"]["field"].as_str())
        })
        .collect();
    assert_eq!(outcomes, expected);
    assert_eq!(answer["created"], cases.len());

    let link = app
        .create(json!({"destination": "https://ok.example/", "code": "edited"}))
        .await;
    assert_eq!(link["disabled"], false);
    let patch = |body: Value| app.api(Method::PATCH, "/api/v1/links/edited", Some(body));
    let (_, field) = patch(json!({"destination": "https://evil.example/"}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("destination"));
    let (_, field) = patch(json!({"split": [
        {"destination": "https://ok.example/a", "weight": 50},
        {"destination": "https://x.evil.example/", "weight": 50}]}))
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("split[1].destination"));
    assert_eq!(patch(json!({"note": "fine"})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_link_the_blocklist_disabled_cannot_be_enabled_again() {
    let app = support::spawn_app().await;
    app.create(json!({"destination": "https://evil.example/", "code": "victim"}))
        .await;
    let entry = block(&app, "evil.example").await;
    assert_eq!(entry["links_disabled"], 1);
    let patch = |body: Value| app.api(Method::PATCH, "/api/v1/links/victim", Some(body));
    let (_, field) = patch(json!({"disabled": false}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("destination"));
    // Editing something else keeps it disabled, which is allowed.
    assert_eq!(patch(json!({"note": "seen"})).await.status, StatusCode::OK);
    // Removing the rule re-enables nothing, but lets a person do it.
    let id = entry["id"].as_i64().expect("id");
    let removed = app
        .api(Method::DELETE, &format!("{BLOCKLIST}/{id}"), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let link = app
        .api(Method::GET, "/api/v1/links/victim", None)
        .await
        .json();
    assert_eq!(link["disabled"], true);
    assert_eq!(
        patch(json!({"disabled": false})).await.status,
        StatusCode::OK
    );
}

async fn link_state(app: &TestApp, code: &str) -> (i64, bool, Option<String>, i64) {
    let (version, disabled, fallback): (i64, bool, Option<String>) = sqlx::query_as(
        "SELECT version, disabled, fallback_url FROM links WHERE code = $1 AND deleted_at IS NULL",
    )
    .bind(code)
    .fetch_one(&app.db)
    .await
    .expect("link");
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM edge_outbox WHERE code = $1")
        .bind(code)
        .fetch_one(&app.db)
        .await
        .expect("outbox");
    (version, disabled, fallback, outbox)
}

#[tokio::test]
async fn adding_a_domain_disables_matching_links_in_every_workspace_through_the_sync() {
    let app = app_with_outbox().await;
    let other = app.workspace("Other").await;
    let other_key = app.key(other, &["links:read", "links:write"]).await;
    app.create(json!({"destination": "https://evil.example/a", "code": "mine"}))
        .await;
    app.create(json!({"destination": "https://good.example/", "code": "fine"}))
        .await;
    let create_other =
        |body: Value| app.call(&other_key, Method::POST, "/api/v1/links", Some(body));
    for body in [
        json!({"destination": "https://shop.EVIL.example/", "code": "theirs"}),
        json!({"destination": "https://good.example/", "code": "split", "split": [
            {"destination": "https://good.example/a", "weight": 50},
            {"destination": "https://evil.example/b", "weight": 50}]}),
        json!({"destination": "https://good.example/", "code": "off", "disabled": true,
               "fallback_url": "https://evil.example/"}),
        json!({"destination": "https://evil.example/", "code": "already", "disabled": true}),
    ] {
        let response = create_other(body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    }
    let codes = ["mine", "fine", "theirs", "split", "off", "already"];
    let mut before = Vec::new();
    for code in codes {
        before.push(link_state(&app, code).await);
    }

    let entry = block(&app, "evil.example").await;
    assert_eq!(entry["links_disabled"], 4, "{entry}");
    assert_eq!(entry["sweep_done"], true);

    for (code, before) in codes.iter().zip(before) {
        let after = link_state(&app, code).await;
        let changed = matches!(*code, "mine" | "theirs" | "split" | "off");
        assert_eq!(after.0 > before.0, changed, "{code}: a new version");
        assert_eq!(
            after.3,
            before.3 + i64::from(changed),
            "{code}: an outbox row"
        );
        assert_eq!(after.1, *code != "fine", "{code}: disabled");
    }
    assert_eq!(
        link_state(&app, "off").await.2,
        None,
        "the blocked fallback is removed"
    );
    // Each workspace's log tells why, without naming the operator's admin.
    let entries: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT workspace_id, actor_kind, actor_name FROM audit_log
         WHERE action = 'link.updated' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(entries.len(), 4);
    assert_eq!(entries.iter().filter(|(w, ..)| *w == other).count(), 3);
    assert!(
        entries
            .iter()
            .all(|(_, kind, name)| kind == "operator" && name == "abuse blocklist (evil.example)")
    );
    // A visitor gets the disabled link's answer, not the destination.
    assert_eq!(
        app.visit(Method::GET, "/theirs").await.status,
        StatusCode::NOT_FOUND
    );

    // The rule listed with what it did; a second add of the same rule is a conflict.
    let list = app.api(Method::GET, BLOCKLIST, None).await.json();
    assert_eq!(list["entries"][0]["rule"], "evil.example");
    assert_eq!(list["entries"][0]["links_disabled"], 4);
    let again = app
        .api(
            Method::POST,
            BLOCKLIST,
            Some(json!({"rule": "EVIL.example"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_sweep_covers_every_link_in_batches_of_ids() {
    let app = support::spawn_app().await;
    app.create(json!({"destination": "https://evil.example/", "code": "low"}))
        .await;
    // Ids far apart: the sweep covers them in several batches of its scan.
    sqlx::query("SELECT setval(pg_get_serial_sequence('links', 'id'), 9000)")
        .execute(&app.db)
        .await
        .expect("sequence");
    app.create(json!({"destination": "https://a.evil.example/", "code": "high"}))
        .await;
    let entry = block(&app, "evil.example").await;
    assert_eq!(entry["links_disabled"], 2);
    assert_eq!(entry["sweep_done"], true);
    let swept_to: i64 = sqlx::query_scalar("SELECT swept_to FROM abuse_blocklist")
        .fetch_one(&app.db)
        .await
        .expect("swept_to");
    assert!(swept_to >= 9001);
}

#[tokio::test]
async fn a_pattern_sweeps_links_that_spell_its_path_percent_encoded() {
    let app = support::spawn_app().await;
    for (code, destination) in [
        ("plain", "https://example.com/phish/a"),
        ("encoded", "https://example.com/%70hish/a"),
        ("upper", "https://example.com/%50%48ISH/a"),
        // `%2F` is not `/` to a server: another path, left alone.
        ("reserved", "https://example.com/ph%2Fish/a"),
        ("other", "https://example.com/%66ish/a"),
    ] {
        app.create(json!({"destination": destination, "code": code}))
            .await;
    }
    let entry = block(&app, "example.com/phish/*").await;
    assert_eq!(entry["links_disabled"], 3, "{entry}");
    for (code, disabled) in [
        ("plain", true),
        ("encoded", true),
        ("upper", true),
        ("reserved", false),
        ("other", false),
    ] {
        assert_eq!(link_state(&app, code).await.1, disabled, "{code}");
    }
    // A rule typed with characters a URL holds encoded in a path (`{`, `}`) matches them so:
    // it swept nothing, and a new link to it was made.
    app.create(json!({"destination": "https://example.com/{campaign}/login", "code": "braces"}))
        .await;
    let entry = block(&app, "example.com/{campaign}/*").await;
    assert_eq!(entry["rule"], "example.com/{campaign}/*");
    assert_eq!(entry["links_disabled"], 1, "{entry}");
    assert!(link_state(&app, "braces").await.1);
    let refused = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/{campaign}/x"})),
        )
        .await;
    assert_eq!(
        refused.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
        Some("destination")
    );
}

/// A rule stored by an older release that this one no longer reads (here: one that decodes
/// to nothing but `*`, `/` and `.`) is left out, not a 500 on every create and edit.
#[tokio::test]
async fn a_stored_rule_this_release_cannot_read_blocks_nothing_else() {
    let app = support::spawn_app().await;
    block(&app, "evil.example").await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO abuse_blocklist (rule, kind, reason, created_by)
         VALUES ('*/%2e%2e/*', 'pattern', 'old', 'tests') RETURNING id",
    )
    .fetch_one(&app.db)
    .await
    .expect("rule");
    let created = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/a/../b"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let refused = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://evil.example/"})),
        )
        .await;
    assert_eq!(
        refused.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
        Some("destination")
    );
    // And it is still listed, for an admin to delete.
    let list = app.api(Method::GET, BLOCKLIST, None).await.json();
    assert!(
        list["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|entry| entry["id"] == id),
        "{list}"
    );
}

/// Begins what `add` does while it holds the blocklist's lock: the lock, taken exclusively,
/// and the rule's row, not yet committed.
async fn adding(app: &TestApp, rule: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = app.db.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('kurz abuse_blocklist'))")
        .execute(&mut *tx)
        .await
        .expect("lock");
    sqlx::query(
        "INSERT INTO abuse_blocklist (rule, kind, reason, created_by)
         VALUES ($1, 'domain', 'racing', 'tests')",
    )
    .bind(rule)
    .execute(&mut *tx)
    .await
    .expect("rule");
    tx
}

/// Whether a session of this test's database waits for a lock (an advisory lock, or a row's:
/// a row lock is waited for as the transaction holding it, which names no database).
async fn waits_for_a_lock(app: &TestApp) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                        WHERE NOT l.granted AND a.datname = current_database())",
    )
    .fetch_one(&app.db)
    .await
    .expect("pg_locks")
}

/// Runs `request` until it waits for a lock (which `tx` holds), then commits `tx`
/// and returns the answer. A request that answers without waiting is answered at once (and
/// `tx` rolled back): whatever it answered is what the test then checks.
async fn commit_once_waiting(
    app: &TestApp,
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    request: impl std::future::Future<Output = support::TestResponse>,
) -> support::TestResponse {
    let mut request = std::pin::pin!(request);
    loop {
        tokio::select! {
            response = &mut request => return response,
            () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
        if waits_for_a_lock(app).await {
            break;
        }
    }
    tx.commit().await.expect("commit");
    request.await
}

#[tokio::test]
async fn creates_and_edits_during_a_rule_being_added_wait_and_see_it() {
    let app = support::spawn_app().await;
    // Made before any rule: disabled, so enabling it is what must meet the rule.
    app.create(json!({"destination": "https://bad.example/", "code": "dormant", "disabled": true}))
        .await;

    let tx = adding(&app, "evil.example").await;
    let create = app.api(
        Method::POST,
        "/api/v1/links",
        Some(json!({"destination": "https://evil.example/x", "code": "racer"})),
    );
    let (_, field) = commit_once_waiting(&app, tx, create)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("destination"));

    let tx = adding(&app, "bad.example").await;
    let enable = app.api(
        Method::PATCH,
        "/api/v1/links/dormant",
        Some(json!({"disabled": false})),
    );
    let (_, field) = commit_once_waiting(&app, tx, enable)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("destination"));
    assert!(link_state(&app, "dormant").await.1, "still disabled");
}

#[tokio::test]
async fn adding_a_rule_waits_for_edits_in_flight_and_sweeps_them() {
    let app = support::spawn_app().await;
    app.create(json!({"destination": "https://good.example/", "code": "moving"}))
        .await;
    // An edit that passed its check (no rule yet) and has not committed: it holds the
    // blocklist's lock shared, as every create and edit does from its check to its commit.
    let mut edit = app.db.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext('kurz abuse_blocklist'))")
        .execute(&mut *edit)
        .await
        .expect("lock");
    sqlx::query("UPDATE links SET destination = 'https://evil.example/' WHERE code = 'moving'")
        .execute(&mut *edit)
        .await
        .expect("edit");
    let add = app.api(
        Method::POST,
        BLOCKLIST,
        Some(json!({"rule": "evil.example", "reason": "phishing campaign"})),
    );
    let added = commit_once_waiting(&app, edit, add).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
    assert_eq!(added.json()["links_disabled"], 1);
    assert!(link_state(&app, "moving").await.1, "disabled by the sweep");
}

#[tokio::test]
async fn a_link_the_sweep_cannot_change_is_skipped_not_retried_forever() {
    let app = support::spawn_app().await;
    for code in ["first", "stuck", "broken", "last"] {
        app.create(json!({"destination": "https://evil.example/", "code": code}))
            .await;
    }
    // Rows written around the API: a code that is no longer one, and a row whose update the
    // database refuses (as a constraint added since would).
    sqlx::query("UPDATE links SET code = 'not a code!' WHERE code = 'broken'")
        .execute(&app.db)
        .await
        .expect("broken code");
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$;
         CREATE TRIGGER stuck BEFORE UPDATE ON links FOR EACH ROW
             WHEN (OLD.code = 'stuck') EXECUTE FUNCTION refuse_update();",
    )
    .execute(&app.db)
    .await
    .expect("trigger");

    let entry = block(&app, "evil.example").await;
    assert_eq!(entry["links_disabled"], 2, "{entry}");
    assert_eq!(entry["sweep_done"], true);
    for (code, disabled) in [
        ("first", true),
        ("stuck", false),
        ("not a code!", false),
        ("last", true),
    ] {
        assert_eq!(link_state(&app, code).await.1, disabled, "{code}");
    }
}

#[tokio::test]
async fn a_single_label_domain_rule_is_refused() {
    let app = support::spawn_app().await;
    for rule in ["com", "COM.", "localhost"] {
        let response = app
            .api(Method::POST, BLOCKLIST, Some(json!({"rule": rule})))
            .await;
        let (_, field) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field.as_deref(), Some("rule"), "{rule}");
        assert!(response.text().contains("single label"), "{rule}");
    }
}

#[tokio::test]
async fn only_the_operator_workspaces_admins_manage_abuse() {
    let app = support::spawn_app().await;
    let other = app.workspace("Other").await;
    let operator_admin = app.user("opadmin", &[(1, "admin")]).await;
    let operator_owner_elsewhere = app.user("roaming", &[(other, "admin"), (1, "owner")]).await;
    let operator_editor = app.user("opeditor", &[(1, "editor")]).await;
    let operator_viewer = app.user("opviewer", &[(1, "viewer")]).await;
    let foreign_admin = app.user("foreign", &[(other, "owner")]).await;
    let admin_key = app.key(1, &["workspace:admin"]).await;
    let plain_key = app
        .key(1, &["links:read", "links:write", "stats:read"])
        .await;
    let foreign_key = app.key(other, &["workspace:admin", "links:read"]).await;
    let entry = block(&app, "seed.example").await;
    let rule_id = entry["id"].as_i64().expect("id");
    sqlx::query(
        "INSERT INTO abuse_reports (reported, category, details, reporter)
         SELECT 'x', 'spam', '', '\\x00' FROM generate_series(1, 10)",
    )
    .execute(&app.db)
    .await
    .expect("reports");

    let refused = [
        (As::Nobody, StatusCode::UNAUTHORIZED),
        (foreign_admin, StatusCode::FORBIDDEN),
        (foreign_key, StatusCode::FORBIDDEN),
        (operator_editor, StatusCode::FORBIDDEN),
        (operator_viewer, StatusCode::FORBIDDEN),
        (plain_key, StatusCode::FORBIDDEN),
        (operator_owner_elsewhere, StatusCode::FORBIDDEN),
    ];
    for (who, status) in &refused {
        let calls = [
            (Method::GET, BLOCKLIST.to_owned(), None),
            (
                Method::POST,
                BLOCKLIST.to_owned(),
                Some(json!({"rule": "x.example"})),
            ),
            (Method::DELETE, format!("{BLOCKLIST}/{rule_id}"), None),
            (Method::GET, REPORTS.to_owned(), None),
            (
                Method::PATCH,
                format!("{REPORTS}/1"),
                Some(json!({"status": "resolved"})),
            ),
            (Method::DELETE, format!("{REPORTS}/1/takedown"), None),
        ];
        for (method, path, body) in calls {
            let response = app.call(who, method.clone(), &path, body).await;
            assert_eq!(response.status, *status, "{who:?} {method} {path}");
        }
    }
    let nothing_changed: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM abuse_blocklist),
                (SELECT count(*) FROM abuse_reports WHERE resolved_at IS NOT NULL)",
    )
    .fetch_one(&app.db)
    .await
    .expect("counts");
    assert_eq!(nothing_changed, (1, 0));

    for (n, who) in [operator_admin, admin_key].iter().enumerate() {
        let get = app.call(who, Method::GET, BLOCKLIST, None).await;
        assert_eq!(get.status, StatusCode::OK);
        let rule = format!("x{n}.example");
        let added = app
            .call(who, Method::POST, BLOCKLIST, Some(json!({"rule": rule})))
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
        let id = added.json()["id"].as_i64().expect("id");
        let removed = app
            .call(who, Method::DELETE, &format!("{BLOCKLIST}/{id}"), None)
            .await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT);
        let reports = app.call(who, Method::GET, REPORTS, None).await;
        assert_eq!(reports.status, StatusCode::OK);
        let report = reports.json()["reports"][0]["id"]
            .as_i64()
            .expect("a report");
        let resolved = app
            .call(
                who,
                Method::PATCH,
                &format!("{REPORTS}/{report}"),
                Some(json!({"status": "resolved"})),
            )
            .await;
        assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text());
        assert_eq!(resolved.json()["status"], "resolved");
    }
}

/// A `/report` POST with a JSON body from `ip`.
async fn report_json(app: &TestApp, ip: &str, body: Value) -> support::TestResponse {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/report")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(body.to_string()))
        .expect("request");
    app.send(request).await
}

/// Resolves report `id` as the tests' operator key, disabling its link; the report.
async fn resolve_disabling(app: &TestApp, id: i64) -> Value {
    let resolved = app
        .api(
            Method::PATCH,
            &format!("{REPORTS}/{id}"),
            Some(json!({"status": "resolved", "disable_link": true})),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text());
    resolved.json()
}

async fn app_behind_proxy() -> TestApp {
    let database_url = support::new_database().await;
    let mut config = support::config(&database_url);
    config.client_ip_header = Some("x-forwarded-for".to_owned());
    support::app_with(&config).await
}

#[tokio::test]
async fn reports_are_stored_for_admins_who_resolve_them_and_disable_the_link() {
    let app = app_behind_proxy().await;
    app.create(json!({"destination": "https://phish.example/", "code": "bad"}))
        .await;
    let form = app.visit(Method::GET, "/report").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.text()
            .contains("<form method=\"post\" action=\"/report\"")
    );

    // The form's post: the thank-you page; the link found by its short URL.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/report")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "198.51.100.1")
        .body(Body::from(
            "link=https%3A%2F%2Fkurz.test%2Fbad&category=phishing&details=asks+for+my+bank+password&contact=",
        ))
        .expect("request");
    let thanks = app.send(request).await;
    assert_eq!(thanks.status, StatusCode::OK, "{}", thanks.text());
    assert!(thanks.text().contains("Thank you"));
    // A form with a problem comes back with it, as HTML.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/report")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "198.51.100.1")
        .body(Body::from("link=bad&category=nonsense"))
        .expect("request");
    let again = app.send(request).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.header(&header::CONTENT_TYPE).starts_with("text/html"));
    assert!(again.text().contains("role=\"alert\"") && again.text().contains("value=\"bad\""));
    // A script's: 202; an unknown code is stored without a link.
    let response = report_json(
        &app,
        "198.51.100.2",
        json!({"link": "nosuchcode", "category": "spam", "details": "?"}),
    )
    .await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    for (body, field) in [
        (json!({"link": "", "category": "spam"}), "link"),
        (
            json!({"link": "bad", "category": "spam", "details": "x".repeat(2001)}),
            "details",
        ),
        (
            json!({"link": "bad", "category": "spam", "contact": "not an address"}),
            "contact",
        ),
    ] {
        let (_, at) = report_json(&app, "198.51.100.3", body)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(at.as_deref(), Some(field));
    }
    let big = report_json(
        &app,
        "198.51.100.3",
        json!({"link": "bad", "category": "spam", "details": "é".repeat(5000)}),
    )
    .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT reporter FROM abuse_reports")
        .fetch_all(&app.db)
        .await
        .expect("reporters");
    assert!(
        stored.iter().all(|key| key.len() == 32),
        "keyed hashes, not addresses"
    );

    let page = app.api(Method::GET, REPORTS, None).await.json();
    let reports = page["reports"].as_array().expect("reports");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["link"], "nosuchcode");
    assert_eq!(reports[0]["code"], Value::Null);
    let report = &reports[1];
    assert_eq!(report["code"], "bad");
    assert_eq!(report["category"], "phishing");
    assert_eq!(report["destination"], "https://phish.example/");
    assert_eq!(report["link_disabled"], false);
    assert_eq!(report["contact"], Value::Null);
    let one = app
        .api(Method::GET, &format!("{REPORTS}?limit=1"), None)
        .await
        .json();
    let next = one["next_cursor"].as_str().expect("a next page");
    let rest = app
        .api(
            Method::GET,
            &format!("{REPORTS}?limit=1&cursor={next}"),
            None,
        )
        .await
        .json();
    assert_eq!(rest["reports"][0]["code"], "bad");

    let id = report["id"].as_i64().expect("id");
    let resolved = resolve_disabling(&app, id).await;
    assert_eq!(resolved["link_disabled"], true);
    assert_eq!(
        app.visit(Method::GET, "/bad").await.status,
        StatusCode::NOT_FOUND
    );
    let twice = app
        .api(
            Method::PATCH,
            &format!("{REPORTS}/{id}"),
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let open = app.api(Method::GET, REPORTS, None).await.json();
    assert_eq!(open["reports"].as_array().map(Vec::len), Some(1));
    let done = app
        .api(Method::GET, &format!("{REPORTS}?status=resolved"), None)
        .await
        .json();
    assert_eq!(done["reports"][0]["resolved_by"], "tests");
}

/// A disabled link sends its visitors to its fallback: disabling a reported one removes it
/// too, as the blocklist's sweep does, and a link already disabled that still redirects to a
/// fallback loses that. Disabled alone, a phishing link with itself as its fallback kept
/// redirecting while its report read "disabled".
#[tokio::test]
async fn disabling_a_reported_link_removes_its_fallback_too() {
    let app = app_behind_proxy().await;
    for (code, disabled) in [("lure", false), ("asleep", true)] {
        app.create(json!({
            "destination": "https://phish.example/login",
            "fallback_url": "https://phish.example/login",
            "code": code,
            "disabled": disabled,
        }))
        .await;
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        assert_eq!(visit.status, StatusCode::FOUND, "{code}");
        let response = report_json(
            &app,
            "198.51.100.1",
            json!({"link": code, "category": "phishing"}),
        )
        .await;
        assert_eq!(response.status, StatusCode::ACCEPTED);
    }
    let page = app.api(Method::GET, REPORTS, None).await.json();
    for report in page["reports"].as_array().expect("reports") {
        let code = report["code"].as_str().expect("code");
        let id = report["id"].as_i64().expect("id");
        let resolved = resolve_disabling(&app, id).await;
        assert_eq!(resolved["link_disabled"], true, "{code}");
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        assert_eq!(visit.status, StatusCode::NOT_FOUND, "{code}");
        let (_, disabled, fallback, _) = link_state(&app, code).await;
        assert_eq!((disabled, fallback), (true, None), "{code}");
    }
}

/// A reported link its workspace deleted and made again under the same code is the one the
/// resolution takes down: before, it found the reported row deleted and took nothing down,
/// so deleting and re-creating a link voided every open report of it. A code another
/// workspace took since is that workspace's, and left alone.
#[tokio::test]
async fn a_reported_link_made_again_is_taken_down() {
    let app = app_behind_proxy().await;
    let acme = app.workspace("Acme").await;
    let beta = app.workspace("Beta").await;
    let acme = app.key(acme, &["links:read", "links:write"]).await;
    let beta = app.key(beta, &["links:read", "links:write"]).await;
    let create = |who, code: &'static str| {
        let app = &app;
        async move {
            let made = app
                .call(
                    who,
                    Method::POST,
                    "/api/v1/links",
                    Some(json!({"destination": "https://phish.example/", "code": code})),
                )
                .await;
            assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
        }
    };
    for code in ["lure", "bait"] {
        create(&acme, code).await;
        let response = report_json(
            &app,
            "198.51.100.1",
            json!({"link": code, "category": "phishing"}),
        )
        .await;
        assert_eq!(response.status, StatusCode::ACCEPTED);
        let deleted = app
            .call(
                &acme,
                Method::DELETE,
                &format!("/api/v1/links/{code}"),
                None,
            )
            .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    }
    create(&acme, "lure").await;
    create(&beta, "bait").await;

    let page = app.api(Method::GET, REPORTS, None).await.json();
    for report in page["reports"].as_array().expect("reports") {
        let code = report["code"].as_str().expect("code");
        let resolved = resolve_disabling(&app, report["id"].as_i64().expect("id")).await;
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        match code {
            "lure" => {
                assert_eq!(resolved["link_taken_down"], true, "{resolved}");
                assert_eq!(resolved["link_disabled"], true, "{resolved}");
                assert_eq!(visit.status, StatusCode::NOT_FOUND);
                let enable = app
                    .call(
                        &acme,
                        Method::PATCH,
                        "/api/v1/links/lure",
                        Some(json!({"disabled": false})),
                    )
                    .await;
                assert_eq!(enable.status, StatusCode::CONFLICT, "{}", enable.text());
            }
            _ => {
                assert_eq!(resolved["link_taken_down"], Value::Null, "{resolved}");
                assert_eq!(visit.status, StatusCode::FOUND, "Beta's own bait");
            }
        }
    }
}

/// A link the operator disabled when resolving a report stays down: its workspace, whatever
/// its role, cannot enable it, give it a fallback or delete it (which would free its code for
/// a new link to the same place) until the operator lifts the takedown. Before, one `PATCH`
/// of its owner made a phishing link redirect again.
#[tokio::test]
async fn a_taken_down_link_stays_down_until_the_operator_lifts_it() {
    let app = app_behind_proxy().await;
    let acme = app.workspace("Acme").await;
    let owner = app.user("acme-owner", &[(acme, "owner")]).await;
    let editor = app.user("acme-editor", &[(acme, "editor")]).await;
    let key = app.key(acme, &["links:read", "links:write"]).await;
    let operator_editor = app.user("op-editor", &[(1, "editor")]).await;
    let operator_viewer = app.user("op-viewer", &[(1, "viewer")]).await;
    let operator_admin = app.user("op-admin", &[(1, "admin")]).await;
    let operator_owner = app.user("op-owner", &[(1, "owner")]).await;
    // One enabled link, and one its workspace had disabled itself before the report.
    for (code, disabled) in [("lure", false), ("asleep", true)] {
        let made = app
            .call(
                &owner,
                Method::POST,
                "/api/v1/links",
                Some(json!({"destination": "https://phish.example/", "code": code, "disabled": disabled})),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
        let response = report_json(
            &app,
            "198.51.100.1",
            json!({"link": code, "category": "phishing"}),
        )
        .await;
        assert_eq!(response.status, StatusCode::ACCEPTED);
    }
    // Marking a link or lifting the mark changes nothing it shows: no new version (its ETag).
    let version = |code: &'static str| {
        let owner = &owner;
        let app = &app;
        async move {
            let link = app
                .call(owner, Method::GET, &format!("/api/v1/links/{code}"), None)
                .await;
            link.json()["version"].as_i64().expect("version")
        }
    };
    let asleep = version("asleep").await;
    let page = app.api(Method::GET, REPORTS, None).await.json();
    let mut ids = std::collections::HashMap::new();
    for report in page["reports"].as_array().expect("reports") {
        assert_eq!(report["link_taken_down"], false);
        let id = report["id"].as_i64().expect("id");
        let resolved = resolve_disabling(&app, id).await;
        assert_eq!(resolved["link_taken_down"], true);
        ids.insert(report["code"].as_str().expect("code").to_owned(), id);
    }
    assert_eq!(version("asleep").await, asleep, "held down, not changed");

    for code in ["lure", "asleep"] {
        for who in [&owner, &editor, &key] {
            for body in [
                json!({"disabled": false}),
                json!({"fallback_url": "https://phish.example/other"}),
            ] {
                let path = format!("/api/v1/links/{code}");
                let refused = app
                    .call(who, Method::PATCH, &path, Some(body.clone()))
                    .await;
                let (error, _) = refused.error(StatusCode::CONFLICT);
                assert_eq!(error, "link_taken_down", "{who:?} {code} {body}");
            }
            let deleted = app
                .call(who, Method::DELETE, &format!("/api/v1/links/{code}"), None)
                .await;
            assert_eq!(deleted.error(StatusCode::CONFLICT).0, "link_taken_down");
        }
        // Other edits go through; the link stays disabled.
        let retitled = app
            .call(
                &editor,
                Method::PATCH,
                &format!("/api/v1/links/{code}"),
                Some(json!({"title": "gone"})),
            )
            .await;
        assert_eq!(retitled.status, StatusCode::OK, "{}", retitled.text());
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        assert_eq!(visit.status, StatusCode::NOT_FOUND, "{code}");
    }

    // Only the operator's admins lift a takedown.
    let lure = ids["lure"];
    let lift = format!("{REPORTS}/{lure}/takedown");
    for (who, status) in [
        (&As::Nobody, StatusCode::UNAUTHORIZED),
        (&owner, StatusCode::FORBIDDEN),
        (&key, StatusCode::FORBIDDEN),
        (&operator_editor, StatusCode::FORBIDDEN),
        (&operator_viewer, StatusCode::FORBIDDEN),
    ] {
        let refused = app.call(who, Method::DELETE, &lift, None).await;
        assert_eq!(refused.status, status, "{who:?}");
    }
    let lure_version = version("lure").await;
    let lifted = app.call(&operator_admin, Method::DELETE, &lift, None).await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());
    assert_eq!(lifted.json()["link_taken_down"], false);
    assert_eq!(lifted.json()["link_disabled"], true);
    assert_eq!(version("lure").await, lure_version, "lifted, not changed");
    // The operator's owner is one of its admins: let through, and told nothing is held.
    let again = app.call(&operator_owner, Method::DELETE, &lift, None).await;
    assert_eq!(again.error(StatusCode::CONFLICT).0, "no_takedown");
    let unknown = app
        .call(
            &operator_admin,
            Method::DELETE,
            &format!("{REPORTS}/999999/takedown"),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'abuse.takedown_lifted'")
            .fetch_one(&app.db)
            .await
            .expect("audit");
    assert_eq!(audited, 1);

    // Lifted, the link is its workspace's again; the other stays down.
    let enabled = app
        .call(
            &editor,
            Method::PATCH,
            "/api/v1/links/lure",
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text());
    assert_eq!(
        app.visit(Method::GET, "/lure").await.status,
        StatusCode::FOUND
    );
    let still = app
        .call(&owner, Method::DELETE, "/api/v1/links/asleep", None)
        .await;
    assert_eq!(still.error(StatusCode::CONFLICT).0, "link_taken_down");
}

/// An edit that enables a link, waiting for the link's row while a report's resolution takes
/// it down, sees the takedown once that commits: refused, not applied over it.
#[tokio::test]
async fn an_edit_waiting_behind_a_takedown_sees_it() {
    let app = support::spawn_app().await;
    let link = app
        .create(json!({"destination": "https://phish.example/", "code": "race", "disabled": true}))
        .await;
    let id = link["id"].as_i64().expect("id");
    // What the resolution does: the link's row locked, then the takedown written.
    let mut tx = app.db.begin().await.expect("begin");
    sqlx::query("SELECT id FROM links WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("lock");
    sqlx::query("INSERT INTO link_takedowns (workspace_id, link_id, report_id) VALUES (1, $1, 7)")
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("takedown");
    let enable = app.api(
        Method::PATCH,
        "/api/v1/links/race",
        Some(json!({"disabled": false})),
    );
    let response = commit_once_waiting(&app, tx, enable).await;
    assert_eq!(response.error(StatusCode::CONFLICT).0, "link_taken_down");
    assert!(link_state(&app, "race").await.1, "still disabled");
}

#[tokio::test]
async fn a_burst_of_reports_from_one_address_is_limited() {
    let app = app_behind_proxy().await;
    let (mut accepted, mut limited) = (0, 0);
    for n in 0..20 {
        let response = report_json(
            &app,
            "2001:db8::1",
            json!({"link": format!("code{n}"), "category": "other"}),
        )
        .await;
        match response.status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                let wait: u64 = response
                    .header(&header::RETRY_AFTER)
                    .parse()
                    .expect("Retry-After");
                assert!((1..=3600).contains(&wait));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((accepted, limited), (5, 15));
    // Another address of the same /64 is the same reporter; another network is not.
    let same = report_json(
        &app,
        "2001:db8::2",
        json!({"link": "x", "category": "spam"}),
    )
    .await;
    assert_eq!(same.status, StatusCode::TOO_MANY_REQUESTS);
    let other = report_json(
        &app,
        "2001:db8:1::1",
        json!({"link": "x", "category": "spam"}),
    )
    .await;
    assert_eq!(other.status, StatusCode::ACCEPTED);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM abuse_reports")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(rows, 6);
}

/// One network (an IPv6 /48, an IPv4 /24) holds at most 50 open reports, however many
/// addresses it has: before, a /48's 65,536 /64s, each within its 5 an hour, filled the 10,000
/// open reports in minutes, and every genuine report then got 503. Another network still
/// reports, and an admin resolving some makes room.
#[tokio::test]
async fn one_network_cannot_fill_the_open_reports() {
    let app = app_behind_proxy().await;
    let report = |ip: String| {
        let app = &app;
        async move { report_json(app, &ip, json!({"link": "x", "category": "spam"})).await }
    };
    for subnet in 0..10 {
        for host in 1..=5 {
            let response = report(format!("2001:db8:1:{subnet}::{host}")).await;
            assert_eq!(response.status, StatusCode::ACCEPTED, "{subnet}/{host}");
        }
    }
    let refused = report("2001:db8:1:ff::1".to_owned()).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert_eq!(refused.header(&header::RETRY_AFTER), "3600");
    for other in ["2001:db8:2::1", "198.51.100.7"] {
        let response = report(other.to_owned()).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{other}");
    }
    sqlx::query(
        "UPDATE abuse_reports SET resolved_at = now(), resolved_by = 'tests' WHERE id <= 10",
    )
    .execute(&app.db)
    .await
    .expect("resolve");
    let room = report("2001:db8:1:ff::1".to_owned()).await;
    assert_eq!(room.status, StatusCode::ACCEPTED, "{}", room.text());
}

#[tokio::test]
async fn open_reports_are_capped() {
    let app = app_behind_proxy().await;
    sqlx::query(
        "INSERT INTO abuse_reports (reported, category, details, reporter)
         SELECT 'x', 'spam', '', '\\x00' FROM generate_series(1, 9998)",
    )
    .execute(&app.db)
    .await
    .expect("reports");
    let mut statuses = Vec::new();
    for n in 0..5 {
        let response = report_json(
            &app,
            &format!("203.0.113.{n}"),
            json!({"link": "x", "category": "spam"}),
        )
        .await;
        statuses.push(response.status);
    }
    assert_eq!(&statuses[..2], [StatusCode::ACCEPTED; 2]);
    assert_eq!(&statuses[2..], [StatusCode::SERVICE_UNAVAILABLE; 3]);
    let full = report_json(
        &app,
        "203.0.113.99",
        json!({"link": "x", "category": "spam"}),
    )
    .await;
    assert_eq!(
        full.error(StatusCode::SERVICE_UNAVAILABLE).0,
        "reports_full"
    );
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM abuse_reports WHERE resolved_at IS NULL")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(open, 10_000);
}

#[tokio::test]
async fn report_is_not_a_code() {
    let app = support::spawn_app().await;
    let response = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://ok.example/", "code": "Report"})),
        )
        .await;
    let (_, field) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("code"));
}

/// A `/report` POST as the edge forwards it: the visitor's address in
/// `signature::CLIENT_IP_HEADER`, signed (over the address `signed_for`) with `secret`.
fn forwarded_report(secret: &str, address: &str, signed_for: &str, body: &Value) -> Request<Body> {
    let body = body.to_string();
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed = signature::sign(
        secret.as_bytes(),
        "POST",
        &signature::forwarded_path("/report", signed_for),
        timestamp,
        body.as_bytes(),
    );
    Request::builder()
        .method(Method::POST)
        .uri("/report")
        .header(header::CONTENT_TYPE, "application/json")
        .header(signature::CLIENT_IP_HEADER, address)
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, signed)
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn only_the_edges_signature_makes_an_address_the_reporters() {
    // An origin with an edge, reachable directly: it trusts no forwarding header.
    let app = support::spawn_app_with_edge().await;
    let report = |n: usize| json!({"link": format!("code{n}"), "category": "spam"});
    // Forged addresses, in X-Forwarded-For and in the edge's header (unsigned, signed with
    // another secret, or signed for another address) are all one reporter: the connection.
    let forged = [
        report_json(&app, "203.0.113.1", report(0)).await,
        report_json(&app, "203.0.113.2", report(1)).await,
        app.send(forwarded_report(
            "not the secret",
            "203.0.113.3",
            "203.0.113.3",
            &report(2),
        ))
        .await,
        app.send(forwarded_report(
            support::EDGE_SECRET,
            "203.0.113.4",
            "198.51.100.4",
            &report(3),
        ))
        .await,
        app.send(
            Request::builder()
                .method(Method::POST)
                .uri("/report")
                .header(header::CONTENT_TYPE, "application/json")
                .header(signature::CLIENT_IP_HEADER, "203.0.113.5")
                .body(Body::from(report(4).to_string()))
                .expect("request"),
        )
        .await,
        report_json(&app, "203.0.113.6", report(5)).await,
    ];
    let statuses: Vec<StatusCode> = forged.iter().map(|response| response.status).collect();
    assert_eq!(&statuses[..5], [StatusCode::ACCEPTED; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);

    // The edge's signed address is the reporter's, with its own count.
    for n in 0..5 {
        let signed = app
            .send(forwarded_report(
                support::EDGE_SECRET,
                "198.51.100.7",
                "198.51.100.7",
                &report(10 + n),
            ))
            .await;
        assert_eq!(signed.status, StatusCode::ACCEPTED, "{}", signed.text());
    }
    let over = app
        .send(forwarded_report(
            support::EDGE_SECRET,
            "198.51.100.7",
            "198.51.100.7",
            &report(20),
        ))
        .await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    // A signed request sent again is not the edge's: it counts as the connection's.
    let once = forwarded_report(
        support::EDGE_SECRET,
        "198.51.100.8",
        "198.51.100.8",
        &report(30),
    );
    let again = Request::builder()
        .method(Method::POST)
        .uri("/report")
        .header(header::CONTENT_TYPE, "application/json")
        .header(signature::CLIENT_IP_HEADER, "198.51.100.8")
        .header(
            signature::TIMESTAMP_HEADER,
            &once.headers()[signature::TIMESTAMP_HEADER],
        )
        .header(
            signature::SIGNATURE_HEADER,
            &once.headers()[signature::SIGNATURE_HEADER],
        )
        .body(Body::from(report(30).to_string()))
        .expect("request");
    assert_eq!(app.send(once).await.status, StatusCode::ACCEPTED);
    assert_eq!(app.send(again).await.status, StatusCode::TOO_MANY_REQUESTS);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM abuse_reports")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(rows, 11);
}

#[tokio::test]
async fn an_address_over_its_limit_takes_no_permit_from_others() {
    use tower::ServiceExt;

    let app = app_behind_proxy().await;
    let request = |ip: &str, n: usize| {
        Request::builder()
            .method(Method::POST)
            .uri("/report")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", ip)
            .body(Body::from(
                json!({"link": format!("code{n}"), "category": "spam"}).to_string(),
            ))
            .expect("request")
    };
    for n in 0..5 {
        let response = app.send(request("192.0.2.1", n)).await;
        assert_eq!(response.status, StatusCode::ACCEPTED);
    }
    // Its reports wait on the database while this connection holds the address's lock, so a
    // request of it that got as far as the database keeps its permit.
    let reporter: Vec<u8> = sqlx::query_scalar("SELECT reporter FROM abuse_reports LIMIT 1")
        .fetch_one(&app.db)
        .await
        .expect("reporter");
    let lock = i64::from_be_bytes(reporter[..8].try_into().expect("8 bytes"));
    let mut holder = app.db.acquire().await.expect("connection");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock)
        .execute(&mut *holder)
        .await
        .expect("lock");
    const BURST: usize = 20;
    // The instance's permits (`reports::AT_ONCE`).
    const PERMITS: usize = 4;
    let (sent, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..BURST {
        let (router, sent, request) = (app.router.clone(), sent.clone(), request("192.0.2.1", n));
        tokio::spawn(async move {
            let response = router.oneshot(request).await.expect("infallible");
            sent.send(response.status()).ok();
        });
    }
    // Those that cannot have a permit answer without waiting.
    let mut statuses = Vec::new();
    for _ in 0..BURST - PERMITS {
        statuses.push(answers.recv().await.expect("an answer"));
    }
    let other = app.send(request("192.0.2.2", 0)).await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{}", other.text());
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock)
        .execute(&mut *holder)
        .await
        .expect("unlock");
    for _ in BURST - PERMITS..BURST {
        statuses.push(answers.recv().await.expect("an answer"));
    }
    assert_eq!(statuses, [StatusCode::TOO_MANY_REQUESTS; BURST]);
}

#[tokio::test]
async fn the_reports_of_a_status_are_read_by_its_partial_index() {
    let app = support::spawn_app().await;
    sqlx::query(
        "INSERT INTO abuse_reports (reported, category, details, reporter, resolved_at)
         SELECT 'x', 'spam', '', '\\x00', CASE WHEN n % 2 = 0 THEN now() END
         FROM generate_series(1, 2000) n",
    )
    .execute(&app.db)
    .await
    .expect("reports");
    sqlx::query("ANALYZE abuse_reports")
        .execute(&app.db)
        .await
        .expect("analyze");
    for (status, index) in [
        ("open", "abuse_reports_open"),
        ("resolved", "abuse_reports_resolved"),
    ] {
        let page = app
            .api(Method::GET, &format!("{REPORTS}?status={status}"), None)
            .await;
        assert_eq!(page.status, StatusCode::OK);
        // The list's query as the origin sent it (its connection's last), planned as a
        // prepared statement is after a few runs: for any parameters.
        let sent: String = sqlx::query_scalar(
            "SELECT query FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query LIKE 'SELECT r.id, r.reported%ORDER BY r.id DESC%'
             ORDER BY state_change DESC LIMIT 1",
        )
        .fetch_one(&app.db)
        .await
        .expect("the list's query");
        let parameters = (1..10).filter(|n| sent.contains(&format!("${n}"))).count();
        let mut conn = app.db.acquire().await.expect("connection");
        for setting in [
            "SET plan_cache_mode = force_generic_plan",
            "SET enable_seqscan = off",
            &format!("PREPARE listed AS {sent}"),
        ] {
            sqlx::raw_sql(setting)
                .execute(&mut *conn)
                .await
                .expect("setting");
        }
        let nulls = vec!["NULL"; parameters].join(", ");
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE listed({nulls})"))
            .fetch_all(&mut *conn)
            .await
            .expect("plan");
        sqlx::raw_sql("DEALLOCATE listed; RESET ALL")
            .execute(&mut *conn)
            .await
            .expect("reset");
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{status}: {plan}");
    }
}

#[tokio::test]
async fn resolved_reports_are_deleted_after_the_audit_retention_and_open_ones_kept() {
    let database_url = crate::support::new_database().await;
    let mut config = crate::support::config(&database_url);
    config.audit_retention_days = 30;
    let app = crate::support::app_with(&config).await;
    sqlx::query(
        "INSERT INTO abuse_reports (reported, category, details, reporter, created_at, resolved_at, resolved_by)
         VALUES ('old-resolved', 'spam', '', '\\x00', now() - interval '40 days', now() - interval '31 days', 'admin'),
                ('recent-resolved', 'spam', '', '\\x00', now() - interval '40 days', now() - interval '29 days', 'admin'),
                ('old-open', 'spam', '', '\\x00', now() - interval '400 days', NULL, NULL)",
    )
    .execute(&app.db)
    .await
    .expect("reports");
    // An old resolution that still holds its link down stays: its takedown is lifted through it.
    let link = app
        .create(json!({"destination": "https://phish.example/", "code": "held"}))
        .await;
    sqlx::query(
        "WITH report AS (
             INSERT INTO abuse_reports (reported, category, details, reporter, link_id, code,
                                        created_at, resolved_at, resolved_by)
             VALUES ('old-taken-down', 'phishing', '', '\\x00', $1, 'held',
                     now() - interval '40 days', now() - interval '31 days', 'admin')
             RETURNING id)
         INSERT INTO link_takedowns (workspace_id, link_id, report_id)
         SELECT 1, $1, id FROM report",
    )
    .bind(link["id"].as_i64().expect("id"))
    .execute(&app.db)
    .await
    .expect("a takedown");
    let tasks = app.state.spawn_background();
    // The first run at start; one that failed (every background task starts at once on the
    // tests' small pool) is tried again a minute later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let left = loop {
        let left: Vec<String> =
            sqlx::query_scalar("SELECT reported FROM abuse_reports ORDER BY id")
                .fetch_all(&app.db)
                .await
                .expect("rows");
        if left.len() == 3 || std::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    assert_eq!(left, ["recent-resolved", "old-open", "old-taken-down"]);
}
