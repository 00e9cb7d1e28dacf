//! `POST /api/v1/links/bulk`: up to [`shortlink::api::MAX_BULK_LINKS`] links in one request,
//! each created or refused on its own (all or nothing when `atomic`), or only checked (`dry_run`).
//!
//! Each item gets the checks of a single create and the same errors, field names included
//! (the field is the item's own: `destination`, not `links[3].destination`). What makes it
//! fast is that the database sees the batch, not the items: one transaction per request, the
//! ids from the sequence in one call, one multi-row insert whose claim of the codes
//! (`link_codes`, `ON CONFLICT`) reports those that are taken, and one statement each for the audit entries, the edge's outbox and
//! the webhooks' `link.created` messages.
//!
//! With an `Idempotency-Key` (`idempotency.rs`, claimed first in that transaction) a request
//! sent again gets the first `BulkResult` and creates nothing, so a client that lost an
//! answer can resend the chunk safely.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::value::RawValue;
use shortlink::ShortCode;
use shortlink::api::{BulkCreate, BulkItemResult, BulkResult, CreateLink, Link};
use shortlink::password::{LinkPassword, PasswordHash};
use shortlink::webhook::EventType;
use shortlink::workspace::Permission;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::idempotency::{self, Claim, Retryable, Route};
use super::store::{self, NewLink};
use super::{MAX_CODE_ATTEMPTS, check_new, hash_password};
use crate::audit::{self, Change};
use crate::caller::{Caller, WorkspaceId};
use crate::error::Error;
use crate::extract::ApiJsonBytes;
use crate::outbox;
use crate::webhooks::events as webhooks;

/// The route, as the router matches it (`gateway::body_limit` gives it [`BODY_LIMIT`]).
pub(crate) const ROUTE: &str = "/api/v1/links/bulk";

/// The largest body of a bulk create (`shortlink::api::MAX_BULK_BYTES`, which the clients'
/// chunks keep to). The API's own limit (`error::BODY_LIMIT`) is sized for one link.
pub(crate) const BODY_LIMIT: usize = shortlink::api::MAX_BULK_BYTES;

/// Bulk creates an instance runs at once (so at most this many bodies are in memory), half of
/// them one workspace's; one more is refused before its body is read.
pub(crate) const AT_ONCE: usize = 4;

/// Passwords a bulk create hashes at once (each takes a core for about 10 ms), so a request
/// of a thousand protected links leaves the other cores to the other requests.
const HASHES_AT_ONCE: usize = 2;

