//! `GET|HEAD /{code}`: the origin's redirect route, for deployments without the edge.
//!
//! The decision itself (status, expiry, caching) is `shortlink::redirect::decide`, shared with
//! the edge; this module finds the link (cache first) and writes the HTTP answer.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
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
        .get_or_load(code.as_str(), links::store::find_record(state.db(), &code))
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
    let visit = shortlink::redirect::Visit {
        now: OffsetDateTime::now_utc(),
        country: None,
        agent: shortlink::agent::classify(None),
        accept_language: None,
        query: None,
        visitor: None,
        unlocked: false,
        clicks_in_flight: 0,
    };
    match decide(&link.record, &visit) {
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
                        cache_control.as_static().map_or_else(
                            || {
                                HeaderValue::try_from(cache_control.to_string())
                                    .unwrap_or(HeaderValue::from_static("no-store"))
                            },
                            HeaderValue::from_static,
                        ),
                    ),
                ],
            )
                .into_response()
        }
        Decision::Expired => page(StatusCode::GONE, EXPIRED_PAGE),
        Decision::Disabled | Decision::Password | Decision::Fallback { .. } => {
            page(StatusCode::NOT_FOUND, NOT_FOUND_PAGE)
        }
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
    let ip = state
        .inner
        .client_ip
        .of_request(request)
        .map(|ip| ip.to_string());
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
        variant: None,
    }
    .bounded();
    state.inner.recorder.record(event);
}

/// Where the client's IP address is read from: for the day's visitor key, and for the sign-in
/// limits.
#[derive(Debug, Clone)]
pub(crate) struct ClientIp {
    /// The header a proxy in front of us sets; `None`: the connection's address.
    pub(crate) header: Option<HeaderName>,
    /// How many proxies append to the header's list (`X-Forwarded-For: client, proxy1`).
    pub(crate) trusted_proxies: usize,
}

impl ClientIp {
    /// The client's address of a request: [`ClientIp::visitor`] with the connection's address.
    pub(crate) fn of_request(&self, request: &Parts) -> Option<IpAddr> {
        let connection = request
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        self.visitor(&request.headers, connection)
    }

    /// The visitor's address: in a list, the entry `trusted_proxies` from the right, written
    /// by the outermost proxy we trust. Everything left of it came from the client and may be
    /// forged. A list too short to hold it did not pass through our proxies, and a value that
    /// is not an address is not one: both fall back to the connection's address.
    pub(crate) fn visitor(
        &self,
        headers: &HeaderMap,
        connection: Option<IpAddr>,
    ) -> Option<IpAddr> {
        let Some(name) = &self.header else {
            return connection;
        };
        // A header sent several times is one list, in order (RFC 9110, 5.3).
        let entries: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        entries
            .len()
            .checked_sub(self.trusted_proxies)
            .and_then(|index| parse_ip(entries[index]))
            .or(connection)
    }
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, or with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|address| address.ip()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_address() {
        let connection: IpAddr = "10.0.0.1".parse().expect("address");
        let xff = |trusted_proxies| ClientIp {
            header: Some(HeaderName::from_static("x-forwarded-for")),
            trusted_proxies,
        };
        let cases: &[(ClientIp, &[&str], Option<&str>)] = &[
            // No header configured: the connection, whatever the client sends.
            (
                ClientIp {
                    header: None,
                    trusted_proxies: 1,
                },
                &["203.0.113.9"],
                Some("10.0.0.1"),
            ),
            (xff(1), &["198.51.100.7"], Some("198.51.100.7")),
            // The client's own entries, left of what our proxy appended, are not believed.
            (xff(1), &["203.0.113.9, 198.51.100.7"], Some("198.51.100.7")),
            (
                xff(1),
                &["203.0.113.9", "198.51.100.7"],
                Some("198.51.100.7"),
            ),
            (
                xff(2),
                &["203.0.113.9, 198.51.100.7, 10.0.0.2"],
                Some("198.51.100.7"),
            ),
            (
                xff(2),
                &["203.0.113.9,198.51.100.7", "10.0.0.2"],
                Some("198.51.100.7"),
            ),
            // Shorter than the trusted chain, missing, or not an address: the connection.
            (xff(2), &["198.51.100.7"], Some("10.0.0.1")),
            (xff(1), &[], Some("10.0.0.1")),
            (xff(1), &["203.0.113.9, unknown"], Some("10.0.0.1")),
            (xff(1), &["203.0.113.9, "], Some("10.0.0.1")),
            // Ports and IPv6, as some proxies write them.
            (xff(1), &["198.51.100.7:4711"], Some("198.51.100.7")),
            (xff(1), &["[2001:db8::7]:4711"], Some("2001:db8::7")),
            (xff(1), &["2001:db8::7"], Some("2001:db8::7")),
        ];
        for (source, values, expected) in cases {
            let mut headers = HeaderMap::new();
            for value in *values {
                headers.append(
                    "x-forwarded-for",
                    HeaderValue::from_str(value).expect("header value"),
                );
            }
            let got = source.visitor(&headers, Some(connection));
            assert_eq!(
                got.map(|ip| ip.to_string()).as_deref(),
                *expected,
                "{values:?} with {} trusted",
                source.trusted_proxies
            );
        }
        assert_eq!(xff(1).visitor(&HeaderMap::new(), None), None);
    }
}
