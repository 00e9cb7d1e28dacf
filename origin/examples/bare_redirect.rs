//! The benchmark baseline: a bare axum server answering every code with a constant 302.
//! `cargo xtask bench` measures the origin's redirect route as a ratio of this, in one run.
//!
//! With `--served-as-origin` it is served as the origin must serve (`origin::serve`): each
//! connection with TCP_NODELAY, the client's address at hand (`ConnectInfo`, which the
//! origin's redirect reads), and a graceful shutdown (for the origin's click drain). The
//! bench runs both, to tell what the serving itself costs from what the redirect does.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{StatusCode, header};
use axum::routing::get;

const FOUND: (StatusCode, [(header::HeaderName, &str); 1]) = (
    StatusCode::FOUND,
    [(header::LOCATION, "https://example.com/")],
);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let served_as_origin = args.next().as_deref() == Some("--served-as-origin");
    let listener = tokio::net::TcpListener::bind(&address).await?;
    if !served_as_origin {
        let app = Router::new().route("/{code}", get(|| async { FOUND }));
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let app = Router::new().route(
        "/{code}",
        get(|ConnectInfo(client): ConnectInfo<SocketAddr>| async move {
            std::hint::black_box(client.ip());
            FOUND
        }),
    );
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        tcp.set_nodelay(true).ok();
    });
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(std::future::pending())
        .await?;
    Ok(())
}