#[utoipa::path(
    post, path = "/api/v1/links/bulk", tag = "links",
    params(("Idempotency-Key" = Option<String>, Header, description = "A retried bulk create with the same key (and body) gets the first answer and creates nothing; another body with the key is 422. A dry run ignores it.")),
    request_body = shortlink::api::BulkCreate,
    responses(
        (status = 200, description = "One result per item, in the request's order: created (with the link), would_create (a dry run), failed (with the error a single create would give), or rolled_back (an atomic request in which another item failed).", body = shortlink::api::BulkResult),
        crate::openapi::Refusals,
    ),
)]
pub(crate) async fn create(
    State(state): State<crate::State>,
    caller: Caller,
    request: Request,
) -> Result<Response, Error> {
    let workspace = caller.may(Permission::WriteLinks)?;
    // Busy (503, `Retry-After: 1`) rather than a wait (`places.rs`), as the API's own cap
    // refuses too (`gateway::concurrency_limit`); half of the places at most one workspace's.
    let _place = state.inner.gate.bulk_creates.take(workspace)?;
    let headers = request.headers().clone();
    // Each item as raw JSON, parsed on its own below: a malformed one fails alone.
    let body = ApiJsonBytes::<BulkCreate<Box<RawValue>>>::from_request(request, &state).await?;
    // A dry run writes nothing, so it is safe to send again without a key (and its key, if
    // it sent one, is not claimed: the real request may come with it next).
    let retryable = match body.value.dry_run {
        true => None,
        false => Retryable::from_request(
            &headers,
            Route::BulkCreate,
            &body.bytes,
            &state.inner.redirects.visitor_secret,
        )?,
    };
    let request = body.value;
    drop(body.bytes);
    // Before the items are checked and their passwords hashed (a chunk of 1,000 protected
    // links is seconds of PBKDF2): a retry of a request answered gets its first answer.
    if let Some(retryable) = &retryable
        && let Some(result) =
            idempotency::answered::<BulkResult>(state.db(), workspace, &caller.actor, retryable)
                .await?
    {
        return Ok(answer(result, true));
    }
    let mut batch = Batch::parse(&state, &request.links, OffsetDateTime::now_utc())?;
    drop(request.links);
    // A dry run writes nothing, nor does an atomic request in which an item failed.
    let writes_nothing = |batch: &Batch| request.dry_run || (request.atomic && batch.any_failed());
    let passwords = if !writes_nothing(&batch) {
        hash_passwords(&batch.pending).await?
    } else {
        HashMap::new()
    };

    let mut tx = state.db().begin().await?;
    // First in the transaction: the same request sent again waits here for this one's
    // commit, then finds its answer.
    if let Some(retryable) = &retryable
        && let Claim::Answered(result) =
            idempotency::claim(&mut tx, workspace, &caller.actor, retryable).await?
    {
        tx.rollback().await?;
        return Ok(answer(*result, true));
    }
    batch.check_blocklist(&mut tx).await?;
    if writes_nothing(&batch) {
        // Nothing is written: the codes that are taken are looked up rather than met.
        batch.check_taken(&mut tx).await?;
        tx.rollback().await?;
        let outcome = match request.dry_run {
            true => BulkItemResult::WouldCreate,
            false => BulkItemResult::RolledBack,
        };
        return Ok(answer(batch.finish(|_| outcome.clone()), false));
    }
    let created = batch.insert(&state, &mut tx, workspace, &passwords).await?;
    if created.is_empty() || (request.atomic && batch.any_failed()) {
        // Nothing written (every item failed, or one of an atomic request), the key's claim
        // included: a retry tries again.
        tx.rollback().await?;
        return Ok(answer(batch.finish(|_| BulkItemResult::RolledBack), false));
    }
    let changes = created
        .values()
        .map(|row| {
            Ok(Change {
                action: "link.created",
                target: ("link", row.id),
                before: None,
                after: Some(row.audited()?),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    audit::record_many(&mut tx, workspace, caller.audit_actor(), changes).await?;
    let codes: Vec<String> = created.values().map(|row| row.code.clone()).collect();
    if state.inner.edge.sync.is_some() {
        let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
        outbox::record_changes(&mut tx, &codes).await?;
    }
    let (indexes, links): (Vec<usize>, Vec<Link>) = created
        .into_iter()
        .map(|(index, row)| Ok((index, row.into_link(&state.inner.public_url)?)))
        .collect::<Result<Vec<_>, Error>>()?
        .into_iter()
        .unzip();
    webhooks::link_events(&mut tx, workspace, EventType::LinkCreated, &links).await?;
    let mut created: HashMap<usize, Link> = indexes.into_iter().zip(links).collect();
    let result = batch.finish(|index| {
        match created.remove(&index) {
            Some(link) => BulkItemResult::Created {
                link: Box::new(link),
            },
            // Every item not failed was inserted (or the request failed above).
            None => BulkItemResult::RolledBack,
        }
    });
    if let Some(retryable) = &retryable {
        idempotency::remember(&mut tx, workspace, &caller.actor, retryable, &result).await?;
    }
    tx.commit().await?;
    // A visit before these links existed may have cached "no such code".
    for code in &codes {
        state.inner.redirects.cache.invalidate(code).await;
    }
    if let Some(edge) = &state.inner.edge.sync {
        edge.wake.notify_one();
    }
    crate::webhooks::wake(&state);
    Ok(answer(result, false))
}

/// A bulk create's answer (200); `replayed`: the first answer to the same request, sent again
/// with its `Idempotency-Key`.
fn answer(result: BulkResult, replayed: bool) -> Response {
    let mut response = Json(result).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// The items of one request on their way: those still good, and the errors of the others.
struct Batch {
    /// Items that passed every check so far, by their index in the request.
    pending: Vec<(usize, CreateLink)>,
    /// The error of each item that failed, by its index.
    failed: HashMap<usize, Error>,
    /// How many items the request had.
    len: usize,
}

impl Batch {
    /// Parses each item and runs the checks of a single create that need no database; an
    /// item whose custom code an earlier item has fails as a taken code.
    fn parse(
        state: &crate::State,
        raw: &[Box<RawValue>],
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let mut batch = Self {
            pending: Vec::with_capacity(raw.len()),
            failed: HashMap::new(),
            len: raw.len(),
        };
        let mut codes = HashSet::new();
        for (index, item) in raw.iter().enumerate() {
            let checked = parse_item(item)
                .and_then(|body| check_new(state, &body, now).map(|()| body))
                .and_then(|body| match &body.code {
                    Some(code) if !codes.insert(code.clone()) => Err(Error::CodeTaken {
                        code: code.to_string(),
                    }),
                    _ => Ok(body),
                });
            match checked {
                Ok(body) => batch.pending.push((index, body)),
                Err(err) => batch.fail(index, err)?,
            }
        }
        Ok(batch)
    }

    /// Records an item's own error; a failure that is not about the item (the database, a
    /// bug) fails the request instead.
    fn fail(&mut self, index: usize, err: Error) -> Result<(), Error> {
        if !err.status().is_client_error() {
            return Err(err);
        }
        self.pending.retain(|(pending, _)| *pending != index);
        self.failed.insert(index, err);
        Ok(())
    }

    fn any_failed(&self) -> bool {
        !self.failed.is_empty()
    }

    /// The blocklist's check of a single create, for all pending items at once, in `tx` (so
    /// a rule added meanwhile sees these links or is seen, as for a single create).
    async fn check_blocklist(&mut self, tx: &mut PgConnection) -> Result<(), Error> {
        let bodies = self.pending.iter().map(|(_, body)| body);
        let checked = crate::abuse::blocklist::check_creates(tx, bodies).await?;
        let refused: Vec<(usize, Error)> = self
            .pending
            .iter()
            .zip(checked)
            .filter_map(|((index, _), checked)| checked.err().map(|err| (*index, err)))
            .collect();
        for (index, err) in refused {
            self.fail(index, err)?;
        }
        Ok(())
    }

    /// Fails each pending item whose custom code a live link has (a dry run, or an atomic
    /// request that will write nothing).
    async fn check_taken(&mut self, tx: &mut PgConnection) -> Result<(), Error> {
        let codes: Vec<&str> = self
            .pending
            .iter()
            .filter_map(|(_, body)| body.code.as_ref().map(ShortCode::as_str))
            .collect();
        let taken: HashSet<String> = store::taken_codes(&mut *tx, &codes)
            .await?
            .into_iter()
            .collect();
        let refused: Vec<(usize, Error)> = self
            .pending
            .iter()
            .filter_map(|(index, body)| {
                let code = body.code.as_ref()?;
                taken.contains(code.as_str()).then(|| {
                    let err = Error::CodeTaken {
                        code: code.to_string(),
                    };
                    (*index, err)
                })
            })
            .collect();
        for (index, err) in refused {
            self.fail(index, err)?;
        }
        Ok(())
    }

    /// Inserts every pending item in one statement per round, and returns the rows created
    /// by item index (in the request's order, which the audit log and outbox keep). An item whose custom code is taken fails (`code_taken`, as a single
    /// create); one whose generated code is taken (by a custom slug, here or in the request)
    /// draws another id in the next round.
    async fn insert(
        &mut self,
        state: &crate::State,
        tx: &mut PgConnection,
        workspace: WorkspaceId,
        passwords: &HashMap<usize, PasswordHash>,
    ) -> Result<BTreeMap<usize, store::LinkRow>, Error> {
        let custom: HashSet<ShortCode> = self
            .pending
            .iter()
            .filter_map(|(_, body)| body.code.clone())
            .collect();
        let mut created = BTreeMap::new();
        let mut waiting: Vec<usize> = (0..self.pending.len()).collect();
        for _ in 0..MAX_CODE_ATTEMPTS {
            if waiting.is_empty() {
                break;
            }
            let ids = store::next_ids(&mut *tx, waiting.len()).await?;
            let mut codes = Vec::with_capacity(waiting.len());
            // `None`: the id's code is a reserved word (`metrics`); the item waits for the next
            // round, as for a taken code.
            for (&slot, &id) in waiting.iter().zip(&ids) {
                let (_, body) = &self.pending[slot];
                codes.push(match &body.code {
                    Some(code) => Some(code.clone()),
                    None => {
                        let id = u64::try_from(id).map_err(|e| Error::Internal(e.into()))?;
                        match state.inner.redirects.scrambler.encode(id) {
                            Err(shortlink::Error::CodeReserved { .. }) => None,
                            code => Some(code?),
                        }
                    }
                });
            }
            let new: Vec<NewLink<'_>> = waiting
                .iter()
                .zip(&ids)
                .zip(&codes)
                .filter_map(|(slot_id, code)| Some((slot_id, code.as_ref()?)))
                // A generated code that a custom code of the request has waits for the next
                // round (the insert would give it to whichever row came first).
                .filter(|((slot, _), code)| {
                    self.pending[**slot].1.code.is_some() || !custom.contains(*code)
                })
                .map(|((&slot, &id), code)| {
                    let (index, body) = &self.pending[slot];
                    NewLink {
                        id,
                        code,
                        body,
                        password: passwords.get(index),
                    }
                })
                .collect();
            let mut inserted: HashMap<i64, store::LinkRow> =
                store::insert_many(&mut *tx, workspace, &new)
                    .await?
                    .into_iter()
                    .map(|row| (row.id, row))
                    .collect();
            let mut next = Vec::new();
            for (&slot, (&id, code)) in waiting.iter().zip(ids.iter().zip(&codes)) {
                let (index, body) = &self.pending[slot];
                match (inserted.remove(&id), code) {
                    (Some(row), _) => {
                        created.insert(*index, row);
                    }
                    (None, Some(code)) if body.code.is_some() => {
                        let err = Error::CodeTaken {
                            code: code.to_string(),
                        };
                        self.failed.insert(*index, err);
                    }
                    (None, _) => {
                        tracing::info!(?code, "generated code taken or reserved; drawing another");
                        next.push(slot);
                    }
                }
            }
            waiting = next;
        }
        if !waiting.is_empty() {
            return Err(Error::Internal(anyhow::anyhow!(
                "{MAX_CODE_ATTEMPTS} generated codes in a row were taken"
            )));
        }
        self.pending
            .retain(|(index, _)| !self.failed.contains_key(index));
        Ok(created)
    }

    /// The answer: each failed item's error, and for every other item what `outcome` says.
    fn finish(mut self, mut outcome: impl FnMut(usize) -> BulkItemResult) -> BulkResult {
        let mut results = Vec::with_capacity(self.len);
        let (mut created, mut failed) = (0, 0);
        for index in 0..self.len {
            let result = match self.failed.remove(&index) {
                Some(err) => BulkItemResult::Failed {
                    error: err.detail(),
                },
                None => outcome(index),
            };
            match result {
                BulkItemResult::Created { .. } => created += 1,
                BulkItemResult::Failed { .. } => failed += 1,
                BulkItemResult::WouldCreate | BulkItemResult::RolledBack => {}
            }
            results.push(result);
        }
        BulkResult {
            results,
            created,
            failed,
        }
    }
}

/// An item of the request as a link to create, refused as a single create's body would be.
fn parse_item(item: &RawValue) -> Result<CreateLink, Error> {
    // Not an object: serde's message names no field, and `extract::parse` would take the
    // value it quotes for one.
    if !item.get().starts_with('{') {
        return Err(Error::InvalidInput {
            message: "each link must be a JSON object".to_owned(),
            field: None,
        });
    }
    crate::extract::parse(item.get().as_bytes())
}

/// The hash of each pending item's password, by item index: [`HASHES_AT_ONCE`] at a time, on
/// the blocking threads (`hash_password`).
async fn hash_passwords(
    pending: &[(usize, CreateLink)],
) -> Result<HashMap<usize, PasswordHash>, Error> {
    let passwords: Vec<(usize, LinkPassword)> = pending
        .iter()
        .filter_map(|(index, body)| Some((*index, body.password.clone()?)))
        .collect();
    futures_util::stream::iter(passwords)
        .map(|(index, password)| async move { Ok((index, hash_password(&password).await?)) })
        .buffer_unordered(HASHES_AT_ONCE)
        .try_collect()
        .await
}
