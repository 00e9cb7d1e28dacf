//! `GET|HEAD /{code}`: the origin's redirect route, for deployments without the edge; and
//! `POST /{code}`, the password form of a protected link.
//!
//! The decision itself (rules, status, expiry, caching) is `shortlink::redirect::decide`,
//! shared with the edge; this module finds the link (cache first), describes the visit, counts
//! a limited link's click exactly (`links::limit`) and writes the HTTP answer. A plain link
//! costs what it did before rules: no header is read, no key made, nothing allocated for
//! the decision.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use shortlink::ShortCode;
use shortlink::agent::classify;
use shortlink::edge::{ClickEvent, ClickSource, is_qr_scan};
use shortlink::pages::{self, PasswordProblem};
use shortlink::password;
use shortlink::redirect::{Decision, LinkRecord, Visit, decide};
use shortlink::visitor::DailySalt;
use time::OffsetDateTime;

use crate::analytics::overflow::Click;
use crate::cache::CachedLink;
use crate::error::Error;
use crate::extract::CodePath;
use crate::links;
use crate::links::limit::Take;

/// Largest body of a password form: a password is at most 200 characters, so 4 KiB leaves
/// room for any encoding and other fields without reading more than that.
pub(crate) const FORM_LIMIT: usize = 4 * 1024;

/// How many (link, visitor address) pairs with wrong password answers one origin remembers
/// (`shortlink::password::Attempts`): a flood of addresses fills it and is then refused.
pub(crate) const PASSWORD_ATTEMPTS: usize = 10_000;

/// Link passwords one origin hashes at once (each about 10 ms of a core).
pub(crate) const PASSWORD_HASHES: usize = 2;

/// How long an answer waits for a hash permit before it is told to try again (503).
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) async fn redirect(
    State(state): State<crate::State>,
    code: Result<CodePath, Error>,
    // The request itself, not its `Parts` (an extractor that clones the headers and
    // extensions): the hot path allocates nothing it does not keep.
    request: Request,
) -> Response {
    let committing = AtomicBool::new(false);
    let timeout = state.inner.gate.gateway.request_timeout();
    within_deadline(
        timeout,
        &committing,
        visit(&state, code, request, &committing),
    )
    .await
}

/// `answer`, or past the deadline every request has (`KURZ_REQUEST_TIMEOUT_SECS`) 503 and the
/// page that says to try again. The redirect routes keep their own deadline rather than sit
/// inside the gateway's `time_limit` layer: a timer made for every request (and the layer's
/// boxing) cost a cache-hit redirect a sixth of its throughput, and such a redirect waits for
/// nothing. So the answer is polled once first, and only one that has to wait (a cache miss,
/// a limited link's count, a password) gets a timer. A visitor is answered with a page, not
/// the API's JSON. Once `committing` is set (a limited link's click is being committed,
/// [`links::limit::take_click`]) the answer is awaited past the deadline: cut there, the click
/// could be used up with nobody redirected.
async fn within_deadline(
    timeout: std::time::Duration,
    committing: &AtomicBool,
    answer: impl Future<Output = Response>,
) -> Response {
    let mut answer = std::pin::pin!(answer);
    if let Poll::Ready(response) =
        std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await
    {
        return response;
    }
    match tokio::time::timeout(timeout, answer.as_mut()).await {
        Ok(response) => response,
        Err(_) if committing.load(Ordering::Acquire) => answer.await,
        Err(_) => page(StatusCode::SERVICE_UNAVAILABLE, pages::UNAVAILABLE),
    }
}

