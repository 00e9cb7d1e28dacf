//! Workspaces: listing, making, renaming one, and switching a session between them.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{As, TestApp, TestResponse, spawn_app};

fn names(list: &Value) -> Vec<(String, Value)> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().expect("name").to_owned(),
                w["role"].clone(),
            )
        })
        .collect()
}

async fn audit_rows(
    app: &TestApp,
    action: &str,
) -> Vec<(i64, String, Option<Value>, Option<Value>)> {
    sqlx::query_as(
        "SELECT workspace_id, actor_name, before, after FROM audit_log WHERE action = $1 ORDER BY id",
    )
    .bind(action)
    .fetch_all(&app.db)
    .await
    .expect("audit")
}

#[tokio::test]
async fn every_route_needs_credentials() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/v1/workspaces"),
        (Method::POST, "/api/v1/workspaces"),
        (Method::GET, "/api/v1/workspace"),
        (Method::PATCH, "/api/v1/workspace"),
        (Method::PUT, "/api/v1/session/workspace"),
    ] {
        let body = Some(json!({"name": "x", "workspace_id": 1}));
        let (code, _) = app
            .call(&As::Nobody, method.clone(), path, body)
            .await
            .error(StatusCode::UNAUTHORIZED);
        assert_eq!(code, "unauthorized", "{method} {path}");
    }
}

