//! Members of a workspace and invitations to join one.
//!
//! Routes: `GET /members`, `PATCH`/`DELETE /members/{user_id}`; `GET`/`POST /invitations`,
//! `DELETE /invitations/{id}`, `POST /invitations/accept` (a signed-in person joins); and,
//! without credentials (the token is one), `POST /invitations/lookup` and
//! `POST /invitations/sign-up` (a new person joins).
//!
//! Every change of a workspace's members locks the workspace's row first, so changes of one
//! workspace's members run one at a time: two owners demoting each other at once cannot
//! leave none (the deferred trigger of `0012_workspaces.sql` is the safety net). An
//! invitation is used by one conditional `UPDATE`, so it is used once however many try.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::Serialize;
use shortlink::workspace::{
    ChangeRole, CreateInvitation, CreatedInvitation, Invitation, InvitationPreview,
    InvitationToken, Member, Permission, Role, Session, SignUp,
};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::accounts;
use crate::audit::{self, ActorRef, Change};
use crate::caller::{Actor, Caller, Grant, WorkspaceId};
use crate::error::Error;
use crate::extract::ApiJson;

/// How long an invitation can be used.
const INVITATION_LIFETIME: time::Duration = time::Duration::days(7);
/// Most open invitations of a workspace: each is a way in, and the list shows them all.
const MAX_OPEN_INVITATIONS: i64 = 100;
/// Most members of a workspace: the list shows them all.
pub(crate) const MAX_MEMBERS: i64 = 1000;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/members", get(list))
        .route("/members/{user_id}", patch(change_role).delete(remove))
        .route("/invitations", get(list_invitations).post(invite))
        .route("/invitations/{id}", delete(revoke))
        .route("/invitations/accept", post(accept))
}

/// Routes that need no credentials (an invitation's token is the credential).
pub(crate) fn public_routes() -> Router<crate::State> {
    Router::new()
        .route("/invitations/lookup", post(lookup))
        .route("/invitations/sign-up", post(sign_up))
}

/// A numeric id in a path; anything else names nothing (404, decided without a query).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdPath(pub(crate) i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound)?;
        id.parse().map(IdPath).map_err(|_| Error::NotFound)
    }
}

/// A member as the audit log shows them.
#[derive(Debug, Serialize)]
struct Audited<'a> {
    user_id: i64,
    username: &'a str,
    role: Role,
}

