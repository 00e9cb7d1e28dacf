//! The origin's routes for the edge (`/_edge/*`): resolving a code on a KV miss, and click
//! ingest. Every request must be signed with the shared secret (see `shortlink::signature`);
//! POSTs are also refused when replayed.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::Method;
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::value::RawValue;
use shortlink::edge::{
    ClickEvent, EDGE_PREFIX, INGEST_PATH, IngestResult, NO_LINK_HEADER, RESOLVE_PATH_PREFIX,
};
use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use time::OffsetDateTime;

use crate::analytics::isolate::{Isolated, OnOutage, Unsettled, store_isolating};
use crate::error::Error;
use crate::extract::{ApiJson, CodePath};

/// Largest body of an edge request. The edge posts a queue batch's events in requests of at
/// most 1.5 MiB of messages each (`edge/src/outbox.rs`, `posts`).
pub(crate) const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// How long an edge request's body may take to arrive. The edge sends at most 1.5 MiB from
/// Cloudflare's network; a sender slower than this is not the edge, and would otherwise hold
/// its connection and buffer for as long as it likes.
const BODY_READ_TIME: Duration = Duration::from_secs(10);

/// The edge routes, to be nested under [`EDGE_PREFIX`].
pub(crate) fn routes(state: crate::State) -> axum::Router<crate::State> {
    let nested = |path: &'static str| {
        path.strip_prefix(EDGE_PREFIX)
            .expect("every edge path starts with the prefix (a shortlink test)")
    };
    axum::Router::new()
        .route(
            &format!("{}{{code}}", nested(RESOLVE_PATH_PREFIX)),
            get(resolve),
        )
        .route(nested(INGEST_PATH), post(ingest))
        .fallback(|| async { Error::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            state,
            require_signature,
        ))
}

/// The link record for a code, with its version, for the edge to store in KV; 404 when there
/// is none.
///
/// Read from PostgreSQL, not through the redirect cache: the edge keeps whatever it stores
/// until a newer version replaces it, so it should start from the newest. With a read
/// replica, read as the redirects read (`redirect::find_record`): a link the replica lacks,
/// or that changed lately, is read from the primary. This costs one
/// indexed query per KV miss, and the edge remembers misses and unknown codes in KV.
async fn resolve(
    State(state): State<crate::State>,
    CodePath(code): CodePath,
) -> Result<Response, Error> {
    match crate::redirect::find_record(&state, &code).await? {
        Some(record) => Ok(Json(record).into_response()),
        None => Ok((
            [(NO_LINK_HEADER, "1")],
            Error::LinkNotFound(code.to_string()),
        )
            .into_response()),
    }
}

/// An ingest batch as the origin reads it: each event apart, so that one this release cannot
/// read does not keep the others from being stored (see [`ingest`]).
#[derive(Deserialize)]
struct ReceivedBatch {
    events: Vec<Box<RawValue>>,
}

/// Stores a batch of the edge's click events (`shortlink::edge::IngestBatch`). An event
/// PostgreSQL refuses is parked in `clicks_parked` and the rest are stored, so the batch is
/// acknowledged instead of retried by the queue for days and parked whole; an outage is
/// answered 503 and the queue retries.
///
/// An event this release cannot read (a worker of a newer release wrote a new source, say,
/// while the origins are being upgraded) is not stored, and the answer names it
/// (`IngestResult::unread`): the edge retries the messages holding such events, until an
/// origin of the newer release stores them, and acknowledges the others. What no release
/// reads ends parked in KV, as a message the origin never takes does. Before, such an event
/// had the whole batch refused, every other click of it waiting for the upgrade too.
async fn ingest(
    State(state): State<crate::State>,
    ApiJson(batch): ApiJson<ReceivedBatch>,
) -> Result<Json<IngestResult>, Error> {
    let received = batch.events.len();
    let mut events = Vec::with_capacity(received);
    let mut unread = Vec::new();
    for (at, raw) in batch.events.iter().enumerate() {
        match serde_json::from_str::<ClickEvent>(raw.get()) {
            Ok(event) => events.push(event.bounded()),
            Err(err) => {
                if unread.is_empty() {
                    tracing::warn!(event = at, error = %err, "a click event this release cannot read (a newer worker's?): left to the edge's retries");
                }
                unread.push(at);
            }
        }
    }
    let mut isolated = Isolated::default();
    let stored = store_isolating(&state, &events, &mut OnOutage::GiveUp, &mut isolated).await;
    // Whatever came after: the events parked before an outage stay parked.
    metrics::counter!("kurz_clicks_parked_total").increment(isolated.parked);
    stored.map_err(|unsettled| match unsettled {
        // Any failure that does not blame an event (see `is_outage`): the queue retries.
        Unsettled::Outage(err) => Error::Unavailable(err),
        // Only a shutdown's deadline gives this, and ingest has none.
        Unsettled::Deadline { .. } => Error::Busy,
    })?;
    if isolated.unparkable > 0 {
        // Acknowledging would lose them: the queue retries, and in the end parks them in KV.
        return Err(Error::Internal(anyhow::anyhow!(
            "{} refused click events could not be parked",
            isolated.unparkable
        )));
    }
    Ok(Json(IngestResult {
        received,
        inserted: isolated.inserted,
        unread,
    }))
}

