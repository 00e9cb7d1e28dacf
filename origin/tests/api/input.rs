//! Inputs at the edge of what the types can hold, and other spellings of what the API refuses:
//! each is answered with a 4xx in the API's error shape, never a panic (which drops the
//! connection without an answer) and never a way around a rule.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use shortlink::signature;

use crate::support::{
    As, EDGE_SECRET, app_with, config, new_database, spawn_app, spawn_app_with_edge,
};

/// Valid RFC 3339 as typed, but the year 10000 in UTC.
const PAST_9999_IN_UTC: &str = "9999-12-31T23:30:00-05:00";

#[tokio::test]
async fn an_expiry_past_the_accepted_years_is_refused() {
    let app = spawn_app().await;
    for expires_at in [
        PAST_9999_IN_UTC,
        "9999-12-31T23:30:00Z",
        "1969-07-20T20:17:00Z",
    ] {
        let response = app
            .api(
                Method::POST,
                "/api/v1/links",
                Some(json!({"destination": "https://example.com/", "expires_at": expires_at})),
            )
            .await;
        assert_eq!(
            response.error(StatusCode::UNPROCESSABLE_ENTITY),
            ("invalid_input".to_owned(), Some("expires_at".to_owned())),
            "{expires_at}"
        );
    }
    app.create(json!({"destination": "https://example.com/", "code": "later"}))
        .await;
    let response = app
        .api(
            Method::PATCH,
            "/api/v1/links/later",
            Some(json!({"expires_at": PAST_9999_IN_UTC})),
        )
        .await;
    assert_eq!(
        response
            .error(StatusCode::UNPROCESSABLE_ENTITY)
            .1
            .as_deref(),
        Some("expires_at")
    );
    // The last accepted years still work, and come back in UTC.
    let created = app
        .create(json!({"destination": "https://example.com/", "expires_at": "8999-12-31T20:00:00-03:00"}))
        .await;
    assert_eq!(created["expires_at"], "8999-12-31T23:00:00Z");
}

