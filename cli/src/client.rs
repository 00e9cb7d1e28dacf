//! The one client of the API that every command uses: where the origin is, the key, and each
//! call, with the retries that are safe for it.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shortlink::ShortCode;
use shortlink::api::{BulkCreate, BulkResult, CreateLink, ErrorBody, Link, LinkPage};
use shortlink::query::{LinkListQuery, StatsQuery};
use shortlink::stats::Stats;

use crate::Error;

/// Attempts of one request that got no answer (the first included).
const NETWORK_ATTEMPTS: u32 = 4;
/// Waits for a rate limit or a busy origin, per request, before giving up.
const LIMITED_WAITS: u32 = 30;
/// A `Retry-After` longer than this is not waited for: the command fails and says so.
const LONGEST_WAIT: Duration = Duration::from_secs(120);

/// A client of one origin's `/api/v1`, with one API key.
pub struct Client {
    http: reqwest::Client,
    /// `<origin>/api/v1/` (with the origin's own path prefix, if it has one), ending in `/` so
    /// that a relative path joins under it.
    api: Url,
    /// Sent only in the `Authorization` header, never shown (see the `Debug` impl).
    key: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.api.as_str())
            .finish_non_exhaustive()
    }
}

/// Whether a request may be sent again when it got no answer, or an answer that says the
/// origin may have started on it (a 503 other than `busy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reading, or a create carrying an `Idempotency-Key`: sending it twice does it once.
    Safe,
    /// Only when it surely never reached the origin (the connection was refused) or the
    /// origin refused it before doing anything (429, 503 `busy`).
    IfUntouched,
}