fn audited(member: &Member) -> Result<serde_json::Value, Error> {
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

fn parse_role(role: &str) -> Result<Role, Error> {
    Role::parse(role).ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown role {role:?}")))
}

/// People see who else is in their workspace; a key needs `workspace:admin`.
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

/// Locks `workspace`'s row: every change of its members or invitations takes this lock first.
async fn lock(tx: &mut PgConnection, workspace: WorkspaceId) -> Result<(), Error> {
    sqlx::query("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE")
        .bind(workspace.get())
        .fetch_optional(tx)
        .await?
        .ok_or(Error::NotFound)?;
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

/// Admins change roles; making an owner, or changing an owner's role, takes an owner.
async fn change_role(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(user_id): IdPath,
    ApiJson(body): ApiJson<ChangeRole>,
) -> Result<Json<Member>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut tx = state.db().begin().await?;
    lock(&mut tx, workspace).await?;
    let before = find_member(&mut tx, workspace, user_id).await?;
    if before.role == Role::Owner || body.role == Role::Owner {
        caller.may(Permission::Own)?;
    }
    if before.role == body.role {
        return Ok(Json(before));
    }
    refuse_last_owner(&mut tx, workspace, &before).await?;
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
    let before = find_member(&mut tx, workspace, user_id).await?;
    if before.role == Role::Owner && !leaving {
        caller.may(Permission::Own)?;
    }
    refuse_last_owner(&mut tx, workspace, &before).await?;
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

type InvitationRow = (i64, String, Option<String>, OffsetDateTime, OffsetDateTime);

fn invitation(row: InvitationRow) -> Result<Invitation, Error> {
    let (id, role, created_by, created_at, expires_at) = row;
    Ok(Invitation {
        id,
        role: parse_role(&role)?,
        created_by,
        created_at,
        expires_at,
    })
}

/// The invitations that can still be used, oldest first.
async fn list_invitations(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<Invitation>>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let rows: Vec<InvitationRow> = sqlx::query_as(
        "SELECT i.id, i.role, u.username, i.created_at, i.expires_at
         FROM workspace_invitations i LEFT JOIN admin_users u ON u.id = i.created_by
         WHERE i.workspace_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL
           AND i.expires_at > now()
         ORDER BY i.id",
    )
    .bind(workspace.get())
    .fetch_all(state.db())
    .await?;
    Ok(Json(
        rows.into_iter().map(invitation).collect::<Result<_, _>>()?,
    ))
}

/// A new invitation: its token is in the answer's URL and nowhere else (only its SHA-256 is
/// stored, and the audit log never sees it).
async fn invite(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<CreatedInvitation>), Error> {
    let workspace = caller.may(Permission::Administer)?;
    if body.role == Role::Owner {
        caller.may(Permission::Own)?;
    }
    let mut tx = state.db().begin().await?;
    lock(&mut tx, workspace).await?;
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workspace_invitations
         WHERE workspace_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
           AND expires_at > now()",
    )
    .bind(workspace.get())
    .fetch_one(&mut *tx)
    .await?;
    if open >= MAX_OPEN_INVITATIONS {
        return Err(Error::Conflict {
            code: "too_many_invitations",
            message: format!(
                "a workspace may have at most {MAX_OPEN_INVITATIONS} open invitations: \
                 revoke some first"
            ),
        });
    }
    let token = accounts::random_token();
    let created_by = caller.user().ok().map(|(id, _)| id);
    let row: InvitationRow = sqlx::query_as(
        "INSERT INTO workspace_invitations (workspace_id, token_hash, role, created_by, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         RETURNING id, role, (SELECT username FROM admin_users WHERE id = $4), created_at,
                   expires_at",
    )
    .bind(workspace.get())
    .bind(accounts::hash(&token).as_slice())
    .bind(body.role.as_str())
    .bind(created_by)
    .bind(INVITATION_LIFETIME.as_seconds_f64())
    .fetch_one(&mut *tx)
    .await?;
    let invitation = invitation(row)?;
    let change = Change {
        action: "invitation.created",
        target: ("invitation", invitation.id),
        before: None,
        after: Some(audit::fields(&invitation)?),
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    // In the fragment: a browser sends it to no server, so it reaches no log or Referer.
    let url = format!("{}/admin/invite#{token}", state.inner.public_url);
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation { invitation, url }),
    ))
}

