//! The audit log: every change of links, keys, members and settings, with who made it, when,
//! and the fields before and after. [`record`] is called in the transaction of the change, so
//! a change and its entry commit together or not at all. Rows are only added (a trigger
//! refuses updates) and deleted by the retention once older than `KURZ_AUDIT_RETENTION_DAYS`.

use serde::Serialize;
use sqlx::PgConnection;

use crate::caller::WorkspaceId;

/// Who made a change, as the log names them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActorRef<'a> {
    kind: &'static str,
    id: i64,
    name: &'a str,
}

impl<'a> ActorRef<'a> {
    pub(crate) fn user(id: i64, name: &'a str) -> Self {
        Self {
            kind: "user",
            id,
            name,
        }
    }

    pub(crate) fn key(id: i64, name: &'a str) -> Self {
        Self {
            kind: "key",
            id,
            name,
        }
    }
}

/// What changed: `target` is (`link` | `key` | `member` | `invitation` | `workspace`, id);
/// `before` and `after` are the changed thing's fields as the API shows them ([`fields`]).
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) action: &'static str,
    pub(crate) target: (&'static str, i64),
    pub(crate) before: Option<serde_json::Value>,
    pub(crate) after: Option<serde_json::Value>,
}

/// A value's fields for the log.
pub(crate) fn fields(value: &impl Serialize) -> Result<serde_json::Value, crate::Error> {
    serde_json::to_value(value).map_err(|err| crate::Error::Internal(err.into()))
}

/// Adds an entry to `workspace`'s log, in the transaction of the change.
pub(crate) async fn record(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    actor: ActorRef<'_>,
    change: Change,
) -> Result<(), crate::Error> {
    sqlx::query(
        "INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                                target_kind, target_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(workspace.get())
    .bind(actor.kind)
    .bind(actor.id)
    .bind(actor.name)
    .bind(change.action)
    .bind(change.target.0)
    .bind(change.target.1)
    .bind(change.before)
    .bind(change.after)
    .execute(tx)
    .await?;
    Ok(())
}

pub(crate) fn routes() -> axum::Router<crate::State> {
    axum::Router::new()
}
