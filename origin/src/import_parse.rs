//! `POST /api/v1/links/import/parse`: a file exported from another shortener (or from kurz)
//! read by `shortlink::import`, the parsers the `kurz` CLI runs on its own machine, so the
//! dashboard's wasm need not carry them. Destinations are normalised as the CLI normalises
//! them (the `url` feature).
//!
//! Nothing is written and no data is read: the answer is what the file would import (the
//! `CreateLink`s the dashboard then sends to `/links/bulk` in chunks), the rows that failed and
//! each row's warnings. Only callers who may write links may ask (it is the first step of an
//! import), in their workspace like every call.
//!
//! Bounded: a body of at most [`MAX_PARSE_BYTES`] (413 beyond, refused before it is read when
//! its length is declared), at most [`MAX_PARSE_ROWS`] rows (a file with more is refused whole,
//! 422 with field `file`, as soon as the parser meets the one too many), and [`AT_ONCE`] parses
//! per instance, one of them a workspace's (one more is 503 `busy`, before its body is read). The parse runs on a
//! blocking thread, so it never holds up the requests the runtime is serving.

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use shortlink::import::{
    self, FileError, Format, MAX_PARSE_BYTES, MAX_PARSE_ROWS, ParseQuery, ParsedFile,
};
use shortlink::workspace::Permission;

use crate::caller::Caller;
use crate::error::Error;
use crate::extract::ApiQuery;

/// The route, as the router matches it (`gateway::body_limit` gives it [`BODY_LIMIT`]).
pub(crate) const ROUTE: &str = "/api/v1/links/import/parse";

/// The largest file the route reads.
pub(crate) const BODY_LIMIT: usize = MAX_PARSE_BYTES;

/// Parses an instance runs at once: each holds its file and, for a moment, its rows (a few
/// times the file), and takes a core.
pub(crate) const AT_ONCE: usize = 2;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new().route(
        "/links/import/parse",
        post(parse).layer(DefaultBodyLimit::max(BODY_LIMIT)),
    )
}

#[utoipa::path(
    post, path = "/api/v1/links/import/parse", tag = "links",
    params(ParseQuery),
    request_body(
        content = inline(UploadedFile), content_type = "application/octet-stream",
        description = "The file as it was exported (CSV, JSON, JSON lines or SQL), at most 16 MiB.",
    ),
    responses(
        (status = 200, description = "What the file would import: the links (to send to `POST /api/v1/links/bulk`), the rows that failed, the warnings. Nothing was written.", body = shortlink::import::ParsedFile),
        crate::openapi::Refusals,
    ),
)]
pub(crate) async fn parse(
    State(state): State<crate::State>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ParseQuery>,
    request: Request,
) -> Result<impl IntoResponse, Error> {
    let workspace = caller.may(Permission::WriteLinks)?;
    // Busy rather than a wait, before the body is read (`places.rs`). Moved into the parse: a
    // request cut short (its deadline, a client gone) must not free the place while its parse
    // still runs with the file in memory.
    let permit = state.inner.gate.import_parses.take(workspace)?;
    let bytes = Bytes::from_request(request, &state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge { limit: BODY_LIMIT },
            _ => Error::BadRequest(rejection.body_text()),
        })?;
    // The answer is made while the permit is held too: it is about as large as the file.
    let answer = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let parsed = read(&query, &bytes)?;
        serde_json::to_vec(&parsed).map_err(|err| Error::Internal(err.into()))
    })
    .await
    .map_err(|err| Error::Internal(err.into()))??;
    Ok(([(CONTENT_TYPE, "application/json")], answer))
}

// The request's body in the OpenAPI document: the file's bytes as they are (a `Vec<u8>` would
// be documented as an array of numbers). Not a doc comment: it would be the schema's text.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // Only its schema is used.
struct UploadedFile(Vec<u8>);

/// The file as the format asked for, or as the one it looks like.
fn read(query: &ParseQuery, bytes: &[u8]) -> Result<ParsedFile, Error> {
    let format = match query.format {
        Some(format) => format,
        None => {
            import::detect(query.name.as_deref().unwrap_or_default(), bytes).ok_or_else(|| {
                let ids: Vec<&str> = Format::ALL.iter().map(|f| f.id()).collect();
                Error::invalid(
                    "format",
                    format!(
                        "the file's format could not be recognised: name it ({})",
                        ids.join(", ")
                    ),
                )
            })?
        }
    };
    let rows = import::parse_at_most(format, bytes, MAX_PARSE_ROWS).map_err(|err| match err {
        FileError::TooManyRows { .. } => Error::invalid(
            "file",
            format!(
                "the file holds more than {MAX_PARSE_ROWS} rows: split it, or import it with \
                 the kurz command-line client"
            ),
        ),
        other => Error::invalid("file", other.to_string()),
    })?;
    Ok(ParsedFile::of(format, rows))
}
