//! The benchmark baseline: a bare axum server answering every code with a constant 302.
//! `cargo xtask bench` measures the origin's redirect route as a ratio of this, in one run.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let app = Router::new().route(
        "/{code}",
        get(|| async {
            (
                StatusCode::FOUND,
                [(header::LOCATION, "https://example.com/")],
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(&address).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
