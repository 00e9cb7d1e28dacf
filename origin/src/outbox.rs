//! Delivers link changes to the edge: the outbox rows written with every link change are
//! turned into `POST /_edge/sync` batches, retried with backoff until the edge accepts them.
//!
//! Rows are locked with `FOR UPDATE SKIP LOCKED`, so several origin instances share the work
//! without sending a row twice at once; they are deleted in the same transaction only after
//! the edge answered 2xx, so a crash or an unreachable edge loses nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shortlink::edge::{SyncBatch, SyncChange};
use shortlink::redirect::LinkRecord;
use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use shortlink::{Destination, RedirectStatus, ShortCode};
use sqlx::{PgConnection, Postgres, Transaction};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// Where and how to reach the edge.
#[derive(Debug)]
pub(crate) struct EdgeSync {
    /// The worker's base URL, without a trailing slash.
    pub(crate) url: String,
    pub(crate) secret: String,
    /// Woken by this instance's link writes, so their delivery starts at once.
    pub(crate) wake: Notify,
}

/// Most codes in one sync request.
const BATCH: i64 = 200;
/// How often outbox rows written by other instances are looked for.
const POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Records that `code` changed; called in the transaction that changed it.
pub(crate) async fn record_change(tx: &mut PgConnection, code: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO edge_outbox (code) VALUES ($1)")
        .bind(code)
        .execute(tx)
        .await
        .map(drop)
}

pub(crate) async fn deliver_forever(state: crate::State, edge: Arc<EdgeSync>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the HTTP client for edge sync");
            return;
        }
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        match deliver_batch(&state, &edge, &client).await {
            Ok(0) => {
                backoff = Duration::from_millis(200);
                let _ = tokio::time::timeout(POLL, edge.wake.notified()).await;
            }
            Ok(sent) => {
                tracing::debug!(sent, "link changes delivered to the edge");
                backoff = Duration::from_millis(200);
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "edge sync failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sends one batch; returns how many outbox rows it delivered (0: nothing to do).
async fn deliver_batch(
    state: &crate::State,
    edge: &EdgeSync,
    client: &reqwest::Client,
) -> anyhow::Result<usize> {
    let mut tx: Transaction<'_, Postgres> = state.db().begin().await?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, code FROM edge_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    let mut codes: Vec<String> = rows.into_iter().map(|(_, code)| code).collect();
    codes.sort_unstable();
    codes.dedup();
    let live: Vec<(String, i64, String, i16, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT code, id, destination, status, expires_at FROM links
         WHERE code = ANY($1) AND deleted_at IS NULL",
    )
    .bind(&codes)
    .fetch_all(&mut *tx)
    .await?;
    let mut live: HashMap<String, LinkRecord> = live
        .into_iter()
        .filter_map(|(code, id, destination, status, expires_at)| {
            let record = LinkRecord::new(
                id,
                Destination::parse(&destination).ok()?,
                RedirectStatus::try_from(status as u16).ok()?,
                expires_at,
            );
            Some((code, record))
        })
        .collect();
    let changes = codes
        .iter()
        .filter_map(|code| {
            Some(SyncChange {
                code: ShortCode::parse(code).ok()?,
                record: live.remove(code),
            })
        })
        .collect();
    let body = serde_json::to_vec(&SyncBatch { changes })?;
    let path = "/_edge/sync";
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = signature::sign(edge.secret.as_bytes(), "POST", path, timestamp, &body);
    let response = client
        .post(format!("{}{path}", edge.url))
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        anyhow::bail!("edge answered {status}: {text}");
    }
    sqlx::query("DELETE FROM edge_outbox WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ids.len())
}
