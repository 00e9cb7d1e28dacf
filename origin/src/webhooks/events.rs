//! Writing webhook messages to the outbox (`webhook_deliveries`), in the transaction of the
//! change they announce: one row per enabled endpoint of the workspace subscribed to the event,
//! by one `INSERT … SELECT`. First, in the same transaction, one index lookup asks whether any
//! endpoint of the workspace wants the event: a workspace without one pays that statement and
//! nothing else (no payload is built, nothing sent to PostgreSQL). It is asked of PostgreSQL,
//! not of a cache like the clicks' (`clicks.rs`), so an endpoint created a moment ago gets
//! every change committed after it, as an outbox promises.
//!
//! The body of every message is `{"type", "timestamp", "data"}` (as Standard Webhooks
//! suggests): for a link event `data` is the link as the API shows it (for `link.deleted`, its
//! last state). Its id (`webhook-id`) is `msg_` + 32 random hex characters + the endpoint's id
//! in hex (SQL `webhook_message_id`, migration 0026): random, so no receiver can guess
//! another's, and unique per endpoint, as the table wants, from one random draw per message.
//!
//! Delivery starts after the commit: the deliverer is woken by [`super::wake`] (the links API
//! calls it), and polls every second for the rest.

use std::collections::BTreeMap;

use shortlink::api::Link;
use shortlink::webhook::EventType;
use sqlx::PgConnection;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::caller::WorkspaceId;
use crate::config::PublicUrl;
use crate::error::Error;
use crate::links::store;

/// Writes one `event` message about `link` for each endpoint of `workspace` subscribed to it.
pub(crate) async fn link_event(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    event: EventType,
    link: &Link,
) -> Result<(), Error> {
    link_events(tx, workspace, event, std::slice::from_ref(link)).await
}

/// [`link_event`] for many links of one workspace (a bulk create), in one statement: the
/// messages of each endpoint are in the order of `links`.
pub(crate) async fn link_events(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    event: EventType,
    links: &[Link],
) -> Result<(), Error> {
    if links.is_empty() || !wanted(tx, workspace, event).await? {
        return Ok(());
    }
    let messages = Messages::of(event, links)?;
    messages.insert(tx, workspace).await?;
    Ok(())
}

/// Whether an endpoint of `workspace` gets `event` messages (one index lookup), as of `tx`.
async fn wanted(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    event: EventType,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_endpoints e
                        WHERE e.workspace_id = $1 AND webhook_wants(e.enabled, e.events, $2))",
    )
    .bind(workspace.get())
    .bind(event.as_str())
    .fetch_one(&mut *tx)
    .await
}

/// The messages of one event about some links, before they are written.
#[derive(Debug)]
struct Messages {
    event: EventType,
    /// The random part of each message's id.
    bases: Vec<String>,
    link_ids: Vec<i64>,
    /// Each message's body, as text.
    payloads: Vec<String>,
}

impl Messages {
    fn of(event: EventType, links: &[Link]) -> Result<Self, Error> {
        let timestamp = now_rfc3339()?;
        let mut messages = Self {
            event,
            bases: Vec::with_capacity(links.len()),
            link_ids: Vec::with_capacity(links.len()),
            payloads: Vec::with_capacity(links.len()),
        };
        for link in links {
            let body =
                serde_json::json!({"type": event.as_str(), "timestamp": timestamp, "data": link});
            messages.bases.push(random_base()?);
            messages.link_ids.push(link.id);
            messages
                .payloads
                .push(serde_json::to_string(&body).map_err(|err| Error::Internal(err.into()))?);
        }
        Ok(messages)
    }

