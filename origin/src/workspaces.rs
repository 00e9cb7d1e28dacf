//! The workspaces API: the caller's workspaces (`GET /workspaces`), making one (`POST
//! /workspaces`), the current one (`GET`/`PATCH /workspace`) and which one a session works in
//! (`PUT /session/workspace`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use shortlink::workspace::{Permission, Role, Session, SwitchWorkspace, Workspace, WorkspaceName};
use time::OffsetDateTime;

use crate::accounts;
use crate::audit::{self, Change};
use crate::caller::{Caller, Grant, WorkspaceId};
use crate::error::Error;
use crate::extract::ApiJson;
use crate::members::parse_role;

/// Longest workspace name, in characters (the table's check says the same).
const MAX_NAME_CHARS: usize = 100;
/// Most workspaces a person may belong to: the session body lists them all.
pub(crate) const MAX_MEMBERSHIPS: i64 = 100;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/workspaces", get(list).post(create))
        .route("/workspace", get(current).patch(rename))
        .route("/session/workspace", put(switch))
}

/// People: every workspace they belong to, by name, with their role. A key: its own.
#[utoipa::path(
    get, path = "/api/v1/workspaces", tag = "workspaces",
    responses((status = 200, description = "The caller's workspaces.", body = Vec<shortlink::workspace::Workspace>), crate::openapi::Refusals),
)]
async fn list(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<Workspace>>, Error> {
    match caller.user() {
        Ok((user_id, _)) => Ok(Json(memberships(state.db(), user_id).await?)),
        Err(_) => {
            let workspace = caller.member()?;
            Ok(Json(vec![find(state.db(), workspace, None).await?]))
        }
    }
}

/// Every workspace `user_id` belongs to, by name, with their role there: the list, and the
/// session's body.
pub(crate) async fn memberships(db: &sqlx::PgPool, user_id: i64) -> Result<Vec<Workspace>, Error> {
    let rows: Vec<(i64, String, String, OffsetDateTime)> = sqlx::query_as(
        "SELECT w.id, w.name, m.role, w.created_at
         FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id
         WHERE m.user_id = $1 ORDER BY w.name, w.id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(id, name, role, created_at)| {
            Ok(Workspace {
                id,
                name,
                role: Some(parse_role(&role)?),
                created_at,
            })
        })
        .collect()
}

/// An owner of a workspace makes another and becomes its owner (keys belong to one workspace
/// for good). Only owners: a workspace publishes redirects on the shared domain, so being
/// invited as a viewer somewhere (or removed from everywhere) must not be a way to publish
/// them. Operators make the first owners (`origin create-admin`).
#[utoipa::path(
    post, path = "/api/v1/workspaces", tag = "workspaces",
    request_body = shortlink::workspace::WorkspaceName,
    responses((status = 201, description = "The new workspace.", body = shortlink::workspace::Workspace), crate::openapi::Refusals),
)]
async fn create(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<WorkspaceName>,
) -> Result<(StatusCode, Json<Workspace>), Error> {
    let (user_id, _) = caller.user()?;
    let name = checked_name(&body.name)?;
    let mut tx = state.db().begin().await?;
    // The user's row serialises their concurrent creations and joins, so the count holds.
    // No workspace is locked before it (the new one is not visible to anyone else).
    sqlx::query("SELECT 1 FROM admin_users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let owns_one: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workspace_members WHERE user_id = $1 AND role = 'owner')",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    if !owns_one {
        return Err(Error::Forbidden {
            needs: "an owner of a workspace",
        });
    }
    check_memberships(&mut tx, user_id).await?;
    let (id, created_at): (i64, OffsetDateTime) =
        sqlx::query_as("INSERT INTO workspaces (name) VALUES ($1) RETURNING id, created_at")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'owner')",
    )
    .bind(id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let workspace = Workspace {
        id,
        name: name.to_owned(),
        role: Some(Role::Owner),
        created_at,
    };
    let change = Change {
        action: "workspace.created",
        target: ("workspace", id),
        before: None,
        after: Some(audit::fields(&WorkspaceName {
            name: name.to_owned(),
        })?),
    };
    audit::record(
        &mut tx,
        WorkspaceId::trusted(id),
        caller.audit_actor(),
        change,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(workspace)))
}

