//! What every request meets before its handler: the request timeout, the cap on API requests
//! at once, the API's body limit and CORS (configured by `config::Gateway`). Each refusal is
//! the API's error shape.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::Error;

/// The body limit in force, for the message of a 413 answered by the body extractor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// Answers 503 `timeout` when the handler has not begun its answer within `timeout`. A body
/// that streams (a CSV export) is not cut: only the wait for the answer to begin is bounded.
pub(crate) async fn time_limit(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Timeout.into_response(),
    }
}

/// Sheds an API request at once (503 `busy`, `Retry-After: 1`) when the cap is reached:
/// queueing would only make every waiting request late, and a client told to come back
/// spreads the load. Held until the answer begins.
pub(crate) async fn concurrency_limit(
    State(permits): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => Error::Busy.into_response(),
    }
}

/// Refuses a body declared larger than the limit before reading it (413 in the error shape),
/// and tells the body extractor the limit, which `DefaultBodyLimit` enforces on bodies sent
/// without a length. A route with a limit of its own (a bulk create) has it instead.
pub(crate) async fn body_limit(
    State(limit): State<usize>,
    mut request: Request,
    next: Next,
) -> Response {
    let limit = own_limit(&request).unwrap_or(limit);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Error::PayloadTooLarge { limit }.into_response();
    }
    request.extensions_mut().insert(BodyLimit(limit));
    next.run(request).await
}

/// The body limit of a route that has one of its own, by the route matched (the router has
/// matched it before the API's layers run). Its `DefaultBodyLimit` is set on the route.
fn own_limit(request: &Request) -> Option<usize> {
    let route = request.extensions().get::<MatchedPath>()?.as_str();
    match route {
        crate::links::bulk::ROUTE => Some(crate::links::bulk::BODY_LIMIT),
        crate::import_parse::ROUTE => Some(crate::import_parse::BODY_LIMIT),
        _ => None,
    }
}

/// CORS for the API, or none when no origin is allowed (no CORS headers at all).
///
/// Credentials are not allowed: the dashboard is served from the origin itself, so its
/// session cookie never needs a cross-origin request, and allowing them would let a page of
/// an allowed origin act with a signed-in admin's session. Pages elsewhere call the API with
/// a key in `Authorization`, which CORS does not count as a credential.
pub(crate) fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|origin| {
            let origin = origin.trim();
            let exact = url::Url::parse(origin)
                .ok()
                .map(|url| url.origin().ascii_serialization());
            if exact.as_deref() != Some(origin) {
                anyhow::bail!(
                    "KURZ_CORS_ORIGINS: {origin:?} is not an origin (scheme://host[:port], no path)"
                );
            }
            Ok(HeaderValue::from_str(origin)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-csrf-token"),
                HeaderName::from_static(crate::auth::WORKSPACE_HEADER),
                header::IF_MATCH,
                HeaderName::from_static(crate::links::idempotency::HEADER),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::LOCATION,
                header::ETAG,
                HeaderName::from_static("idempotent-replayed"),
                HeaderName::from_static("ratelimit"),
                HeaderName::from_static("ratelimit-policy"),
            ])
            .max_age(Duration::from_secs(600)),
    ))
}

/// Answers a preflight 204 (it has no content) rather than the CORS layer's 200.
pub(crate) async fn preflight_no_content(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}
