//! Invitations to join a workspace: made by admins, shown once as a link, used once within
//! 7 days, by a signed-in person (`accept`) or a new one (`sign_up`).
//!
//! Routes: `GET`/`POST /invitations`, `DELETE /invitations/{id}`, `POST /invitations/accept`;
//! and, without credentials (the token is one), `POST /invitations/lookup` and
//! `POST /invitations/sign-up`. An invitation is used by one conditional `UPDATE`, so it is
//! used once however many try. Only the SHA-256 of its token is stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use shortlink::workspace::{
    CreateInvitation, CreatedInvitation, Invitation, InvitationPreview, InvitationToken,
    Permission, Role, Session, SignUp,
};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::accounts;
use crate::audit::{self, ActorRef, Change};
use crate::caller::{Caller, Grant, WorkspaceId};
use crate::error::Error;
use crate::extract::{ApiJson, IdPath};
use crate::members::{self, Invited, join, lock, parse_role};

/// How long an invitation can be used.
const INVITATION_LIFETIME: time::Duration = time::Duration::days(7);
/// Most open invitations of a workspace: each is a way in, and the list shows them all.
const MAX_OPEN_INVITATIONS: i64 = 100;

/// The SQL condition on an invitation `i` that can still be used: not used, not revoked, not
/// expired, and its maker still a member of its workspace who may give its role (an admin or
/// owner whose role can do at least what the invitation's can, as [`Grant::may_grant`] says;
/// a test checks the two agree). A macro, so that queries `concat!` it as one literal.
macro_rules! usable {
    () => {
        "(i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()
          AND EXISTS (SELECT 1 FROM workspace_members maker
                      WHERE maker.workspace_id = i.workspace_id AND maker.user_id = i.created_by
                        AND (maker.role, i.role) IN (VALUES ('owner', 'owner'), ('owner', 'admin'),
                            ('owner', 'editor'), ('owner', 'viewer'), ('admin', 'admin'),
                            ('admin', 'editor'), ('admin', 'viewer'))))"
    };
}

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
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
#[utoipa::path(
    get, path = "/api/v1/invitations", tag = "workspaces",
    responses((status = 200, description = "Invitations not yet used.", body = Vec<shortlink::workspace::Invitation>), crate::openapi::Refusals),
)]
async fn list_invitations(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<Invitation>>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let rows: Vec<InvitationRow> = sqlx::query_as(concat!(
        "SELECT i.id, i.role, u.username, i.created_at, i.expires_at
         FROM workspace_invitations i LEFT JOIN admin_users u ON u.id = i.created_by
         WHERE i.workspace_id = $1 AND ",
        usable!(),
        "
         ORDER BY i.id"
    ))
    .bind(workspace.get())
    .fetch_all(state.db())
    .await?;
    Ok(Json(
        rows.into_iter().map(invitation).collect::<Result<_, _>>()?,
    ))
}