#[tokio::test]
async fn a_nul_character_is_refused_at_its_field_not_by_postgresql() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/", "code": "plain"}))
        .await;
    // (method, path, body, field)
    let cases = [
        (
            Method::POST,
            "/api/v1/links",
            json!({"destination": "https://example.com/", "note": "a\u{0}b"}),
            "note",
        ),
        (
            Method::PATCH,
            "/api/v1/links/plain",
            json!({"utm": {"source": "x\u{0}"}}),
            "utm.source",
        ),
        (
            Method::PATCH,
            "/api/v1/links/plain",
            json!({"targets": [{"when": {"query": {"param": "ref", "value": "a\u{0}"}}, "destination": "https://example.com/q"}]}),
            "targets[0].when",
        ),
    ];
    for (method, path, body, field) in cases {
        let response = app.api(method, path, Some(body.clone())).await;
        let (code, at) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code, "invalid_input", "{body}");
        assert!(
            at.as_deref().is_some_and(|at| at.starts_with(field)),
            "{body}: {at:?}"
        );
    }
    for path in [
        "/api/v1/links?q=%00",
        "/api/v1/links?sort=code_asc&cursor=a%00",
        "/api/v1/audit?action=link.%00",
    ] {
        let response = app.api(Method::GET, path, None).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            response.text()
        );
    }
    // In a bulk create, the one item is refused and the others made.
    let response = app
        .api(
            Method::POST,
            "/api/v1/links/bulk",
            Some(json!({"links": [
                {"destination": "https://example.com/1"},
                {"destination": "https://example.com/2", "note": "\u{0}"},
            ]})),
        )
        .await;
    assert!(response.status.is_success(), "{}", response.text());
    let body = response.json();
    assert_eq!(body["created"], 1, "{body}");

    // The other texts stored: names (of a workspace, a key, a new person) and free text (a
    // blocklist reason, a report's fields), each refused at its field.
    let owner = app.user("nul-owner", &[(1, "owner")]).await;
    let key = As::Key(app.api_key.clone());
    let cases = [
        (
            &owner,
            "/api/v1/workspaces",
            json!({"name": "a\u{0}b"}),
            "name",
        ),
        (
            &owner,
            "/api/v1/workspaces",
            json!({"name": "two\nlines"}),
            "name",
        ),
        (
            &key,
            "/api/v1/keys",
            json!({"name": "k\u{0}", "scopes": ["links:read"]}),
            "name",
        ),
        (
            &key,
            "/api/v1/abuse/blocklist",
            json!({"rule": "evil.example", "reason": "x\u{0}"}),
            "reason",
        ),
        (
            &As::Nobody,
            "/api/v1/invitations/sign-up",
            json!({"token": "x", "username": "new\u{0}", "password": "long enough password"}),
            "username",
        ),
    ];
    for (who, path, body, field) in cases {
        let response = app.call(who, Method::POST, path, Some(body.clone())).await;
        let (code, at) = response.error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(field)),
            "{path} {body}"
        );
    }
    for (body, field) in [
        (
            json!({"link": "plain\u{0}", "category": "spam", "details": "x"}),
            "link",
        ),
        (
            json!({"link": "plain", "category": "spam", "details": "x\u{0}y"}),
            "details",
        ),
        (
            json!({"link": "plain", "category": "spam", "details": "x", "contact": "a\u{0}@b.example"}),
            "contact",
        ),
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/report")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let (code, at) = app
            .send(request)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (code.as_str(), at.as_deref()),
            ("invalid_input", Some(field)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_id_whose_code_is_a_reserved_word_is_passed_over() {
    let app = spawn_app().await;
    let scrambler = crate::support::scrambler();
    for (path, body) in [
        (
            "/api/v1/links",
            json!({"destination": "https://example.com/one"}),
        ),
        (
            "/api/v1/links/bulk",
            json!({"links": [{"destination": "https://example.com/bulk"}]}),
        ),
    ] {
        // The next id drawn is the one whose code would be `metrics` (a route of the origin).
        let id = scrambler.decode_text("metrics").expect("decodes");
        sqlx::query("SELECT setval(pg_get_serial_sequence('links', 'id'), $1)")
            .bind(i64::try_from(id).expect("id") - 1)
            .execute(&app.db)
            .await
            .expect("setval");
        let response = app.api(Method::POST, path, Some(body)).await;
        assert!(response.status.is_success(), "{path}: {}", response.text());
        let codes: Vec<String> = sqlx::query_scalar("SELECT code FROM links")
            .fetch_all(&app.db)
            .await
            .expect("codes");
        assert!(
            !codes
                .iter()
                .any(|code| code.eq_ignore_ascii_case("metrics")),
            "{codes:?}"
        );
    }
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM links")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(made, 2);
}

#[tokio::test]
async fn stats_ranges_past_the_accepted_years_are_refused() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/", "code": "counted"}))
        .await;
    let cases = [
        // An hour added to the end of the range went past the year 9999.
        ("/api/v1/stats?to=9999-12-31T23:30:00Z", "to"),
        ("/api/v1/stats?to=9999-12-31T23:30:00-05:00", "to"),
        ("/api/v1/stats?from=0000-01-01T00:00:00%2B23:59", "from"),
        ("/api/v1/links/counted/stats?to=9999-12-31T23:30:00Z", "to"),
        (
            "/api/v1/links/counted/stats?tz=Europe%2FBerlin%2FBerlin%2FBerlin%2FBerlin%2FBerlin%2FBerlin%2FBerlin%2FBerlin%2FBerlin",
            "tz",
        ),
        // Bound to the export's query as it was: the year 10000 in UTC.
        (
            "/api/v1/links/counted/clicks.csv?to=9999-12-31T23:30:00-05:00",
            "to",
        ),
        ("/api/v1/links/counted/clicks.csv?from=later", "from"),
    ];
    for (path, field) in cases {
        let response = app.api(Method::GET, path, None).await;
        assert_eq!(
            response.error(StatusCode::UNPROCESSABLE_ENTITY),
            ("invalid_input".to_owned(), Some(field.to_owned())),
            "{path}"
        );
    }
}

#[tokio::test]
async fn qr_and_list_queries_are_refused_in_the_error_shape_with_the_field() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/", "code": "squared"}))
        .await;
    let cases = [
        ("/api/v1/links/squared/qr.png?size=big", "size"),
        ("/api/v1/links/squared/qr.png?size=-1", "size"),
        ("/api/v1/links/squared/qr.png?size=99999999999", "size"),
        ("/api/v1/links/squared/qr.png?size=4096", "size"),
        ("/api/v1/links/squared/qr.png?colour=red", "colour"),
        ("/api/v1/links?limit=many", "limit"),
        ("/api/v1/links?sort=sideways", "sort"),
        ("/api/v1/links?page=2", "page"),
    ];
    for (path, field) in cases {
        let response = app.api(Method::GET, path, None).await;
        assert_eq!(
            response.error(StatusCode::UNPROCESSABLE_ENTITY),
            ("invalid_input".to_owned(), Some(field.to_owned())),
            "{path}"
        );
    }
}

