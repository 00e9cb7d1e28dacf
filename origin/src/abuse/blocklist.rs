//! The destination blocklist: `/api/v1/abuse/blocklist`, the check of every destination a link
//! create or edit would send visitors to, and the sweep that disables existing links when a
//! rule is added.
//!
//! The check reads the rules from PostgreSQL on each create and edit (the domain rules that
//! could apply by their unique index, the patterns all: there are at most
//! [`MAX_PATTERNS`]), so every instance applies a rule from the moment it commits, with no
//! cache to invalidate.
//!
//! A rule and the links it blocks meet under one advisory lock ([`RULES_LOCK`]): adding a
//! rule holds it exclusively until its row commits, and each create and edit holds it shared
//! from its check until its own commit. So a create or edit either commits before the rule
//! (and the rule's sweep, which starts after, sees the link) or checks after it (and is
//! refused): none slips between the check and the sweep.
//!
//! A sweep disables matching links in every workspace, each change exactly as a `PATCH
//! {"disabled": true}` makes it (`links::store::update`, its audit entry, its outbox row,
//! the cache entry dropped), in batches of [`SCAN`] link ids per transaction. Progress is kept
//! on the rule's row, so a sweep interrupted (a restart) is finished by any instance's
//! [`sweep_forever`]. Removing a rule re-enables nothing: a person decides that, link by link.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use shortlink::abuse::{AddBlockRule, BlockEntry, BlockRule, Blocklist, MAX_REASON_CHARS};
use shortlink::api::{CreateLink, UpdateLink};
use shortlink::rules::{Split, Targets};
use shortlink::webhook::EventType;
use shortlink::{Destination, ShortCode};
use sqlx::PgConnection;
use sqlx::types::Json as Jsonb;
use time::OffsetDateTime;

use crate::audit::{self, ActorRef, Change};
use crate::caller::{Caller, WorkspaceId};
use crate::error::Error;
use crate::extract::{ApiJson, IdPath};
use crate::links::store;
use crate::outbox;

/// Most rules of all kinds: the list is shown whole, and each is typed by a person.
pub(crate) const MAX_RULES: i64 = 10_000;
/// Most patterns: each create and edit reads them all.
pub(crate) const MAX_PATTERNS: i64 = 1_000;
/// Link ids one sweep transaction looks at: a range of the primary key, so each batch costs
/// the same however large the table is, and holds at most this many row locks.
pub(crate) const SCAN: i64 = 2_000;
/// How long adding a rule waits for its sweep before answering (it goes on after).
const SWEEP_WAIT: Duration = Duration::from_secs(5);
/// How often each instance looks for sweeps left unfinished (by an instance that stopped).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The advisory lock (by `hashtext`) that orders rule additions (exclusive) against link
/// creates and edits (shared): see the module's documentation.
const RULES_LOCK: &str = "kurz abuse_blocklist";

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/abuse/blocklist", get(list).post(add))
        .route("/abuse/blocklist/{id}", delete(remove))
}

/// The columns of a [`BlockEntry`].
const ENTRY_COLUMNS: &str =
    "id, rule, kind, reason, created_by, created_at, links_disabled, sweep_done";

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    rule: String,
    kind: String,
    reason: String,
    created_by: String,
    created_at: OffsetDateTime,
    links_disabled: i64,
    sweep_done: bool,
}

impl EntryRow {
    fn into_entry(self) -> BlockEntry {
        BlockEntry {
            id: self.id,
            kind: if self.kind == "pattern" {
                shortlink::abuse::RuleKind::Pattern
            } else {
                shortlink::abuse::RuleKind::Domain
            },
            rule: self.rule,
            reason: self.reason,
            created_by: Some(self.created_by),
            created_at: self.created_at,
            links_disabled: u64::try_from(self.links_disabled).unwrap_or(0),
            sweep_done: self.sweep_done,
        }
    }
}

