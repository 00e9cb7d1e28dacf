//! `GET|HEAD /{code}`: statuses, pages for unknown and expired codes, and the cache staying
//! correct across edits.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn redirects_with_the_link_status() {
    let app = spawn_app().await;
    let cases = [
        (301, "public, max-age=86400"),
        (302, "private, no-store"),
        (307, "private, no-store"),
        (308, "public, max-age=86400"),
    ];
    for (status, cache_control) in cases {
        let code = format!("s{status}");
        app.create(json!({"destination": format!("https://example.com/{status}?q=1"), "code": code, "status": status}))
            .await;
        for method in [Method::GET, Method::HEAD] {
            let response = app.visit(method.clone(), &format!("/{code}")).await;
            assert_eq!(response.status.as_u16(), status, "{method} /{code}");
            assert_eq!(
                response.header(&header::LOCATION),
                format!("https://example.com/{status}?q=1")
            );
            assert_eq!(response.header(&header::CACHE_CONTROL), cache_control);
            assert!(response.body.is_empty());
        }
    }
}

#[tokio::test]
async fn a_permanent_redirect_is_not_kept_past_the_links_expiry() {
    let app = spawn_app().await;
    let expires_at = (time::OffsetDateTime::now_utc() + time::Duration::minutes(10))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    app.create(json!({"destination": "https://example.com/", "code": "soon-gone", "status": 301, "expires_at": expires_at}))
        .await;
    let response = app.visit(Method::GET, "/soon-gone").await;
    assert_eq!(response.status, StatusCode::MOVED_PERMANENTLY);
    let max_age: u32 = response
        .header(&header::CACHE_CONTROL)
        .strip_prefix("public, max-age=")
        .and_then(|age| age.parse().ok())
        .expect("public, max-age=N");
    assert!((540..=600).contains(&max_age), "max-age={max_age}");
}

#[tokio::test]
async fn unknown_malformed_and_reserved_codes_get_a_404_page() {
    let app = spawn_app().await;
    let long = format!("/{}", "a".repeat(65));
    let very_long = format!("/{}", "b".repeat(10_000));
    for path in [
        "/nope", "/a.b", "/%FF%FE", "/api", "/_edge", &long, &very_long, "/a/b", "/",
    ] {
        for method in [Method::GET, Method::HEAD] {
            let response = app.visit(method.clone(), path).await;
            assert_eq!(response.status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(response.header(&header::CACHE_CONTROL), "no-store");
            if method == Method::GET {
                assert!(
                    response
                        .header(&header::CONTENT_TYPE)
                        .starts_with("text/html")
                );
                assert!(String::from_utf8_lossy(&response.body).contains("Link not found"));
            }
        }
    }
    let response = app.visit(Method::POST, "/nope").await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn health_is_always_ok() {
    let app = spawn_app().await;
    let response = app.visit(Method::GET, "/health").await;
    assert_eq!(response.status, StatusCode::OK);
    let response = app.visit(Method::GET, "/ready").await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.json()["status"], "ready");
}

#[tokio::test]
async fn expired_links_are_gone() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/x", "code": "old-offer", "expires_at": "2099-01-01T00:00:00Z"}))
        .await;
    // Time travel: the API refuses a past expiry, so move it in the database.
    sqlx::query(
        "UPDATE links SET expires_at = now() - interval '1 minute' WHERE code = 'old-offer'",
    )
    .execute(&app.db)
    .await
    .expect("update");
    let response = app.visit(Method::GET, "/old-offer").await;
    assert_eq!(response.status, StatusCode::GONE);
    assert!(String::from_utf8_lossy(&response.body).contains("expired"));
    // Clearing the expiry through the API brings it back at once.
    app.api(
        Method::PATCH,
        "/api/v1/links/old-offer",
        Some(json!({"expires_at": null})),
    )
    .await;
    assert_eq!(
        app.visit(Method::GET, "/old-offer").await.status,
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn the_cache_serves_repeat_visits_without_the_database() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/cached", "code": "hot"}))
        .await;
    assert_eq!(
        app.visit(Method::GET, "/hot")
            .await
            .header(&header::LOCATION),
        "https://example.com/cached"
    );
    // A change behind the origin's back (as from another instance) is not seen until the TTL.
    sqlx::query("UPDATE links SET destination = 'https://example.com/changed' WHERE code = 'hot'")
        .execute(&app.db)
        .await
        .expect("update");
    assert_eq!(
        app.visit(Method::GET, "/hot")
            .await
            .header(&header::LOCATION),
        "https://example.com/cached"
    );
}

#[tokio::test]
async fn the_cache_follows_this_instances_edits() {
    let app = spawn_app().await;
    // A visit before the link exists caches "unknown"; creating the link must drop that.
    assert_eq!(
        app.visit(Method::GET, "/soon").await.status,
        StatusCode::NOT_FOUND
    );
    app.create(json!({"destination": "https://example.com/v1", "code": "soon"}))
        .await;
    let response = app.visit(Method::GET, "/soon").await;
    assert_eq!(response.status, StatusCode::FOUND);
    assert_eq!(response.header(&header::LOCATION), "https://example.com/v1");

    app.api(
        Method::PATCH,
        "/api/v1/links/soon",
        Some(json!({"destination": "https://example.com/v2", "status": 307})),
    )
    .await;
    let response = app.visit(Method::GET, "/soon").await;
    assert_eq!(response.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.header(&header::LOCATION), "https://example.com/v2");

    app.api(Method::DELETE, "/api/v1/links/soon", None).await;
    assert_eq!(
        app.visit(Method::GET, "/soon").await.status,
        StatusCode::NOT_FOUND
    );

    app.create(json!({"destination": "https://example.com/v3", "code": "soon"}))
        .await;
    assert_eq!(
        app.visit(Method::GET, "/soon")
            .await
            .header(&header::LOCATION),
        "https://example.com/v3"
    );
}

#[tokio::test]
async fn a_flood_of_misses_while_the_database_is_stuck_waits_in_a_bounded_queue() {
    use sqlx::Connection;
    let database = crate::support::new_database().await;
    let app =
        std::sync::Arc::new(crate::support::app_with(&crate::support::config(&database)).await);
    // Every look-up of a link blocks until this transaction ends.
    let mut blocker = sqlx::PgConnection::connect(&database)
        .await
        .expect("connect");
    let mut stuck = blocker.begin().await.expect("begin");
    sqlx::query("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *stuck)
        .await
        .expect("lock");

    const VISITS: usize = 8_000;
    let visits: Vec<_> = (0..VISITS)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move { app.visit(Method::GET, &format!("/miss{n}")).await.status })
        })
        .collect();
    // Long enough for every visit to have queued or been turned away, well within a
    // visit's wait for its look-up.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    stuck.rollback().await.expect("unlock");

    let (mut not_found, mut unavailable) = (0, 0);
    for visit in visits {
        match visit.await.expect("visit") {
            StatusCode::NOT_FOUND => not_found += 1,
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            other => panic!("a visit got {other}"),
        }
    }
    // At most 2 look-ups of 256 codes run, and 4,096 codes wait: the rest are told at once.
    assert!(
        unavailable >= VISITS - 2 * 256 - 4_096,
        "{not_found} found missing, {unavailable} turned away"
    );
    assert!(
        not_found > 0,
        "the queued visits were answered once the database was back"
    );
    // And the route works as before.
    assert_eq!(
        app.visit(Method::GET, "/after").await.status,
        StatusCode::NOT_FOUND
    );
}
