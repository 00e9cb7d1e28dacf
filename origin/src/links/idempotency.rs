//! `Idempotency-Key` on link creation (draft-ietf-httpapi-idempotency-key-header), single
//! (`POST /api/v1/links`) and bulk (`POST /api/v1/links/bulk`): a create sent again with the
//! same key and the same body gets the first answer (and creates nothing), for [`KEEP`] after
//! it. The answer is stored as its JSON (a `Link`, or a `BulkResult`), whichever route gave it.
//!
//! The key is claimed in the transaction that creates the links (`0025_idempotency_keys.sql`),
//! before they are inserted: a second request with the same key waits for the first's
//! transaction, then finds its answer, even when both asked for the same custom codes. A create
//! that fails (or a bulk create that writes nothing) leaves no claim behind, so retrying it
//! tries again.

use std::time::Duration;

use axum::http::HeaderMap;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};

use crate::caller::{Actor, WorkspaceId};
use crate::error::Error;

pub(crate) const HEADER: &str = "idempotency-key";
/// Longest key: room for any UUID or ULID a client makes, with a prefix.
const MAX_KEY_CHARS: usize = 255;
/// How long a first answer is kept: longer than any client's retries.
pub(crate) const KEEP: Duration = Duration::from_secs(24 * 3600);

/// The routes that take an `Idempotency-Key`. Each fingerprints its bodies apart, so a key
/// sent to both is a reused key (422) whatever the bodies, and never answers one route with
/// the other's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route {
    Create,
    BulkCreate,
}

impl Route {
    fn fingerprint_domain(self) -> &'static [u8] {
        match self {
            // As before bulk creates took keys, so that keys in flight keep their fingerprints.
            Self::Create => b"kurz idempotency fingerprint\0",
            Self::BulkCreate => b"kurz idempotency fingerprint: bulk create\0",
        }
    }
}

/// A create that carries an `Idempotency-Key`: the key, and the fingerprint of its body.
#[derive(Debug)]
pub(crate) struct Retryable {
    key: String,
    fingerprint: [u8; 32],
}

