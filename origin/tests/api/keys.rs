//! API keys of a workspace: who may list, create and revoke them, what a created key may do,
//! revocation and expiry taking effect at once, and the limit of live keys.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{As, TestApp, spawn_app};

/// Creates a key as `who` and returns the answer's JSON.
async fn create_key(app: &TestApp, who: &As, scopes: &[&str]) -> Value {
    let response = app
        .call(
            who,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "script", "scopes": scopes})),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

fn secret(created: &Value) -> As {
    As::Key(created["key"].as_str().expect("the secret").to_owned())
}

async fn listed_ids(app: &TestApp, who: &As) -> Vec<i64> {
    let response = app.call(who, Method::GET, "/api/v1/keys", None).await;
    assert_eq!(response.status, StatusCode::OK);
    response
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|key| key["id"].as_i64().expect("id"))
        .collect()
}

/// The id of the test app's own key (`app.api_key`, named "tests").
async fn tests_key_id(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'tests'")
        .fetch_one(&app.db)
        .await
        .expect("the tests key")
}

#[tokio::test]
async fn every_route_needs_credentials() {
    let app = spawn_app().await;
    let id = tests_key_id(&app).await;
    for (method, path, body) in [
        (Method::GET, "/api/v1/keys".to_owned(), None),
        (
            Method::POST,
            "/api/v1/keys".to_owned(),
            Some(json!({"name": "x", "scopes": ["links:read"]})),
        ),
        (Method::DELETE, format!("/api/v1/keys/{id}"), None),
    ] {
        let response = app.call(&As::Nobody, method.clone(), &path, body).await;
        assert_eq!(
            response.error(StatusCode::UNAUTHORIZED).0,
            "unauthorized",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn admins_and_admin_keys_only() {
    let app = spawn_app().await;
    let victim = tests_key_id(&app).await;
    let allowed = [
        app.user("olga", &[(1, "owner")]).await,
        app.user("ann", &[(1, "admin")]).await,
        // It may give only scopes it holds (see below).
        app.key(1, &["workspace:admin", "links:read"]).await,
    ];
    let refused = [
        app.user("ed", &[(1, "editor")]).await,
        app.user("vic", &[(1, "viewer")]).await,
        app.key(1, &["links:read", "links:write", "stats:read"])
            .await,
    ];
    for who in &refused {
        for (method, path, body) in [
            (Method::GET, "/api/v1/keys".to_owned(), None),
            (
                Method::POST,
                "/api/v1/keys".to_owned(),
                Some(json!({"name": "x", "scopes": ["links:read"]})),
            ),
            (Method::DELETE, format!("/api/v1/keys/{victim}"), None),
        ] {
            let response = app.call(who, method.clone(), &path, body).await;
            assert_eq!(
                response.error(StatusCode::FORBIDDEN).0,
                "forbidden",
                "{who:?} {method} {path}"
            );
        }
    }
    for who in &allowed {
        let created = create_key(&app, who, &["links:read"]).await;
        let id = created["id"].as_i64().expect("id");
        assert!(listed_ids(&app, who).await.contains(&id), "{who:?}");
        let revoked = app
            .call(who, Method::DELETE, &format!("/api/v1/keys/{id}"), None)
            .await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{who:?}");
    }
    let still = app
        .call(
            &As::Key(app.api_key.clone()),
            Method::GET,
            "/api/v1/keys",
            None,
        )
        .await;
    assert_eq!(still.status, StatusCode::OK, "refusals revoked nothing");
}

#[tokio::test]
async fn a_created_key_is_shown_once_and_does_exactly_its_scopes() {
    let app = spawn_app().await;
    let ann = app.user("ann", &[(1, "admin")]).await;
    let As::Session { user_id, .. } = ann else {
        panic!("a session")
    };
    let response = app
        .call(
            &ann,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "  reader  ", "scopes": ["links:read", "links:read"]})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    let created = response.json();
    let secret_text = created["key"].as_str().expect("secret").to_owned();
    assert!(secret_text.starts_with("kurz_"), "{created}");
    assert!(secret_text.starts_with(created["prefix"].as_str().expect("prefix")));
    assert_eq!(created["name"], "reader");
    assert_eq!(created["scopes"], json!(["links:read"]));
    assert_eq!(created["created_by"], "ann");
    assert_eq!(created["last_used_at"], Value::Null);
    let id = created["id"].as_i64().expect("id");

    // Listed newest first, never with the secret; only its hash is stored.
    let list = app
        .call(&ann, Method::GET, "/api/v1/keys", None)
        .await
        .json();
    let list = list.as_array().expect("list");
    assert_eq!(list[0]["id"], id, "newest first: {list:?}");
    assert!(list.iter().all(|key| key.get("key").is_none()), "{list:?}");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE id = $1 AND created_by = $2
           AND key_hash = sha256($3::bytea) AND position($3::bytea IN key_hash) = 0",
    )
    .bind(id)
    .bind(user_id)
    .bind(secret_text.as_bytes())
    .fetch_one(&app.db)
    .await
    .expect("query");
    assert_eq!(stored, 1);

    // Exactly its scopes, in its workspace only.
    let reader = secret(&created);
    assert_eq!(
        app.call(&reader, Method::GET, "/api/v1/links", None)
            .await
            .status,
        StatusCode::OK
    );
    let write = app
        .call(
            &reader,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com"})),
        )
        .await;
    assert_eq!(write.error(StatusCode::FORBIDDEN).0, "forbidden");
    let other = app.workspace("Other").await;
    let other_writer = app.key(other, &["links:write", "links:read"]).await;
    let theirs = app
        .call(
            &other_writer,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/theirs"})),
        )
        .await
        .json();
    let path = format!("/api/v1/links/{}", theirs["code"].as_str().expect("code"));
    let hidden = app.call(&reader, Method::GET, &path, None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let listed = app
        .call(&reader, Method::GET, "/api/v1/links", None)
        .await
        .json();
    assert_eq!(listed["links"], json!([]), "{listed}");

    // Its use is noted.
    let list = app
        .call(&ann, Method::GET, "/api/v1/keys", None)
        .await
        .json();
    let mine = list
        .as_array()
        .expect("list")
        .iter()
        .find(|key| key["id"] == id)
        .expect("listed")
        .clone();
    assert!(mine["last_used_at"].is_string(), "{mine}");

    // The audit log has the key without its secret.
    let (actor_kind, actor_id, actor_name, after): (String, i64, String, Value) = sqlx::query_as(
        "SELECT actor_kind, actor_id, actor_name, after FROM audit_log
         WHERE action = 'key.created' AND target_kind = 'key' AND target_id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .expect("audit entry");
    assert_eq!(
        (actor_kind.as_str(), actor_id, actor_name.as_str()),
        ("user", user_id, "ann")
    );
    assert_eq!(after["name"], "reader");
    assert_eq!(after["scopes"], json!(["links:read"]));
    assert!(after.get("key").is_none(), "{after}");
    assert!(!after.to_string().contains(&secret_text), "{after}");
}

#[tokio::test]
async fn a_key_grants_only_scopes_it_holds() {
    let app = spawn_app().await;
    let admin_reader = app.key(1, &["links:read", "workspace:admin"]).await;
    let admin_reader_id: i64 =
        sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'test key'")
            .fetch_one(&app.db)
            .await
            .expect("the key's id");
    let escalate = app
        .call(
            &admin_reader,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "x", "scopes": ["links:read", "links:write"]})),
        )
        .await;
    assert_eq!(escalate.error(StatusCode::FORBIDDEN).0, "forbidden");
    let created = create_key(&app, &admin_reader, &["links:read", "workspace:admin"]).await;
    assert_eq!(created["created_by"], Value::Null, "a key is not a person");
    let key_id: i64 = sqlx::query_scalar(
        "SELECT actor_id FROM audit_log WHERE action = 'key.created' AND target_id = $1
           AND actor_kind = 'key'",
    )
    .bind(created["id"].as_i64().expect("id"))
    .fetch_one(&app.db)
    .await
    .expect("audit entry naming the key");
    let made_by = secret(&created);
    let by_key: Option<i64> = sqlx::query_scalar("SELECT created_by FROM api_keys WHERE id = $1")
        .bind(created["id"].as_i64().expect("id"))
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert_eq!(by_key, None);
    assert_eq!(key_id, admin_reader_id);
    // A person admin may give any scope, workspace:admin included.
    let ann = app.user("ann", &[(1, "admin")]).await;
    create_key(
        &app,
        &ann,
        &["links:read", "links:write", "stats:read", "workspace:admin"],
    )
    .await;
    // And a key may revoke itself: refused at once after.
    let own_id = created["id"].as_i64().expect("id");
    let revoked = app
        .call(
            &made_by,
            Method::DELETE,
            &format!("/api/v1/keys/{own_id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = app.call(&made_by, Method::GET, "/api/v1/keys", None).await;
    assert_eq!(after.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
}

#[tokio::test]
async fn refuses_bad_bodies_naming_the_field() {
    let app = spawn_app().await;
    let key = As::Key(app.api_key.clone());
    for (body, field) in [
        (json!({"name": "   ", "scopes": ["links:read"]}), "name"),
        (
            json!({"name": "x".repeat(101), "scopes": ["links:read"]}),
            "name",
        ),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": ["links:*"]}), "scopes[0]"),
        (
            json!({"name": "x", "scopes": ["links:read"], "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let response = app
            .call(&key, Method::POST, "/api/v1/keys", Some(body.clone()))
            .await;
        let (code, at) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(field)),
            "{body}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(count, 1, "nothing was created");
    let longest = app
        .call(
            &key,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "é".repeat(100), "scopes": ["stats:read"],
                        "expires_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(longest.status, StatusCode::CREATED);
    assert_eq!(longest.json()["expires_at"], "2999-01-01T00:00:00Z");
}

#[tokio::test]
async fn another_workspaces_keys_are_not_found() {
    let app = spawn_app().await;
    let other = app.workspace("Other").await;
    let their_admin = app.key(other, &["workspace:admin"]).await;
    let their_person = app.user("zed", &[(other, "owner")]).await;
    let ours = tests_key_id(&app).await;
    for who in [&their_admin, &their_person] {
        let response = app
            .call(who, Method::DELETE, &format!("/api/v1/keys/{ours}"), None)
            .await;
        assert_eq!(
            response.error(StatusCode::NOT_FOUND).0,
            "not_found",
            "{who:?}"
        );
        assert!(!listed_ids(&app, who).await.contains(&ours), "{who:?}");
    }
    for path in ["/api/v1/keys/999999", "/api/v1/keys/abc"] {
        let response = app.call(&their_admin, Method::DELETE, path, None).await;
        assert_eq!(
            response.error(StatusCode::NOT_FOUND).0,
            "not_found",
            "{path}"
        );
    }
    // Ours still works, and lists only workspace 1's keys.
    let ids = listed_ids(&app, &As::Key(app.api_key.clone())).await;
    assert_eq!(ids, [ours]);
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused_at_once() {
    let app = spawn_app().await;
    let admin = As::Key(app.api_key.clone());
    let revoked = create_key(&app, &admin, &["links:read"]).await;
    let expired = create_key(&app, &admin, &["links:read"]).await;
    let (revoked_id, expired_id) = (
        revoked["id"].as_i64().expect("id"),
        expired["id"].as_i64().expect("id"),
    );
    for created in [&revoked, &expired] {
        let ok = app
            .call(&secret(created), Method::GET, "/api/v1/links", None)
            .await;
        assert_eq!(ok.status, StatusCode::OK);
    }

    let response = app
        .call(
            &admin,
            Method::DELETE,
            &format!("/api/v1/keys/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let refused = app
        .call(&secret(&revoked), Method::GET, "/api/v1/links", None)
        .await;
    assert_eq!(refused.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
    let again = app
        .call(
            &admin,
            Method::DELETE,
            &format!("/api/v1/keys/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(again.error(StatusCode::NOT_FOUND).0, "not_found");
    let entry: (String, i64, Value, Option<Value>) = sqlx::query_as(
        "SELECT actor_kind, target_id, before, after FROM audit_log WHERE action = 'key.revoked'",
    )
    .fetch_one(&app.db)
    .await
    .expect("one key.revoked entry");
    assert_eq!((entry.0.as_str(), entry.1), ("key", revoked_id));
    assert_eq!(entry.2["id"], revoked_id);
    assert_eq!(entry.3, None);

    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(expired_id)
        .execute(&app.db)
        .await
        .expect("expire");
    let refused = app
        .call(&secret(&expired), Method::GET, "/api/v1/links", None)
        .await;
    assert_eq!(refused.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
    // Listed (shown as expired), the revoked one not.
    let ids = listed_ids(&app, &admin).await;
    assert!(
        ids.contains(&expired_id) && !ids.contains(&revoked_id),
        "{ids:?}"
    );
}

#[tokio::test]
async fn at_most_100_live_keys() {
    let app = spawn_app().await;
    let admin = As::Key(app.api_key.clone());
    // With the tests' own key, 99 live and one revoked.
    sqlx::query(
        "INSERT INTO api_keys (name, key_hash, prefix, workspace_id, scopes, revoked_at)
         SELECT 'bulk', sha256(('bulk' || i)::bytea), 'kurz_bulk', 1, '{links:read}',
                CASE WHEN i = 0 THEN now() END
         FROM generate_series(0, 98) i",
    )
    .execute(&app.db)
    .await
    .expect("bulk keys");
    // Keys of another workspace count for it, not for this one.
    let other = app.workspace("Other").await;
    app.key(other, &["links:read"]).await;
    let hundredth = create_key(&app, &admin, &["links:read"]).await;
    let response = app
        .call(
            &admin,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "one more", "scopes": ["links:read"]})),
        )
        .await;
    assert_eq!(response.error(StatusCode::CONFLICT).0, "too_many_keys");
    assert_eq!(listed_ids(&app, &admin).await.len(), 100);
    let id = hundredth["id"].as_i64().expect("id");
    let revoked = app
        .call(&admin, Method::DELETE, &format!("/api/v1/keys/{id}"), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    create_key(&app, &admin, &["links:read"]).await;
}

/// Expired keys leave room for new ones, and keys that ended (revoked or expired) a month ago
/// or more are deleted when a key is made: a script that makes and revokes a key a job left a
/// row for ever, and each key made counted over all of them under the workspace's lock.
#[tokio::test]
async fn ended_keys_leave_room_and_go_after_a_month() {
    let app = spawn_app().await;
    let admin = As::Key(app.api_key.clone());
    sqlx::query(
        "INSERT INTO api_keys (name, key_hash, prefix, workspace_id, scopes, revoked_at,
                               expires_at)
         SELECT 'ended', sha256(('ended' || i)::bytea), 'kurz_ended', 1, '{links:read}',
                CASE WHEN i % 2 = 0 THEN now() - make_interval(days => 28 + i % 4) END,
                CASE WHEN i % 2 = 1 THEN now() - make_interval(days => 28 + i % 4) END
         FROM generate_series(0, 199) i",
    )
    .execute(&app.db)
    .await
    .expect("ended keys");
    create_key(&app, &admin, &["links:read"]).await;
    // Those that ended 28 and 29 days ago stay (revoked: i % 4 = 0; expired: 1), the rest go.
    let ended: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE revoked_at IS NOT NULL),
                count(*) FILTER (WHERE expires_at IS NOT NULL)
         FROM api_keys WHERE name = 'ended'",
    )
    .fetch_all(&app.db)
    .await
    .expect("ended");
    assert_eq!(ended, [(50, 50)]);
}

/// Live keys are listed before expired ones: a thousand newer expired keys (a CI job's hourly
/// keys, listed for 30 days) hid the deployment's own key from the list and the dashboard.
#[tokio::test]
async fn live_keys_are_listed_before_a_thousand_expired_ones() {
    let app = spawn_app().await;
    let admin = As::Key(app.api_key.clone());
    sqlx::query(
        "INSERT INTO api_keys (name, key_hash, prefix, workspace_id, scopes, expires_at)
         SELECT 'ci run', sha256(('ci' || i)::bytea), 'kurz_ci', 1, '{links:read}',
                now() - interval '1 day'
         FROM generate_series(1, 1000) i",
    )
    .execute(&app.db)
    .await
    .expect("expired keys");
    let listed = app.call(&admin, Method::GET, "/api/v1/keys", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
    let keys = listed.json();
    let keys = keys.as_array().expect("keys");
    assert_eq!(keys.len(), 1000);
    assert_ne!(keys[0]["name"], "ci run", "{}", keys[0]);
    assert_eq!(
        keys.iter().filter(|key| key["name"] == "ci run").count(),
        999
    );
}