#[tokio::test]
async fn listing_workspaces() {
    let app = spawn_app().await;
    // Lowercase: the order is the same under any collation.
    let zeta = app.workspace("zeta").await;
    let alpha = app.workspace("alpha").await;
    let beta = app.workspace("Beta").await;
    let person = app
        .user("person", &[(zeta, "viewer"), (alpha, "owner")])
        .await;
    let response = app
        .call(&person, Method::GET, "/api/v1/workspaces", None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let expected = [
        ("alpha".to_owned(), json!("owner")),
        ("zeta".to_owned(), json!("viewer")),
    ];
    assert_eq!(names(&response.json()), expected, "by name, with the role");
    // A key sees its own workspace, without a role.
    let key = app.key(beta, &["links:read"]).await;
    let response = app
        .call(&key, Method::GET, "/api/v1/workspaces", None)
        .await;
    assert_eq!(names(&response.json()), [("Beta".to_owned(), Value::Null)]);
    assert!(response.json()[0].get("role").is_none());
    // The current workspace: a session's (the first joined), a key's.
    let current = app
        .call(&person, Method::GET, "/api/v1/workspace", None)
        .await;
    assert_eq!(current.json()["id"], zeta);
    assert_eq!(current.json()["role"], "viewer");
    let current = app.call(&key, Method::GET, "/api/v1/workspace", None).await;
    assert_eq!(current.json()["id"], beta);
    // A person in no workspace has none.
    let lost = app.user("lost", &[]).await;
    let response = app
        .call(&lost, Method::GET, "/api/v1/workspaces", None)
        .await;
    assert_eq!(response.json(), json!([]));
    let (code, _) = app
        .call(&lost, Method::GET, "/api/v1/workspace", None)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(code, "no_workspace");
}

#[tokio::test]
async fn making_a_workspace() {
    let app = spawn_app().await;
    let home = app.workspace("home").await;
    // Only an owner of a workspace makes another: a viewer, an admin or a person in no
    // workspace cannot publish redirects from a workspace of their own.
    let admin = app.user("admin", &[(home, "admin")]).await;
    let viewer = app.user("viewer", &[(home, "viewer")]).await;
    let lost = app.user("lost", &[]).await;
    for who in [&admin, &viewer, &lost] {
        let (code, _) = app
            .call(
                who,
                Method::POST,
                "/api/v1/workspaces",
                Some(json!({"name": "mine"})),
            )
            .await
            .error(StatusCode::FORBIDDEN);
        assert_eq!(code, "forbidden");
    }
    let person = app.user("person", &[(home, "owner")]).await;
    let response = app
        .call(
            &person,
            Method::POST,
            "/api/v1/workspaces",
            Some(json!({"name": "  Side project "})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let made = response.json();
    assert_eq!(made["name"], "Side project");
    assert_eq!(made["role"], "owner");
    let id = made["id"].as_i64().expect("id");
    let list = app
        .call(&person, Method::GET, "/api/v1/workspaces", None)
        .await;
    assert_eq!(list.json().as_array().expect("list").len(), 2);
    // Made, not switched to: the session still works in its workspace.
    let current = app
        .call(&person, Method::GET, "/api/v1/workspace", None)
        .await;
    assert_eq!(current.json()["id"], home);
    let rows = audit_rows(&app, "workspace.created").await;
    assert_eq!(
        rows,
        [(
            id,
            "person".to_owned(),
            None,
            Some(json!({"name": "Side project"}))
        )]
    );
    // Names: trimmed, 1 to 100 characters.
    let long = "é".repeat(101);
    let longest = "é".repeat(100);
    for name in ["", "   ", long.as_str()] {
        let (_, field) = app
            .call(
                &person,
                Method::POST,
                "/api/v1/workspaces",
                Some(json!({"name": name})),
            )
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field.as_deref(), Some("name"), "{name:?}");
    }
    let response = app
        .call(
            &person,
            Method::POST,
            "/api/v1/workspaces",
            Some(json!({"name": longest})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    // Keys cannot make workspaces.
    let key = app
        .key(
            home,
            &["links:read", "links:write", "stats:read", "workspace:admin"],
        )
        .await;
    app.call(
        &key,
        Method::POST,
        "/api/v1/workspaces",
        Some(json!({"name": "by key"})),
    )
    .await
    .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn memberships_are_bounded() {
    let app = spawn_app().await;
    let person = app.user("person", &[]).await;
    let As::Session { user_id, .. } = person else {
        panic!("a person")
    };
    sqlx::query(
        "WITH made AS (INSERT INTO workspaces (name) SELECT 'w' || i FROM generate_series(1, 100) i RETURNING id)
         INSERT INTO workspace_members (workspace_id, user_id, role) SELECT id, $1, 'owner' FROM made",
    )
    .bind(user_id)
    .execute(&app.db)
    .await
    .expect("memberships");
    let (code, _) = app
        .call(
            &person,
            Method::POST,
            "/api/v1/workspaces",
            Some(json!({"name": "one more"})),
        )
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "too_many_workspaces");
    // One fewer (its workspace deleted: a member row alone would leave it without an owner).
    sqlx::query(
        "DELETE FROM workspaces
         WHERE id = (SELECT max(workspace_id) FROM workspace_members WHERE user_id = $1)",
    )
    .bind(user_id)
    .execute(&app.db)
    .await
    .expect("one fewer");
    let response = app
        .call(
            &person,
            Method::POST,
            "/api/v1/workspaces",
            Some(json!({"name": "one more"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
}

#[tokio::test]
async fn renaming_the_workspace() {
    let app = spawn_app().await;
    let ws = app.workspace("Old").await;
    let owner = app.user("owner", &[(ws, "owner")]).await;
    let admin = app.user("admin", &[(ws, "admin")]).await;
    let editor = app.user("editor", &[(ws, "editor")]).await;
    let viewer = app.user("viewer", &[(ws, "viewer")]).await;
    let key = app
        .key(
            ws,
            &["links:read", "links:write", "stats:read", "workspace:admin"],
        )
        .await;
    for who in [&admin, &editor, &viewer, &key] {
        app.call(
            who,
            Method::PATCH,
            "/api/v1/workspace",
            Some(json!({"name": "Nope"})),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    }
    let (_, field) = app
        .call(
            &owner,
            Method::PATCH,
            "/api/v1/workspace",
            Some(json!({"name": " "})),
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field.as_deref(), Some("name"));
    let response = app
        .call(
            &owner,
            Method::PATCH,
            "/api/v1/workspace",
            Some(json!({"name": " New "})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["name"], "New");
    assert_eq!(response.json()["role"], "owner");
    let seen = app
        .call(&viewer, Method::GET, "/api/v1/workspace", None)
        .await;
    assert_eq!(seen.json()["name"], "New");
    let rows = audit_rows(&app, "workspace.renamed").await;
    assert_eq!(
        rows,
        [(
            ws,
            "owner".to_owned(),
            Some(json!({"name": "Old"})),
            Some(json!({"name": "New"}))
        )]
    );
    // Another workspace is untouched.
    let name: String = sqlx::query_scalar("SELECT name FROM workspaces WHERE id = 1")
        .fetch_one(&app.db)
        .await
        .expect("name");
    assert_eq!(name, "Default");
}

#[tokio::test]
async fn switching_scopes_the_links() {
    let app = spawn_app().await;
    let first = app.workspace("first").await;
    let second = app.workspace("second").await;
    let stranger = app.workspace("stranger").await;
    let person = app
        .user("person", &[(first, "editor"), (second, "viewer")])
        .await;
    let other_key = app.key(second, &["links:read", "links:write"]).await;
    let created = app
        .call(
            &person,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://first.example/"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let created = app
        .call(
            &other_key,
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://second.example/"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let destinations = |response: TestResponse| -> Vec<String> {
        response.json()["links"]
            .as_array()
            .expect("links")
            .iter()
            .map(|l| l["destination"].as_str().expect("destination").to_owned())
            .collect()
    };
    let list = app.call(&person, Method::GET, "/api/v1/links", None).await;
    assert_eq!(destinations(list), ["https://first.example/"]);
    let response = app
        .call(
            &person,
            Method::PUT,
            "/api/v1/session/workspace",
            Some(json!({"workspace_id": second})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let session = response.json();
    assert_eq!(session["workspace"]["id"], second);
    assert_eq!(session["workspace"]["role"], "viewer");
    assert_eq!(session["username"], "person");
    assert_eq!(session["workspaces"].as_array().expect("list").len(), 2);
    let list = app.call(&person, Method::GET, "/api/v1/links", None).await;
    assert_eq!(destinations(list), ["https://second.example/"]);
    // A viewer there now: no writing.
    app.call(
        &person,
        Method::POST,
        "/api/v1/links",
        Some(json!({"destination": "https://x.example/"})),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    // A workspace the person is not in, or that does not exist: 404, and nothing changes.
    for id in [stranger, 999_999] {
        app.call(
            &person,
            Method::PUT,
            "/api/v1/session/workspace",
            Some(json!({"workspace_id": id})),
        )
        .await
        .error(StatusCode::NOT_FOUND);
    }
    let current = app
        .call(&person, Method::GET, "/api/v1/workspace", None)
        .await;
    assert_eq!(current.json()["id"], second);
    // Only this session switched: another browser of the same person still works in `first`.
    let other_browser = app
        .sign_in_as("person", crate::support::USER_PASSWORD)
        .await;
    let current = app
        .call(&other_browser, Method::GET, "/api/v1/workspace", None)
        .await;
    assert_eq!(current.json()["id"], first);
    // Keys cannot switch.
    app.call(
        &other_key,
        Method::PUT,
        "/api/v1/session/workspace",
        Some(json!({"workspace_id": first})),
    )
    .await
    .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn owners_made_by_the_operator_are_in_the_audit_log() {
    let app = spawn_app().await;
    let code_key = crate::support::CODE_KEY.parse().expect("code key");
    origin::accounts::create_first_admin(&app.db, Some("a long enough password"))
        .await
        .expect("first admin")
        .expect("made");
    origin::accounts::set_admin(&app.db, &code_key, "ops", "another long password", false)
        .await
        .expect("ops");
    // A new password is no change of members.
    origin::accounts::set_admin(&app.db, &code_key, "ops", "a third long password", true)
        .await
        .expect("reset");
    let rows: Vec<(String, i64, i64, Value)> = sqlx::query_as(
        "SELECT actor_kind, actor_id, target_id, after FROM audit_log
         WHERE workspace_id = 1 AND action = 'member.joined' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .expect("log");
    let users: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, username FROM admin_users ORDER BY id")
            .fetch_all(&app.db)
            .await
            .expect("users");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for ((kind, actor, target, after), (user_id, username)) in rows.iter().zip(&users) {
        assert_eq!((kind.as_str(), *actor), ("operator", 0));
        assert_eq!(target, user_id);
        assert_eq!(
            after,
            &json!({"user_id": user_id, "username": username, "role": "owner"})
        );
    }
}

/// `GET /api/v1/workspace` as `who` (a session), sending `Kurz-Workspace: shown`.
async fn with_workspace_header(app: &TestApp, who: &As, shown: &str) -> TestResponse {
    let As::Session { cookie, .. } = who else {
        panic!("a person")
    };
    let request = axum::http::Request::builder()
        .uri("/api/v1/workspace")
        .header(axum::http::header::COOKIE, cookie)
        .header("kurz-workspace", shown)
        .body(axum::body::Body::empty())
        .expect("request");
    app.send(request).await
}

#[tokio::test]
async fn the_workspace_header_must_name_the_callers_workspace() {
    let app = spawn_app().await;
    let home = app.workspace("home").await;
    let person = app.user("person", &[(home, "viewer")]).await;
    let lost = app.user("lost", &[]).await;
    let response = with_workspace_header(&app, &person, &home.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let (code, _) = with_workspace_header(&app, &person, "1")
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(code, "workspace_changed");
    // A value that is no id is refused, also for a person in no workspace (whose "none" it
    // once matched).
    for who in [&person, &lost] {
        for shown in ["", "abc", "1.5", "none"] {
            let (code, _) = with_workspace_header(&app, who, shown)
                .await
                .error(StatusCode::BAD_REQUEST);
            assert_eq!(code, "bad_request", "{shown:?}");
        }
    }
}
