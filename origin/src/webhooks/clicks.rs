//! `link.clicked`: clicks go out in batches, each message of at most
//! [`MAX_CLICKS_PER_MESSAGE`] clicks; a workspace's clicks are batched at most once every
//! [`BATCH_EVERY`], into as many messages as they fill.
//!
//! Storing a click (`analytics/store.rs`) copies it into `webhook_clicks_pending`, in the same
//! transaction, when its link's workspace has an enabled endpoint subscribed to `link.clicked`.
//! Which workspaces do is read from PostgreSQL at most every [`SUBSCRIBERS_TTL`] and kept in
//! memory ([`Subscribers`]), so storing clicks costs nothing more while no workspace subscribes;
//! the price is that a new endpoint gets the clicks stored from at most that long after it was
//! made (and a switched-off one, for as long, still has clicks queued, which the batch then
//! drops since no endpoint wants them).
//!
//! Every [`BATCH_EVERY`], [`batch_all`] takes each workspace's oldest pending clicks, up to
//! `KURZ_WEBHOOK_MAX_PENDING_CLICKS` (`max_pending`) in one pass, into messages of at most
//! [`MAX_CLICKS_PER_MESSAGE`] for each subscribed endpoint, and deletes them, in one
//! transaction per workspace (under a lock of the workspace, so two origins never batch one
//! workspace at once; and not within the interval of the workspace's last batch, kept in
//! `webhook_endpoints.clicks_batched_at`, so several origins make no more batches). So a
//! workspace's clicks flow at up to `max_pending` per interval (20,000/s at the default), and
//! a receiver answering 2xx loses none below that.
//!
//! Bounds, decided per endpoint: a taken click is gone from `webhook_clicks_pending`, and each
//! endpoint gets it unless it already has [`backlog_messages`] click messages unsent (a
//! receiver down, or slower than the clicks): then that endpoint alone does not get the
//! batch's messages past its room, and the clicks count as dropped for it, while the other
//! endpoints of the workspace get them. (The simpler of the two correct designs: each endpoint
//! reading the pending clicks by its own cursor would keep a dead endpoint's clicks in one
//! shared table for a day.) A workspace whose clicks come faster than a pass takes them keeps
//! at most `max_pending` more waiting; past that the oldest are dropped. Both drops are logged
//! and counted in `kurz_webhook_clicks_dropped_total`, once per endpoint that misses the click
//! (`reason` = `backlog` or `pending`). A receiver down for a day is switched off (see
//! `deliver.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};

use super::events::{now_rfc3339, random_base};
use crate::error::Error;

/// How often a workspace's pending clicks become messages.
pub(crate) const BATCH_EVERY: Duration = Duration::from_secs(5);
/// Most clicks in one `link.clicked` message (about 250 bytes each).
pub(crate) const MAX_CLICKS_PER_MESSAGE: i64 = 1000;
/// How long the set of subscribed workspaces is used before it is read again.
pub(crate) const SUBSCRIBERS_TTL: Duration = Duration::from_secs(5);
/// Most workspaces the set lists; with more, each click's workspace is looked up in
/// PostgreSQL instead (one index lookup per click), so memory stays bounded.
const MAX_LISTED: usize = 10_000;

/// What storing clicks needs from webhooks (`analytics/store.rs`).
#[derive(Debug)]
pub(crate) struct ClickHooks<'a> {
    /// Which workspaces want their clicks.
    pub(crate) clicked: Listed,
    /// The links of `link.limit_reached` show their short URLs.
    pub(crate) public_url: &'a crate::config::PublicUrl,
}

/// The workspaces with an enabled endpoint subscribed to `link.clicked`, as last read.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    read: Mutex<Option<(Instant, Listed)>>,
}

/// What storing clicks needs to know: which workspaces to queue clicks for.
#[derive(Debug, Clone)]
pub(crate) enum Listed {
    /// These (often none: then nothing is queued, and nothing looked up).
    Workspaces(Arc<[i64]>),
    /// Too many to list, or unknown (PostgreSQL did not answer): look each one up.
    LookUp,
}

impl Listed {
    /// As the store's statement binds it: (any at all, the list or NULL to look up).
    pub(crate) fn as_params(&self) -> (bool, Option<&[i64]>) {
        match self {
            Self::Workspaces(ids) => (!ids.is_empty(), Some(ids)),
            Self::LookUp => (true, None),
        }
    }
}