/// The answer to a visit of `/{code}` (or `/{code}+`, the preview).
async fn visit(
    state: &crate::State,
    code: Result<CodePath, Error>,
    request: Request,
    committing: &AtomicBool,
) -> Response {
    let (request, _) = request.into_parts();
    if let Err(response) = crate::rate_limit::check_redirect(state, &request).await {
        return response;
    }
    let Ok(CodePath(code)) = code else {
        // Boxed, like the other paths a plain visit does not take: a visit's future is moved
        // with every request, and would otherwise be as large as its largest path.
        return Box::pin(preview_or_not_found(state, code)).await;
    };
    let link = match load(state, &code).await {
        Ok(link) => link,
        Err(response) => return response,
    };
    let now = OffsetDateTime::now_utc();
    let visitor = Visitor::of(state, &request, &link.record, now);
    let decision = decide(&link.record, &visitor.visit(now, 0));
    let Decision::Redirect {
        status,
        location,
        cache_control,
        variant,
    } = decision
    else {
        return other_answer(&decision);
    };
    let rules = link.record.rules();
    if rules.max_clicks.is_some() && request.method == Method::GET && !visitor.agent.bot {
        match Box::pin(links::limit::take_click(
            state,
            link.record.link_id,
            committing,
        ))
        .await
        {
            Ok(Take::Taken) => {}
            // Another visit took the last click since the record was read.
            Ok(Take::UsedUp) => {
                return other_answer(&decide(&link.record, &visitor.visit(now, u64::MAX)));
            }
            Ok(Take::Changed) => {
                // This instance's record is stale (its invalidation late, or lost with the
                // listener's connection): the visitor's retry reads PostgreSQL.
                state.inner.redirects.cache.invalidate(code.as_str()).await;
                let mut response = page(StatusCode::SERVICE_UNAVAILABLE, pages::UNAVAILABLE);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            Err(err) => return failure(&err, &code),
        }
    }
    let Some(location) = link.location_header(location) else {
        tracing::error!(%code, "a decided location is not a header value");
        return page(StatusCode::INTERNAL_SERVER_ERROR, pages::UNAVAILABLE);
    };
    record_click(state, &request, &link.record, code, visitor, variant, now);
    (
        StatusCode::from_u16(status.code()).unwrap_or(StatusCode::FOUND),
        [
            (header::LOCATION, location),
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

/// `GET|HEAD /{code}+` (the `+` also as `%2B`): where the link goes instead of going there
/// (`shortlink::pages::preview_of`), no click; a disabled, expired, used-up or unknown link
/// answers as its visit does. Any other path that is not a code: 404.
async fn preview_or_not_found(state: &crate::State, path: Result<CodePath, Error>) -> Response {
    let code = match &path {
        Err(Error::LinkNotFound(path)) => path.strip_suffix('+').map(ShortCode::parse),
        _ => None,
    };
    let Some(Ok(code)) = code else {
        return not_found().await;
    };
    let link = match load(state, &code).await {
        Ok(link) => link,
        Err(response) => return response,
    };
    match pages::preview_of(&link.record, OffsetDateTime::now_utc(), 0) {
        Ok(preview) => {
            let short_url = state.inner.public_url.short_url(code.as_str());
            (
                [
                    (header::CACHE_CONTROL, "private, max-age=60"),
                    (HeaderName::from_static("x-robots-tag"), "noindex"),
                ],
                Html(pages::preview(&short_url, &preview)),
            )
                .into_response()
        }
        Err(decision) => other_answer(&decision),
    }
}

/// The link of `code` (cache first), or the answer when there is none or it cannot be read.
async fn load(
    state: &crate::State,
    code: &ShortCode,
) -> Result<std::sync::Arc<CachedLink>, Response> {
    let cached = state
        .inner
        .redirects
        .cache
        .get_or_load(code.as_str(), || find_record(state, code))
        .await;
    match cached {
        Ok(Some(link)) => Ok(link),
        Ok(None) => Err(not_found().await),
        Err(err) => Err(failure(&err, code)),
    }
}

/// The link of `code` as visits see it: read from the read replica when there is one, and
/// from the primary when the replica finds none (a link created moments ago may not have
/// reached it) or the link changed lately (the replica may still have it as it was). Looked
/// up together with the other visits' codes that miss meanwhile (`lookup.rs`).
pub(crate) async fn find_record(
    state: &crate::State,
    code: &ShortCode,
) -> Result<Option<shortlink::redirect::LinkRecord>, Error> {
    let reads = state.reads();
    // Without a replica every read is the primary's: no look-up of recent changes.
    if reads.has_replica() && state.inner.redirects.cache.changed_lately(code.as_str()) {
        return links::store::find_record(reads.primary(), code).await;
    }
    crate::lookup::find(state, code).await
}

/// The answer when the database could not answer for `code`.
fn failure(err: &Error, code: &ShortCode) -> Response {
    if let Error::Unavailable(err) = err {
        tracing::warn!(error = %err, %code, "cannot resolve code: database unavailable");
        page(StatusCode::SERVICE_UNAVAILABLE, pages::UNAVAILABLE)
    } else {
        tracing::error!(error = ?err, %code, "cannot resolve code");
        page(StatusCode::INTERNAL_SERVER_ERROR, pages::UNAVAILABLE)
    }
}

/// Every answer but a redirect to the link's destinations: none of them takes a click.
fn other_answer(decision: &Decision<'_>) -> Response {
    match *decision {
        Decision::Disabled => page(StatusCode::NOT_FOUND, pages::NOT_FOUND),
        Decision::Password => password_page(StatusCode::UNAUTHORIZED, PasswordProblem::None),
        Decision::Fallback { location } => match HeaderValue::try_from(location) {
            Ok(location) => (
                StatusCode::FOUND,
                [
                    (header::LOCATION, location),
                    // Only while the link is off: never kept by a browser.
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("private, no-store"),
                    ),
                ],
            )
                .into_response(),
            Err(_) => page(StatusCode::GONE, pages::EXPIRED),
        },
        // A redirect here is one that may not be taken (its clicks are used up).
        Decision::Expired | Decision::Redirect { .. } => page(StatusCode::GONE, pages::EXPIRED),
    }
}

/// What a request says about its visitor, read once for the decision and for the click. For
/// a plain link nothing is read here: its decision needs none of it.
struct Visitor<'r> {
    country: Option<&'r str>,
    agent: shortlink::agent::Agent,
    accept_language: Option<&'r str>,
    query: Option<&'r str>,
    /// The day's visitor key, made before the decision only for an A/B split (else for the
    /// click, as before rules).
    key: Option<String>,
    unlocked: bool,
}

impl<'r> Visitor<'r> {
    fn of(
        state: &crate::State,
        request: &'r Parts,
        record: &LinkRecord,
        now: OffsetDateTime,
    ) -> Self {
        let rules = record.rules();
        if rules.is_plain() {
            return Self {
                country: None,
                agent: classify(None),
                accept_language: None,
                query: None,
                key: None,
                unlocked: false,
            };
        }
        let header = |name: &HeaderName| header_text(request, name);
        let user_agent = user_agent_of(request);
        let user_agent = user_agent.as_deref();
        let key = if rules.split.is_empty() {
            None
        } else {
            visitor_key_of(state, request, user_agent, now)
        };
        let unlocked = rules.password.as_ref().is_some_and(|hash| {
            state.inner.redirects.unlock_key.is_unlocked(
                record.link_id,
                hash,
                cookies_of(request).as_deref(),
                now.unix_timestamp(),
            )
        });
        Self {
            country: header(&state.inner.gate.gateway.country_header),
            // By what the click's event keeps of it, as ingest classifies the stored click: the
            // click a visit takes (or not) and the one stored are a person's, or a bot's, alike.
            agent: classify(user_agent.map(shortlink::edge::kept_user_agent)),
            accept_language: header(&header::ACCEPT_LANGUAGE),
            query: request.uri.query(),
            key,
            unlocked,
        }
    }

    fn visit(&self, now: OffsetDateTime, clicks_in_flight: u64) -> Visit<'_> {
        Visit {
            now,
            country: self.country,
            agent: self.agent,
            accept_language: self.accept_language,
            query: self.query,
            visitor: self.key.as_deref(),
            unlocked: self.unlocked,
            clicks_in_flight,
        }
    }
}

/// A request header's text, when it is visible ASCII.
fn header_text<'r>(request: &'r Parts, name: &HeaderName) -> Option<&'r str> {
    request
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// The `Cookie` header's text, read as the edge reads it: another cookie of the domain with
/// bytes that are not ASCII must not hide the unlock cookie (a visitor who gave the right
/// password would be asked again, for ever). Several `Cookie` fields (as HTTP/2 may send
/// them) are one list.
fn cookies_of(request: &Parts) -> Option<String> {
    let mut fields = request.headers.get_all(header::COOKIE).iter();
    let first = String::from_utf8_lossy(fields.next()?.as_bytes()).into_owned();
    Some(fields.fold(first, |mut all, field| {
        all.push_str("; ");
        all.push_str(&String::from_utf8_lossy(field.as_bytes()));
        all
    }))
}