#[utoipa::path(
    get, path = "/api/v1/abuse/blocklist", tag = "abuse",
    responses((status = 200, description = "The destination blocklist (the operator's admins).", body = shortlink::abuse::Blocklist), crate::openapi::Refusals),
)]
async fn list(State(state): State<crate::State>, caller: Caller) -> Result<Json<Blocklist>, Error> {
    caller.may_operate()?;
    let rows: Vec<EntryRow> = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM abuse_blocklist ORDER BY id DESC"
    ))
    .fetch_all(state.db())
    .await?;
    Ok(Json(Blocklist {
        entries: rows.into_iter().map(EntryRow::into_entry).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/abuse/blocklist", tag = "abuse",
    request_body = shortlink::abuse::AddBlockRule,
    responses((status = 201, description = "The rule; links it blocks are disabled.", body = shortlink::abuse::BlockEntry), crate::openapi::Refusals),
)]
async fn add(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<AddBlockRule>,
) -> Result<(StatusCode, Json<BlockEntry>), Error> {
    let operator = caller.may_operate()?;
    let rule = BlockRule::parse(&body.rule)?;
    let reason = body.reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid(
            "reason",
            format!("reason must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Error::unless_storable("reason", reason)?;
    let actor = caller.audit_actor();
    let mut tx = state.db().begin().await?;
    // One adder at a time, so the caps below are exact across instances; and no link create
    // or edit between its blocklist check and its commit meanwhile (they hold it shared).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(RULES_LOCK)
        .execute(&mut *tx)
        .await?;
    let (rules, patterns): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE kind = 'pattern') FROM abuse_blocklist",
    )
    .fetch_one(&mut *tx)
    .await?;
    if rules >= MAX_RULES
        || (rule.kind() == shortlink::abuse::RuleKind::Pattern && patterns >= MAX_PATTERNS)
    {
        return Err(Error::invalid(
            "rule",
            format!(
                "the blocklist is full (at most {MAX_RULES} rules, {MAX_PATTERNS} of them patterns): remove rules first, or block a whole domain"
            ),
        ));
    }
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO abuse_blocklist (rule, kind, reason, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (rule) DO NOTHING RETURNING id",
    )
    .bind(rule.as_str())
    .bind(rule.kind().as_str())
    .bind(reason)
    .bind(actor_name(&caller))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Err(Error::Conflict {
            code: "rule_exists",
            message: format!("{rule} is already on the blocklist"),
        });
    };
    let fields = serde_json::json!({"rule": rule.as_str(), "kind": rule.kind(), "reason": reason});
    let change = Change {
        action: "abuse.rule_added",
        target: ("blocklist_rule", id),
        before: None,
        after: Some(fields),
    };
    audit::record(&mut tx, operator, actor, change).await?;
    tx.commit().await?;
    // The sweep runs on its own task: the answer waits for it a moment (a small deployment's
    // links are all checked by then), and it goes on beyond a request's timeout.
    let sweeper = state.clone();
    let sweep = tokio::spawn(async move { sweep(&sweeper, id).await });
    match tokio::time::timeout(SWEEP_WAIT, sweep).await {
        Ok(Ok(Err(err))) => {
            tracing::error!(error = ?err, rule = id, "sweep of a new blocklist rule failed; it is retried");
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, rule = id, "sweep of a new blocklist rule panicked");
        }
        Ok(Ok(Ok(()))) | Err(_) => {}
    }
    let row: EntryRow = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM abuse_blocklist WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(state.db())
    .await?
    .ok_or(Error::NotFound)?;
    Ok((StatusCode::CREATED, Json(row.into_entry())))
}