/// A new invitation: its token is in the answer's URL and nowhere else (only its SHA-256 is
/// stored, and the audit log never sees it).
#[utoipa::path(
    post, path = "/api/v1/invitations", tag = "workspaces",
    request_body = shortlink::workspace::CreateInvitation,
    responses((status = 201, description = "The invitation and its link (shown once).", body = shortlink::workspace::CreatedInvitation), crate::openapi::Refusals),
)]
async fn invite(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<CreatedInvitation>), Error> {
    let workspace = caller.may(Permission::Administer)?;
    // A person, so that `claim` can check their authority again when the invitation is used:
    // the table keeps who made it, and a key has no role to check.
    let Ok((created_by, _)) = caller.user() else {
        return Err(Error::Forbidden {
            needs: "a person signed in to the dashboard: invitations are made by people, \
                    not API keys",
        });
    };
    caller.may_grant(body.role)?;
    let mut tx = state.db().begin().await?;
    lock(&mut tx, workspace).await?;
    // Its authority now: a removal or a demotion it waited for above (which revoked the
    // invitations it had made) has taken it away.
    let now = caller.as_now(&mut tx).await?;
    now.may(Permission::Administer)?;
    now.may_grant(body.role)?;
    // Invitations that ended (used, revoked or not) a month ago or more go: the audit log
    // keeps their story, and a workspace's rows stay bounded however many are made.
    sqlx::query(
        "DELETE FROM workspace_invitations
         WHERE workspace_id = $1 AND expires_at < now() - interval '30 days'",
    )
    .bind(workspace.get())
    .execute(&mut *tx)
    .await?;
    let open: i64 = sqlx::query_scalar(concat!(
        "SELECT count(*) FROM workspace_invitations i WHERE i.workspace_id = $1 AND ",
        usable!()
    ))
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
    // An invitation to a full workspace could never be used.
    crate::members::check_room(&mut tx, workspace).await?;
    let token = accounts::random_token();
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
#[utoipa::path(
    delete, path = "/api/v1/invitations/{id}", tag = "workspaces",
    params(("id" = i64, Path, description = "The invitation's id.")),
    responses((status = 204, description = "Revoked."), crate::openapi::Refusals),
)]
async fn revoke(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut tx = state.db().begin().await?;
    lock(&mut tx, workspace).await?;
    // Its authority now: a demotion or a revocation it waited for above has taken it away.
    caller.as_now(&mut tx).await?.may(Permission::Administer)?;
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

/// Revokes the usable invitations `user_id` made in `workspace` with any of `roles`, each with
/// an `invitation.revoked` entry by `actor`: a person's invitations go with their authority.
/// Call before their membership changes (the workspace locked): [`usable`] asks for it.
pub(crate) async fn revoke_made_by(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    user_id: i64,
    roles: &[Role],
    actor: ActorRef<'_>,
) -> Result<(), Error> {
    if roles.is_empty() {
        return Ok(());
    }
    let roles: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
    let rows: Vec<InvitationRow> = sqlx::query_as(concat!(
        "UPDATE workspace_invitations i SET revoked_at = now()
         WHERE i.workspace_id = $1 AND i.created_by = $2 AND i.role = ANY($3) AND ",
        usable!(),
        "
         RETURNING i.id, i.role, (SELECT username FROM admin_users WHERE id = i.created_by),
                   i.created_at, i.expires_at"
    ))
    .bind(workspace.get())
    .bind(user_id)
    .bind(&roles)
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let invitation = invitation(row)?;
        let change = Change {
            action: "invitation.revoked",
            target: ("invitation", invitation.id),
            before: Some(audit::fields(&invitation)?),
            after: None,
        };
        audit::record(tx, workspace, actor, change).await?;
    }
    Ok(())
}

