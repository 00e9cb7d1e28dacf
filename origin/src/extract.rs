//! Request extractors whose every rejection is the API's own error: `ApiJson<T>` for bodies
//! and `ApiQuery<T>` for query strings (both naming the field at fault), `CodePath` for the
//! `{code}` in a path and `IdPath` for a numeric id in one.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use shortlink::ShortCode;

use crate::error::{BODY_LIMIT, Error};

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = json_bytes(req, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// A JSON body like [`ApiJson`], with the bytes it was read from (to fingerprint a request,
/// see `links::idempotency`).
#[derive(Debug, Clone)]
pub(crate) struct ApiJsonBytes<T> {
    pub(crate) value: T,
    pub(crate) bytes: Bytes,
}

impl<T, S> FromRequest<S> for ApiJsonBytes<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = json_bytes(req, state).await?;
        Ok(Self {
            value: parse(&bytes)?,
            bytes,
        })
    }
}

/// The body of a request that must say it is JSON, within the body limit in force.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if !is_json {
        return Err(Error::UnsupportedMediaType);
    }
    let limit = req
        .extensions()
        .get::<crate::gateway::BodyLimit>()
        .map_or(BODY_LIMIT, |limit| limit.0);
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge { limit }
        } else {
            Error::BadRequest(rejection.body_text())
        }
    })
}

/// The query string, parsed like a JSON body: a value that breaks a rule is a 422 naming the
/// parameter (`?to=9999-12-31T23:30:00Z` names `to`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parses a query string; every failure is a value breaking a rule (there is no syntax to get
/// wrong: any string is a list of pairs).
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Error> {
    let deserializer =
        serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let field = if path == "." {
            // Unknown parameters are reported at the top: the name is in the message.
            message.split('`').nth(1).map(str::to_owned)
        } else {
            Some(path)
        };
        Error::InvalidInput { message, field }
    })
}

/// The `{code}` of a path. A code that is not even well-formed (or not UTF-8) cannot name a
/// link, so it is a 404 decided without a query.
#[derive(Debug, Clone)]
pub(crate) struct CodePath(pub(crate) ShortCode);

impl<S: Send + Sync> FromRequestParts<S> for CodePath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(code) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound)?;
        ShortCode::try_from(code.clone())
            .map(CodePath)
            .map_err(|_| Error::LinkNotFound(code))
    }
}

/// Parses a JSON body; syntax errors are 400, values that break a rule are 422 with the field.
/// A NUL the body named (an unknown field's name, a variant) is shown as U+FFFD: PostgreSQL
/// stores no NUL in text or `jsonb`, and an answer is kept there (an idempotent bulk request's).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string().replace('\0', "\u{fffd}");
        let inner = err.into_inner();
        let message = without_position(&inner.to_string()).replace('\0', "\u{fffd}");
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." {
                    // Missing and unknown fields are reported at the parent: take the name from
                    // the message ("missing field `destination`").
                    message.split('`').nth(1).map(str::to_owned)
                } else {
                    Some(path)
                };
                Error::InvalidInput { message, field }
            }
            _ => Error::MalformedJson(format!("the request body is not valid JSON: {message}")),
        }
    })
}

/// serde_json appends " at line 1 column 42" to its messages; the field name says more.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use shortlink::api::CreateLink;

    use super::*;

    #[test]
    fn classifies_errors() {
        let cases: &[(&str, u16, Option<&str>)] = &[
            ("{", 400, None),
            ("not json", 400, None),
            ("", 400, None),
            ("{}", 422, Some("destination")),
            (
                r#"{"destination":"ftp://x.example"}"#,
                422,
                Some("destination"),
            ),
            (r#"{"destination":42}"#, 422, Some("destination")),
            (
                r#"{"destination":"https://x.example","code":"a/b"}"#,
                422,
                Some("code"),
            ),
            (
                r#"{"destination":"https://x.example","status":200}"#,
                422,
                Some("status"),
            ),
            (
                r#"{"destination":"https://x.example","expires_at":"soon"}"#,
                422,
                Some("expires_at"),
            ),
            (
                r#"{"destination":"https://x.example","nope":1}"#,
                422,
                Some("nope"),
            ),
        ];
        for (body, status, field) in cases {
            let err = parse::<CreateLink>(body.as_bytes()).expect_err(body);
            assert_eq!(err.status().as_u16(), *status, "{body}: {err}");
            if let Error::InvalidInput {
                field: got,
                message,
            } = &err
            {
                assert_eq!(got.as_deref(), *field, "{body}: {message}");
                assert!(!message.contains(" at line "), "{message}");
            }
        }
    }
}

/// A numeric id in a path; anything else names nothing (404, decided without a query).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdPath(pub(crate) i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound)?;
        id.parse().map(IdPath).map_err(|_| Error::NotFound)
    }
}
