//! Serves the built dashboard (`admin-ui`) at `/admin`.
//!
//! The build (`cargo xtask dev`/`test`) names every asset after a hash of its content, so
//! `/admin/assets/*` may be cached for a year; `index.html`, which names the current assets,
//! is revalidated on every load, so a new build is picked up at the next reload. Every other
//! path under `/admin` is the app's own route and gets `index.html` too (deep links work).

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The dashboard's own code and same-origin API calls only; wasm needs `wasm-unsafe-eval`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(crate) fn routes<S: Clone + Send + Sync + 'static>(dir: Option<PathBuf>) -> Router<S> {
    let index = {
        let dir = dir.clone();
        move || serve_index(dir.clone())
    };
    let router = Router::new()
        .route("/admin", get(index.clone()))
        .route("/admin/", get(index.clone()))
        .route("/admin/{*page}", get(index));
    match dir {
        Some(dir) => router.nest_service(
            "/admin/assets",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    asset_cache,
                ))
                // Gzipped or not by `Accept-Encoding`: a shared cache must keep both apart.
                .layer(SetResponseHeaderLayer::overriding(
                    header::VARY,
                    HeaderValue::from_static("accept-encoding"),
                ))
                .service(ServeDir::new(dir.join("assets")).precompressed_gzip()),
        ),
        None => router,
    }
}

/// How long an answer under `/admin/assets` may be kept: an asset found, a year (its name
/// changes with its content); anything else, not at all. A name not there yet (a browser
/// that read a new `index.html` from an upgraded instance asks an old one, or a build is
/// under way) must not stay missing for a year.
fn asset_cache<B>(response: &axum::http::Response<B>) -> Option<HeaderValue> {
    let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    Some(HeaderValue::from_static(if found {
        "public, max-age=31536000, immutable"
    } else {
        "no-store"
    }))
}

async fn serve_index(dir: Option<PathBuf>) -> Response {
    let Some(dir) = dir else {
        return not_built("KURZ_ADMIN_DIR is not set");
    };
    match tokio::fs::read_to_string(dir.join("index.html")).await {
        Ok(html) => (
            [
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "same-origin"),
            ],
            Html(html),
        )
            .into_response(),
        Err(err) => {
            tracing::warn!(error = %err, dir = %dir.display(), "cannot read the dashboard's index.html");
            not_built(&format!("{} has no index.html", display(&dir)))
        }
    }
}

fn display(dir: &Path) -> String {
    dir.display().to_string()
}

fn not_built(why: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Dashboard not built</title>\
         <p>The dashboard is not available: {}.</p>\
         <p>Build it with <code>cargo xtask dev</code> (or <code>cargo xtask build-ui</code>) and \
         point <code>KURZ_ADMIN_DIR</code> at the folder it prints.</p>",
        html_escape(why)
    );
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        Html(body),
    )
        .into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