impl Client {
    /// `origin` is where the origin answers, e.g. `https://kurz.example.com`.
    pub fn new(origin: &str, key: String) -> Result<Self, Error> {
        let mut api = Url::parse(origin).map_err(|err| {
            Error::Config(format!("the origin URL {origin:?} is not a URL: {err}"))
        })?;
        if !matches!(api.scheme(), "http" | "https") || api.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "the origin URL {origin:?} must start with http:// or https://"
            )));
        }
        let path = format!("{}/api/v1/", api.path().trim_end_matches('/'));
        api.set_path(&path);
        api.set_query(None);
        api.set_fragment(None);
        let http = reqwest::Client::builder()
            .user_agent(concat!("kurz-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // Between two reads of an answer, not for the whole of it: an export streams
            // for as long as it takes.
            .read_timeout(Duration::from_secs(120))
            .build()?;
        Ok(Self { http, api, key })
    }

    /// `POST /links`: one link. The key makes a retry after a lost answer create it once.
    pub async fn create(&self, link: &CreateLink, idempotency_key: &str) -> Result<Link, Error> {
        let request = self
            .request(Method::POST, "links")?
            .header("idempotency-key", idempotency_key);
        self.send_for_json(with_json(request, link)?, Repeat::Safe)
            .await
    }

    /// `GET /links`: one page.
    pub async fn list(&self, query: &LinkListQuery) -> Result<LinkPage, Error> {
        let request = self.request(Method::GET, "links")?.query(query);
        self.send_for_json(request, Repeat::Safe).await
    }

    /// `GET /links/{code}/stats`, or `GET /stats` for the whole workspace.
    pub async fn stats(
        &self,
        code: Option<&ShortCode>,
        query: &StatsQuery,
    ) -> Result<Stats, Error> {
        let path = match code {
            // A code is letters, digits, `-` and `_`: nothing to escape in a path.
            Some(code) => format!("links/{}/stats", code.as_str()),
            None => "stats".to_owned(),
        };
        let request = self.request(Method::GET, &path)?.query(query);
        self.send_for_json(request, Repeat::Safe).await
    }

    /// `POST /links/bulk`: at most [`shortlink::api::MAX_BULK_LINKS`] links. With an
    /// `Idempotency-Key` (or as a dry run, which writes nothing) it is sent again after a lost
    /// answer, like a read: the origin answers a repeat with the first answer. Without one, only
    /// when the origin surely did not act on it.
    pub async fn bulk<L: Serialize>(
        &self,
        body: &BulkCreate<L>,
        idempotency_key: Option<&str>,
    ) -> Result<BulkResult, Error> {
        let mut request = self.request(Method::POST, "links/bulk")?;
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let repeat = match idempotency_key.is_some() || body.dry_run {
            true => Repeat::Safe,
            false => Repeat::IfUntouched,
        };
        self.send_for_json(with_json(request, body)?, repeat).await
    }

    /// `GET /links/export`: the answer, whose body the caller streams.
    pub async fn export(&self, query: &impl Serialize) -> Result<Response, Error> {
        let request = self.request(Method::GET, "links/export")?.query(query);
        self.send(request, Repeat::Safe).await
    }

    fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, Error> {
        let url = self
            .api
            .join(path)
            .map_err(|err| Error::Config(format!("cannot make a URL of {path:?}: {err}")))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", self.key))
            .map_err(|_| Error::Config("KURZ_API_KEY holds characters no key has".to_owned()))?;
        authorization.set_sensitive(true);
        Ok(self
            .http
            .request(method, url)
            .header(AUTHORIZATION, authorization))
    }

    /// Sends `request` until it gets an answer to keep: a 2xx, or a refusal that waiting does
    /// not change. A 2xx is never sent again.
    async fn send(&self, request: RequestBuilder, repeat: Repeat) -> Result<Response, Error> {
        let mut unanswered = 0;
        let mut waits = 0;
        // Whether an attempt so far may have been done: then so may the request, however
        // the last attempt failed.
        let mut reached = false;
        loop {
            // Bodies here are bytes in memory, which a builder can always copy.
            let attempt = request.try_clone().ok_or_else(|| {
                Error::Config("a request with a streamed body cannot be retried".to_owned())
            })?;
            let err = match attempt.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let wait = retry_after(&response);
                    let err = refusal(response).await;
                    // A rate limit and a full origin refuse before any work; another 503
                    // (the database away, a timeout) may come after some.
                    let refused_before_work = status == StatusCode::TOO_MANY_REQUESTS
                        || matches!(&err, Error::Api { detail, .. } if detail.code == "busy");
                    let may_wait = refused_before_work
                        || (status == StatusCode::SERVICE_UNAVAILABLE && repeat == Repeat::Safe);
                    match wait {
                        Some(wait) if may_wait && waits < LIMITED_WAITS => {
                            reached |= !refused_before_work;
                            waits += 1;
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        _ => return Err(unsure(err, reached)),
                    }
                }
                Err(err) => err,
            };
            unanswered += 1;
            let may_repeat = repeat == Repeat::Safe || err.is_connect();
            if !may_repeat || unanswered >= NETWORK_ATTEMPTS {
                return Err(unsure(err.into(), reached));
            }
            reached |= !err.is_connect();
            // 0.25 s, 0.5 s, 1 s: enough for a restarting origin or a dropped connection.
            tokio::time::sleep(Duration::from_millis(250 << (unanswered - 1))).await;
        }
    }

    /// Sends `request` as [`Self::send`] does and reads its JSON answer. With
    /// [`Repeat::Safe`], an answer whose body breaks off (a proxy, a dropped connection) is
    /// asked for again like one that never came: for a create with its key, the origin
    /// answers the repeat with the first answer, where giving up would leave the caller
    /// unsure what was made.
    async fn send_for_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        repeat: Repeat,
    ) -> Result<T, Error> {
        let mut broken = 0;
        loop {
            let attempt = request.try_clone().ok_or_else(|| {
                Error::Config("a request with a streamed body cannot be retried".to_owned())
            })?;
            // After a body that broke off, the request was done: whatever comes of a repeat.
            let response = self
                .send(attempt, repeat)
                .await
                .map_err(|err| unsure(err, broken > 0))?;
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(body) => {
                    return serde_json::from_slice(&body).map_err(|err| Error::UnexpectedAnswer {
                        status,
                        what: format!("{err}: {}", excerpt(&body)),
                    });
                }
                Err(err) => {
                    broken += 1;
                    if repeat != Repeat::Safe || broken >= NETWORK_ATTEMPTS {
                        return Err(err.into());
                    }
                    tokio::time::sleep(Duration::from_millis(250 << (broken - 1))).await;
                }
            }
        }
    }
}

/// `err`, or when an earlier attempt may have been done (`reached`) and `err` does not say
/// so, the same marked [`Error::Unsure`]: an import must not call rows "not created" that a
/// lost answer created.
fn unsure(err: Error, reached: bool) -> Error {
    if reached && !err.may_have_been_done() {
        Error::Unsure(Box::new(err))
    } else {
        err
    }
}

fn with_json(request: RequestBuilder, body: &impl Serialize) -> Result<RequestBuilder, Error> {
    let bytes = serde_json::to_vec(body)
        .map_err(|err| Error::Input(format!("cannot write the request as JSON: {err}")))?;
    Ok(request.header(CONTENT_TYPE, "application/json").body(bytes))
}

/// A refusal: the API's error body, or what else came back.
async fn refusal(response: Response) -> Error {
    let status = response.status().as_u16();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(err) => return Error::Http(err),
    };
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => Error::Api {
            status,
            detail: error,
        },
        Err(_) => Error::UnexpectedAnswer {
            status,
            what: excerpt(&body),
        },
    }
}

/// How long a 429 or 503 asks to wait, when it says so in seconds and not for too long.
fn retry_after(response: &Response) -> Option<Duration> {
    if !matches!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    let seconds: u64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let wait = Duration::from_secs(seconds.max(1));
    (wait <= LONGEST_WAIT).then_some(wait)
}

/// The start of a body that is not the API's, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None if text.is_empty() => "(empty body)".to_owned(),
        None => text.to_owned(),
    }
}
