//! Members of a workspace: who they are, their roles, removing them, and joining (through an
//! invitation: `invitations.rs`).
//!
//! Routes: `GET /members`, `PATCH`/`DELETE /members/{user_id}`.
//!
//! Every change of a workspace's members, invitations or keys locks the workspace's row first
//! ([`lock`]), so changes of one workspace's members run one at a time: two owners demoting
//! each other at once cannot leave none (the deferred trigger of `0012_workspaces.sql` is the
//! safety net). A person's row, when needed, is locked after it ([`lock_user`]), and inserts
//! naming a person (`created_by`, `accepted_by`) take their key-share lock after it too: one
//! order everywhere, so no two transactions wait on each other in a cycle.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Serialize;
use shortlink::workspace::{ChangeRole, Member, Permission, Role, Scope};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::audit::{self, ActorRef, Change};
use crate::caller::{Actor, Caller, Grant, WorkspaceId};
use crate::error::Error;
use crate::extract::{ApiJson, IdPath};

/// Most members of a workspace: the list shows them all.
pub(crate) const MAX_MEMBERS: i64 = 1000;

/// 409 `too_many_members`: the workspace has [`MAX_MEMBERS`].
pub(crate) fn too_many_members() -> Error {
    Error::Conflict {
        code: "too_many_members",
        message: format!("a workspace may have at most {MAX_MEMBERS} members"),
    }
}

/// [`too_many_members`] unless the workspace has room for one more (its lock held, so that
/// the answer holds until commit).
pub(crate) async fn check_room(tx: &mut PgConnection, workspace: WorkspaceId) -> Result<(), Error> {
    let members: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workspace_members WHERE workspace_id = $1")
            .bind(workspace.get())
            .fetch_one(&mut *tx)
            .await?;
    if members >= MAX_MEMBERS {
        return Err(too_many_members());
    }
    Ok(())
}

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/members", get(list))
        .route("/members/{user_id}", patch(change_role).delete(remove))
}

/// A member as the audit log shows them.
#[derive(Debug, Serialize)]
struct Audited<'a> {
    user_id: i64,
    username: &'a str,
    role: Role,
}

pub(crate) fn audited(member: &Member) -> Result<serde_json::Value, Error> {
    audit::fields(&Audited {
        user_id: member.user_id,
        username: &member.username,
        role: member.role,
    })
}

type MemberRow = (i64, String, String, OffsetDateTime);

fn member(row: MemberRow) -> Result<Member, Error> {
    let (user_id, username, role, joined_at) = row;
    Ok(Member {
        user_id,
        username,
        role: parse_role(&role)?,
        joined_at,
    })
}

pub(crate) fn parse_role(role: &str) -> Result<Role, Error> {
    Role::parse(role).ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown role {role:?}")))
}

/// People see who else is in their workspace; a key needs `workspace:admin`.
#[utoipa::path(
    get, path = "/api/v1/members", tag = "workspaces",
    responses((status = 200, description = "The workspace's members.", body = Vec<shortlink::workspace::Member>), crate::openapi::Refusals),
)]
async fn list(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<Member>>, Error> {
    let workspace = match caller.actor {
        Actor::User { .. } => caller.member()?,
        Actor::Key { .. } => caller.may(Permission::Administer)?,
    };
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT u.id, u.username, m.role, m.joined_at
         FROM workspace_members m JOIN admin_users u ON u.id = m.user_id
         WHERE m.workspace_id = $1 ORDER BY m.joined_at, u.id",
    )
    .bind(workspace.get())
    .fetch_all(state.db())
    .await?;
    Ok(Json(
        rows.into_iter().map(member).collect::<Result<_, _>>()?,
    ))
}

/// Locks `workspace`'s row: every change of its members, invitations or keys takes this lock
/// first. NO KEY UPDATE: it serialises those changes without blocking inserts that only
/// reference the workspace (links, clicks).
pub(crate) async fn lock(tx: &mut PgConnection, workspace: WorkspaceId) -> Result<(), Error> {
    sqlx::query("SELECT 1 FROM workspaces WHERE id = $1 FOR NO KEY UPDATE")
        .bind(workspace.get())
        .fetch_optional(tx)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(())
}

