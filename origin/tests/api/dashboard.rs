//! What the dashboard relies on: sign-in with sessions and CSRF, sorted pages of links, QR
//! codes, and how its files are served. The sign-in limits are tested in `sign_in.rs`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{TestApp, TestResponse, app_with, config, new_database, spawn_app};

const PASSWORD: &str = "correct horse battery staple";

/// A browser's request: the session cookie, and the CSRF token when given.
async fn browser(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> TestResponse {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    app.send(request.body(body).expect("request")).await
}

async fn sign_in(app: &TestApp, username: &str, password: &str) -> TestResponse {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .expect("request");
    app.send(request).await
}

async fn app_with_admin() -> TestApp {
    let app = spawn_app().await;
    let created = origin::accounts::create_first_admin(&app.db, Some(PASSWORD))
        .await
        .expect("first admin");
    assert!(created.is_some_and(|admin| admin.password.is_none()));
    // Only ever one first admin.
    assert!(
        origin::accounts::create_first_admin(&app.db, None)
            .await
            .expect("second call")
            .is_none()
    );
    app
}

#[tokio::test]
async fn a_session_signs_in_calls_the_api_with_csrf_and_signs_out() {
    let app = app_with_admin().await;

    let wrong = sign_in(&app, "admin", "not the password").await;
    assert_eq!(wrong.error(StatusCode::UNAUTHORIZED).0, "sign_in_failed");
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let unknown = sign_in(&app, "nobody", PASSWORD).await;
    assert_eq!(unknown.error(StatusCode::UNAUTHORIZED).0, "sign_in_failed");

    let signed_in = sign_in(&app, "admin", PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::OK);
    let set_cookie = signed_in.header(&header::SET_COOKIE).to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let session = signed_in.json();
    assert_eq!(session["username"], "admin");
    let csrf = session["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_owned();

    // Reading needs only the cookie; the session tells the dashboard its CSRF token again.
    let me = browser(&app, Method::GET, "/api/v1/session", &cookie, None, None).await;
    assert_eq!(me.json()["csrf_token"], csrf.as_str());
    let list = browser(&app, Method::GET, "/api/v1/links", &cookie, None, None).await;
    assert_eq!(list.status, StatusCode::OK);

    // Changing something needs the token too.
    let link = json!({"destination": "https://example.com/", "code": "by-browser"});
    let forged = browser(
        &app,
        Method::POST,
        "/api/v1/links",
        &cookie,
        None,
        Some(link.clone()),
    )
    .await;
    assert_eq!(forged.error(StatusCode::FORBIDDEN).0, "csrf");
    let wrong_token = browser(
        &app,
        Method::POST,
        "/api/v1/links",
        &cookie,
        Some("0000"),
        Some(link.clone()),
    )
    .await;
    assert_eq!(wrong_token.error(StatusCode::FORBIDDEN).0, "csrf");
    let created = browser(
        &app,
        Method::POST,
        "/api/v1/links",
        &cookie,
        Some(&csrf),
        Some(link),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);

    // API keys keep working beside sessions, and need no CSRF token.
    let by_key = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/key"})),
        )
        .await;
    assert_eq!(by_key.status, StatusCode::CREATED);

    let signed_out = browser(
        &app,
        Method::DELETE,
        "/api/v1/session",
        &cookie,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(signed_out.status, StatusCode::NO_CONTENT);
    assert!(signed_out.header(&header::SET_COOKIE).contains("Max-Age=0"));
    let after = browser(&app, Method::GET, "/api/v1/links", &cookie, None, None).await;
    assert_eq!(after.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
    let made_up = browser(
        &app,
        Method::GET,
        "/api/v1/links",
        "kurz_session=abc",
        None,
        None,
    )
    .await;
    assert_eq!(made_up.error(StatusCode::UNAUTHORIZED).0, "unauthorized");
}

#[tokio::test]
async fn create_admin_sets_and_resets_passwords() {
    let app = app_with_admin().await;
    let signed_in = sign_in(&app, "admin", PASSWORD).await;
    let cookie = signed_in
        .header(&header::SET_COOKIE)
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();

    let existed = origin::accounts::set_admin(
        &app.db,
        &crate::support::CODE_KEY.parse().expect("code key"),
        "ops",
        "another long password",
        false,
    )
    .await
    .expect("created");
    assert!(!existed);
    assert_eq!(
        sign_in(&app, "ops", "another long password").await.status,
        StatusCode::OK
    );
    let refused = origin::accounts::set_admin(
        &app.db,
        &crate::support::CODE_KEY.parse().expect("code key"),
        "admin",
        "a new long password",
        false,
    )
    .await;
    assert!(refused.is_err(), "an existing user needs --reset");
    let short = origin::accounts::set_admin(
        &app.db,
        &crate::support::CODE_KEY.parse().expect("code key"),
        "x",
        "short",
        false,
    )
    .await;
    assert!(short.is_err());

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
        sign_in(&app, "admin", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&app, "admin", "a new long password").await.status,
        StatusCode::OK
    );
    // A reset signs the user out everywhere.
    let old = browser(&app, Method::GET, "/api/v1/links", &cookie, None, None).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pages_of_links_in_every_order() {
    let app = spawn_app().await;
    let codes = ["delta", "alpha", "echo", "charlie", "bravo"];
    for code in codes {
        app.create(json!({"destination": format!("https://example.com/{code}"), "code": code}))
            .await;
    }
    let all_pages = |sort: &'static str| {
        let app = &app;
        async move { app.all_link_pages(&format!("sort={sort}"), 2).await }
    };
    assert_eq!(all_pages("oldest").await, codes);
    let mut newest = codes;
    newest.reverse();
    assert_eq!(all_pages("newest").await, newest);
    assert_eq!(
        all_pages("code_asc").await,
        ["alpha", "bravo", "charlie", "delta", "echo"]
    );
    assert_eq!(
        all_pages("code_desc").await,
        ["echo", "delta", "charlie", "bravo", "alpha"]
    );
    let bad = app
        .api(Method::GET, "/api/v1/links?sort=loudest", None)
        .await;
    assert_eq!(
        bad.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
        Some("sort")
    );
    let bad_cursor = app.api(Method::GET, "/api/v1/links?cursor=abc", None).await;
    assert_eq!(
        bad_cursor
            .error(StatusCode::UNPROCESSABLE_ENTITY)
            .1
            .as_deref(),
        Some("cursor")
    );
}

#[tokio::test]
async fn qr_codes_of_links() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/", "code": "qr-me"}))
        .await;
    let svg = app
        .api(Method::GET, "/api/v1/links/qr-me/qr.svg", None)
        .await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.header(&header::CONTENT_TYPE), "image/svg+xml");
    assert!(String::from_utf8_lossy(&svg.body).contains("<svg"));
    let png = app
        .api(Method::GET, "/api/v1/links/qr-me/qr.png?size=256", None)
        .await;
    assert_eq!(png.header(&header::CONTENT_TYPE), "image/png");
    assert!(png.body.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(
        png.header(&header::CONTENT_DISPOSITION)
            .contains("qr-me-qr.png")
    );
    let too_big = app
        .api(Method::GET, "/api/v1/links/qr-me/qr.png?size=100000", None)
        .await;
    assert_eq!(
        too_big.error(StatusCode::UNPROCESSABLE_ENTITY).1.as_deref(),
        Some("size")
    );
    let unknown = app
        .api(Method::GET, "/api/v1/links/nope/qr.svg", None)
        .await;
    assert_eq!(unknown.error(StatusCode::NOT_FOUND).0, "not_found");
    let anonymous = app.visit(Method::GET, "/api/v1/links/qr-me/qr.svg").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_dashboard_files_are_cached_by_content() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("assets")).expect("assets dir");
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>kurz</title>",
    )
    .expect("index");
    std::fs::write(dir.path().join("assets/app-0123abcd.js"), "export {}").expect("asset");
    let mut config = config(&new_database().await);
    config.admin_dir = Some(dir.path().to_owned());
    let app = app_with(&config).await;

    for path in ["/admin", "/admin/", "/admin/links/abc", "/admin/stats"] {
        let page = app.visit(Method::GET, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.header(&header::CACHE_CONTROL), "no-cache");
        assert!(
            page.header(&header::CONTENT_SECURITY_POLICY)
                .contains("frame-ancestors 'none'")
        );
        assert!(String::from_utf8_lossy(&page.body).contains("<title>kurz</title>"));
    }
    let asset = app
        .visit(Method::GET, "/admin/assets/app-0123abcd.js")
        .await;
    assert_eq!(asset.status, StatusCode::OK);
    assert!(asset.header(&header::CACHE_CONTROL).contains("immutable"));
    assert!(asset.header(&header::CONTENT_TYPE).contains("javascript"));
    // Served gzipped or not by Accept-Encoding: a shared cache keeps the two apart.
    assert_eq!(asset.header(&header::VARY), "accept-encoding");
    // A name not there (yet: a deploy or a build under way) is not kept.
    let missing = app
        .visit(Method::GET, "/admin/assets/gone-00000000.js")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header(&header::CACHE_CONTROL), "no-store");

    // Without a built dashboard, /admin says how to build one.
    let bare = spawn_app().await;
    let page = bare.visit(Method::GET, "/admin").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&page.body).contains("cargo xtask"));
}
