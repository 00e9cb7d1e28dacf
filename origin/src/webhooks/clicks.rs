//! `link.clicked`: clicks go out in batches, at most one message per endpoint every
//! [`BATCH_EVERY`], each of at most [`MAX_CLICKS_PER_MESSAGE`] clicks.
//!
//! Storing a click (`analytics/store.rs`) copies it into `webhook_clicks_pending`, in the same
//! transaction, when its link's workspace has an enabled endpoint subscribed to `link.clicked`.
//! Which workspaces do is read from PostgreSQL at most every [`SUBSCRIBERS_TTL`] and kept in
//! memory ([`Subscribers`]), so storing clicks costs nothing more while no workspace subscribes;
//! the price is that a new endpoint gets the clicks stored from at most that long after it was
//! made (and a switched-off one, for as long, still has clicks queued, which the batch then
//! drops since no endpoint wants them).
//!
//! Every [`BATCH_EVERY`], [`batch_all`] takes each workspace's oldest pending clicks into one
//! message per subscribed endpoint and deletes them, in one transaction per workspace (under a
//! lock of the workspace, so two origins never batch one workspace at once; and not within the
//! interval of the workspace's last click message, so several origins make no more messages).
//!
//! Bounds: while any subscribed endpoint of the workspace has [`MAX_BACKLOG`] click messages
//! still waiting (a receiver down or slower than the clicks), no more are made: the clicks
//! wait in `webhook_clicks_pending`, in order, and go out once it catches up. There, at most
//! `KURZ_WEBHOOK_MAX_PENDING_CLICKS` are kept per workspace (plus what arrives between two
//! batches): past it the oldest are dropped, logged and counted in
//! `kurz_webhook_clicks_dropped_total`. A receiver down for a day is switched off (see
//! `deliver.rs`), and the clicks flow to the others again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::events::{now_rfc3339, random_base};
use crate::error::Error;

/// How often a workspace's pending clicks become messages.
pub(crate) const BATCH_EVERY: Duration = Duration::from_secs(5);
/// Most clicks in one `link.clicked` message (about 250 bytes each).
pub(crate) const MAX_CLICKS_PER_MESSAGE: i64 = 1000;
/// Click messages an endpoint may have waiting before its workspace's clicks wait instead.
pub(crate) const MAX_BACKLOG: i64 = 10;
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
             WHERE enabled AND 'link.clicked' = ANY(events) LIMIT $1",
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

/// What one pass of [`batch_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Batched {
    /// Messages written (one per endpoint and batch).
    pub(crate) messages: u64,
    /// Clicks taken into them.
    pub(crate) clicks: u64,
    /// Clicks dropped past the bound.
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
    let dropped = sqlx::query(
        "DELETE FROM webhook_clicks_pending WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM webhook_clicks_pending WHERE workspace_id = $1
             ORDER BY at DESC OFFSET $2))",
    )
    .bind(workspace)
    .bind(i64::from(max_pending))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if dropped > 0 {
        metrics::counter!("kurz_webhook_clicks_dropped_total").increment(dropped);
        tracing::warn!(
            workspace,
            dropped,
            "webhook clicks dropped: the workspace's receivers are behind by more than KURZ_WEBHOOK_MAX_PENDING_CLICKS"
        );
    }
    // The newest click message of each subscribed endpoint is found from the newest of its
    // deliveries backwards (the log's index): few rows, as click messages are frequent while
    // clicks come.
    let (backlogged, recent): (bool, bool) = sqlx::query_as(
        "WITH subscribed AS (
             SELECT id FROM webhook_endpoints
             WHERE workspace_id = $1 AND enabled AND 'link.clicked' = ANY(events)
         )
         SELECT
             EXISTS (SELECT 1 FROM subscribed s WHERE (
                 SELECT count(*) FROM webhook_deliveries d
                 WHERE d.endpoint_id = s.id AND d.link_id IS NULL AND d.state = 'pending'
                   AND d.event_type = 'link.clicked') >= $2),
             EXISTS (SELECT 1 FROM subscribed s, LATERAL (
                 SELECT created_at FROM webhook_deliveries d
                 WHERE d.endpoint_id = s.id AND d.event_type = 'link.clicked'
                 ORDER BY d.id DESC LIMIT 1) last
                 WHERE last.created_at > now() - make_interval(secs => $3))",
    )
    .bind(workspace)
    .bind(MAX_BACKLOG)
    .bind(gap.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    if backlogged || recent {
        tx.commit().await?;
        return Ok(Batched {
            dropped,
            ..Batched::default()
        });
    }
    let (clicks, messages): (i64, i64) = sqlx::query_as(
        "WITH taken AS (
             DELETE FROM webhook_clicks_pending WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM webhook_clicks_pending WHERE workspace_id = $1
                 ORDER BY at, click_id LIMIT $2))
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
             SELECT 'msg_' || $4 || to_hex(e.id), e.id, 'link.clicked', body.payload
             FROM body CROSS JOIN webhook_endpoints e
             WHERE body.clicks > 0 AND e.workspace_id = $1 AND e.enabled
               AND 'link.clicked' = ANY(e.events)
             ORDER BY e.id
             RETURNING 1
         )
         SELECT (SELECT clicks FROM body), (SELECT count(*) FROM sent)",
    )
    .bind(workspace)
    .bind(MAX_CLICKS_PER_MESSAGE)
    .bind(now_rfc3339()?)
    .bind(random_base()?)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Batched {
        messages: messages.unsigned_abs(),
        clicks: clicks.unsigned_abs(),
        dropped,
    })
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
