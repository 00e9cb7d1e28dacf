//! The audit log: entries of link and key changes with who made them, its read API (who may
//! read it, filters, pages, one workspace only), the retention, and rows never changed.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{As, TestApp, spawn_app};

async fn page(app: &TestApp, who: &As, query: &str) -> Value {
    let response = app
        .call(who, Method::GET, &format!("/api/v1/audit{query}"), None)
        .await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{query}: {}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

fn actions(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["action"].as_str().expect("action").to_owned())
        .collect()
}

async fn create_link(app: &TestApp, who: &As, destination: &str) -> Value {
    let response = app
        .call(
            who,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": destination})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    response.json()
}

#[tokio::test]
async fn only_admins_and_admin_keys_read_it() {
    let app = spawn_app().await;
    let nobody = app
        .call(&As::Nobody, Method::GET, "/api/v1/audit", None)
        .await;
    assert_eq!(nobody.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
    for who in [
        app.user("ed", &[(1, "editor")]).await,
        app.user("vic", &[(1, "viewer")]).await,
        app.key(1, &["links:read", "links:write", "stats:read"])
            .await,
    ] {
        let response = app.call(&who, Method::GET, "/api/v1/audit", None).await;
        assert_eq!(
            response.error(StatusCode::FORBIDDEN).0,
            "forbidden",
            "{who:?}"
        );
    }
    for who in [
        app.user("olga", &[(1, "owner")]).await,
        app.user("ann", &[(1, "admin")]).await,
        app.key(1, &["workspace:admin"]).await,
    ] {
        page(&app, &who, "").await;
    }
}

#[tokio::test]
async fn link_and_key_changes_are_logged_with_their_actor() {
    let app = spawn_app().await;
    let ann = app.user("ann", &[(1, "admin")]).await;
    let As::Session { user_id, .. } = ann else {
        panic!("a session")
    };
    let link = create_link(&app, &ann, "https://example.com/a").await;
    let code = link["code"].as_str().expect("code");
    let path = format!("/api/v1/links/{code}");
    let updated = app
        .call(
            &ann,
            Method::PATCH,
            &path,
            Some(json!({"destination": "https://example.com/b"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    let deleted = app.call(&ann, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let key = app
        .call(
            &ann,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "ci", "scopes": ["links:read"]})),
        )
        .await
        .json();
    let key_id = key["id"].as_i64().expect("id");
    let revoked = app
        .call(
            &ann,
            Method::DELETE,
            &format!("/api/v1/keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);

    let log = page(&app, &ann, "").await;
    assert_eq!(
        actions(&log),
        [
            "key.revoked",
            "key.created",
            "link.deleted",
            "link.updated",
            "link.created",
            // The test app's own key, made as `origin create-api-key` makes one.
            "key.created"
        ],
        "newest first"
    );
    let entries = log["entries"].as_array().expect("entries");
    let (entries, operator) = entries.split_at(entries.len() - 1);
    assert_eq!(
        operator[0]["actor"],
        json!({"kind": "operator", "id": 0, "name": "operator (command line)"})
    );
    for entry in entries {
        assert_eq!(
            entry["actor"],
            json!({"kind": "user", "id": user_id, "name": "ann"}),
            "{entry}"
        );
        assert!(entry["at"].is_string(), "{entry}");
    }
    let link_id = link["id"].as_i64().expect("id");
    let [revoke, create_key, delete, update, create] = entries else {
        panic!("five entries")
    };
    assert_eq!(
        (&create["target_kind"], &create["target_id"]),
        (&json!("link"), &json!(link_id))
    );
    assert_eq!(create["before"], Value::Null);
    assert_eq!(create["after"]["destination"], "https://example.com/a");
    assert_eq!(create["after"]["code"], code);
    assert_eq!(update["before"]["destination"], "https://example.com/a");
    assert_eq!(update["after"]["destination"], "https://example.com/b");
    assert_eq!(delete["before"]["destination"], "https://example.com/b");
    assert_eq!(delete["after"], Value::Null);
    assert_eq!(
        (&create_key["target_kind"], &create_key["target_id"]),
        (&json!("key"), &json!(key_id))
    );
    assert_eq!(create_key["after"]["name"], "ci");
    assert!(create_key["after"].get("key").is_none());
    assert_eq!(revoke["target_id"], key_id);
    assert_eq!(revoke["before"]["name"], "ci");
    assert_eq!(log["next_cursor"], Value::Null);

    // A key's changes name the key.
    let writer = app.key(1, &["links:write"]).await;
    let writer_id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'test key'")
        .fetch_one(&app.db)
        .await
        .expect("key id");
    create_link(&app, &writer, "https://example.com/c").await;
    let newest = page(&app, &ann, "?limit=1").await;
    assert_eq!(
        newest["entries"][0]["actor"],
        json!({"kind": "key", "id": writer_id, "name": "test key"})
    );
}

#[tokio::test]
async fn filters_and_pages() {
    let app = spawn_app().await;
    let ann = app.user("ann", &[(1, "admin")]).await;
    let As::Session { user_id, .. } = ann else {
        panic!("a session")
    };
    let by_key = As::Key(app.api_key.clone());
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'tests'")
        .fetch_one(&app.db)
        .await
        .expect("key id");
    let first = create_link(&app, &ann, "https://example.com/1").await;
    let second = create_link(&app, &by_key, "https://example.com/2").await;
    for (who, link) in [(&ann, &first), (&by_key, &first), (&by_key, &second)] {
        let path = format!("/api/v1/links/{}", link["code"].as_str().expect("code"));
        let response = app
            .call(who, Method::PATCH, &path, Some(json!({"status": 301})))
            .await;
        assert_eq!(response.status, StatusCode::OK);
    }
    // 2 created, 3 updated: by ann 2, by the key 3; first has 3 entries.
    let by_actor = |page: &Value| -> Vec<(String, i64)> {
        page["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["actor"]["kind"].as_str().expect("kind").to_owned(),
                    e["actor"]["id"].as_i64().expect("id"),
                )
            })
            .collect()
    };
    let ann_page = page(&app, &ann, &format!("?actor=user:{user_id}")).await;
    assert_eq!(by_actor(&ann_page), vec![("user".to_owned(), user_id); 2]);
    let key_page = page(&app, &ann, &format!("?actor=key:{key_id}")).await;
    assert_eq!(by_actor(&key_page), vec![("key".to_owned(), key_id); 3]);
    let nobody = page(&app, &ann, &format!("?actor=key:{user_id}9")).await;
    assert_eq!(nobody["entries"], json!([]));
    let updates = page(&app, &ann, "?action=link.updated").await;
    assert_eq!(actions(&updates), ["link.updated"; 3]);
    let first_id = first["id"].as_i64().expect("id");
    let about_first = page(&app, &ann, &format!("?link={first_id}")).await;
    assert_eq!(
        actions(&about_first),
        ["link.updated", "link.updated", "link.created"]
    );
    assert!(
        about_first["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["target_id"] == first_id && e["target_kind"] == "link")
    );
    let combined = page(
        &app,
        &ann,
        &format!("?link={first_id}&action=link.updated&actor=key:{key_id}"),
    )
    .await;
    assert_eq!(actions(&combined), ["link.updated"]);

    // Pages of two, newest first, until no cursor; the same entries as one page.
    let all = page(&app, &ann, "").await;
    let all_ids: Vec<i64> = all["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    // Five changes, after the operator's creation of the test app's key.
    assert_eq!(all_ids.len(), 6);
    assert!(all_ids.windows(2).all(|w| w[0] > w[1]), "{all_ids:?}");
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = page(&app, &ann, &query).await;
        paged.extend(
            page["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|e| e["id"].as_i64().expect("id")),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, all_ids);
}

#[tokio::test]
async fn refuses_values_out_of_bounds_naming_the_field() {
    let app = spawn_app().await;
    let admin = As::Key(app.api_key.clone());
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=abc", "cursor"),
        ("actor=admin", "actor"),
        ("actor=user:abc", "actor"),
        ("link=x", "link"),
        ("sort=id", "sort"),
    ] {
        let response = app
            .call(&admin, Method::GET, &format!("/api/v1/audit?{query}"), None)
            .await;
        let (code, at) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(field)),
            "{query}"
        );
    }
    let long = format!("/api/v1/audit?action={}", "a".repeat(65));
    let response = app.call(&admin, Method::GET, &long, None).await;
    assert_eq!(
        response
            .error(StatusCode::UNPROCESSABLE_ENTITY)
            .1
            .as_deref(),
        Some("action")
    );
    page(&app, &admin, "?limit=200&action=link.created").await;
}

#[tokio::test]
async fn another_workspaces_entries_never_appear() {
    let app = spawn_app().await;
    let other = app.workspace("Other").await;
    let theirs = app.key(other, &["links:write", "workspace:admin"]).await;
    let their_link = create_link(&app, &theirs, "https://example.com/theirs").await;
    let our_link = create_link(
        &app,
        &As::Key(app.api_key.clone()),
        "https://example.com/ours",
    )
    .await;
    let their_id = their_link["id"].as_i64().expect("id");

    let ours = As::Key(app.api_key.clone());
    let our_page = page(&app, &ours, "").await;
    // Our link, and the operator's creation of the test app's key.
    assert_eq!(our_page["entries"].as_array().expect("entries").len(), 2);
    assert_eq!(our_page["entries"][0]["target_id"], our_link["id"]);
    let by_their_link = page(&app, &ours, &format!("?link={their_id}")).await;
    assert_eq!(by_their_link["entries"], json!([]));

    let their_page = page(&app, &theirs, "").await;
    assert_eq!(actions(&their_page), ["link.created", "key.created"]);
    assert_eq!(their_page["entries"][0]["target_id"], their_id);
    // A cursor past our entries still shows none of theirs.
    let past = page(&app, &theirs, "?cursor=9223372036854775807").await;
    assert_eq!(actions(&past), ["link.created", "key.created"]);
}

#[tokio::test]
async fn retention_deletes_only_old_entries() {
    let app = spawn_app().await;
    let other = app.workspace("Other").await;
    // 10,001 old entries (more than one batch of deletes), in two workspaces, and two recent.
    sqlx::query(
        "INSERT INTO audit_log (workspace_id, at, actor_kind, actor_id, actor_name, action,
                                target_kind, target_id)
         SELECT CASE WHEN i % 2 = 0 THEN 1 ELSE $1 END, now() - interval '500 days',
                'user', 1, 'old', 'link.created', 'link', i
         FROM generate_series(1, 10001) i
         UNION ALL
         SELECT 1, now() - interval '399 days', 'user', 1, 'recent', 'link.created', 'link', 1
         UNION ALL
         SELECT $1, now() - interval '1 day', 'user', 1, 'recent', 'link.created', 'link', 2",
    )
    .bind(other)
    .execute(&app.db)
    .await
    .expect("entries");
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    let deleted = app
        .state
        .delete_audit_entries_before(cutoff)
        .await
        .expect("retention");
    assert_eq!(deleted, 10_001);
    let left: Vec<String> = sqlx::query_scalar("SELECT actor_name FROM audit_log ORDER BY id")
        .fetch_all(&app.db)
        .await
        .expect("rows");
    assert_eq!(left, ["operator (command line)", "recent", "recent"]);
    let again = app
        .state
        .delete_audit_entries_before(cutoff)
        .await
        .expect("retention");
    assert_eq!(again, 0);
}

#[tokio::test]
async fn entries_are_never_changed_in_place() {
    let app = spawn_app().await;
    create_link(&app, &As::Key(app.api_key.clone()), "https://example.com").await;
    let changed = sqlx::query("UPDATE audit_log SET actor_name = 'someone else'")
        .execute(&app.db)
        .await;
    let err = changed.expect_err("the trigger refuses updates");
    assert!(err.to_string().contains("never changed in place"), "{err}");
    let name: String =
        sqlx::query_scalar("SELECT actor_name FROM audit_log WHERE action = 'link.created'")
            .fetch_one(&app.db)
            .await
            .expect("entry");
    assert_eq!(name, "tests");
}

#[tokio::test]
async fn a_serving_origin_applies_the_configured_retention() {
    let database_url = crate::support::new_database().await;
    let mut config = crate::support::config(&database_url);
    config.audit_retention_days = 30;
    let app = crate::support::app_with(&config).await;
    sqlx::query(
        "INSERT INTO audit_log (workspace_id, at, actor_kind, actor_id, actor_name, action,
                                target_kind, target_id)
         VALUES (1, now() - interval '31 days', 'user', 1, 'old', 'link.created', 'link', 1),
                (1, now() - interval '29 days', 'user', 1, 'recent', 'link.created', 'link', 2)",
    )
    .execute(&app.db)
    .await
    .expect("entries");
    let tasks = app.state.spawn_background();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let left = loop {
        let left: Vec<String> =
            sqlx::query_scalar("SELECT actor_name FROM audit_log WHERE actor_kind = 'user'")
                .fetch_all(&app.db)
                .await
                .expect("rows");
        if left.len() == 1 || std::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    assert_eq!(left, ["recent"]);
}