impl Subscribers {
    /// The set, read again when older than [`SUBSCRIBERS_TTL`].
    pub(crate) async fn get(&self, db: &PgPool) -> Listed {
        if let Some((at, listed)) = self.lock().as_ref()
            && at.elapsed() < SUBSCRIBERS_TTL
        {
            return listed.clone();
        }
        let read: Result<Vec<i64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT DISTINCT workspace_id FROM webhook_endpoints
             WHERE webhook_wants(enabled, events, 'link.clicked') LIMIT $1",
        )
        .bind(MAX_LISTED as i64 + 1)
        .fetch_all(db)
        .await;
        let listed = match read {
            Ok(ids) if ids.len() <= MAX_LISTED => Listed::Workspaces(ids.into()),
            Ok(_) => Listed::LookUp,
            Err(err) => {
                // Storing the clicks will most likely fail too; if not, nothing is missed.
                tracing::warn!(error = %err, "cannot read the workspaces subscribed to link.clicked");
                return Listed::LookUp;
            }
        };
        *self.lock() = Some((Instant::now(), listed.clone()));
        listed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Listed)>> {
        self.read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Click messages one endpoint may have unsent before it misses clicks: `max_pending` clicks
/// in full messages (at least one).
pub(crate) fn backlog_messages(max_pending: u32) -> i64 {
    let max_pending = i64::from(max_pending);
    ((max_pending + MAX_CLICKS_PER_MESSAGE - 1) / MAX_CLICKS_PER_MESSAGE).max(1)
}

/// What one pass of [`batch_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Batched {
    /// Messages written (one per endpoint and batch).
    pub(crate) messages: u64,
    /// Clicks taken into them.
    pub(crate) clicks: u64,
    /// Clicks an endpoint will not get, once per endpoint: over its backlog, or dropped
    /// waiting past `max_pending`.
    pub(crate) dropped: u64,
}

/// Turns the pending clicks of every workspace into messages, a workspace per transaction,
/// skipping those batched less than `gap` ago; returns what it did.
pub(crate) async fn batch_all(
    db: &PgPool,
    max_pending: u32,
    gap: Duration,
) -> Result<Batched, Error> {
    // The distinct workspaces by the index, one lookup each (PostgreSQL's DISTINCT would read
    // every pending click).
    let workspaces: Vec<i64> = sqlx::query_scalar(
        "WITH RECURSIVE w AS (
             (SELECT workspace_id FROM webhook_clicks_pending ORDER BY workspace_id LIMIT 1)
             UNION ALL
             SELECT (SELECT p.workspace_id FROM webhook_clicks_pending p
                     WHERE p.workspace_id > w.workspace_id ORDER BY p.workspace_id LIMIT 1)
             FROM w WHERE w.workspace_id IS NOT NULL
         )
         SELECT workspace_id FROM w WHERE workspace_id IS NOT NULL",
    )
    .fetch_all(db)
    .await?;
    let mut total = Batched::default();
    for workspace in workspaces {
        let done = batch_workspace(db, workspace, max_pending, gap).await?;
        total.messages += done.messages;
        total.clicks += done.clicks;
        total.dropped += done.dropped;
    }
    Ok(total)
}

/// An endpoint of the batched workspace subscribed to `link.clicked`.
#[derive(Debug, sqlx::FromRow)]
struct Subscribed {
    id: i64,
    /// Click messages it can take before its backlog is full.
    room: i64,
    /// Its workspace's clicks were batched less than the gap ago.
    recent: bool,
}

