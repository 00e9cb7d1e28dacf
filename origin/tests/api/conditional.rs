//! Safe retries and lost updates: `Idempotency-Key` on creating a link, `ETag` and `If-Match`
//! on changing or deleting one.

use axum::body::Body;
use axum::http::{HeaderName, Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{As, TestApp, TestResponse, spawn_app};

/// A call as `who` with extra headers and an optional JSON body.
async fn call_with(
    app: &TestApp,
    who: &As,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> TestResponse {
    let mut request = Request::builder().method(method).uri(path);
    match who {
        As::Nobody => {}
        As::Key(key) => {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        As::Session { cookie, csrf, .. } => {
            request = request
                .header(header::COOKIE, cookie)
                .header("x-csrf-token", csrf);
        }
    }
    for (name, value) in headers {
        request = request.header(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            *value,
        );
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    app.send(request.body(body).expect("request")).await
}

fn own_key(app: &TestApp) -> As {
    As::Key(app.api_key.clone())
}

async fn links_in_workspace(app: &TestApp, workspace: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM links WHERE workspace_id = $1")
        .bind(workspace)
        .fetch_one(&app.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_create_sent_again_with_its_idempotency_key_gets_the_first_answer() {
    let app = spawn_app().await;
    let key = own_key(&app);
    let body = json!({"destination": "https://example.com/once"});
    let headers = [("idempotency-key", "order-7f3a")];
    let first = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text());
    assert_eq!(again.json(), first.json(), "the first answer, again");
    assert_eq!(
        again.header(&header::LOCATION),
        first.header(&header::LOCATION)
    );
    assert_eq!(again.header(&header::ETAG), first.header(&header::ETAG));
    assert_eq!(
        again.header(&HeaderName::from_static("idempotent-replayed")),
        "true"
    );
    assert_eq!(links_in_workspace(&app, 1).await, 1, "one link, not two");

    // Another key is another request; no key at all is never a replay.
    let other = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &[("idempotency-key", "order-8000")],
        Some(&body),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.json()["code"], first.json()["code"]);
    app.create(body.clone()).await;
    assert_eq!(links_in_workspace(&app, 1).await, 3);
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_refused() {
    let app = spawn_app().await;
    let key = own_key(&app);
    let headers = [("idempotency-key", "k1")];
    let first = json!({"destination": "https://example.com/a"});
    let created = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&first),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let second = json!({"destination": "https://example.com/b"});
    let refused = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&second),
    )
    .await;
    let (code, _) = refused.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code, "idempotency_key_reused");
    assert_eq!(links_in_workspace(&app, 1).await, 1);
}

#[tokio::test]
async fn a_failed_create_leaves_its_key_free_for_the_retry() {
    let app = spawn_app().await;
    let key = own_key(&app);
    let headers = [("idempotency-key", "retry-me")];
    app.create(json!({"destination": "https://example.com/x", "code": "taken"}))
        .await;
    let body = json!({"destination": "https://example.com/y", "code": "taken"});
    let refused = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    // The slug is freed; the retry with the same key and body is a new attempt, not a replay
    // of the 409.
    let deleted = app.api(Method::DELETE, "/api/v1/links/taken", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let retried = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text());
    assert!(retried.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn parallel_creates_with_one_key_make_one_link_even_for_a_custom_code() {
    let app = crate::support::spawn_app_for_a_burst().await;
    let key = own_key(&app);
    let body = json!({"destination": "https://example.com/p", "code": "parallel"});
    let answers = futures_util::future::join_all((0..12).map(|_| {
        call_with(
            &app,
            &key,
            Method::POST,
            "/api/v1/links",
            &[("idempotency-key", "same")],
            Some(&body),
        )
    }))
    .await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
        assert_eq!(answer.json()["code"], "parallel");
    }
    let replays = answers
        .iter()
        .filter(|a| a.headers.contains_key("idempotent-replayed"))
        .count();
    assert_eq!(replays, 11, "one created, eleven replayed");
    assert_eq!(links_in_workspace(&app, 1).await, 1);
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_caller_and_workspace() {
    let app = spawn_app().await;
    let other_workspace = app.workspace("other").await;
    let mine = own_key(&app);
    let second_key = app.key(1, &["links:write"]).await;
    let foreign = app.key(other_workspace, &["links:write"]).await;
    let body = json!({"destination": "https://example.com/shared-key"});
    let headers = [("idempotency-key", "k")];
    for who in [&mine, &second_key, &foreign] {
        let answer = call_with(
            &app,
            who,
            Method::POST,
            "/api/v1/links",
            &headers,
            Some(&body),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert!(
            answer.headers.get("idempotent-replayed").is_none(),
            "another caller's key is not a replay"
        );
    }
    assert_eq!(links_in_workspace(&app, 1).await, 2);
    assert_eq!(links_in_workspace(&app, other_workspace).await, 1);
    // Without credentials the key changes nothing: 401 as always.
    let nobody = call_with(
        &app,
        &As::Nobody,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    // A reader's key is refused before any key is claimed.
    let reader = app.key(1, &["links:read"]).await;
    let refused = call_with(
        &app,
        &reader,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn malformed_idempotency_keys_are_refused() {
    let app = spawn_app().await;
    let key = own_key(&app);
    let body = json!({"destination": "https://example.com/z"});
    let long = "k".repeat(256);
    for bad in ["", long.as_str()] {
        let answer = call_with(
            &app,
            &key,
            Method::POST,
            "/api/v1/links",
            &[("idempotency-key", bad)],
            Some(&body),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert_eq!(links_in_workspace(&app, 1).await, 0);
}

#[tokio::test]
async fn a_change_with_an_old_version_in_if_match_is_refused() {
    let app = spawn_app().await;
    let key = own_key(&app);
    let created = app
        .create(json!({"destination": "https://example.com/v1", "code": "edited"}))
        .await;
    let read = app.api(Method::GET, "/api/v1/links/edited", None).await;
    let etag = read.header(&header::ETAG).to_owned();
    assert_eq!(etag, format!("\"{}\"", created["version"]));

    // Alice edits with the version she read: it applies, and the version rises.
    let alice = json!({"destination": "https://example.com/alice"});
    let edited = call_with(
        &app,
        &key,
        Method::PATCH,
        "/api/v1/links/edited",
        &[("if-match", &etag)],
        Some(&alice),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text());
    let new_etag = edited.header(&header::ETAG).to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(new_etag, format!("\"{}\"", edited.json()["version"]));

    // Bob edits with the same old version: 412, and Alice's edit stays.
    let bob = json!({"destination": "https://example.com/bob"});
    let refused = call_with(
        &app,
        &key,
        Method::PATCH,
        "/api/v1/links/edited",
        &[("if-match", &etag)],
        Some(&bob),
    )
    .await;
    let (code, _) = refused.error(StatusCode::PRECONDITION_FAILED);
    assert_eq!(code, "precondition_failed");
    let now = app
        .api(Method::GET, "/api/v1/links/edited", None)
        .await
        .json();
    assert_eq!(now["destination"], "https://example.com/alice");
    assert_eq!(
        now["version"],
        edited.json()["version"],
        "a refused edit takes no version"
    );

    // A delete with the old version is refused too; with the current one it deletes.
    let refused = call_with(
        &app,
        &key,
        Method::DELETE,
        "/api/v1/links/edited",
        &[("if-match", &etag)],
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    let deleted = call_with(
        &app,
        &key,
        Method::DELETE,
        "/api/v1/links/edited",
        &[("if-match", &new_etag)],
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // Gone: a conditional change of a link that is not there is a 404, not a 412.
    let gone = call_with(
        &app,
        &key,
        Method::PATCH,
        "/api/v1/links/edited",
        &[("if-match", "*")],
        Some(&bob),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn if_match_star_weak_tags_and_garbage() {
    let app = spawn_app().await;
    let key = own_key(&app);
    app.create(json!({"destination": "https://example.com/s", "code": "star"}))
        .await;
    let version = app
        .api(Method::GET, "/api/v1/links/star", None)
        .await
        .json()["version"]
        .clone();
    let change = json!({"note": "n"});
    let send = |value: String| {
        let key = key.clone();
        let change = change.clone();
        let app = &app;
        async move {
            call_with(
                app,
                &key,
                Method::PATCH,
                "/api/v1/links/star",
                &[("if-match", &value)],
                Some(&change),
            )
            .await
            .status
        }
    };
    // Weak tags never match (If-Match compares strongly).
    assert_eq!(
        send(format!("W/\"{version}\"")).await,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        send("\"not-a-version\"".to_owned()).await,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(send("garbage".to_owned()).await, StatusCode::BAD_REQUEST);
    assert_eq!(send(format!("\"1\", \"{version}\"")).await, StatusCode::OK);
    assert_eq!(send("*".to_owned()).await, StatusCode::OK);
}

#[tokio::test]
async fn conditional_changes_keep_their_authorisation() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/auth", "code": "guarded"}))
        .await;
    let etag = app
        .api(Method::GET, "/api/v1/links/guarded", None)
        .await
        .header(&header::ETAG)
        .to_owned();
    let other_workspace = app.workspace("other").await;
    let foreign = app.key(other_workspace, &["links:write"]).await;
    let reader = app.key(1, &["links:read"]).await;
    let viewer = app.user("viewer", &[(1, "viewer")]).await;
    let editor = app.user("editor", &[(1, "editor")]).await;
    let change = json!({"note": "who"});
    let path = "/api/v1/links/guarded";
    let status = |who: As| {
        let change = change.clone();
        let etag = etag.clone();
        let app = &app;
        async move {
            call_with(
                app,
                &who,
                Method::PATCH,
                path,
                &[("if-match", &etag)],
                Some(&change),
            )
            .await
            .status
        }
    };
    assert_eq!(status(As::Nobody).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(foreign).await, StatusCode::NOT_FOUND);
    assert_eq!(status(reader).await, StatusCode::FORBIDDEN);
    assert_eq!(status(viewer).await, StatusCode::FORBIDDEN);
    assert_eq!(status(editor).await, StatusCode::OK);
}

/// Every delete locks the link's row before its code's, as a conditional one must to check
/// the version: a delete without `If-Match` beside one with it (here its statements, by hand)
/// took them in the opposite order, and PostgreSQL ended one of the two as a deadlock (500).
#[tokio::test]
async fn deletes_of_one_link_with_and_without_if_match_do_not_deadlock() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/", "code": "twice"}))
        .await;
    // The conditional delete, under way: the link's row locked and its version checked.
    let mut conditional = app.db.begin().await.expect("begin");
    sqlx::query("SELECT version FROM links WHERE code = 'twice' FOR UPDATE")
        .execute(&mut *conditional)
        .await
        .expect("lock the link");
    let plain = app.api(Method::DELETE, "/api/v1/links/twice", None);
    let finish = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while crate::support::lock_waiters(&app.db, "%").await < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the plain delete never waited"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        sqlx::raw_sql(
            "DELETE FROM link_codes WHERE code = 'twice';
             UPDATE links SET deleted_at = now() WHERE code = 'twice' AND deleted_at IS NULL;",
        )
        .execute(&mut *conditional)
        .await
        .expect("the conditional delete's statements");
        conditional.commit().await.expect("commit");
    };
    let (plain, ()) = tokio::join!(plain, finish);
    assert_eq!(plain.status, StatusCode::NOT_FOUND, "{}", plain.text());
}

/// A create sent again gets its first answer even where its body's checks now say otherwise:
/// its `expires_at` has passed since. Before, the retry got 422 "in the future" for a link that
/// exists, and a client that believed it could create another.
#[tokio::test]
async fn a_retry_gets_the_first_answer_after_its_expiry_has_passed() {
    let app = spawn_app().await;
    let key = own_key(&app);
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let body = json!({"destination": "https://example.com/brief", "expires_at": soon});
    let headers = [("idempotency-key", "brief-1")];
    let first = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let again = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text());
    assert_eq!(again.json(), first.json());
    // Another body under the key is still refused, and a new create still checked.
    let other = json!({"destination": "https://example.com/other", "expires_at": soon});
    let reused = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &headers,
        Some(&other),
    )
    .await;
    assert_eq!(
        reused.error(StatusCode::UNPROCESSABLE_ENTITY).0,
        "idempotency_key_reused"
    );
    let fresh = [("idempotency-key", "brief-2")];
    let late = call_with(
        &app,
        &key,
        Method::POST,
        "/api/v1/links",
        &fresh,
        Some(&body),
    )
    .await;
    assert_eq!(
        late.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
        Some("expires_at")
    );
    assert_eq!(links_in_workspace(&app, 1).await, 1);
}