#[utoipa::path(
    delete, path = "/api/v1/abuse/blocklist/{id}", tag = "abuse",
    params(("id" = i64, Path, description = "The rule's id.")),
    responses((status = 204, description = "Removed (links it disabled stay disabled)."), crate::openapi::Refusals),
)]
async fn remove(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, Error> {
    let operator = caller.may_operate()?;
    let mut tx = state.db().begin().await?;
    let removed: Option<(String, String, String)> =
        sqlx::query_as("DELETE FROM abuse_blocklist WHERE id = $1 RETURNING rule, kind, reason")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (rule, kind, reason) = removed.ok_or(Error::NotFound)?;
    let change = Change {
        action: "abuse.rule_removed",
        target: ("blocklist_rule", id),
        before: Some(serde_json::json!({"rule": rule, "kind": kind, "reason": reason})),
        after: None,
    };
    audit::record(&mut tx, operator, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the blocklist says added a rule: the person's or key's name.
fn actor_name(caller: &Caller) -> &str {
    match &caller.actor {
        crate::caller::Actor::User { name, .. } | crate::caller::Actor::Key { name, .. } => name,
    }
}

/// The destinations of a link body, each with the field that holds it.
fn named<'a>(
    destination: Option<&'a Destination>,
    fallback_url: Option<&'a Destination>,
    targets: Option<&'a Targets>,
    split: Option<&'a Split>,
) -> Vec<(String, &'a Destination)> {
    let mut named: Vec<(String, &Destination)> = Vec::new();
    named.extend(destination.map(|d| ("destination".to_owned(), d)));
    named.extend(fallback_url.map(|d| ("fallback_url".to_owned(), d)));
    for (index, target) in targets
        .map_or(&[][..], Targets::as_slice)
        .iter()
        .enumerate()
    {
        named.push((format!("targets[{index}].destination"), &target.destination));
    }
    for (index, variant) in split.map_or(&[][..], Split::as_slice).iter().enumerate() {
        named.push((format!("split[{index}].destination"), &variant.destination));
    }
    named
}

/// Waits for a rule being added to commit, then holds additions off until `tx` ends: called
/// in a link create's or edit's transaction before its check, so a rule added meanwhile
/// either is seen by the check or sees the link in its sweep.
async fn hold_rules(tx: &mut PgConnection) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext($1))")
        .bind(RULES_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Refuses a new link that would send visitors to a blocked destination (422 naming the
/// field). Runs in the create's transaction, before the insert.
pub(crate) async fn check_create(tx: &mut PgConnection, body: &CreateLink) -> Result<(), Error> {
    hold_rules(tx).await?;
    refuse_blocked(tx, &named_of_new(body)).await
}

/// [`check_create`] for many new links at once (a bulk create): the lock taken and the rules
/// read once for all of them, so a batch costs two round trips, not two per link. The answer
/// has each link's own refusal (422 naming its field) or `Ok`, in their order; `Err` is a
/// failure of the check itself.
pub(crate) async fn check_creates<'a>(
    tx: &mut PgConnection,
    bodies: impl IntoIterator<Item = &'a CreateLink>,
) -> Result<Vec<Result<(), Error>>, Error> {
    let named: Vec<Vec<(String, &Destination)>> = bodies.into_iter().map(named_of_new).collect();
    if named.iter().all(Vec::is_empty) {
        return Ok(named.iter().map(|_| Ok(())).collect());
    }
    hold_rules(tx).await?;
    let rules = rules_for(tx, named.iter().flatten().map(|(_, d)| *d)).await?;
    Ok(named.iter().map(|named| blocked(&rules, named)).collect())
}

/// The destinations of a new link, each with its field.
fn named_of_new(body: &CreateLink) -> Vec<(String, &Destination)> {
    named(
        Some(&body.destination),
        body.fallback_url.as_ref(),
        Some(&body.targets),
        Some(&body.split),
    )
}

/// Refuses an edit that sets a blocked destination, or that leaves a link enabled while one
/// of its destinations is blocked (so a link the blocklist disabled cannot simply be switched
/// on again), or disabled with a blocked fallback (where a disabled link sends visitors). A
/// link that is not found is left to the edit to answer. Runs in the edit's transaction,
/// before the update.
pub(crate) async fn check_update(
    state: &crate::State,
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    code: &ShortCode,
    body: &UpdateLink,
) -> Result<(), Error> {
    let sent = named(
        body.destination.as_ref(),
        body.fallback_url.as_ref().and_then(Option::as_ref),
        body.targets.as_ref(),
        body.split.as_ref(),
    );
    hold_rules(tx).await?;
    let link = match store::find(&mut *tx, workspace, code).await {
        Ok(row) => row.into_link(&state.inner.public_url)?,
        Err(Error::LinkNotFound(_)) => return refuse_blocked(tx, &sent).await,
        Err(err) => return Err(err),
    };
    let fallback_url = match &body.fallback_url {
        Some(changed) => changed.as_ref(),
        None => link.fallback_url.as_ref(),
    };
    // A disabled link still sends visitors to its fallback.
    if body.disabled.unwrap_or(link.disabled) {
        let mut checked = sent;
        if body.fallback_url.is_none() {
            checked.extend(fallback_url.map(|d| ("fallback_url".to_owned(), d)));
        }
        return refuse_blocked(tx, &checked).await;
    }
    let after = named(
        Some(body.destination.as_ref().unwrap_or(&link.destination)),
        fallback_url,
        Some(body.targets.as_ref().unwrap_or(&link.targets)),
        Some(body.split.as_ref().unwrap_or(&link.split)),
    );
    refuse_blocked(tx, &after).await
}

/// 422 naming the first field whose destination a rule blocks.
async fn refuse_blocked(
    tx: &mut PgConnection,
    named: &[(String, &Destination)],
) -> Result<(), Error> {
    if named.is_empty() {
        return Ok(());
    }
    let rules = rules_for(tx, named.iter().map(|(_, d)| *d)).await?;
    blocked(&rules, named)
}

/// 422 naming the first field whose destination one of `rules` blocks: the one matching of a
/// link's destinations against the rules, for single checks and batches alike.
fn blocked(rules: &[BlockRule], named: &[(String, &Destination)]) -> Result<(), Error> {
    for (field, destination) in named {
        if let Some(rule) = rules.iter().find(|rule| rule.matches(destination)) {
            return Err(Error::invalid(
                field,
                format!(
                    "{field} is on this deployment's blocklist of abusive destinations ({rule}); links to it cannot be made or enabled"
                ),
            ));
        }
    }
    Ok(())
}

/// The rules that could block any of these destinations: domain rules naming one of their
/// hosts or parent domains (by the unique index), and every pattern.
async fn rules_for<'a>(
    db: &mut PgConnection,
    destinations: impl Iterator<Item = &'a Destination>,
) -> Result<Vec<BlockRule>, Error> {
    let mut domains: Vec<String> = destinations.flat_map(BlockRule::domains_of).collect();
    domains.sort_unstable();
    domains.dedup();
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT rule FROM abuse_blocklist
         WHERE (kind = 'domain' AND rule = ANY($1)) OR kind = 'pattern'",
    )
    .bind(&domains)
    .fetch_all(db)
    .await?;
    // A stored rule that a later release no longer reads is logged and left out: failing
    // the check would refuse every create and edit until someone deletes the rule.
    Ok(texts.iter().filter_map(|text| stored_rule(text)).collect())
}

