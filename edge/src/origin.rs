//! Talking to the origin: resolving a code on a KV miss, posting click events to ingest
//! (for the queue consumers in [`crate::consumer`]), and forwarding the abuse-report form
//! (signed, with the visitor's address).

use std::pin::pin;
use std::time::Duration;

use futures_util::future::{Either, select};
use serde::Serialize;
use serde_json::value::RawValue;
use shortlink::ShortCode;
use shortlink::edge::{INGEST_PATH, IngestResult, NO_LINK_HEADER, RESOLVE_PATH_PREFIX};
use shortlink::signature;
use worker::{AbortController, Date, Delay, Env, Fetch, Headers, Request, Response, Result};

use crate::resolve::Resolved;
use crate::{edge_secret, signed_headers};

/// How long a visitor waits for the origin on a KV miss before getting a 503, unless
/// `RESOLVE_TIMEOUT_MS` says otherwise (100 to 30,000).
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(2_000);

pub(crate) fn resolve_timeout(env: &Env) -> Duration {
    env.var("RESOLVE_TIMEOUT_MS")
        .ok()
        .and_then(|value| value.to_string().parse::<u64>().ok())
        .filter(|ms| (100..=30_000).contains(ms))
        .map_or(RESOLVE_TIMEOUT, Duration::from_millis)
}
/// How long the queue consumer waits for ingest.
const INGEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a visitor of the report form waits for the origin.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest report form body forwarded (a URL and a few lines of text).
pub(crate) const MAX_REPORT_BODY: usize = 8 * 1024;

/// What a forwarded request keeps of the visitor's.
pub(crate) struct Forwarded {
    pub(crate) content_type: Option<String>,
    pub(crate) accept_language: Option<String>,
    pub(crate) user_agent: Option<String>,
    /// `CF-Connecting-IP`, sent in [`signature::CLIENT_IP_HEADER`] and signed with it: the
    /// origin believes no address a request names without the edge's signature.
    pub(crate) client_ip: Option<String>,
}

fn origin_url(env: &Env) -> Result<String> {
    Ok(env
        .var("ORIGIN_URL")?
        .to_string()
        .trim_end_matches('/')
        .to_owned())
}

/// What the origin answered for `code`, or an error if it could not answer within the
/// resolve's time, its body included.
pub(crate) async fn resolve(env: &Env, code: &ShortCode) -> Result<Resolved> {
    let path = format!("{RESOLVE_PATH_PREFIX}{code}");
    let headers = signed_headers(&edge_secret(env)?, "GET", &path, b"")?;
    let timeout = resolve_timeout(env);
    let started = Date::now().as_millis();
    let mut response = send(env, "GET", &path, headers, None, timeout).await?;
    match response.status_code() {
        200 => {
            // In what is left of the same time: an origin (or a proxy) that sent its headers
            // and stalls fails here, for the breaker, instead of holding the visitor.
            let spent = Duration::from_millis(Date::now().as_millis().saturating_sub(started));
            let json = within(timeout.saturating_sub(spent), response.text()).await??;
            Ok(match serde_json::from_str(&json) {
                Ok(record) => Resolved::Link(record, json),
                Err(err) => Resolved::Unreadable(format!(
                    "origin sent a record this edge cannot read: {err}"
                )),
            })
        }
        404 if response.headers().has(NO_LINK_HEADER)? => Ok(Resolved::NoLink),
        // Not the origin's "no link": an origin older than this edge (the edge is deployed
        // first), one without the edge's secret (its edge routes do not exist), or another
        // server at ORIGIN_URL. Unknown: a 503, remembered nowhere, and no failure for the
        // breaker (the origin answered; the codes that exist still reach it).
        404 => Ok(Resolved::Unreadable(
            "origin answered 404 without kurz-no-link: an origin older than this edge, \
             one without the edge's secret, or another server at ORIGIN_URL"
                .into(),
        )),
        _ => Err(refused("resolve", &response)),
    }
}

/// Why the origin's answer is not one: its status, and for a redirect where to and what to
/// change.
fn refused(what: &str, response: &Response) -> worker::Error {
    let status = response.status_code();
    let message = match (300..400).contains(&status) {
        true => {
            let to = response.headers().get("location").ok().flatten();
            format!(
                "{what} answered {status} (to {}): set ORIGIN_URL to the scheme and host it \
                 redirects to",
                to.as_deref().unwrap_or("no Location")
            )
        }
        false => format!("{what} answered {status}"),
    };
    worker::Error::RustError(message)
}