/// 409 `too_many_workspaces` when `user_id` already belongs to [`MAX_MEMBERSHIPS`]
/// workspaces. Call with the user's row locked.
pub(crate) async fn check_memberships(
    tx: &mut sqlx::PgConnection,
    user_id: i64,
) -> Result<(), Error> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workspace_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(tx)
            .await?;
    if count >= MAX_MEMBERSHIPS {
        return Err(Error::Conflict {
            code: "too_many_workspaces",
            message: format!("a person may belong to at most {MAX_MEMBERSHIPS} workspaces"),
        });
    }
    Ok(())
}

#[utoipa::path(
    get, path = "/api/v1/workspace", tag = "workspaces",
    responses((status = 200, description = "The workspace the caller works in.", body = shortlink::workspace::Workspace), crate::openapi::Refusals),
)]
async fn current(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Workspace>, Error> {
    let workspace = caller.member()?;
    Ok(Json(find(state.db(), workspace, caller.role()).await?))
}

#[utoipa::path(
    patch, path = "/api/v1/workspace", tag = "workspaces",
    request_body = shortlink::workspace::WorkspaceName,
    responses((status = 200, description = "The workspace, renamed.", body = shortlink::workspace::Workspace), crate::openapi::Refusals),
)]
async fn rename(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<WorkspaceName>,
) -> Result<Json<Workspace>, Error> {
    let workspace = caller.may(Permission::Own)?;
    let name = checked_name(&body.name)?;
    let mut tx = state.db().begin().await?;
    let before: String =
        sqlx::query_scalar("SELECT name FROM workspaces WHERE id = $1 FOR NO KEY UPDATE")
            .bind(workspace.get())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
    // Its authority now: a demotion it waited for above has taken it away.
    caller.as_now(&mut tx).await?.may(Permission::Own)?;
    let created_at: OffsetDateTime =
        sqlx::query_scalar("UPDATE workspaces SET name = $2 WHERE id = $1 RETURNING created_at")
            .bind(workspace.get())
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    let change = Change {
        action: "workspace.renamed",
        target: ("workspace", workspace.get()),
        before: Some(audit::fields(&WorkspaceName { name: before })?),
        after: Some(audit::fields(&WorkspaceName {
            name: name.to_owned(),
        })?),
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok(Json(Workspace {
        id: workspace.get(),
        name: name.to_owned(),
        role: caller.role(),
        created_at,
    }))
}

/// Makes this session work in another of the person's workspaces. One they do not belong to
/// is a 404: whether it exists is none of their business.
#[utoipa::path(
    put, path = "/api/v1/session/workspace", tag = "session",
    request_body = shortlink::workspace::SwitchWorkspace,
    responses((status = 200, description = "The session, now in that workspace.", body = shortlink::workspace::Session), crate::openapi::Refusals),
)]
async fn switch(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<SwitchWorkspace>,
) -> Result<Json<Session>, Error> {
    let (user_id, session) = caller.user()?;
    let mut tx = state.db().begin().await?;
    // FOR SHARE: the membership cannot be removed between this check and the update.
    let role: String = sqlx::query_scalar(
        "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2 FOR SHARE",
    )
    .bind(body.workspace_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let role = parse_role(&role)?;
    sqlx::query("UPDATE admin_sessions SET workspace_id = $2 WHERE id = $1")
        .bind(session.id)
        .bind(body.workspace_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let switched = Caller::new(
        caller.actor.clone(),
        Some((body.workspace_id, Grant::Role(role))),
    );
    Ok(Json(accounts::session_view(state.db(), &switched).await?))
}

/// A workspace as `role` (absent for a key) sees it.
async fn find(
    db: &sqlx::PgPool,
    workspace: WorkspaceId,
    role: Option<Role>,
) -> Result<Workspace, Error> {
    let (name, created_at): (String, OffsetDateTime) =
        sqlx::query_as("SELECT name, created_at FROM workspaces WHERE id = $1")
            .bind(workspace.get())
            .fetch_optional(db)
            .await?
            .ok_or(Error::NotFound)?;
    Ok(Workspace {
        id: workspace.get(),
        name,
        role,
        created_at,
    })
}

/// The name trimmed, 1 to [`MAX_NAME_CHARS`] characters; 422 on `name` otherwise.
fn checked_name(name: &str) -> Result<&str, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Error::unless_name("name", name)?;
    Ok(name)
}