/// The `User-Agent`, read as the edge reads it: a byte that is not UTF-8 is replaced rather
/// than losing the whole header (which would make the visitor a bot here and not there).
fn user_agent_of(request: &Parts) -> Option<std::borrow::Cow<'_, str>> {
    request
        .headers
        .get(header::USER_AGENT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()))
}

/// The day's visitor key of a request: `None` without a client address.
fn visitor_key_of(
    state: &crate::State,
    request: &Parts,
    user_agent: Option<&str>,
    at: OffsetDateTime,
) -> Option<String> {
    let ip = state.inner.redirects.client_ip.of_request(request)?;
    Some(state.inner.redirects.visitor_salt.key(
        &state.inner.redirects.visitor_secret,
        at.date(),
        &ip.to_string(),
        user_agent.unwrap_or_default(),
    ))
}

/// The day's salt of the visitor keys, kept for the day: a key then costs one HMAC rather
/// than two (`shortlink::visitor::DailySalt`).
#[derive(Debug, Default)]
pub(crate) struct VisitorSalt(std::sync::Mutex<Option<DailySalt>>);

impl VisitorSalt {
    /// [`shortlink::visitor::visitor_key`], with the day's salt made once.
    fn key(&self, secret: &[u8], day: time::Date, ip: &str, user_agent: &str) -> String {
        let salt = {
            let mut kept = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*kept {
                Some(salt) if salt.day() == day => salt.clone(),
                _ => kept.insert(DailySalt::new(secret, day)).clone(),
            }
        };
        salt.key(ip, user_agent)
    }
}

