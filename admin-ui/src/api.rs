//! Calls to the origin's `/api/v1`, with the session cookie (same origin) and the CSRF token.
//!
//! Every failure becomes an [`ApiError`] a person can act on: the API's own message (and the
//! field at fault), or what went wrong on the way (network, unexpected answer).

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shortlink::api::{ErrorBody, Link, LinkPage};
use shortlink::stats::Stats;

/// The signed-in person, as `GET /api/v1/session` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    pub username: String,
    pub csrf_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status; 0 when no answer came.
    pub status: u16,
    /// The API's error code (`invalid_input`, `code_taken`, ...), or `network`/`unexpected`.
    pub code: String,
    pub message: String,
    /// The request field at fault, to show the message next to it.
    pub field: Option<String>,
}

impl ApiError {
    fn network(err: &gloo_net::Error) -> Self {
        Self {
            status: 0,
            code: "network".to_owned(),
            message: format!(
                "The server could not be reached ({err}). Check the connection and try again."
            ),
            field: None,
        }
    }

    fn unexpected(status: u16, what: &str) -> Self {
        Self {
            status,
            code: "unexpected".to_owned(),
            message: format!(
                "The server gave an answer the dashboard did not expect ({what}). Try again; if it persists, check the origin's log."
            ),
            field: None,
        }
    }

    /// The session is gone (expired, or signed out elsewhere): show the sign-in.
    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }

    /// The message for `field`, if this error is about it.
    pub fn for_field(&self, field: &str) -> Option<String> {
        (self.field.as_deref() == Some(field)).then(|| self.message.clone())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `POST /api/v1/links` and `PATCH`: what the person typed, unparsed, so the origin's
/// validation (the one source of the rules) answers with the field at fault.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkForm {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Some(None)` clears the expiry (JSON `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
}

async fn answer<T: DeserializeOwned>(
    response: Result<Response, gloo_net::Error>,
) -> Result<T, ApiError> {
    let response = response.map_err(|err| ApiError::network(&err))?;
    let status = response.status();
    if response.ok() {
        return response
            .json::<T>()
            .await
            .map_err(|err| ApiError::unexpected(status, &err.to_string()));
    }
    Err(error_of(response).await)
}

async fn error_of(response: Response) -> ApiError {
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => ApiError {
            status,
            code: body.error.code,
            message: body.error.message,
            field: body.error.field,
        },
        Err(_) => ApiError::unexpected(status, &format!("HTTP {status}")),
    }
}

async fn no_content(response: Result<Response, gloo_net::Error>) -> Result<(), ApiError> {
    let response = response.map_err(|err| ApiError::network(&err))?;
    if response.ok() {
        Ok(())
    } else {
        Err(error_of(response).await)
    }
}

fn with_csrf(request: RequestBuilder, session: &Session) -> RequestBuilder {
    request.header("X-CSRF-Token", &session.csrf_token)
}

fn json_body<T: Serialize>(request: RequestBuilder, body: &T) -> Result<Request, ApiError> {
    request
        .json(body)
        .map_err(|err| ApiError::unexpected(0, &err.to_string()))
}

/// Query-string encoding of one value.
pub fn encode(value: &str) -> String {
    js_sys::encode_uri_component(value).into()
}

pub async fn current_session() -> Result<Session, ApiError> {
    answer(Request::get("/api/v1/session").send().await).await
}

pub async fn sign_in(username: &str, password: &str) -> Result<Session, ApiError> {
    #[derive(Serialize)]
    struct Body<'a> {
        username: &'a str,
        password: &'a str,
    }
    let request = json_body(
        Request::post("/api/v1/session"),
        &Body { username, password },
    )?;
    answer(request.send().await).await
}

pub async fn sign_out(session: &Session) -> Result<(), ApiError> {
    no_content(
        with_csrf(Request::delete("/api/v1/session"), session)
            .send()
            .await,
    )
    .await
}

pub async fn list_links(
    query: &str,
    sort: &str,
    limit: u32,
    cursor: &str,
) -> Result<LinkPage, ApiError> {
    let url = format!(
        "/api/v1/links?q={}&sort={sort}&limit={limit}&cursor={}",
        encode(query),
        encode(cursor)
    );
    answer(Request::get(&url).send().await).await
}

pub async fn get_link(code: &str) -> Result<Link, ApiError> {
    answer(
        Request::get(&format!("/api/v1/links/{}", encode(code)))
            .send()
            .await,
    )
    .await
}

pub async fn create_link(session: &Session, form: &LinkForm) -> Result<Link, ApiError> {
    let request = json_body(with_csrf(Request::post("/api/v1/links"), session), form)?;
    answer(request.send().await).await
}

pub async fn update_link(session: &Session, code: &str, form: &LinkForm) -> Result<Link, ApiError> {
    let url = format!("/api/v1/links/{}", encode(code));
    let request = json_body(with_csrf(Request::patch(&url), session), form)?;
    answer(request.send().await).await
}

pub async fn delete_link(session: &Session, code: &str) -> Result<(), ApiError> {
    let url = format!("/api/v1/links/{}", encode(code));
    no_content(with_csrf(Request::delete(&url), session).send().await).await
}

/// The stats of one link (`Some(code)`) or of the whole account, for a query string made by
/// [`crate::range::StatsRange::query`].
pub async fn stats(code: Option<&str>, query: &str) -> Result<Stats, ApiError> {
    let url = match code {
        Some(code) => format!("/api/v1/links/{}/stats?{query}", encode(code)),
        None => format!("/api/v1/stats?{query}"),
    };
    answer(Request::get(&url).send().await).await
}
