//! The invitation routes without credentials: inside the API's cap on requests at once, and
//! no password hash for a sign-up that cannot succeed.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::support::{As, app_with, config, new_database, spawn_app};

#[tokio::test]
async fn lookup_and_sign_up_are_inside_the_cap() {
    let database_url = new_database().await;
    let mut config = config(&database_url);
    config.gateway.api_concurrency = 1;
    let app = app_with(&config).await;
    // Holds `api_keys` locked, so the keyed call below takes the one permit and waits.
    let mut lock = PgConnection::connect(&database_url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut lock)
        .await
        .expect("begin");
    sqlx::query("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .expect("lock");
    let router = app.router.clone();
    let key = app.api_key.clone();
    let held = tokio::spawn(async move {
        let request = Request::builder()
            .uri("/api/v1/links")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .expect("request");
        tower::ServiceExt::oneshot(router, request)
            .await
            .expect("infallible")
            .status()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (path, body) in [
        ("/api/v1/invitations/lookup", json!({"token": "x"})),
        (
            "/api/v1/invitations/sign-up",
            json!({"token": "x", "username": "newbie", "password": "long enough password"}),
        ),
    ] {
        let response = app.call(&As::Nobody, Method::POST, path, Some(body)).await;
        assert_eq!(
            response.error(StatusCode::SERVICE_UNAVAILABLE).0,
            "busy",
            "{path}"
        );
    }
    drop(lock);
    assert_eq!(held.await.expect("task"), StatusCode::OK);
    let response = app
        .call(
            &As::Nobody,
            Method::POST,
            "/api/v1/invitations/lookup",
            Some(json!({"token": "x"})),
        )
        .await;
    assert_eq!(
        response.error(StatusCode::NOT_FOUND).0,
        "invitation_invalid"
    );
}

/// Workspace 1 with `members` owners (the first named `taken`) and an invitation to it of
/// token `the token`, all made in SQL, so that no sign-in hashes a password in this app.
async fn invited_in_sql(app: &crate::support::TestApp, members: i64) {
    let owner: i64 = sqlx::query_scalar(
        "WITH made AS (INSERT INTO admin_users (username, password_hash)
                       SELECT CASE WHEN i = 1 THEN 'taken' ELSE 'member' || i END, 'x'
                       FROM generate_series(1, $1) i RETURNING id),
              joined AS (INSERT INTO workspace_members (workspace_id, user_id, role)
                         SELECT 1, id, 'owner' FROM made)
         SELECT min(id) FROM made",
    )
    .bind(members)
    .fetch_one(&app.db)
    .await
    .expect("members");
    sqlx::query(
        "INSERT INTO workspace_invitations (workspace_id, token_hash, role, created_by,
                                           expires_at)
         VALUES (1, sha256('the token'::bytea), 'viewer', $1, now() + interval '1 day')",
    )
    .bind(owner)
    .execute(&app.db)
    .await
    .expect("invitation");
}

#[tokio::test]
async fn a_taken_username_costs_no_password_hash() {
    let app = spawn_app().await;
    invited_in_sql(&app, 1).await;
    for _ in 0..3 {
        let response = app
            .call(
                &As::Nobody,
                Method::POST,
                "/api/v1/invitations/sign-up",
                Some(json!({"token": "the token", "username": "taken",
                            "password": "long enough password"})),
            )
            .await;
        assert_eq!(response.error(StatusCode::CONFLICT).0, "username_taken");
    }
    assert_eq!(app.state.peak_sign_in_hashes(), 0, "no password was hashed");
    // The invitation is still good for a free name.
    let response = app
        .call(
            &As::Nobody,
            Method::POST,
            "/api/v1/invitations/sign-up",
            Some(json!({"token": "the token", "username": "free",
                        "password": "long enough password"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(app.state.peak_sign_in_hashes(), 1);
}

/// A sign-up tells whether its name is taken (409 at once, or a hash and a welcome), so it
/// counts as a sign-in attempt of its address: an address checks at most its budget of names
/// (30 in 15 minutes), refused before a name is looked up. Before, one token checked names
/// without end. Another address has its own budget; joining gives the attempt back.
#[tokio::test]
async fn sign_ups_count_against_their_address_sign_in_limit() {
    let mut config = config(&new_database().await);
    config.client_ip_header = Some("x-forwarded-for".to_owned());
    let app = app_with(&config).await;
    invited_in_sql(&app, 31).await;
    let sign_up = |ip: &'static str, username: String| {
        let app = &app;
        async move {
            let request = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/invitations/sign-up")
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-forwarded-for", ip)
                .body(Body::from(
                    json!({"token": "the token", "username": username,
                           "password": "long enough password"})
                    .to_string(),
                ))
                .expect("request");
            app.send(request).await
        }
    };
    // 'taken', then 'member2' to 'member30': thirty taken names.
    for n in 1..=30 {
        let name = if n == 1 {
            "taken".to_owned()
        } else {
            format!("member{n}")
        };
        let probe = sign_up("198.51.100.7", name).await;
        assert_eq!(probe.error(StatusCode::CONFLICT).0, "username_taken", "{n}");
    }
    for name in ["member31", "free"] {
        let refused = sign_up("198.51.100.7", name.to_owned()).await;
        assert_eq!(
            refused.error(StatusCode::TOO_MANY_REQUESTS).0,
            "too_many_sign_ins",
            "{name}"
        );
    }
    assert_eq!(
        sign_up("203.0.113.9", "member31".to_owned())
            .await
            .error(StatusCode::CONFLICT)
            .0,
        "username_taken"
    );
    let joined = sign_up("203.0.113.9", "free".to_owned()).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text());
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(attempts), 0)::int8 FROM sign_in_attempts WHERE scope = 'ip'",
    )
    .fetch_one(&app.db)
    .await
    .expect("attempts");
    assert_eq!(
        counted, 31,
        "30 of the first address, 1 of the second; the join given back"
    );
}

/// Nor does an invitation to a full workspace: its sign-up is refused before the hash. Before,
/// each sign-up with a new name hashed a password, was refused at the join, and left the
/// invitation usable for the next one: hashes without end, outside every sign-in limit.
#[tokio::test]
async fn an_invitation_to_a_full_workspace_costs_no_password_hash() {
    let app = spawn_app().await;
    invited_in_sql(&app, 1000).await;
    for n in 0..3 {
        let response = app
            .call(
                &As::Nobody,
                Method::POST,
                "/api/v1/invitations/sign-up",
                Some(json!({"token": "the token", "username": format!("new{n}"),
                            "password": "long enough password"})),
            )
            .await;
        assert_eq!(response.error(StatusCode::CONFLICT).0, "too_many_members");
    }
    assert_eq!(app.state.peak_sign_in_hashes(), 0, "no password was hashed");
}

#[tokio::test]
async fn invitations_that_ended_a_month_ago_are_forgotten() {
    let app = spawn_app().await;
    let owner = app.user("keeper", &[(1, "owner")]).await;
    let invite = || {
        app.call(
            &owner,
            Method::POST,
            "/api/v1/invitations",
            Some(json!({"role": "viewer"})),
        )
    };
    assert_eq!(invite().await.status, StatusCode::CREATED);
    assert_eq!(invite().await.status, StatusCode::CREATED);
    // One ended 31 days ago, one 29 days ago.
    sqlx::query(
        "UPDATE workspace_invitations SET expires_at = now() - make_interval(days => d)
         FROM (VALUES (1, 31), (2, 29)) AS v(id, d) WHERE workspace_invitations.id = v.id",
    )
    .execute(&app.db)
    .await
    .expect("age them");
    assert_eq!(invite().await.status, StatusCode::CREATED);
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM workspace_invitations ORDER BY id")
        .fetch_all(&app.db)
        .await
        .expect("rows");
    assert_eq!(left, [2, 3]);
}