/// A new click's id: the second it was made at (32 bits, big-endian, so ids sort by time),
/// then 96 bits no other click of any process has, made without a call to the operating
/// system per click: a keyed hash (SipHash, keys random per process) of a counter, unique
/// within the process and unpredictable, so ids say nothing of how many clicks this
/// deployment serves. Sorting by time keeps the inserts into the clicks' key, `(id, at)`, at
/// the right edge of the index, in memory, rather than at a random page of it (a random id
/// cost 12.5 us a row against 7 us at 600 k rows, and more as the index outgrows memory).
fn click_id(at: OffsetDateTime) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEYS: std::sync::LazyLock<[std::hash::RandomState; 2]> =
        std::sync::LazyLock::new(|| [std::hash::RandomState::new(), std::hash::RandomState::new()]);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 16];
    let unix_second = u32::try_from(at.unix_timestamp()).unwrap_or_default();
    id[..4].copy_from_slice(&unix_second.to_be_bytes());
    let [high, low] = KEYS.each_ref().map(|keys| {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(n);
        hasher.finish().to_be_bytes()
    });
    id[4..12].copy_from_slice(&high);
    id[12..].copy_from_slice(&low[..4]);
    hex::encode(id)
}

/// Hands the click to the recorder (never waits). The IP address only goes into the day's
/// visitor key (made here unless the decision needed it already).
fn record_click(
    state: &crate::State,
    request: &Parts,
    record: &LinkRecord,
    code: ShortCode,
    visitor: Visitor<'_>,
    variant: Option<u8>,
    at: OffsetDateTime,
) {
    if !state.inner.clicks.record {
        return;
    }
    let header = |name: &HeaderName| header_text(request, name);
    let user_agent = user_agent_of(request);
    let user_agent = user_agent.as_deref();
    let click = Click {
        link_id: record.link_id,
        at,
        head: request.method == Method::HEAD,
        qr: is_qr_scan(request.uri.query()),
        // As the event would have it, so that a click lands in the same column either way.
        user_agent: user_agent.map(shortlink::edge::kept_user_agent),
    };
    state.inner.clicks.recorder.record_made(&click, || {
        let visitor = visitor
            .key
            .or_else(|| visitor_key_of(state, request, user_agent, at));
        ClickEvent {
            id: click_id(at),
            link_id: click.link_id,
            code,
            at,
            country: header(&state.inner.gate.gateway.country_header).map(str::to_owned),
            referrer: header(&header::REFERER).map(str::to_owned),
            user_agent: user_agent.map(str::to_owned),
            qr: click.qr,
            head: click.head,
            source: ClickSource::Origin,
            visitor,
            variant,
        }
        .bounded()
    });
}

