//! The preview of a link at the origin: `/{code}+` shows where it goes instead of going there,
//! as the edge does (`shortlink::pages::preview_of`).

use std::time::Duration;

use axum::http::{HeaderName, Method, StatusCode, header};
use serde_json::json;

use crate::support::{PUBLIC_URL, TestApp, spawn_app};

/// Stores the clicks the recorder holds and counts them; the recorder takes no click after
/// this. Without its background task running, every recorded click is shed: none may be.
async fn clicks(app: &TestApp) -> i64 {
    let shed = app.state.drain_clicks(Duration::from_secs(5)).await;
    assert_eq!(shed, 0, "clicks were recorded");
    sqlx::query_scalar("SELECT count(*) FROM clicks")
        .fetch_one(&app.db)
        .await
        .expect("clicks")
}

#[tokio::test]
async fn a_preview_shows_the_destination_and_counts_no_click() {
    let app = spawn_app().await;
    let background = app.state.spawn_background();
    app.create(json!({
        "destination": "https://example.com/a?x=\"y\"&z=<1>",
        "code": "look",
        "utm": {"source": "kurz"},
    }))
    .await;
    for path in ["/look+", "/look%2B", "/look%2b"] {
        let preview = app.visit(Method::GET, path).await;
        assert_eq!(preview.status, StatusCode::OK, "{path}: {}", preview.text());
        assert_eq!(
            preview.header(&header::CACHE_CONTROL),
            "private, max-age=60"
        );
        assert_eq!(
            preview.header(&HeaderName::from_static("x-robots-tag")),
            "noindex"
        );
        assert!(
            preview
                .header(&header::CONTENT_TYPE)
                .starts_with("text/html")
        );
        let page = preview.text();
        let shown = "https://example.com/a?x=%22y%22&amp;z=%3C1%3E&amp;utm_source=kurz";
        assert!(
            page.contains(&format!(
                "<a href=\"{shown}\" rel=\"noopener noreferrer\">{shown}</a>"
            )),
            "{page}"
        );
        assert!(page.contains(&format!("{PUBLIC_URL}/look<")), "{page}");
    }
    assert_eq!(
        app.visit(Method::HEAD, "/look+").await.status,
        StatusCode::OK
    );
    // After four previews, the visit itself redirects, and is the one click.
    let visit = app.visit(Method::GET, "/look").await;
    assert_eq!(visit.status, StatusCode::FOUND);
    assert_eq!(clicks(&app).await, 1);
    background.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test]
async fn a_preview_hides_a_protected_destination_and_says_a_targeted_one_varies() {
    let app = spawn_app().await;
    app.create(json!({
        "destination": "https://example.com/secret",
        "code": "locked",
        "password": "hunter22",
    }))
    .await;
    let locked = app.visit(Method::GET, "/locked+").await;
    assert_eq!(locked.status, StatusCode::OK);
    assert!(locked.text().contains("protected by a password"));
    assert!(!locked.text().contains("example.com/secret"));

    app.create(json!({
        "destination": "https://example.com/default",
        "code": "targeted",
        "targets": [{"when": {"os": ["ios"]}, "destination": "https://apple.example/"}],
    }))
    .await;
    let targeted = app.visit(Method::GET, "/targeted+").await.text();
    assert!(
        targeted.contains("https://example.com/default"),
        "{targeted}"
    );
    assert!(targeted.contains("Some visitors are sent elsewhere"));
    assert!(!targeted.contains("apple.example"));
    assert_eq!(clicks(&app).await, 0);
}

#[tokio::test]
async fn a_preview_of_a_link_that_does_not_redirect_answers_as_its_visit() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/off", "code": "off", "disabled": true}))
        .await;
    app.create(json!({
        "destination": "https://example.com/old",
        "code": "old",
        "disabled": true,
        "fallback_url": "https://later.example/",
    }))
    .await;
    app.create(json!({
        "destination": "https://example.com/gone",
        "code": "gone",
        "expires_at": "2099-01-01T00:00:00Z",
    }))
    .await;
    // Past expiries are refused on create: written behind the API (no cache holds it yet).
    sqlx::query("UPDATE links SET expires_at = now() - interval '1 minute' WHERE code = 'gone'")
        .execute(&app.db)
        .await
        .expect("expire");
    for (code, status) in [
        ("off", StatusCode::NOT_FOUND),
        ("old", StatusCode::FOUND),
        ("gone", StatusCode::GONE),
        ("never-made", StatusCode::NOT_FOUND),
    ] {
        let visit = app.visit(Method::GET, &format!("/{code}")).await;
        let preview = app.visit(Method::GET, &format!("/{code}+")).await;
        assert_eq!(visit.status, status, "{code}");
        assert_eq!(preview.status, status, "{code}");
        assert_eq!(preview.body, visit.body, "{code}");
        assert_eq!(
            preview.headers.get(header::LOCATION),
            visit.headers.get(header::LOCATION),
            "{code}"
        );
    }
    // Paths that are no code with a `+` stay 404s.
    for path in ["/+", "/a.b+", "/look++", "/api+"] {
        assert_eq!(
            app.visit(Method::GET, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(clicks(&app).await, 0);
}