/// Refuses unsigned, forged, stale and (for POST) replayed requests with 401.
async fn require_signature(
    State(state): State<crate::State>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let Some(secret) = state.inner.edge.secret.as_deref() else {
        // Without a secret the edge routes do not exist.
        return Err(Error::NotFound);
    };
    let (parts, body) = request.into_parts();
    // What needs no body first: a request unsigned, malformed or stale is refused before a
    // byte of its body is read, and one that declares a body over the limit before it sends it.
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    signature::check_headers(
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        OffsetDateTime::now_utc().unix_timestamp(),
    )
    .map_err(|err| Error::EdgeUnauthorized(err.to_string()))?;
    let declared = header(CONTENT_LENGTH.as_str()).and_then(|n| n.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(Error::PayloadTooLarge { limit: BODY_LIMIT });
    }
    let body = tokio::time::timeout(BODY_READ_TIME, axum::body::to_bytes(body, BODY_LIMIT))
        .await
        .map_err(|_| Error::Timeout)?
        .map_err(|_| Error::PayloadTooLarge { limit: BODY_LIMIT })?;
    // The signed path is the full one (`/_edge/...`); inside this nested router the URI has
    // lost its prefix, so take the original.
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path(), |original| original.path());
    verify(&state, secret, &parts, path, &body).await?;
    Ok(next.run(Request::from_parts(parts, Body::from(body))).await)
}

/// Checks that the edge signed a request (its method, `signed_path`, timestamp and `body`)
/// with `secret` a moment ago, and for a POST that it was not received before: the one check
/// of the edge's requests, for the `/_edge/*` routes and the visitors' requests it forwards.
pub(crate) async fn verify(
    state: &crate::State,
    secret: &str,
    parts: &Parts,
    signed_path: &str,
    body: &[u8],
) -> Result<(), Error> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let given = header(SIGNATURE_HEADER);
    signature::verify(
        secret.as_bytes(),
        parts.method.as_str(),
        signed_path,
        header(TIMESTAMP_HEADER),
        given,
        body,
        OffsetDateTime::now_utc().unix_timestamp(),
    )
    .map_err(|err| Error::EdgeUnauthorized(err.to_string()))?;
    if parts.method == Method::POST {
        let fresh = sqlx::query(
            "INSERT INTO edge_request_nonces (signature) VALUES ($1) ON CONFLICT DO NOTHING",
        )
        .bind(given)
        .execute(state.db())
        .await?;
        if fresh.rows_affected() == 0 {
            return Err(Error::EdgeUnauthorized(
                "this request was already received".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Forgets request signatures once they are too old to be accepted anyway.
pub(crate) async fn forget_old_nonces(state: crate::State) {
    let keep = 2 * signature::MAX_SKEW_SECS + 60;
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let deleted = sqlx::query(
            "DELETE FROM edge_request_nonces WHERE seen_at < now() - make_interval(secs => $1)",
        )
        .bind(keep as f64)
        .execute(state.db())
        .await;
        if let Err(err) = deleted {
            tracing::warn!(error = %err, "cannot delete old edge request signatures");
        }
    }
}
