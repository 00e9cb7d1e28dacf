//! Readiness follows PostgreSQL: 503 while it is stopped, ready again by itself once it is back.
//! This test stops a server, so it runs on a cluster of its own.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, header};
use devpg::{Cluster, Durability};
use serde_json::json;

use crate::support::app_on;

#[tokio::test]
async fn ready_reports_a_stopped_database_and_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(dir.path(), Durability::Throwaway).expect("start PostgreSQL");
    let app = app_on(&cluster.url("postgres")).await;
    app.create(json!({"destination": "https://example.com/cached", "code": "cached"}))
        .await;
    assert_eq!(
        app.visit(Method::GET, "/cached").await.status,
        StatusCode::FOUND
    );
    assert_eq!(
        app.visit(Method::GET, "/ready").await.status,
        StatusCode::OK
    );

    cluster.stop().expect("stop PostgreSQL");

    let started = Instant::now();
    let response = app.visit(Method::GET, "/ready").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.json()["status"], "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "/ready hung for {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.visit(Method::GET, "/health").await.status,
        StatusCode::OK
    );
    // What the cache holds keeps redirecting; what it does not is a clear 503.
    assert_eq!(
        app.visit(Method::GET, "/cached").await.status,
        StatusCode::FOUND
    );
    let response = app.visit(Method::GET, "/uncached").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.header(&header::RETRY_AFTER), "5");
    let response = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(json!({"destination": "https://example.com/lost"})),
        )
        .await;
    assert_eq!(
        response.error(StatusCode::SERVICE_UNAVAILABLE).0,
        "unavailable"
    );

    cluster
        .restart(Durability::Throwaway)
        .expect("restart PostgreSQL");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = app.visit(Method::GET, "/ready").await.status;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/ready still {status} 30 s after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let created = app
        .create(json!({"destination": "https://example.com/after"}))
        .await;
    let code = created["code"].as_str().expect("code");
    assert_eq!(
        app.visit(Method::GET, &format!("/{code}")).await.status,
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn ready_names_no_database_error() {
    let database_url = crate::support::new_database().await;
    let app = app_on(&database_url).await;
    assert_eq!(
        app.visit(Method::GET, "/ready").await.status,
        StatusCode::OK
    );
    let database = database_url.rsplit('/').next().expect("database name");
    let admin = std::env::var("KURZ_TEST_DATABASE_URL").expect("test cluster");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect");
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("drop the app's database");

    // The first answer uses a connection the drop cut, the next ones connect anew.
    for _ in 0..3 {
        let response = app.visit(Method::GET, "/ready").await;
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
        let body = response.json();
        assert_eq!(
            body,
            json!({"status": "unavailable", "reason": "database unreachable"}),
            "/ready told a visitor the database's own error"
        );
    }
}
