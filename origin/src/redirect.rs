//! `GET|HEAD /{code}`: the origin's redirect route, for deployments without the edge.
//!
//! The decision itself (status, expiry, caching) is `shortlink::redirect::decide`, shared with
//! the edge; this module finds the link (cache first) and writes the HTTP answer.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, ClickSource, is_qr_scan};
use shortlink::redirect::{Decision, LinkRecord, decide};
use shortlink::visitor::visitor_key;
use time::OffsetDateTime;

use crate::error::Error;
use crate::extract::CodePath;
use crate::links;

pub(crate) async fn redirect(
    State(state): State<crate::State>,
    request: Parts,
    code: Result<CodePath, Error>,
) -> Response {
    let Ok(CodePath(code)) = code else {
        return not_found().await;
    };
    let cached = state
        .inner
        .cache
        .get_or_load(code.as_str(), links::find_record(state.db(), &code))
        .await;
    let link = match cached {
        Ok(Some(link)) => link,
        Ok(None) => return not_found().await,
        Err(Error::Unavailable(err)) => {
            tracing::warn!(error = %err, %code, "cannot resolve code: database unavailable");
            return page(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_PAGE);
        }
        Err(err) => {
            tracing::error!(error = ?err, %code, "cannot resolve code");
            return page(StatusCode::INTERNAL_SERVER_ERROR, UNAVAILABLE_PAGE);
        }
    };
    match decide(&link.record, OffsetDateTime::now_utc()) {
        Decision::Redirect {
            status,
            cache_control,
            ..
        } => {
            record_click(&state, &request, &link.record, code);
            (
                StatusCode::from_u16(status.code()).unwrap_or(StatusCode::FOUND),
                [
                    (header::LOCATION, link.location.clone()),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static(cache_control),
                    ),
                ],
            )
                .into_response()
        }
        Decision::Expired => page(StatusCode::GONE, EXPIRED_PAGE),
    }
}

/// Hands the click to the recorder (never waits). The IP address only goes into the day's
/// visitor key.
fn record_click(state: &crate::State, request: &Parts, record: &LinkRecord, code: ShortCode) {
    if !state.inner.record_clicks {
        return;
    }
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let user_agent = header("user-agent");
    let ip = match &state.inner.client_ip_header {
        Some(name) => header(name.as_str())
            .and_then(|value| value.split(',').next().map(|ip| ip.trim().to_owned())),
        None => request
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip().to_string()),
    };
    let at = OffsetDateTime::now_utc();
    let visitor = ip.map(|ip| {
        visitor_key(
            &state.inner.visitor_secret,
            at.date(),
            &ip,
            user_agent.as_deref().unwrap_or_default(),
        )
    });
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        // Without randomness an id could repeat and a click be lost as a duplicate: skip it.
        return;
    }
    let event = ClickEvent {
        id: hex::encode(id),
        link_id: record.link_id,
        code,
        at,
        country: header("cf-ipcountry"),
        referrer: header("referer"),
        user_agent,
        qr: is_qr_scan(request.uri.query()),
        head: request.method == Method::HEAD,
        source: ClickSource::Origin,
        visitor,
    }
    .bounded();
    state.inner.recorder.record(event);
}

pub(crate) async fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, NOT_FOUND_PAGE)
}

fn page(status: StatusCode, html: &'static str) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    // An unknown code may be created a second later; do not let anyone remember the 404.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

const NOT_FOUND_PAGE: &str = concat!(
    "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width\"><title>Link not found</title>",
    "<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">",
    "<h1>Link not found</h1><p>There is no short link at this address. Check it for typos.</p>",
    "</body></html>"
);

const EXPIRED_PAGE: &str = concat!(
    "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width\"><title>Link expired</title>",
    "<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">",
    "<h1>Link expired</h1><p>This short link has expired and no longer leads anywhere.</p>",
    "</body></html>"
);

const UNAVAILABLE_PAGE: &str = concat!(
    "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width\"><title>Try again shortly</title>",
    "<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">",
    "<h1>Try again shortly</h1><p>This link cannot be looked up right now. Please retry in a few seconds.</p>",
    "</body></html>"
);