#[tokio::test]
async fn signature_timestamps_at_the_ends_of_i64_are_stale() {
    let app = spawn_app_with_edge().await;
    for timestamp in [i64::MIN, i64::MAX] {
        let body = br#"{"events":[]}"#;
        let signed = signature::sign(
            EDGE_SECRET.as_bytes(),
            "POST",
            "/_edge/ingest",
            timestamp,
            body,
        );
        let request = Request::builder()
            .method(Method::POST)
            .uri("/_edge/ingest")
            .header("content-type", "application/json")
            .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
            .header(signature::SIGNATURE_HEADER, signed)
            .body(Body::from(body.to_vec()))
            .expect("request");
        let response = app.send(request).await;
        assert_eq!(
            response.error(StatusCode::UNAUTHORIZED).0,
            "unauthorized",
            "{timestamp}"
        );
    }
}

#[tokio::test]
async fn every_spelling_of_every_own_host_is_a_redirect_loop() {
    // The public URL is the edge; the origin has a name and an address of its own.
    let mut config = config(&new_database().await);
    config.public_url = "https://go.example".parse().expect("public URL");
    config.edge_url = Some("https://go.example".to_owned());
    config.edge_secret = Some(EDGE_SECRET.to_owned());
    config.own_hosts = ["origin.example", "192.0.2.10"]
        .iter()
        .map(|host| shortlink::HostKey::parse(host).expect("host"))
        .collect();
    let app = app_with(&config).await;
    app.create(json!({"destination": "https://example.com/", "code": "kept"}))
        .await;
    for destination in [
        "https://go.example/abc",
        "https://go.example./abc",
        "https://GO.EXAMPLE/abc",
        "https://go.example:8443/abc",
        "https://origin.example./abc",
        "http://192.0.2.10/abc",
        "http://3221225994/abc",
        "http://0xc0.0x00.0x02.0x0a/abc",
        "http://[::ffff:192.0.2.10]/abc",
        // The address the origin listens on (127.0.0.1 in the tests).
        "http://0x7f.1:8080/abc",
    ] {
        for (method, path) in [
            (Method::POST, "/api/v1/links"),
            (Method::PATCH, "/api/v1/links/kept"),
        ] {
            let response = app
                .api(method, path, Some(json!({"destination": destination})))
                .await;
            assert_eq!(
                response
                    .error(StatusCode::UNPROCESSABLE_ENTITY)
                    .1
                    .as_deref(),
                Some("destination"),
                "{destination}"
            );
        }
    }
    // A host that only looks alike is fine.
    app.create(json!({"destination": "https://go.example.com/abc"}))
        .await;
}

#[tokio::test]
async fn a_sign_in_with_a_name_no_user_can_have_is_refused_without_a_lookup() {
    let app = spawn_app().await;
    for username in [
        "a".repeat(65),
        "x\nfailed sign-in username=admin".repeat(400),
        // PostgreSQL's text cannot hold it: no user has it.
        "admin\u{0}".to_owned(),
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/session")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"username": username, "password": "whatever-it-is"}).to_string(),
            ))
            .expect("request");
        let response = app.send(request).await;
        assert_eq!(
            response.error(StatusCode::UNAUTHORIZED).0,
            "sign_in_failed",
            "{} bytes",
            username.len()
        );
    }
}
