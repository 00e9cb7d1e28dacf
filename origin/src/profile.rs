//! A person's own account: their sessions (`GET /me/sessions`, `DELETE /me/sessions/{id}`,
//! `DELETE /me/sessions` to sign out everywhere) and their password (`PUT /me/password`).
//! People only: an API key gets 403.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use shortlink::workspace::{ChangePassword, SessionEntry};
use time::OffsetDateTime;

use crate::accounts;
use crate::caller::{Actor, Caller};
use crate::error::Error;
use crate::extract::ApiJson;
use crate::extract::IdPath;

/// Most sessions listed: more than a person keeps ([`accounts::MAX_SESSIONS_PER_USER`]).
const MAX_SESSIONS_LISTED: i64 = 200;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/me/sessions", get(sessions).delete(sign_out_everywhere))
        .route("/me/sessions/{id}", delete(sign_out_session))
        .route("/me/password", put(change_password))
}

/// The person's live sessions, newest first.
#[utoipa::path(
    get, path = "/api/v1/me/sessions", tag = "session",
    responses((status = 200, description = "The person's live sessions.", body = Vec<shortlink::workspace::SessionEntry>), crate::openapi::Refusals),
)]
async fn sessions(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<SessionEntry>>, Error> {
    let (user_id, current) = caller.user()?;
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        i64,
        Option<String>,
        OffsetDateTime,
        OffsetDateTime,
        OffsetDateTime,
    )> = sqlx::query_as(
        "SELECT id, user_agent, created_at, last_seen_at, expires_at FROM admin_sessions
             WHERE user_id = $1 AND expires_at > now()
             ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(MAX_SESSIONS_LISTED)
    .fetch_all(state.db())
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(
                |(id, user_agent, created_at, last_seen_at, expires_at)| SessionEntry {
                    id,
                    user_agent,
                    created_at,
                    last_seen_at,
                    expires_at,
                    current: id == current.id,
                },
            )
            .collect(),
    ))
}

/// Signs out one of the person's sessions (another person's, or none: 404).
#[utoipa::path(
    delete, path = "/api/v1/me/sessions/{id}", tag = "session",
    params(("id" = i64, Path, description = "The session's id.")),
    responses((status = 204, description = "Signed out."), crate::openapi::Refusals),
)]
async fn sign_out_session(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, Error> {
    let (user_id, _) = caller.user()?;
    let deleted = sqlx::query("DELETE FROM admin_sessions WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(state.db())
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Signs out every session of the person, this one included (a lost laptop).
#[utoipa::path(
    delete, path = "/api/v1/me/sessions", tag = "session",
    responses((status = 204, description = "Every session signed out."), crate::openapi::Refusals),
)]
async fn sign_out_everywhere(
    State(state): State<crate::State>,
    request: Parts,
    caller: Caller,
) -> Result<Response, Error> {
    let (user_id, _) = caller.user()?;
    sqlx::query("DELETE FROM admin_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(state.db())
        .await?;
    let clear = accounts::clear_cookie(&state, &request.headers)?;
    Ok((StatusCode::NO_CONTENT, clear).into_response())
}

/// A new password, given the current one; every other session is signed out. The current
/// password is checked like a sign-in's (counted by the sign-in limits first, hashed under
/// the hash cap), so a stolen session cannot guess it faster than a sign-in could.
#[utoipa::path(
    put, path = "/api/v1/me/password", tag = "session",
    request_body = shortlink::workspace::ChangePassword,
    responses((status = 204, description = "Changed; every other session is signed out, and this one goes on under a new cookie (the old one is signed out too)."), crate::openapi::Refusals),
)]
async fn change_password(
    State(state): State<crate::State>,
    request: Parts,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<Response, Error> {
    let (user_id, session) = caller.user()?;
    let Actor::User { name: username, .. } = &caller.actor else {
        return Err(Error::Internal(anyhow::anyhow!("a user without a name")));
    };
    accounts::check_new_password("new_password", &body.new_password)?;
    let db = state.db();
    let limiter = &state.inner.sign_in;
    let attempt = limiter.keys().attempt(
        state.inner.redirects.client_ip.of_request(&request),
        username,
    );
    let (stored, known_address): (String, bool) = sqlx::query_as(
        "SELECT u.password_hash, EXISTS (
             SELECT 1 FROM sign_in_known_addresses k
             WHERE k.user_id = u.id AND k.address = $2
               AND k.last_success_at > now() - make_interval(days => $3))
         FROM admin_users u WHERE u.id = $1",
    )
    .bind(user_id)
    .bind(attempt.address.as_slice())
    .bind(i32::try_from(limiter.limits().known_address_days).unwrap_or(i32::MAX))
    .fetch_one(db)
    .await?;
    let reservation = limiter.reserve(db, &attempt, !known_address).await?;
    let Some(permit) = limiter.hash_permit().await else {
        limiter.cancel(db, &attempt, reservation).await;
        return Err(Error::Busy);
    };
    let ChangePassword {
        current_password,
        new_password,
    } = body;
    // Both hashes under one permit: the new one only after the current password matched.
    let against = stored.clone();
    let hashed = limiter
        .hash(permit, move |memory| {
            accounts::verify(&current_password, &against, memory)
                .then(|| accounts::hash_password_in(&new_password, memory))
        })
        .await?;
    let Some(hashed) = hashed else {
        return Err(Error::invalid(
            "current_password",
            "the current password is wrong",
        ));
    };
    let hashed = hashed.map_err(Error::Internal)?;
    limiter
        .succeeded(db, &attempt, reservation, user_id)
        .await?;
    // Only over the hash the current password was checked against, and only while this
    // session lives: a change or reset that committed meanwhile (and signed this session out)
    // is not undone by a request that read the hash before it.
    let mut tx = db.begin().await?;
    let changed = sqlx::query(
        "UPDATE admin_users SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
    )
    .bind(user_id)
    .bind(hashed)
    .bind(&stored)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    sqlx::query("DELETE FROM admin_sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(session.id)
        .execute(&mut *tx)
        .await?;
    // The addresses the old password signed in from are not exempt from the per-user limit
    // any more (a password changed because someone else had it leaves them none); this one,
    // which knew it, stays.
    sqlx::query("DELETE FROM sign_in_known_addresses WHERE user_id = $1 AND address <> $2")
        .bind(user_id)
        .bind(attempt.address.as_slice())
        .execute(&mut *tx)
        .await?;
    // This session goes on under a new token: a copy of its cookie (someone else's, maybe
    // the reason for the change) is signed out with the other sessions. Its CSRF token stays,
    // which is nothing without the cookie, so the dashboard goes on without asking again.
    let token = accounts::random_token();
    let signed_in = sqlx::query("UPDATE admin_sessions SET token_hash = $2 WHERE id = $1")
        .bind(session.id)
        .bind(accounts::hash(&token).as_slice())
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !signed_in {
        return Err(Error::Unauthorized);
    }
    if !changed {
        return Err(Error::invalid(
            "current_password",
            "the password was changed meanwhile: the current password is wrong",
        ));
    }
    tx.commit().await?;
    let lifetime = session.expires_at - OffsetDateTime::now_utc();
    let cookie = accounts::set_session_cookie(&state, &request.headers, &token, lifetime)?;
    Ok((StatusCode::NO_CONTENT, cookie).into_response())
}