/// A stored rule, read again; `None` (logged) if this release cannot read it.
fn stored_rule(text: &str) -> Option<BlockRule> {
    BlockRule::parse(text)
        .inspect_err(|err| {
            tracing::error!(rule = text, error = %err, "a rule stored in abuse_blocklist cannot be read: it is not applied; delete it and add it again");
        })
        .ok()
}

/// A live link that a rule's sweep looks at.
#[derive(sqlx::FromRow)]
struct Candidate {
    id: i64,
    workspace_id: i64,
    /// A disabled link is changed only when its fallback is blocked (it still sends there).
    disabled: bool,
    code: String,
    destination: String,
    fallback_url: Option<String>,
    targets: Jsonb<serde_json::Value>,
    split: Jsonb<serde_json::Value>,
}

impl Candidate {
    /// Whether `rule` blocks any destination of the link (`Some`), and its fallback among
    /// them (`Some(true)`); a stored value that is no longer valid is left alone (logged), so
    /// one bad row does not stop the sweep.
    fn blocked_by(&self, rule: &BlockRule) -> Option<bool> {
        let parsed = (|| -> Result<Option<bool>, String> {
            let destination = Destination::parse(&self.destination).map_err(|e| e.to_string())?;
            let fallback_url = self
                .fallback_url
                .as_deref()
                .map(Destination::parse)
                .transpose()
                .map_err(|e| e.to_string())?;
            let targets: Targets =
                serde_json::from_value(self.targets.0.clone()).map_err(|e| e.to_string())?;
            let split: Split =
                serde_json::from_value(self.split.0.clone()).map_err(|e| e.to_string())?;
            let named = named(
                Some(&destination),
                fallback_url.as_ref(),
                Some(&targets),
                Some(&split),
            );
            let fallback = fallback_url.as_ref().is_some_and(|d| rule.matches(d));
            let blocked = if self.disabled {
                fallback
            } else {
                named.iter().any(|(_, d)| rule.matches(d))
            };
            Ok(blocked.then_some(fallback))
        })();
        parsed.unwrap_or_else(|err| {
            tracing::warn!(code = %self.code, error = %err, "link with an invalid stored value skipped by the blocklist sweep");
            None
        })
    }
}

