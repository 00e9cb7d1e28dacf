//! Takedowns: a link the operator disabled when resolving an abuse report stays disabled.
//!
//! Resolving a report with `disable_link` marks the link with the report (`link_takedowns`,
//! which gives the link no new version: nothing it shows changes). While marked, its workspace
//! cannot enable it, give it a fallback (where a disabled link sends its visitors) or delete it
//! (which would free its code for a new link to the same place): 409 `link_taken_down`,
//! whatever the caller's role. The
//! operator lifts the mark with `DELETE /api/v1/abuse/reports/{id}/takedown`; the link stays
//! disabled, and its workspace decides again.
//!
//! Each check reads the mark under the link's row lock, which the resolution takes too, so
//! an edit and a takedown of one link never pass each other.

use axum::extract::State;
use axum::routing::delete;
use axum::{Json, Router};
use shortlink::ShortCode;
use shortlink::abuse::Report;
use shortlink::api::UpdateLink;
use sqlx::PgConnection;

use crate::audit::{self, Change};
use crate::caller::{Caller, WorkspaceId};
use crate::error::Error;
use crate::extract::IdPath;
use crate::links::store::DEFAULT_DOMAIN;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new().route("/abuse/reports/{id}/takedown", delete(lift))
}

/// Marks the link `link_id` as taken down by `report` (the latest report that took it down
/// is the one that lifts it; while it holds the link down, its report is not deleted). In
/// the resolution's transaction, after the link's row is locked.
pub(crate) async fn hold(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    link_id: i64,
    report: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO link_takedowns (workspace_id, link_id, report_id) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id, link_id)
         DO UPDATE SET report_id = EXCLUDED.report_id, taken_at = now()",
    )
    .bind(workspace.get())
    .bind(link_id)
    .bind(report)
    .execute(tx)
    .await?;
    Ok(())
}

/// Refuses an edit of a taken-down link that would make it redirect again: enabling it, or
/// giving it a fallback. Locks the link's row (the edit's update takes the same lock).
pub(crate) async fn check_update(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    code: &ShortCode,
    body: &UpdateLink,
) -> Result<(), Error> {
    let redirects_again =
        body.disabled == Some(false) || matches!(body.fallback_url, Some(Some(_)));
    if !redirects_again {
        return Ok(());
    }
    // A link that is not found is left to the edit to answer. The link's row is locked first,
    // as the resolution locks it before it marks the link; the mark is read by a statement of
    // its own, after the lock: one statement waiting for the lock would still read the
    // takedowns as they were when it began (READ COMMITTED), and miss the one just made.
    let link: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM links
         WHERE workspace_id = $1 AND domain_id = $2 AND code = $3 AND deleted_at IS NULL
         FOR NO KEY UPDATE",
    )
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(link) = link else {
        return Ok(());
    };
    refuse_if_held(tx, workspace, link, code, "enabled or given a fallback").await
}

/// Refuses the deletion of a taken-down link (`link`, whose row the delete has locked): its
/// code would be free for a new link to the same place.
pub(crate) async fn check_delete(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    link: i64,
    code: &ShortCode,
) -> Result<(), Error> {
    refuse_if_held(tx, workspace, link, code, "deleted").await
}

/// 409 `link_taken_down` if `link` (its row locked) is held down.
async fn refuse_if_held(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    link: i64,
    code: &ShortCode,
    what: &str,
) -> Result<(), Error> {
    let report: Option<i64> = sqlx::query_scalar(
        "SELECT report_id FROM link_takedowns WHERE workspace_id = $1 AND link_id = $2",
    )
    .bind(workspace.get())
    .bind(link)
    .fetch_optional(&mut *tx)
    .await?;
    match report {
        None => Ok(()),
        Some(report) => Err(Error::Conflict {
            code: "link_taken_down",
            message: format!(
                "link {code} was taken down by this deployment's operator after abuse report \
                 #{report}: it cannot be {what} until the operator lifts the takedown"
            ),
        }),
    }
}

/// Lifts the takedown of the report's link: the link stays disabled, and its workspace may
/// enable, change or delete it again. 409 `no_takedown` when the report holds no link down
/// (never took one down, already lifted, or a later report took it down).
#[utoipa::path(
    delete, path = "/api/v1/abuse/reports/{id}/takedown", tag = "abuse",
    params(("id" = i64, Path, description = "The report whose resolution took the link down.")),
    responses((status = 200, description = "The report, its link no longer held down.", body = shortlink::abuse::Report), crate::openapi::Refusals),
)]
pub(crate) async fn lift(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Report>, Error> {
    let operator = caller.may_operate()?;
    let mut tx = state.db().begin().await?;
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM abuse_reports WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    found.ok_or(Error::NotFound)?;
    let lifted: Option<(i64, String)> = sqlx::query_as(
        "WITH lifted AS (
             DELETE FROM link_takedowns WHERE report_id = $1
             RETURNING workspace_id, link_id)
         SELECT l.workspace_id, l.code FROM lifted
         JOIN links l ON l.workspace_id = lifted.workspace_id AND l.id = lifted.link_id",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((workspace, code)) = lifted else {
        return Err(Error::Conflict {
            code: "no_takedown",
            message: format!("report {id} holds no link down"),
        });
    };
    let after = serde_json::json!({"link": code, "workspace_id": workspace});
    let change = Change {
        action: "abuse.takedown_lifted",
        target: ("abuse_report", id),
        before: None,
        after: Some(after),
    };
    audit::record(&mut tx, operator, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok(Json(super::reports::fetch(&state, id).await?))
}