/// Revokes an invitation not yet used (one already used, or of another workspace: 404).
async fn revoke(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut tx = state.db().begin().await?;
    let row: InvitationRow = sqlx::query_as(
        "UPDATE workspace_invitations i SET revoked_at = now()
         WHERE i.id = $1 AND i.workspace_id = $2 AND i.accepted_at IS NULL
           AND i.revoked_at IS NULL
         RETURNING i.id, i.role, (SELECT username FROM admin_users WHERE id = i.created_by),
                   i.created_at, i.expires_at",
    )
    .bind(id)
    .bind(workspace.get())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let change = Change {
        action: "invitation.revoked",
        target: ("invitation", id),
        before: Some(audit::fields(&invitation(row)?)?),
        after: None,
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a token opens, if it can still be used.
async fn lookup(
    State(state): State<crate::State>,
    ApiJson(body): ApiJson<InvitationToken>,
) -> Result<Json<InvitationPreview>, Error> {
    let (workspace_name, role, expires_at): (String, String, OffsetDateTime) = sqlx::query_as(
        "SELECT w.name, i.role, i.expires_at
         FROM workspace_invitations i JOIN workspaces w ON w.id = i.workspace_id
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL
           AND i.expires_at > now()",
    )
    .bind(accounts::hash(&body.token).as_slice())
    .fetch_optional(state.db())
    .await?
    .ok_or_else(invalid_invitation)?;
    Ok(Json(InvitationPreview {
        workspace_name,
        role: parse_role(&role)?,
        expires_at,
    }))
}

/// One answer for every token that cannot be used (unknown, used, revoked, expired), so none
/// tells why. It should say "this invitation is invalid, used or expired": that needs a 404
/// with its own message in `error.rs` (asked of the lead); until then, `NotFound`.
fn invalid_invitation() -> Error {
    Error::NotFound
}

/// A signed-in person joins with the invitation's role, and their session moves there.
async fn accept(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<InvitationToken>,
) -> Result<Json<Session>, Error> {
    let (user_id, session) = caller.user()?;
    let mut tx = state.db().begin().await?;
    let (workspace, role) = claim(&mut tx, &body.token, user_id).await?;
    let joined = join(&mut tx, workspace, user_id, role, caller.audit_actor()).await?;
    sqlx::query("UPDATE admin_sessions SET workspace_id = $2 WHERE id = $1")
        .bind(session.id)
        .bind(workspace.get())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let switched = Caller::new(
        caller.actor.clone(),
        Some((workspace.get(), Grant::Role(joined.role))),
    );
    Ok(Json(accounts::session_view(state.db(), &switched).await?))
}

/// Uses the invitation of `token` for `user_id`, once: the workspace and role it grants.
async fn claim(
    tx: &mut PgConnection,
    token: &str,
    user_id: i64,
) -> Result<(WorkspaceId, Role), Error> {
    let (workspace, role): (i64, String) = sqlx::query_as(
        "UPDATE workspace_invitations SET accepted_at = now(), accepted_by = $2
         WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL
           AND expires_at > now()
         RETURNING workspace_id, role",
    )
    .bind(accounts::hash(token).as_slice())
    .bind(user_id)
    .fetch_optional(tx)
    .await?
    .ok_or_else(invalid_invitation)?;
    // The token named the workspace: the invitation is the permission.
    Ok((WorkspaceId::trusted(workspace), parse_role(&role)?))
}

/// Makes `user_id` a member of `workspace` as `role`, logged as `member.joined` by `actor`
/// (the person joining). 409 when they already are one, or when either side is full.
async fn join(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    user_id: i64,
    role: Role,
    actor: ActorRef<'_>,
) -> Result<Member, Error> {
    // The user's row first, then the workspace's: the same order as `POST /workspaces`
    // (user only) and the member changes (workspace only), so no two wait in a cycle.
    sqlx::query("SELECT 1 FROM admin_users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    lock(tx, workspace).await?;
    if find_member(tx, workspace, user_id).await.is_ok() {
        return Err(Error::Conflict {
            code: "already_member",
            message: "you are already a member of this workspace".to_owned(),
        });
    }
    crate::workspaces::check_memberships(tx, user_id).await?;
    let members: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workspace_members WHERE workspace_id = $1")
            .bind(workspace.get())
            .fetch_one(&mut *tx)
            .await?;
    if members >= MAX_MEMBERS {
        return Err(Error::Conflict {
            code: "too_many_members",
            message: format!("a workspace may have at most {MAX_MEMBERS} members"),
        });
    }
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
    let change = Change {
        action: "member.joined",
        target: ("member", user_id),
        before: None,
        after: Some(audited(&joined)?),
    };
    audit::record(tx, workspace, actor, change).await?;
    Ok(joined)
}

/// A new person joins through an invitation and is signed in, as by `POST /session`.
async fn sign_up(
    State(state): State<crate::State>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignUp>,
) -> Result<Response, Error> {
    let username = body.username.trim();
    if username.is_empty() || username.len() > accounts::MAX_USERNAME_BYTES {
        return Err(Error::invalid(
            "username",
            format!(
                "the username must be 1 to {} bytes",
                accounts::MAX_USERNAME_BYTES
            ),
        ));
    }
    accounts::check_new_password("password", &body.password)?;
    // No password is hashed for a token that cannot be used (the claim below decides).
    let usable: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workspace_invitations
                        WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL
                          AND expires_at > now())",
    )
    .bind(accounts::hash(&body.token).as_slice())
    .fetch_one(state.db())
    .await?;
    if !usable {
        return Err(invalid_invitation());
    }
    let limiter = &state.inner.sign_in;
    let permit = limiter.hash_permit().await.ok_or(Error::Busy)?;
    let password = body.password;
    let hashed = limiter
        .hash(permit, move |memory| {
            accounts::hash_password_in(&password, memory)
        })
        .await?
        .map_err(Error::Internal)?;
    let mut tx = state.db().begin().await?;
    let user_id: i64 = sqlx::query_scalar(
        "INSERT INTO admin_users (username, password_hash) VALUES ($1, $2)
         ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(username)
    .bind(hashed)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::Conflict {
        code: "username_taken",
        message: "this username is taken; choose another".to_owned(),
    })?;
    let (workspace, role) = claim(&mut tx, &body.token, user_id).await?;
    join(
        &mut tx,
        workspace,
        user_id,
        role,
        ActorRef::user(user_id, username),
    )
    .await?;
    tx.commit().await?;
    accounts::start_session(&state, &headers, user_id).await
}