/// Locks a person's row, after their workspace's (see [`lock`]): it serialises their joins
/// and their creations of workspaces, so that their count of memberships holds.
pub(crate) async fn lock_user(tx: &mut PgConnection, user_id: i64) -> Result<(), Error> {
    sqlx::query("SELECT 1 FROM admin_users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// A member of `workspace` (404 for anyone else), with the workspace locked.
async fn find_member(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    user_id: i64,
) -> Result<Member, Error> {
    let row: MemberRow = sqlx::query_as(
        "SELECT u.id, u.username, m.role, m.joined_at
         FROM workspace_members m JOIN admin_users u ON u.id = m.user_id
         WHERE m.workspace_id = $1 AND m.user_id = $2",
    )
    .bind(workspace.get())
    .bind(user_id)
    .fetch_optional(tx)
    .await?
    .ok_or(Error::NotFound)?;
    member(row)
}

/// 409 `last_owner` if `target` is the workspace's only owner (the workspace locked).
async fn refuse_last_owner(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    target: &Member,
) -> Result<(), Error> {
    if target.role != Role::Owner {
        return Ok(());
    }
    let owners: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workspace_members WHERE workspace_id = $1 AND role = 'owner'",
    )
    .bind(workspace.get())
    .fetch_one(tx)
    .await?;
    if owners <= 1 {
        return Err(Error::last_owner());
    }
    Ok(())
}

/// Admins change roles, to roles that can do no more than they can; making an owner, or
/// changing an owner's role, takes an owner.
#[utoipa::path(
    patch, path = "/api/v1/members/{user_id}", tag = "workspaces",
    params(("user_id" = i64, Path, description = "The member's user id.")),
    request_body = shortlink::workspace::ChangeRole,
    responses((status = 200, description = "The member with the new role.", body = shortlink::workspace::Member), crate::openapi::Refusals),
)]
async fn change_role(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(user_id): IdPath,
    ApiJson(body): ApiJson<ChangeRole>,
) -> Result<Json<Member>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut tx = state.db().begin().await?;
    lock(&mut tx, workspace).await?;
    // Demoted or removed while this waited for the lock: what the caller may do now.
    let caller = caller.as_now(&mut tx).await?;
    caller.may(Permission::Administer)?;
    let before = find_member(&mut tx, workspace, user_id).await?;
    if before.role == Role::Owner {
        caller.may(Permission::Own)?;
    }
    // Nobody makes a member more powerful than themselves (an owner only by an owner).
    caller.may_grant(body.role)?;
    if before.role == body.role {
        return Ok(Json(before));
    }
    refuse_last_owner(&mut tx, workspace, &before).await?;
    revoke_beyond(
        &mut tx,
        workspace,
        user_id,
        Some(body.role),
        caller.audit_actor(),
    )
    .await?;
    sqlx::query("UPDATE workspace_members SET role = $3 WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace.get())
        .bind(user_id)
        .bind(body.role.as_str())
        .execute(&mut *tx)
        .await?;
    let after = Member {
        role: body.role,
        ..before.clone()
    };
    let change = Change {
        action: "member.role_changed",
        target: ("member", user_id),
        before: Some(audited(&before)?),
        after: Some(audited(&after)?),
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// Admins remove members (an owner only by an owner); anyone may leave.
#[utoipa::path(
    delete, path = "/api/v1/members/{user_id}", tag = "workspaces",
    params(("user_id" = i64, Path, description = "The member's user id.")),
    responses((status = 204, description = "Removed."), crate::openapi::Refusals),
)]
async fn remove(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(user_id): IdPath,
) -> Result<StatusCode, Error> {
    let leaving = caller.user().is_ok_and(|(id, _)| id == user_id);
    let workspace = if leaving {
        caller.member()?
    } else {
        caller.may(Permission::Administer)?
    };
    let mut tx = state.db().begin().await?;
    lock(&mut tx, workspace).await?;
    let caller = caller.as_now(&mut tx).await?;
    if !leaving {
        caller.may(Permission::Administer)?;
    }
    let before = find_member(&mut tx, workspace, user_id).await?;
    if before.role == Role::Owner && !leaving {
        caller.may(Permission::Own)?;
    }
    refuse_last_owner(&mut tx, workspace, &before).await?;
    revoke_beyond(&mut tx, workspace, user_id, None, caller.audit_actor()).await?;
    sqlx::query("DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace.get())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let change = Change {
        action: "member.removed",
        target: ("member", user_id),
        before: Some(audited(&before)?),
        after: None,
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the keys and open invitations `user_id` made in `workspace` that `role` (`None`:
/// they are leaving) could not make: what a person made does not outlive their authority.
/// Call with the workspace locked, before the membership changes.
async fn revoke_beyond(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    user_id: i64,
    role: Option<Role>,
    actor: ActorRef<'_>,
) -> Result<(), Error> {
    let scopes: Vec<Scope> = Scope::ALL
        .into_iter()
        .filter(|scope| !role.is_some_and(|role| role.permits(scope.permission())))
        .collect();
    let may_invite = |role: Role, invited: Role| {
        role.permits(Permission::Administer) && Grant::Role(role).may_grant(invited)
    };
    let roles: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|invited| !role.is_some_and(|role| may_invite(role, *invited)))
        .collect();
    crate::keys::revoke_made_by(tx, workspace, user_id, &scopes, actor).await?;
    crate::invitations::revoke_made_by(tx, workspace, user_id, &roles, actor).await
}

/// The invitation a person joined by, as their `member.joined` entry names it: who let them in
/// (`invited_by`, the maker's username; none once that account is gone).
#[derive(Debug)]
pub(crate) struct Invited {
    pub(crate) invitation_id: i64,
    pub(crate) invited_by: Option<String>,
}

/// Makes `user_id` a member of `workspace` as `role` by `invited`, logged as `member.joined`
/// by `actor` (the person joining). 409 when they already are one, or when either side is
/// full. Locks the workspace, then the person (if the caller has not already).
pub(crate) async fn join(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    user_id: i64,
    (role, invited): (Role, Invited),
    actor: ActorRef<'_>,
) -> Result<Member, Error> {
    lock(tx, workspace).await?;
    lock_user(tx, user_id).await?;
    if find_member(tx, workspace, user_id).await.is_ok() {
        return Err(Error::Conflict {
            code: "already_member",
            message: "you are already a member of this workspace".to_owned(),
        });
    }
    crate::workspaces::check_memberships(tx, user_id).await?;
    check_room(tx, workspace).await?;
    let row: MemberRow = sqlx::query_as(
        "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, $3)
         RETURNING user_id, (SELECT username FROM admin_users WHERE id = $2), role, joined_at",
    )
    .bind(workspace.get())
    .bind(user_id)
    .bind(role.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let joined = member(row)?;
    let mut after = audited(&joined)?;
    if let serde_json::Value::Object(fields) = &mut after {
        fields.insert("invitation_id".to_owned(), invited.invitation_id.into());
        fields.insert("invited_by".to_owned(), invited.invited_by.into());
    }
    let change = Change {
        action: "member.joined",
        target: ("member", user_id),
        before: None,
        after: Some(after),
    };
    audit::record(tx, workspace, actor, change).await?;
    Ok(joined)
}