    /// One row per message and subscribed endpoint; each endpoint's in the order of the links.
    async fn insert(
        &self,
        tx: &mut PgConnection,
        workspace: WorkspaceId,
    ) -> Result<(), sqlx::Error> {
        if self.link_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            // Due no sooner than an older message of its link that waits for a retry: it
            // could not go before that one anyway, and the claim would read it in vain.
            // `FOR KEY SHARE`: an endpoint being deleted meanwhile is waited for and then
            // left out, where the message's foreign key would fail the whole change.
            "INSERT INTO webhook_deliveries
                 (message_id, endpoint_id, event_type, link_id, payload, next_attempt_at)
             SELECT webhook_message_id(m.base, e.id), e.id, $2, m.link_id, m.payload::jsonb,
                    GREATEST(now(), (SELECT max(d.next_attempt_at) FROM webhook_deliveries d
                                     WHERE d.endpoint_id = e.id AND d.link_id = m.link_id
                                       AND d.state = 'pending'))
             FROM UNNEST($3::text[], $4::bigint[], $5::text[]) WITH ORDINALITY
                      AS m (base, link_id, payload, n)
             CROSS JOIN webhook_endpoints e
             WHERE e.workspace_id = $1 AND webhook_wants(e.enabled, e.events, $2)
             ORDER BY m.n, e.id
             FOR KEY SHARE OF e",
        )
        .bind(workspace.get())
        .bind(self.event.as_str())
        .bind(&self.bases)
        .bind(&self.link_ids)
        .bind(&self.payloads)
        .execute(&mut *tx)
        .await
        .map(drop)
    }
}

/// Writes a `webhook.test` message for `endpoint` of `workspace` (whatever it subscribes to);
/// its delivery's id, or `None` when the workspace has no such endpoint. Like every message of
/// a switched-off endpoint, it waits until the endpoint is on again.
pub(crate) async fn test_event(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    endpoint: i64,
) -> Result<Option<i64>, Error> {
    let data = serde_json::json!({
        "message": "A test event from kurz: your endpoint receives and verifies webhooks.",
        "webhook_id": endpoint,
    });
    let body = serde_json::json!({
        "type": EventType::Test.as_str(),
        "timestamp": now_rfc3339()?,
        "data": data,
    });
    let id = sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, payload)
         SELECT webhook_message_id($3, id), id, $4, $5 FROM webhook_endpoints
         WHERE id = $1 AND workspace_id = $2
         RETURNING id",
    )
    .bind(endpoint)
    .bind(workspace.get())
    .bind(random_base()?)
    .bind(EventType::Test.as_str())
    .bind(body)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(id)
}

/// Now, as message bodies and reasons show times.
pub(crate) fn now_rfc3339() -> Result<String, Error> {
    rfc3339(OffsetDateTime::now_utc())
}

/// `at` in RFC 3339 (fails only for years past 9999).
pub(crate) fn rfc3339(at: OffsetDateTime) -> Result<String, Error> {
    at.format(&Rfc3339)
        .map_err(|err| Error::Internal(err.into()))
}

/// 128 random bits in hex: the random part of a message id.
pub(super) fn random_base() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| Error::Internal(anyhow::anyhow!("{err}")))?;
    Ok(hex::encode(bytes))
}

/// Writes `link.limit_reached` for these links (just used up, in `tx`), to their workspaces'
/// endpoints. A link whose stored row cannot be shown (written around the API) is logged and
/// left out, rather than failing the clicks that used it up.
pub(crate) async fn limit_reached(
    tx: &mut PgConnection,
    link_ids: &[i64],
    public_url: &PublicUrl,
) -> Result<(), sqlx::Error> {
    if link_ids.is_empty() {
        return Ok(());
    }
    let mut by_workspace: BTreeMap<i64, Vec<Link>> = BTreeMap::new();
    for found in store::find_by_ids(tx, link_ids).await? {
        let id = found.row.id;
        match found.row.into_link(public_url) {
            Ok(link) => by_workspace
                .entry(found.workspace_id)
                .or_default()
                .push(link),
            Err(err) => {
                tracing::warn!(link = id, error = ?err, "no link.limit_reached webhook for a link that cannot be shown");
            }
        }
    }
    for (workspace, links) in by_workspace {
        let workspace_id = WorkspaceId::trusted(workspace);
        if !wanted(tx, workspace_id, EventType::LinkLimitReached).await? {
            continue;
        }
        match Messages::of(EventType::LinkLimitReached, &links) {
            Ok(messages) => messages.insert(tx, workspace_id).await?,
            Err(err) => {
                tracing::warn!(workspace, error = ?err, "cannot make link.limit_reached webhooks");
            }
        }
    }
    Ok(())
}