/// Checks every live, enabled link against rule `id` and disables those it blocks (removing
/// a blocked fallback, where a disabled link would still send visitors), a batch
/// of [`SCAN`] ids per transaction, until the rule's sweep is done (or the rule is gone).
/// Several sweepers of one rule (the adding request's, and instances finishing sweeps left
/// undone) take turns by the rule's row lock: each batch continues from `swept_to`.
pub(crate) async fn sweep(state: &crate::State, id: i64) -> Result<(), Error> {
    loop {
        let mut tx = state.db().begin().await?;
        let row: Option<(String, i64, bool)> = sqlx::query_as(
            "SELECT rule, swept_to, sweep_done FROM abuse_blocklist WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((text, swept_to, false)) = row else {
            return Ok(());
        };
        let Some(rule) = stored_rule(&text) else {
            // Nothing to sweep by: marked done, not retried forever.
            sqlx::query("UPDATE abuse_blocklist SET sweep_done = true WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(());
        };
        let last_id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM links")
            .fetch_one(&mut *tx)
            .await?;
        let upto = swept_to.saturating_add(SCAN);
        let codes = disable_batch(state, &mut tx, &rule, (swept_to, upto)).await?;
        let done = last_id.is_none_or(|last| upto >= last);
        sqlx::query(
            "UPDATE abuse_blocklist
             SET swept_to = $2, links_disabled = links_disabled + $3, sweep_done = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(upto)
        .bind(codes.len() as i64)
        .bind(done)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // As after any link change: this instance's cache at once (the others by the
        // trigger's notification), and delivery to the edge woken.
        for code in &codes {
            state.inner.redirects.cache.invalidate(code).await;
        }
        if let Some(edge) = state.inner.edge.sync.as_ref().filter(|_| !codes.is_empty()) {
            edge.wake.notify_one();
        }
        if !codes.is_empty() {
            crate::webhooks::wake(state);
        }
        if done {
            if codes.is_empty() && swept_to == 0 {
                tracing::info!(rule = %text, "blocklist rule swept: no link matched");
            }
            return Ok(());
        }
    }
}

/// Disables the links with ids in `(after, upto]` that `rule` blocks, each as a `PATCH`
/// would; returns their codes.
async fn disable_batch(
    state: &crate::State,
    tx: &mut PgConnection,
    rule: &BlockRule,
    (after, upto): (i64, i64),
) -> Result<Vec<String>, Error> {
    // The needle only narrows what is read (a necessary condition, but for text with a `%`,
    // which `matches` decodes: `/%70hish` is `/phish`); `matches` decides.
    let needle = rule
        .needle()
        .map(|needle| format!("%{}%", store::escape_like(needle)));
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT id, workspace_id, disabled, code, destination, fallback_url, targets, split
         FROM links
         WHERE id > $1 AND id <= $2 AND domain_id = $3 AND deleted_at IS NULL
           AND (NOT disabled OR fallback_url IS NOT NULL)
           AND ($4::text IS NULL OR destination ILIKE $4 OR fallback_url ILIKE $4
                OR targets::text ILIKE $4 OR split::text ILIKE $4
                OR strpos(concat(destination, fallback_url, targets::text, split::text), '%') > 0)
         ORDER BY id",
    )
    .bind(after)
    .bind(upto)
    .bind(store::DEFAULT_DOMAIN)
    .bind(needle)
    .fetch_all(&mut *tx)
    .await?;
    let actor_name = format!("abuse blocklist ({rule})");
    let mut codes = Vec::new();
    for (candidate, fallback) in candidates
        .iter()
        .filter_map(|c| c.blocked_by(rule).map(|fallback| (c, fallback)))
    {
        // Each link in a savepoint: one that cannot be changed (a stored value no longer
        // valid, a failed statement) is rolled back alone and logged, and the sweep goes on;
        // failing the batch would retry it, and fail it, forever.
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        match disable(state, &mut savepoint, candidate, fallback, &actor_name).await {
            Ok(()) => {
                savepoint.commit().await?;
                codes.push(candidate.code.clone());
            }
            Err(err) => {
                savepoint.rollback().await?;
                tracing::warn!(link = candidate.id, code = %candidate.code, rule = %rule, error = ?err, "blocklist sweep could not disable a link it blocks; skipped");
            }
        }
    }
    Ok(codes)
}

/// Disables one link `rule` blocks (and removes its blocked `fallback`), as a `PATCH` would.
async fn disable(
    state: &crate::State,
    tx: &mut PgConnection,
    candidate: &Candidate,
    fallback: bool,
    actor_name: &str,
) -> Result<(), Error> {
    // A disabled link still sends visitors to its fallback: a blocked one goes too.
    let disable = UpdateLink {
        disabled: Some(true),
        fallback_url: fallback.then_some(None),
        ..UpdateLink::default()
    };
    let workspace = WorkspaceId::trusted(candidate.workspace_id);
    let code = ShortCode::parse(&candidate.code)?;
    let (before, after) = store::update(tx, workspace, &code, &disable, None).await?;
    let change = Change {
        action: "link.updated",
        target: ("link", after.id),
        before: Some(before.audited()?),
        after: Some(after.audited()?),
    };
    audit::record(tx, workspace, ActorRef::system(actor_name), change).await?;
    // A stored row that no longer shows as a link loses its webhook, never its disabling.
    match after.into_link(&state.inner.public_url) {
        Ok(link) => {
            crate::webhooks::events::link_event(tx, workspace, EventType::LinkUpdated, &link)
                .await?;
        }
        Err(err) => {
            tracing::warn!(link = candidate.id, error = ?err, "no link.updated webhook for a blocked link that cannot be shown");
        }
    }
    if state.inner.edge.sync.is_some() {
        outbox::record_change(tx, &candidate.code).await?;
    }
    Ok(())
}

/// Finishes, on every instance, the sweeps that are not done (an instance stopped during
/// one), every [`SWEEP_EVERY`].
pub(crate) async fn sweep_forever(state: crate::State) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let pending: Result<Vec<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT id FROM abuse_blocklist WHERE NOT sweep_done ORDER BY id")
                .fetch_all(state.db())
                .await;
        match pending {
            Ok(ids) => {
                for id in ids {
                    if let Err(err) = sweep(&state, id).await {
                        tracing::warn!(error = ?err, rule = id, "blocklist sweep failed; retried later");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot read the blocklist's sweeps"),
        }
    }
}