async fn batch_workspace(
    db: &PgPool,
    workspace: i64,
    max_pending: u32,
    gap: Duration,
) -> Result<Batched, Error> {
    let mut tx = db.begin().await?;
    let mine: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('kurz webhook clicks', $1))",
    )
    .bind(workspace)
    .fetch_one(&mut *tx)
    .await?;
    if !mine {
        return Ok(Batched::default());
    }
    // An endpoint's unsent click messages by the pending index (link_id NULL: click batches
    // and test events), at most as many as its backlog holds.
    let backlog = backlog_messages(max_pending);
    let endpoints: Vec<Subscribed> = sqlx::query_as(
        "SELECT e.id,
                $2 - (SELECT count(*) FROM (
                    SELECT 1 FROM webhook_deliveries d
                    WHERE d.endpoint_id = e.id AND d.link_id IS NULL AND d.state = 'pending'
                      AND d.event_type = 'link.clicked'
                    LIMIT $2) unsent) AS room,
                COALESCE(e.clicks_batched_at > now() - make_interval(secs => $3), false)
                    AS recent
         FROM webhook_endpoints e
         WHERE e.workspace_id = $1 AND webhook_wants(e.enabled, e.events, 'link.clicked')
         ORDER BY e.id",
    )
    .bind(workspace)
    .bind(backlog)
    .bind(gap.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    if endpoints.iter().any(|e| e.recent) {
        tx.commit().await?;
        return Ok(Batched::default());
    }
    let subscribed = endpoints.len() as u64;
    let timestamp = now_rfc3339()?;
    let (mut done, mut over_backlog) = (Batched::default(), 0);
    let mut budget = i64::from(max_pending);
    for chunk in 0.. {
        let take = budget.min(MAX_CLICKS_PER_MESSAGE);
        if take == 0 {
            break;
        }
        let to: Vec<i64> = endpoints
            .iter()
            .filter(|e| e.room > chunk)
            .map(|e| e.id)
            .collect();
        let (clicks, messages) = take_clicks(&mut tx, workspace, take, &to, &timestamp).await?;
        done.messages += messages;
        done.clicks += clicks;
        over_backlog += clicks * (subscribed - to.len() as u64);
        budget -= i64::try_from(clicks).unwrap_or(i64::MAX);
        if clicks < take.unsigned_abs() {
            break;
        }
    }
    // Only a pass that took all it may can leave more than `max_pending` waiting: only then
    // is the bound enforced (an index walk of `max_pending` entries, no more than it took).
    let mut past_bound = 0;
    if budget == 0 {
        past_bound = sqlx::query(
            // All from the newest past the bound on (by time, then place): one comparison a
            // row, whatever the plan (see `take_clicks`).
            "DELETE FROM webhook_clicks_pending
             WHERE workspace_id = $1 AND (at, ctid) <= (
                 SELECT at, ctid FROM webhook_clicks_pending WHERE workspace_id = $1
                 ORDER BY at DESC, ctid DESC OFFSET $2 LIMIT 1)",
        )
        .bind(workspace)
        .bind(i64::from(max_pending))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    if done.clicks > 0 {
        let ids: Vec<i64> = endpoints.iter().map(|e| e.id).collect();
        sqlx::query("UPDATE webhook_endpoints SET clicks_batched_at = now() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let past_bound = past_bound * subscribed;
    for (reason, dropped) in [("backlog", over_backlog), ("pending", past_bound)] {
        if dropped > 0 {
            metrics::counter!("kurz_webhook_clicks_dropped_total", "reason" => reason)
                .increment(dropped);
            tracing::warn!(
                workspace,
                dropped,
                reason,
                "webhook clicks dropped (once per endpoint): an endpoint had KURZ_WEBHOOK_MAX_PENDING_CLICKS unsent (backlog), or the workspace had more waiting (pending)"
            );
        }
    }
    done.dropped = over_backlog + past_bound;
    Ok(done)
}

/// Takes the workspace's oldest `take` pending clicks into one message for each endpoint of
/// `to`; returns (clicks taken, messages written). An endpoint deleted meanwhile is left out
/// (`FOR KEY SHARE` waits for its delete), where its foreign key would fail the batch.
async fn take_clicks(
    tx: &mut PgConnection,
    workspace: i64,
    take: i64,
    to: &[i64],
    timestamp: &str,
) -> Result<(u64, u64), Error> {
    let (clicks, messages): (i64, i64) = sqlx::query_as(
        "WITH taken AS (
             -- The oldest $2 as a range up to the last of them, not a list of places
             -- (`ctid = ANY(ARRAY(...))`): a plan made while the table was small scanned it
             -- and searched the list for every row (analytics/rollup.rs).
             DELETE FROM webhook_clicks_pending
             WHERE workspace_id = $1 AND (at, click_id, ctid) <= (
                 SELECT at, click_id, ctid FROM (
                     SELECT at, click_id, ctid FROM webhook_clicks_pending
                     WHERE workspace_id = $1 ORDER BY at, click_id, ctid LIMIT $2
                 ) AS oldest
                 ORDER BY at DESC, click_id DESC, ctid DESC LIMIT 1)
             RETURNING *
         ), body AS (
             SELECT count(*) AS clicks, jsonb_build_object(
                 'type', 'link.clicked', 'timestamp', $3::text,
                 'data', jsonb_build_object('clicks', jsonb_agg(jsonb_build_object(
                     'id', click_id, 'code', code, 'link_id', link_id, 'at', at,
                     'country', country, 'device', device, 'os', os, 'browser', browser,
                     'referrer_host', referrer_host, 'variant', variant, 'qr', qr, 'bot', bot)
                     ORDER BY at, click_id))) AS payload
             FROM taken
         ), sent AS (
             INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload)
             SELECT webhook_message_id($4, e.id), e.id, 'link.clicked', body.payload
             FROM body CROSS JOIN webhook_endpoints e
             WHERE body.clicks > 0 AND e.id = ANY($5) AND e.workspace_id = $1
               AND webhook_wants(e.enabled, e.events, 'link.clicked')
             ORDER BY e.id
             FOR KEY SHARE OF e
             RETURNING 1
         )
         SELECT (SELECT clicks FROM body), (SELECT count(*) FROM sent)",
    )
    .bind(workspace)
    .bind(take)
    .bind(timestamp)
    .bind(random_base()?)
    .bind(to)
    .fetch_one(&mut *tx)
    .await?;
    Ok((clicks.unsigned_abs(), messages.unsigned_abs()))
}

/// Batches the clicks every [`BATCH_EVERY`], waking the deliverer when it wrote messages.
pub(crate) async fn batch_forever(state: crate::State) {
    let webhooks = &state.inner.webhooks;
    loop {
        tokio::time::sleep(BATCH_EVERY).await;
        // A little under the interval: this origin's own timer must not miss its turn.
        let gap = BATCH_EVERY.mul_f64(0.9);
        match batch_all(state.db(), webhooks.config.max_pending_clicks, gap).await {
            Ok(done) if done.messages > 0 => webhooks.wake.notify_one(),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = ?err, "cannot batch clicks for webhooks"),
        }
    }
}