/// `POST /{code}`: an answer to a protected link's password form. Wrong answers are limited
/// per link and visitor address before anything is hashed; a right one sets the unlock
/// cookie and sends the browser back to the link (303), whose GET then redirects.
pub(crate) async fn unlock(
    State(state): State<crate::State>,
    code: Result<CodePath, Error>,
    request: Request,
) -> Response {
    // Nothing here is committed that a cut answer would lose: the flag stays unset.
    let committing = AtomicBool::new(false);
    let timeout = state.inner.gate.gateway.request_timeout();
    within_deadline(timeout, &committing, answer_password(&state, code, request)).await
}

/// The answer to a password form sent to `/{code}`.
async fn answer_password(
    state: &crate::State,
    code: Result<CodePath, Error>,
    request: Request,
) -> Response {
    let (request, body) = request.into_parts();
    if let Err(response) = crate::rate_limit::check_redirect(state, &request).await {
        return response;
    }
    // Every code but a protected link's has GET and HEAD only, as before passwords: a
    // malformed or unknown code too.
    let not_allowed = || {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, HeaderValue::from_static("GET,HEAD"))],
        )
            .into_response()
    };
    let Ok(CodePath(code)) = code else {
        return not_allowed();
    };
    let link = match load(state, &code).await {
        Ok(link) => link,
        Err(response) if response.status() == StatusCode::NOT_FOUND => return not_allowed(),
        Err(response) => return response,
    };
    let record = &link.record;
    let Some(hash) = &record.rules().password else {
        return not_allowed();
    };
    let Ok(body) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.").into_response();
    };
    let now = OffsetDateTime::now_utc();
    let back = || {
        let path = request
            .uri
            .path_and_query()
            .map_or_else(|| request.uri.path(), |path| path.as_str());
        HeaderValue::try_from(path).unwrap_or(HeaderValue::from_static("/"))
    };
    let visitor = Visitor::of(state, &request, record, now);
    let locked = Visit {
        unlocked: false,
        ..visitor.visit(now, 0)
    };
    if decide(record, &locked) != Decision::Password {
        // Disabled, expired or used up meanwhile: nothing to unlock, the link says why.
        return see_other(back(), None);
    }
    // An empty answer is wrong without a hash, and not counted: only answers that cost a hash
    // fill the limiter.
    let Some(attempt) = pages::posted_password(&body).filter(|attempt| !attempt.is_empty()) else {
        return password_page(StatusCode::UNAUTHORIZED, PasswordProblem::Wrong);
    };
    let who = state
        .inner
        .redirects
        .client_ip
        .of_request(&request)
        .map_or_else(|| "unknown".to_owned(), password::network_text);
    let unix = now.unix_timestamp();
    // Counted before the hash (as wrong until it proves right): parallel answers from one
    // visitor cannot hash more than the limit allows.
    let admitted = state
        .lock_password_attempts()
        .admit(record.link_id, &who, unix);
    if let Err(retry_after_secs) = admitted {
        let mut response = password_page(
            StatusCode::TOO_MANY_REQUESTS,
            PasswordProblem::TooMany { retry_after_secs },
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        return response;
    }
    // A hash takes a permit; one that waits long for it is answered "busy" (503), so that a
    // flood waits in no unbounded queue. An answer never hashed, busy or failed, takes back
    // its "wrong": a visitor with the right password is not locked out by a busy origin.
    let permit =
        tokio::time::timeout(HASH_WAIT, state.inner.redirects.password_hashes.acquire()).await;
    let Ok(Ok(_permit)) = permit else {
        state.lock_password_attempts().forgive(record.link_id, &who);
        let mut response = page(StatusCode::SERVICE_UNAVAILABLE, pages::UNAVAILABLE);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let stored = hash.clone();
    match tokio::task::spawn_blocking(move || stored.verify(&attempt)).await {
        Ok(true) => {
            // A right answer takes back its attempt: only wrong ones are limited.
            state.lock_password_attempts().forgive(record.link_id, &who);
            let cookie = state.inner.redirects.unlock_key.cookie(
                record.link_id,
                hash,
                unix,
                crate::accounts::served_over_https(state, &request.headers),
            );
            match HeaderValue::try_from(cookie) {
                Ok(cookie) => see_other(back(), Some(cookie)),
                Err(_) => page(StatusCode::INTERNAL_SERVER_ERROR, pages::UNAVAILABLE),
            }
        }
        Ok(false) => password_page(StatusCode::UNAUTHORIZED, PasswordProblem::Wrong),
        Err(err) => {
            state.lock_password_attempts().forgive(record.link_id, &who);
            tracing::error!(error = %err, %code, "checking a link password failed");
            page(StatusCode::INTERNAL_SERVER_ERROR, pages::UNAVAILABLE)
        }
    }
}

/// `303 See Other` back to the link, with the unlock cookie when there is one.
fn see_other(location: HeaderValue, cookie: Option<HeaderValue>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The password form, never stored by anyone.
fn password_page(status: StatusCode, problem: PasswordProblem) -> Response {
    let mut response = (status, Html(pages::password_form(problem))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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
    page(StatusCode::NOT_FOUND, pages::NOT_FOUND)
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

#[cfg(test)]
mod tests {
    use super::*;

    // Paused time: the deadline passes before the release however slow the machine is.
    #[tokio::test(start_paused = true)]
    async fn an_answer_committing_a_click_is_awaited_past_the_deadline() {
        let deadline = std::time::Duration::from_millis(10);
        for commits in [true, false] {
            let committing = AtomicBool::new(false);
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            let answer = async {
                committing.store(commits, Ordering::Release);
                released.await.ok();
                StatusCode::FOUND.into_response()
            };
            // Released only after the deadline: the answer cannot be ready before it.
            let later = async {
                tokio::time::sleep(deadline * 5).await;
                release.send(()).ok();
            };
            let (response, ()) =
                tokio::join!(within_deadline(deadline, &committing, answer), later);
            let expected = if commits {
                StatusCode::FOUND
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            assert_eq!(response.status(), expected, "committing: {commits}");
        }
    }

    #[test]
    fn click_ids_are_unique_and_sort_by_second() {
        let now = OffsetDateTime::now_utc();
        let ids: Vec<String> = (0..10_000).map(|_| click_id(now)).collect();
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // A later second sorts after every id of an earlier one.
        let later = click_id(now + time::Duration::seconds(1));
        assert!(ids.iter().all(|id| *id < later), "{later}");
        assert!(ids.iter().all(|id| id[..8] == ids[0][..8]));
    }

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