/// Posts click events (as written: see [`crate::outbox::events_of`]) to the origin's ingest
/// route in one signed request: once the origin stored them (a 2xx), the indices of those it
/// could not read and did not store (`IngestResult::unread`: a newer worker's); an error
/// otherwise. Ingest is idempotent on the event id, so a batch may be posted again after any
/// failure.
pub(crate) async fn ingest(env: &Env, events: &[&RawValue]) -> Result<Vec<usize>> {
    let body = serde_json::to_vec(&IngestBody { events })
        .map_err(|err| worker::Error::RustError(err.to_string()))?;
    let path = INGEST_PATH;
    let headers = signed_headers(&edge_secret(env)?, "POST", path, &body)?;
    headers.set("content-type", "application/json")?;
    let started = Date::now().as_millis();
    let mut response = send(env, "POST", path, headers, Some(body), INGEST_TIMEOUT).await?;
    if !(200..300).contains(&response.status_code()) {
        return Err(refused("ingest", &response));
    }
    // The answer says which events were not stored: one not read whole (a connection cut, a
    // body that stalls) is an error, so every message is retried (ingest is idempotent),
    // never acknowledged with an event in it unstored. An origin older than `unread`
    // answers without it: it read every event.
    let spent = Duration::from_millis(Date::now().as_millis().saturating_sub(started));
    let text = within(INGEST_TIMEOUT.saturating_sub(spent), response.text()).await??;
    let result: IngestResult = serde_json::from_str(&text).map_err(|err| {
        worker::Error::RustError(format!("ingest answered what is no ingest result: {err}"))
    })?;
    if let Some(past) = result.unread.iter().find(|&&index| index >= events.len()) {
        return Err(worker::Error::RustError(format!(
            "ingest named event {past} of {} as unread",
            events.len()
        )));
    }
    Ok(result.unread)
}

/// The visitor's request to `path` (the report form, `query` apart), sent on to the origin;
/// the origin's answer as it is. No cookie goes along: the short domain's are not the
/// origin's. With the visitor's address, the request is signed over the path, the address
/// and the body.
pub(crate) async fn forward(
    env: &Env,
    method: &str,
    (path, query): (&str, Option<&str>),
    visitor: &Forwarded,
    body: Option<Vec<u8>>,
) -> Result<Response> {
    let headers = match &visitor.client_ip {
        Some(ip) => {
            let signed = signature::forwarded_path(path, ip);
            let body = body.as_deref().unwrap_or_default();
            let headers = signed_headers(&edge_secret(env)?, method, &signed, body)?;
            headers.set(signature::CLIENT_IP_HEADER, ip)?;
            headers
        }
        None => Headers::new(),
    };
    for (name, value) in [
        ("content-type", &visitor.content_type),
        ("accept-language", &visitor.accept_language),
        ("user-agent", &visitor.user_agent),
    ] {
        if let Some(value) = value {
            headers.set(name, value)?;
        }
    }
    let path = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let response = send(env, method, &path, headers, body, REPORT_TIMEOUT).await?;
    // A redirect is ORIGIN_URL's (the origin's report routes answer none): passed on, it sent
    // the visitor to the origin's own host, the report lost on the way.
    if (300..400).contains(&response.status_code()) {
        return Err(refused("report", &response));
    }
    Ok(response)
}

/// `shortlink::edge::IngestBatch` as it is sent: the queue's events as they were written,
/// borrowed, so they are not copied again.
#[derive(Serialize)]
struct IngestBody<'a> {
    events: &'a [&'a RawValue],
}

/// One request to the origin, abandoned after `timeout`.
async fn send(
    env: &Env,
    method: &str,
    path: &str,
    headers: Headers,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Response> {
    let url = format!("{}{path}", origin_url(env)?);
    // Built with web-sys: workers-rs's `RequestInit` also carries Cloudflare's request
    // properties, whose conversion (through serde-wasm-bindgen) would cost the .wasm kilobytes.
    let init = worker::web_sys::RequestInit::new();
    init.set_method(method);
    // A redirect is answered, not followed: followed, an `http://` ORIGIN_URL that a proxy
    // sends to `https://` turned the ingest's POST into a GET the origin refused as unsigned
    // (401, which pointed at the secret), and sent signed requests wherever it pointed.
    init.set_redirect(worker::web_sys::RequestRedirect::Manual);
    init.set_headers(&headers.0);
    if let Some(body) = body {
        init.set_body(&worker::js_sys::Uint8Array::from(body.as_slice()).into());
    }
    let request = Request::from(worker::web_sys::Request::new_with_str_and_init(
        &url, &init,
    )?);
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let answer = within(timeout, fetch.send_with_signal(&signal)).await;
    if answer.is_err() {
        controller.abort();
    }
    answer?
}

/// What `future` gives, or an error if it takes longer than `timeout`.
async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Result<T> {
    match select(pin!(future), pin!(Delay::from(timeout))).await {
        Either::Left((done, _)) => Ok(done),
        Either::Right(((), _)) => Err(worker::Error::RustError(format!(
            "origin did not answer within {} ms",
            timeout.as_millis()
        ))),
    }
}
