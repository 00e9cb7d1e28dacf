//! A person's own sessions and password.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::support::{As, TestApp, USER_PASSWORD, spawn_app};

async fn alive(app: &TestApp, who: &As) -> bool {
    let response = app.call(who, Method::GET, "/api/v1/session", None).await;
    match response.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("GET /session: {other}: {}", response.text()),
    }
}

#[tokio::test]
async fn every_route_needs_a_person() {
    let app = spawn_app().await;
    let key = app
        .key(
            1,
            &["links:read", "links:write", "stats:read", "workspace:admin"],
        )
        .await;
    let body = json!({"current_password": "a", "new_password": "b"});
    for (method, path) in [
        (Method::GET, "/api/v1/me/sessions"),
        (Method::DELETE, "/api/v1/me/sessions"),
        (Method::DELETE, "/api/v1/me/sessions/1"),
        (Method::PUT, "/api/v1/me/password"),
    ] {
        let (code, _) = app
            .call(&As::Nobody, method.clone(), path, Some(body.clone()))
            .await
            .error(StatusCode::UNAUTHORIZED);
        assert_eq!(code, "unauthorized", "{method} {path}");
        let (code, _) = app
            .call(&key, method.clone(), path, Some(body.clone()))
            .await
            .error(StatusCode::FORBIDDEN);
        assert_eq!(code, "forbidden", "{method} {path}");
    }
}