impl Retryable {
    /// The request's key, if it sent one. A key that is empty, too long or not printable ASCII
    /// is a 400 rather than ignored: a client that believes its create is safe to retry must
    /// hear that it is not.
    ///
    /// The fingerprint is an HMAC of the body under `secret` (the body may carry a link's
    /// password; a plain hash of it could be guessed offline by whoever reads the table).
    pub(crate) fn from_request(
        headers: &HeaderMap,
        route: Route,
        body: &[u8],
        secret: &[u8],
    ) -> Result<Option<Self>, Error> {
        let mut sent = headers.get_all(HEADER).iter();
        let Some(value) = sent.next() else {
            return Ok(None);
        };
        if sent.next().is_some() {
            return Err(bad_key("send one Idempotency-Key header, not several"));
        }
        // Sent as a structured-field string ("..."), or bare as most clients do.
        let text = value
            .to_str()
            .map_err(|_| bad_key("the Idempotency-Key must be printable ASCII"))?
            .trim();
        let key = text
            .strip_prefix('"')
            .and_then(|quoted| quoted.strip_suffix('"'))
            .unwrap_or(text);
        if key.is_empty() || key.len() > MAX_KEY_CHARS {
            return Err(bad_key(&format!(
                "the Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters"
            )));
        }
        if !key
            .bytes()
            .all(|byte| byte.is_ascii_graphic() || byte == b' ')
        {
            return Err(bad_key("the Idempotency-Key must be printable ASCII"));
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .map_err(|err| Error::Internal(anyhow::anyhow!("idempotency secret: {err}")))?;
        mac.update(route.fingerprint_domain());
        mac.update(body);
        Ok(Some(Self {
            key: key.to_owned(),
            fingerprint: mac.finalize().into_bytes().into(),
        }))
    }
}

fn bad_key(message: &str) -> Error {
    Error::BadRequest(message.to_owned())
}

/// Who the key belongs to: one caller's keys never answer another's requests.
fn owner(actor: &Actor) -> String {
    match actor {
        Actor::User { id, .. } => format!("user:{id}"),
        Actor::Key { id, .. } => format!("key:{id}"),
    }
}

/// What a claim found.
#[derive(Debug)]
pub(crate) enum Claim<T> {
    /// The key is this request's now: create the links, then [`remember`] the answer.
    New,
    /// The same request was answered before: this answer.
    Answered(Box<T>),
}

/// Claims `request`'s key in `tx`, or finds the answer it was given. A key older than
/// [`KEEP`] that the clean-up has not deleted yet is claimed afresh.
pub(crate) async fn claim<T: DeserializeOwned>(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    actor: &Actor,
    request: &Retryable,
) -> Result<Claim<T>, Error> {
    let owner = owner(actor);
    let claimed: Option<bool> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (workspace_id, actor, key, fingerprint)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (workspace_id, actor, key) DO UPDATE
             SET fingerprint = EXCLUDED.fingerprint, response = NULL, created_at = now()
             WHERE idempotency_keys.created_at < now() - make_interval(secs => $5)
         RETURNING true",
    )
    .bind(workspace.get())
    .bind(&owner)
    .bind(&request.key)
    .bind(&request.fingerprint[..])
    .bind(KEEP.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_some() {
        return Ok(Claim::New);
    }
    // The answer as text, read only once the fingerprint matched: a key reused on the other
    // route holds an answer of another type.
    let (fingerprint, response): (Vec<u8>, Option<String>) = sqlx::query_as(
        "SELECT fingerprint, response::text FROM idempotency_keys
         WHERE workspace_id = $1 AND actor = $2 AND key = $3",
    )
    .bind(workspace.get())
    .bind(&owner)
    .bind(&request.key)
    .fetch_one(&mut *tx)
    .await?;
    let response = response.ok_or_else(|| {
        Error::Internal(anyhow::anyhow!(
            "an idempotency key was committed without its answer"
        ))
    })?;
    Ok(Claim::Answered(Box::new(answer_of(
        request,
        &fingerprint,
        &response,
    )?)))
}

/// The answer the same request was given, if it was answered within [`KEEP`]: read before a
/// create checks its body, so that a retry gets the first answer even where the checks now
/// say otherwise (an `expires_at` that has passed since). A key claimed and not yet answered
/// is left to [`claim`], which waits for it.
pub(crate) async fn answered<T: DeserializeOwned>(
    db: &PgPool,
    workspace: WorkspaceId,
    actor: &Actor,
    request: &Retryable,
) -> Result<Option<T>, Error> {
    let row: Option<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT fingerprint, response::text FROM idempotency_keys
         WHERE workspace_id = $1 AND actor = $2 AND key = $3 AND response IS NOT NULL
           AND created_at >= now() - make_interval(secs => $4)",
    )
    .bind(workspace.get())
    .bind(owner(actor))
    .bind(&request.key)
    .bind(KEEP.as_secs_f64())
    .fetch_optional(db)
    .await?;
    row.map(|(fingerprint, response)| answer_of(request, &fingerprint, &response))
        .transpose()
}

/// A stored answer, if it was given to a request with `request`'s body.
fn answer_of<T: DeserializeOwned>(
    request: &Retryable,
    fingerprint: &[u8],
    response: &str,
) -> Result<T, Error> {
    if fingerprint != request.fingerprint {
        return Err(Error::IdempotencyKeyReused);
    }
    serde_json::from_str(response)
        .map_err(|err| Error::Internal(anyhow::anyhow!("a stored idempotent answer: {err}")))
}

/// Stores the answer of the create that claimed `request`'s key, in its transaction.
pub(crate) async fn remember<T: Serialize>(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    actor: &Actor,
    request: &Retryable,
    answer: &T,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET response = $4
         WHERE workspace_id = $1 AND actor = $2 AND key = $3",
    )
    .bind(workspace.get())
    .bind(owner(actor))
    .bind(&request.key)
    .bind(sqlx::types::Json(answer))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes answers older than [`KEEP`], at start and hourly ([`crate::db::hourly`]). Creates
/// (a bulk create is one) are rate-limited, so the table holds at most a day of a
/// deployment's creates with keys.
pub(crate) async fn forget_old_forever(db: PgPool) {
    crate::db::hourly("idempotency keys", || async {
        let deleted = sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(KEEP.as_secs_f64())
        .execute(&db)
        .await?;
        Ok(deleted.rows_affected())
    })
    .await;
}