/// What a token opens, if it can still be used.
#[utoipa::path(
    post, path = "/api/v1/invitations/lookup", tag = "workspaces", security(()),
    request_body = shortlink::workspace::InvitationToken,
    responses((status = 200, description = "What the invitation opens.", body = shortlink::workspace::InvitationPreview), crate::openapi::Refusals),
)]
async fn lookup(
    State(state): State<crate::State>,
    ApiJson(body): ApiJson<InvitationToken>,
) -> Result<Json<InvitationPreview>, Error> {
    let (workspace_name, role, expires_at): (String, String, OffsetDateTime) =
        sqlx::query_as(concat!(
            "SELECT w.name, i.role, i.expires_at
             FROM workspace_invitations i JOIN workspaces w ON w.id = i.workspace_id
             WHERE i.token_hash = $1 AND ",
            usable!()
        ))
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
/// tells why.
fn invalid_invitation() -> Error {
    Error::InvitationInvalid
}

/// A signed-in person joins with the invitation's role, and their session moves there.
#[utoipa::path(
    post, path = "/api/v1/invitations/accept", tag = "workspaces",
    request_body = shortlink::workspace::InvitationToken,
    responses((status = 200, description = "The session, now in the invitation's workspace.", body = shortlink::workspace::Session), crate::openapi::Refusals),
)]
async fn accept(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<InvitationToken>,
) -> Result<Json<Session>, Error> {
    let (user_id, session) = caller.user()?;
    let mut tx = state.db().begin().await?;
    let (workspace, invited) = claim(&mut tx, &body.token, user_id).await?;
    let joined = join(&mut tx, workspace, user_id, invited, caller.audit_actor()).await?;
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

/// Uses the invitation of `token` for `user_id`, once: the workspace and role it grants, and
/// the invitation as the member's audit entry names it.
/// Locks the workspace, then the user, as every change of members does (`members::lock`).
async fn claim(
    tx: &mut PgConnection,
    token: &str,
    user_id: i64,
) -> Result<(WorkspaceId, (Role, Invited)), Error> {
    let token_hash = accounts::hash(token);
    // The token names the workspace: the invitation is the permission.
    let workspace: i64 =
        sqlx::query_scalar("SELECT workspace_id FROM workspace_invitations WHERE token_hash = $1")
            .bind(token_hash.as_slice())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(invalid_invitation)?;
    let workspace = WorkspaceId::trusted(workspace);
    lock(tx, workspace).await?;
    members::lock_user(tx, user_id).await?;
    // Decided under the workspace's lock: the maker's membership cannot change meanwhile.
    let (role, invitation_id, invited_by): (String, i64, Option<String>) = sqlx::query_as(concat!(
        "UPDATE workspace_invitations i SET accepted_at = now(), accepted_by = $2
             WHERE i.token_hash = $1 AND i.workspace_id = $3 AND ",
        usable!(),
        "
             RETURNING i.role, i.id,
                       (SELECT username FROM admin_users WHERE id = i.created_by)"
    ))
    .bind(token_hash.as_slice())
    .bind(user_id)
    .bind(workspace.get())
    .fetch_optional(tx)
    .await?
    .ok_or_else(invalid_invitation)?;
    let invited = Invited {
        invitation_id,
        invited_by,
    };
    Ok((workspace, (parse_role(&role)?, invited)))
}

fn username_taken() -> Error {
    Error::Conflict {
        code: "username_taken",
        message: "this username is taken; choose another".to_owned(),
    }
}

/// A new person joins through an invitation and is signed in, as by `POST /session`.
#[utoipa::path(
    post, path = "/api/v1/invitations/sign-up", tag = "session", security(()),
    request_body = shortlink::workspace::SignUp,
    responses((status = 200, description = "The new person's session (and its cookie).", body = shortlink::workspace::Session), crate::openapi::Refusals),
)]
async fn sign_up(
    State(state): State<crate::State>,
    request: Parts,
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
    Error::unless_name("username", username)?;
    accounts::check_new_password("password", &body.password)?;
    // No password is hashed for a token that cannot be used, or for a workspace that is full
    // (the claim and the join below decide).
    let members: Option<i64> = sqlx::query_scalar(concat!(
        "SELECT (SELECT count(*) FROM workspace_members m WHERE m.workspace_id = i.workspace_id)
         FROM workspace_invitations i WHERE i.token_hash = $1 AND ",
        usable!(),
    ))
    .bind(accounts::hash(&body.token).as_slice())
    .fetch_optional(state.db())
    .await?;
    match members {
        None => return Err(invalid_invitation()),
        Some(members) if members >= crate::members::MAX_MEMBERS => {
            return Err(crate::members::too_many_members());
        }
        Some(_) => {}
    }
    // A taken name is refused at once, and a free one is not: each sign-up tells whether its
    // name exists. So each counts as a sign-in attempt of its address (and of the name at
    // it; not of the name everywhere, which a stranger could use up), given back once the
    // person has joined: a token does not check names by the hundred.
    let limiter = &state.inner.sign_in;
    let attempt = limiter.keys().attempt(
        state.inner.redirects.client_ip.of_request(&request),
        username,
    );
    let reservation = limiter.reserve(state.db(), &attempt, false).await?;
    // Nor for a name that is taken, so that a valid token cannot buy hashes by the hundred with
    // names it cannot have. The insert's ON CONFLICT below still decides a race.
    let taken: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admin_users WHERE username = $1)")
            .bind(username)
            .fetch_one(state.db())
            .await?;
    if taken {
        return Err(username_taken());
    }
    let Some(permit) = limiter.hash_permit().await else {
        limiter.cancel(state.db(), &attempt, reservation).await;
        return Err(Error::Busy);
    };
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
    .bind(&hashed)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(username_taken)?;
    let (workspace, invited) = claim(&mut tx, &body.token, user_id).await?;
    join(
        &mut tx,
        workspace,
        user_id,
        invited,
        ActorRef::user(user_id, username),
    )
    .await?;
    tx.commit().await?;
    limiter
        .succeeded(state.db(), &attempt, reservation, user_id)
        .await?;
    accounts::start_session(&state, &request.headers, user_id, &hashed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairs in [`usable`] are the (maker's role, invitation's role) pairs that
    /// [`Grant::may_grant`] allows to a role that may make invitations.
    #[test]
    fn usable_agrees_with_may_grant() {
        let mut pairs = Vec::new();
        for maker in Role::ALL {
            for role in Role::ALL {
                if maker.permits(Permission::Administer) && Grant::Role(maker).may_grant(role) {
                    pairs.push(format!("('{}', '{}')", maker.as_str(), role.as_str()));
                }
            }
        }
        let condition: String = usable!().split_whitespace().collect::<Vec<_>>().join(" ");
        let values = format!("IN (VALUES {}))", pairs.join(", "));
        assert!(condition.contains(&values), "{condition}\n{values}");
    }
}