#[tokio::test]
async fn listing_and_ending_sessions() {
    let app = spawn_app().await;
    let first = app.user("person", &[(1, "editor")]).await;
    let second = app.sign_in_as("person", USER_PASSWORD).await;
    let third = app.sign_in_as("person", USER_PASSWORD).await;
    let someone = app.user("someone", &[(1, "editor")]).await;
    let response = app
        .call(&second, Method::GET, "/api/v1/me/sessions", None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let list = response.json();
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 3, "only the person's own: {list:?}");
    let current: Vec<bool> = list
        .iter()
        .map(|s| s["current"].as_bool().expect("current"))
        .collect();
    assert_eq!(
        current,
        [false, true, false],
        "newest first, this one marked"
    );
    let ids: Vec<i64> = list.iter().map(|s| s["id"].as_i64().expect("id")).collect();
    assert!(ids[0] > ids[1] && ids[1] > ids[2], "{ids:?}");
    // Someone else's session, or none: 404, and it stays signed in.
    let theirs = app
        .call(&someone, Method::GET, "/api/v1/me/sessions", None)
        .await;
    let their_id = theirs.json()[0]["id"].as_i64().expect("id");
    for path in [
        format!("/api/v1/me/sessions/{their_id}"),
        "/api/v1/me/sessions/999999".to_owned(),
        "/api/v1/me/sessions/x".to_owned(),
    ] {
        app.call(&second, Method::DELETE, &path, None)
            .await
            .error(StatusCode::NOT_FOUND);
    }
    assert!(alive(&app, &someone).await);
    // Ending the first browser's session signs it out, and only it.
    let response = app
        .call(
            &second,
            Method::DELETE,
            &format!("/api/v1/me/sessions/{}", ids[2]),
            None,
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    assert!(!alive(&app, &first).await);
    assert!(alive(&app, &second).await && alive(&app, &third).await);
    // Everywhere: this one too, and the cookie is cleared.
    let response = app
        .call(&third, Method::DELETE, "/api/v1/me/sessions", None)
        .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    let cookie = response.header(&header::SET_COOKIE);
    assert!(
        cookie.starts_with("kurz_session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    assert!(!alive(&app, &second).await && !alive(&app, &third).await);
    assert!(alive(&app, &someone).await, "other people stay signed in");
}

#[tokio::test]
async fn changing_the_password() {
    let app = spawn_app().await;
    let here = app.user("person", &[(1, "viewer")]).await;
    let elsewhere = app.sign_in_as("person", USER_PASSWORD).await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let cases = [
        (
            change("wrong password!", "a new password"),
            "current_password",
        ),
        (change(USER_PASSWORD, "short"), "new_password"),
        (change(USER_PASSWORD, &"p".repeat(1025)), "new_password"),
    ];
    for (body, field) in cases {
        let (_, got) = app
            .call(&here, Method::PUT, "/api/v1/me/password", Some(body))
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(got.as_deref(), Some(field));
    }
    assert!(
        alive(&app, &elsewhere).await,
        "a refused change signs nobody out"
    );
    let response = app
        .call(
            &here,
            Method::PUT,
            "/api/v1/me/password",
            Some(change(USER_PASSWORD, "a new password")),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    // This session stays, under a new cookie: a copy of the old one is signed out too.
    let cookie = response.header(&header::SET_COOKIE);
    assert!(
        cookie.starts_with("kurz_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let max_age: i64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|age| age.parse().ok())
        .expect("a Max-Age");
    assert!(max_age > 0 && max_age <= 7 * 24 * 3600, "{cookie}");
    let As::Session { csrf, user_id, .. } = &here else {
        panic!("a session")
    };
    let renewed = As::Session {
        cookie: cookie.split(';').next().expect("cookie").to_owned(),
        csrf: csrf.clone(),
        user_id: *user_id,
    };
    assert!(!alive(&app, &here).await, "the old cookie is signed out");
    assert!(alive(&app, &renewed).await, "this session goes on");
    // With the CSRF token it had: a change goes through.
    let checked = app
        .call(&renewed, Method::DELETE, "/api/v1/me/sessions/0", None)
        .await;
    assert_eq!(checked.status, StatusCode::NOT_FOUND, "{}", checked.text());
    assert!(
        !alive(&app, &elsewhere).await,
        "every other session is signed out"
    );
    app.sign_in_as("person", "a new password").await;
    let old = app
        .call(
            &As::Nobody,
            Method::POST,
            "/api/v1/session",
            Some(json!({"username": "person", "password": USER_PASSWORD})),
        )
        .await;
    old.error(StatusCode::UNAUTHORIZED);
    // The password never reaches the audit log (a password is not a workspace change).
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE coalesce(after::text, '') LIKE '%new password%'",
    )
    .fetch_one(&app.db)
    .await
    .expect("audit");
    assert_eq!(logged, 0);
}

#[tokio::test]
async fn wrong_current_passwords_are_limited_like_sign_ins() {
    let app = spawn_app().await;
    let stolen = app.user("person", &[(1, "viewer")]).await;
    // The pair limit is 5 per window: the guesses after it are refused before any hash.
    let mut statuses = Vec::new();
    for i in 0..7 {
        let body = json!({"current_password": format!("guess number {i}"), "new_password": "a new password"});
        let response = app
            .call(&stolen, Method::PUT, "/api/v1/me/password", Some(body))
            .await;
        statuses.push(response.status.as_u16());
    }
    assert_eq!(statuses, [422, 422, 422, 422, 422, 429, 429]);
    // Even the right password waits for the window: a thief cannot tell which guess was right.
    let body = json!({"current_password": USER_PASSWORD, "new_password": "a new password"});
    let response = app
        .call(&stolen, Method::PUT, "/api/v1/me/password", Some(body))
        .await;
    response.error(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn an_unknown_role_is_an_error_not_a_lost_membership() {
    let app = spawn_app().await;
    let home = app.workspace("home").await;
    let person = app.user("person", &[(home, "viewer")]).await;
    // A role this release does not know (a newer one's, or a hand-made row): the column's
    // check would refuse it, so the test drops the check.
    sqlx::query("ALTER TABLE workspace_members DROP CONSTRAINT workspace_members_role_check")
        .execute(&app.db)
        .await
        .expect("drop check");
    sqlx::query("UPDATE workspace_members SET role = 'root' WHERE workspace_id = $1")
        .bind(home)
        .execute(&app.db)
        .await
        .expect("role");
    for path in ["/api/v1/session", "/api/v1/workspaces", "/api/v1/links"] {
        let response = app.call(&person, Method::GET, path, None).await;
        assert_eq!(
            response.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
}

/// A password change (or reset) of pat under way, as `PUT /api/v1/me/password` makes it: the
/// new hash and every session signed out, not yet committed.
async fn change_under_way(app: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut change = app.db.begin().await.expect("begin");
    sqlx::query("UPDATE admin_users SET password_hash = 'changed' WHERE username = 'pat'")
        .execute(&mut *change)
        .await
        .expect("update");
    sqlx::query(
        "DELETE FROM admin_sessions WHERE user_id = (SELECT id FROM admin_users WHERE username = 'pat')",
    )
    .execute(&mut *change)
    .await
    .expect("sign out");
    change
}

/// Sends `request` and returns once one of its statements (`LIKE like`) waits on a lock: a
/// request that ends before that (it must not get past the change) fails the test.
async fn sent_until_it_waits(
    app: &TestApp,
    request: axum::http::Request<axum::body::Body>,
    like: &str,
) -> tokio::task::JoinHandle<StatusCode> {
    let router = app.router.clone();
    let sent = tokio::spawn(async move {
        use tower::ServiceExt;
        router.oneshot(request).await.expect("infallible").status()
    });
    while crate::support::lock_waiters(&app.db, like).await == 0 {
        assert!(
            !sent.is_finished(),
            "it ended without waiting for the change: {like}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sent
}

#[tokio::test]
async fn a_sign_in_overlapping_a_password_change_leaves_no_session() {
    let app = spawn_app().await;
    let workspace = app.workspace("acme").await;
    app.user("pat", &[(workspace, "editor")]).await;
    let change = change_under_way(&app).await;
    // Meanwhile a sign-in with the old password, which the change has not hidden yet.
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(
            json!({"username": "pat", "password": USER_PASSWORD}).to_string(),
        ))
        .expect("request");
    let sign_in = sent_until_it_waits(&app, request, "INSERT INTO admin_sessions%").await;
    change.commit().await.expect("commit");
    let status = sign_in.await.expect("sign-in");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
         WHERE u.username = 'pat'",
    )
    .fetch_one(&app.db)
    .await
    .expect("sessions");
    assert_eq!(sessions, 0);
}

/// A password change that read the stored hash before another change (or a reset) committed
/// does not write over it: a thief looping changes with a stolen password cannot undo the
/// owner's change, which also signed the thief out.
#[tokio::test]
async fn a_password_change_overlapping_another_does_not_undo_it() {
    let app = spawn_app().await;
    let workspace = app.workspace("acme").await;
    let thief = app.user("pat", &[(workspace, "editor")]).await;
    let As::Session { cookie, csrf, .. } = &thief else {
        panic!("a session");
    };
    // The owner's change (or a reset), under way.
    let owner = change_under_way(&app).await;
    // Meanwhile the thief's change, with the password the owner's has not replaced yet.
    let request = axum::http::Request::builder()
        .method(Method::PUT)
        .uri("/api/v1/me/password")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, cookie)
        .header("x-csrf-token", csrf)
        .body(axum::body::Body::from(
            json!({"current_password": USER_PASSWORD, "new_password": "the thief's own"})
                .to_string(),
        ))
        .expect("request");
    let change = sent_until_it_waits(&app, request, "UPDATE admin_users%").await;
    owner.commit().await.expect("commit");
    assert_eq!(
        change.await.expect("change"),
        StatusCode::UNAUTHORIZED,
        "its session was signed out"
    );
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM admin_users WHERE username = 'pat'")
            .fetch_one(&app.db)
            .await
            .expect("hash");
    assert_eq!(hash, "changed", "the owner's change stands");
}

/// A person keeps at most 100 sessions: a sign-in past them ends the oldest, so a script
/// signing in in a loop (a success costs nothing against the sign-in limits) cannot grow the
/// table without bound.
#[tokio::test]
async fn a_person_keeps_at_most_a_hundred_sessions() {
    let app = spawn_app().await;
    let workspace = app.workspace("acme").await;
    let first = app.user("pat", &[(workspace, "viewer")]).await;
    sqlx::query(
        "INSERT INTO admin_sessions (token_hash, user_id, csrf_token, expires_at)
         SELECT sha256(g::text::bytea), u.id, 'csrf', now() + interval '7 days'
         FROM admin_users u, generate_series(1, 150) g WHERE u.username = 'pat'",
    )
    .execute(&app.db)
    .await
    .expect("sessions");
    let latest = app.sign_in_as("pat", USER_PASSWORD).await;
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
         WHERE u.username = 'pat'",
    )
    .fetch_one(&app.db)
    .await
    .expect("count");
    assert_eq!(sessions, 100);
    assert!(alive(&app, &latest).await, "the new session works");
    assert!(!alive(&app, &first).await, "the oldest ended");
}
