//! Bounds that hold under a burst: the redirect cache's memory in bytes, and the CPU given
//! to QR images.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::support::{app_with, config, new_database, spawn_app};

#[tokio::test]
async fn the_redirect_cache_is_bounded_in_bytes() {
    let mut config = config(&new_database().await);
    config.cache_mib = 1;
    let app = app_with(&config).await;
    // Each entry holds its destination twice (the record and the Location header).
    const DESTINATION: usize = 4_000;
    const LINKS: usize = 600;
    for n in 0..LINKS {
        let destination = format!(
            "https://example.com/{n:04}/{}",
            "a".repeat(DESTINATION - 25)
        );
        assert_eq!(destination.len(), DESTINATION);
        app.create(json!({"destination": destination, "code": format!("big{n}")}))
            .await;
    }
    for n in 0..LINKS {
        let response = app.visit(Method::GET, &format!("/big{n}")).await;
        assert_eq!(response.status, StatusCode::FOUND);
        assert_eq!(response.header(&header::LOCATION).len(), DESTINATION);
    }
    let usage = app.state.cache_usage().await;
    assert!(usage.bytes <= 1 << 20, "{usage:?}");
    assert!(
        usage.entries * 2 * DESTINATION as u64 <= 1 << 20,
        "more destinations held than fit in 1 MiB: {usage:?}"
    );
    assert!(usage.entries > 0, "the cache holds nothing: {usage:?}");
}

#[tokio::test]
async fn a_burst_of_large_qr_images_is_bounded() {
    let app = spawn_app().await;
    app.create(json!({"destination": "https://example.com/qr", "code": "qr-burst"}))
        .await;
    let requests =
        (0..64).map(|_| app.api(Method::GET, "/api/v1/links/qr-burst/qr.png?size=2048", None));
    let responses = futures_util::future::join_all(requests).await;
    let (mut images, mut busy) = (0, 0);
    for response in &responses {
        if response.status == StatusCode::OK {
            assert_eq!(response.header(&header::CONTENT_TYPE), "image/png");
            assert!(response.body.starts_with(b"\x89PNG\r\n\x1a\n"));
            images += 1;
        } else {
            assert_eq!(response.error(StatusCode::SERVICE_UNAVAILABLE).0, "busy");
            assert_eq!(response.header(&header::RETRY_AFTER), "1");
            busy += 1;
        }
    }
    assert!(images >= 1, "no image was encoded");
    assert!(
        busy >= 1,
        "all 64 were encoded at once: nothing bounds them"
    );
    // Once the burst is over, an image is encoded again.
    let response = app
        .api(Method::GET, "/api/v1/links/qr-burst/qr.png?size=2048", None)
        .await;
    assert_eq!(response.status, StatusCode::OK);
}
