//! Dashboard sign-in: admin users (Argon2id passwords), browser sessions (an HttpOnly cookie
//! and a CSRF token). The limits on sign-in attempts are in `sign_in_limit.rs`.
//!
//! Routes: `POST /api/v1/session` signs in (the one API route without auth), `GET` says who
//! is signed in (and hands the dashboard its CSRF token again after a reload), `DELETE` signs out.

use argon2::password_hash::{Output, ParamsString, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version, password_hash::rand_core::OsRng};
use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shortlink::workspace::{Role, Session};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::caller::{Actor, Caller, Grant};
use crate::config::CodeKey;
use crate::error::Error;
use crate::extract::ApiJson;
use crate::sign_in_limit::Keys;

pub(crate) const COOKIE: &str = "kurz_session";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in lasts; signing in again starts a new session.
const SESSION_LIFETIME: time::Duration = time::Duration::days(7);
/// Most sessions one person keeps: a sign-in past it ends their oldest. Every sign-in makes
/// one (for 7 days) and a successful one costs nothing against the sign-in limits, so a
/// script signing in in a loop would otherwise grow the table without bound.
pub(crate) const MAX_SESSIONS_PER_USER: i64 = 100;
/// The name of the user made on a deployment's first start.
pub const FIRST_ADMIN: &str = "admin";
pub(crate) const MIN_PASSWORD_CHARS: usize = 10;
/// Longest username, in bytes.
pub(crate) const MAX_USERNAME_BYTES: usize = 64;
/// Longest password, in bytes: Argon2 takes any length, but a megabyte "password" is only
/// work for the server.
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;
/// A session keeps this much of its browser's `User-Agent`, to be recognised in the list.
const MAX_USER_AGENT_CHARS: usize = 200;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    username: String,
    password: String,
}

#[utoipa::path(
    post, path = "/api/v1/session", tag = "session", security(()),
    request_body = SignIn,
    responses((status = 200, description = "The session (its cookie is set).", body = shortlink::workspace::Session), crate::openapi::Refusals),
)]
pub(crate) async fn sign_in(
    State(state): State<crate::State>,
    request: Parts,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, Error> {
    // No user has a longer name, nor one with a NUL (which PostgreSQL's text refuses): refused
    // before a query, and never logged at length.
    if body.username.len() > MAX_USERNAME_BYTES || body.username.contains('\0') {
        return Err(Error::SignInFailed);
    }
    let db = state.db();
    let limiter = &state.inner.sign_in;
    // Before any query: a flood of sign-ins (this route is outside the API's concurrency cap)
    // waits its turn, or is told to come back, rather than take the connections every other
    // caller needs. Held through the queries where parallel guesses queue (the user's and the
    // counts') and the wait for a hash (so a surplus gets its 503 here, cheaply), not through
    // the hash itself: the hashes have their own cap.
    let Some(turn) = limiter.turn().await else {
        return Err(Error::Busy);
    };
    let attempt = limiter.keys().attempt(
        state.inner.redirects.client_ip.of_request(&request),
        &body.username,
    );
    // The known-address check rides along in the user's query, so a known name costs no
    // extra round trip (and no extra time) over an unknown one.
    let user: Option<(i64, String, bool)> = sqlx::query_as(
        "SELECT u.id, u.password_hash, EXISTS (
             SELECT 1 FROM sign_in_known_addresses k
             WHERE k.user_id = u.id AND k.address = $2
               AND k.last_success_at > now() - make_interval(days => $3))
         FROM admin_users u WHERE u.username = $1",
    )
    .bind(&body.username)
    .bind(attempt.address.as_slice())
    .bind(i32::try_from(limiter.limits().known_address_days).unwrap_or(i32::MAX))
    .fetch_optional(db)
    .await?;
    let known_address = user.as_ref().is_some_and(|(_, _, known)| *known);
    // Counted before the hash, whether the name exists or not: parallel guesses all count,
    // and a 429 says nothing about which names exist.
    let reservation = limiter.reserve(db, &attempt, !known_address).await?;
    let Some(permit) = limiter.hash_permit().await else {
        limiter.cancel(db, &attempt, reservation).await;
        return Err(Error::Busy);
    };
    drop(turn);
    // An unknown user is checked against a throwaway hash, so both answers take as long and
    // the timing does not tell which usernames exist.
    let stored = user.as_ref().map(|(_, hash, _)| hash.clone());
    let password = body.password;
    let matches = limiter
        .hash(permit, move |memory| {
            verify(&password, stored.as_deref().unwrap_or(&DUMMY_HASH), memory)
        })
        .await?;
    let Some((user_id, verified_hash, _)) = user.filter(|_| matches) else {
        // Not the name typed: people type their password there too (`sign_in_limit.rs` keeps
        // it only keyed). A keyed hash of it tells attempts at one name apart, and no more.
        let name_key = hex::encode(&limiter.keys().user(&body.username)[..6]);
        tracing::info!(name_key, "failed sign-in");
        return Err(Error::SignInFailed);
    };
    limiter
        .succeeded(db, &attempt, reservation, user_id)
        .await?;
    start_session(&state, &request.headers, user_id, &verified_hash).await
}

/// Starts a session of `user_id` (who proved who they are: a password, or a sign-up through an
/// invitation) and answers with its cookie and the `Session` body, as every sign-in does. The
/// session works in the workspace the person joined first (they can switch).
///
/// `verified_hash` is the password hash the person proved they know: the session is made only
/// if it is still the user's, so a sign-in whose hash was checked while the password changed
/// (which signs out every other session) does not slip in a session after that sign-out.
pub(crate) async fn start_session(
    state: &crate::State,
    headers: &HeaderMap,
    user_id: i64,
    verified_hash: &str,
) -> Result<Response, Error> {
    let db = state.db();
    sqlx::query("DELETE FROM admin_sessions WHERE expires_at < now()")
        .execute(db)
        .await?;
    let token = random_token();
    let csrf_token = random_token();
    let expires_at = OffsetDateTime::now_utc() + SESSION_LIFETIME;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect::<String>());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO admin_sessions (token_hash, user_id, csrf_token, expires_at, user_agent,
                                     workspace_id)
         SELECT $1, $2, $3, $4, $5, (SELECT workspace_id FROM workspace_members
                                     WHERE user_id = $2 ORDER BY joined_at, workspace_id LIMIT 1)
         FROM admin_users WHERE id = $2 AND password_hash = $6
         -- Waits for a password change under way, then reads its hash: without the lock the
         -- check reads the old, committed hash, and the session outlives the change's sign-out.
         FOR SHARE
         RETURNING id",
    )
    .bind(hash(&token).as_slice())
    .bind(user_id)
    .bind(&csrf_token)
    .bind(expires_at)
    .bind(user_agent)
    .bind(verified_hash)
    .fetch_optional(db)
    .await?
    // The password changed since it was checked.
    .ok_or(Error::SignInFailed)?;
    sqlx::query(
        "DELETE FROM admin_sessions WHERE user_id = $1 AND id <= (
             SELECT id FROM admin_sessions WHERE user_id = $1
             ORDER BY id DESC OFFSET $2 LIMIT 1)",
    )
    .bind(user_id)
    .bind(MAX_SESSIONS_PER_USER)
    .execute(db)
    .await?;
    let caller = find_session(db, &token)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("session {id} vanished at sign-in")))?;
    let view = session_view(db, &caller).await?;
    let cookie = set_session_cookie(state, headers, &token, SESSION_LIFETIME)?;
    Ok((cookie, Json(view)).into_response())
}

/// The headers that give the browser a session's cookie, `token`, for `lifetime`.
pub(crate) fn set_session_cookie(
    state: &crate::State,
    headers: &HeaderMap,
    token: &str,
    lifetime: time::Duration,
) -> Result<[(header::HeaderName, HeaderValue); 2], Error> {
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        lifetime.whole_seconds().max(0),
        secure_suffix(state, headers)
    );
    set_cookie(&cookie)
}

/// `GET /api/v1/session`: who is signed in, in which workspace, and the CSRF token again
/// (for the dashboard after a reload).
#[utoipa::path(
    get, path = "/api/v1/session", tag = "session",
    responses((status = 200, description = "The signed-in person (404 for an API key).", body = shortlink::workspace::Session), crate::openapi::Refusals),
)]
pub(crate) async fn current(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Session>, Error> {
    // A script asking who it is: keys have no session.
    if caller.session().is_none() {
        return Err(Error::NotFound);
    }
    Ok(Json(session_view(state.db(), &caller).await?))
}

/// The signed-in person as the dashboard sees them.
pub(crate) async fn session_view(db: &PgPool, caller: &Caller) -> Result<Session, Error> {
    let Actor::User { id, name, session } = &caller.actor else {
        return Err(Error::NotFound);
    };
    let workspaces = crate::workspaces::memberships(db, *id).await?;
    Ok(Session {
        user_id: *id,
        username: name.clone(),
        csrf_token: session.csrf_token.clone(),
        expires_at: session.expires_at,
        workspace: workspaces
            .iter()
            .find(|w| Some(w.id) == caller.workspace_id())
            .cloned(),
        workspaces,
    })
}

#[utoipa::path(
    delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "Signed out (the cookie is cleared)."), crate::openapi::Refusals),
)]
pub(crate) async fn sign_out(
    State(state): State<crate::State>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response, Error> {
    if let Some(session) = caller.session() {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(session.token_hash.as_slice())
            .execute(state.db())
            .await?;
    }
    Ok((StatusCode::NO_CONTENT, clear_cookie(&state, &headers)?).into_response())
}

/// The headers that make the browser forget its session cookie (signing out).
pub(crate) fn clear_cookie(
    state: &crate::State,
    headers: &HeaderMap,
) -> Result<[(header::HeaderName, HeaderValue); 2], Error> {
    let cookie = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_suffix(state, headers)
    );
    set_cookie(&cookie)
}

/// The caller of a cookie's token, if its session is live: the person, and the workspace the
/// session works in (or, if they were removed from it, the one they joined first). Notes the
/// session's use, to the minute.
pub(crate) async fn find_session(db: &PgPool, token: &str) -> Result<Option<Caller>, Error> {
    let token_hash = hash(token);
    #[allow(clippy::type_complexity)]
    let row: Option<(i64, i64, String, String, OffsetDateTime, Option<i64>, Option<String>, bool)> =
        sqlx::query_as(
            "SELECT s.id, u.id, u.username, s.csrf_token, s.expires_at, m.workspace_id, m.role,
                    s.last_seen_at < now() - interval '1 minute'
             FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
             LEFT JOIN LATERAL (
                 SELECT workspace_id, role FROM workspace_members m
                 WHERE m.user_id = s.user_id
                 ORDER BY m.workspace_id = s.workspace_id DESC NULLS LAST, m.joined_at, m.workspace_id
                 LIMIT 1
             ) m ON TRUE
             WHERE s.token_hash = $1 AND s.expires_at > now()",
        )
        .bind(token_hash.as_slice())
        .fetch_optional(db)
        .await?;
    let Some((session_id, user_id, username, csrf_token, expires_at, workspace, role, stale)) = row
    else {
        return Ok(None);
    };
    if stale {
        sqlx::query("UPDATE admin_sessions SET last_seen_at = now() WHERE id = $1")
            .bind(session_id)
            .execute(db)
            .await?;
    }
    let workspace = match workspace.zip(role) {
        Some((id, role)) => Some((id, Grant::Role(crate::members::parse_role(&role)?))),
        None => None,
    };
    Ok(Some(Caller::new(
        Actor::User {
            id: user_id,
            name: username,
            session: crate::caller::Session {
                id: session_id,
                token_hash,
                csrf_token,
                expires_at,
            },
        },
        workspace,
    )))
}

/// The value of our cookie in a request, if it has one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    hash(a) == hash(b)
}

/// Creates the first admin user if there is none. Returns the password when it was generated
/// here (to be shown once); `password` comes from `KURZ_ADMIN_PASSWORD`.
pub async fn create_first_admin(
    db: &PgPool,
    password: Option<&str>,
) -> anyhow::Result<Option<FirstAdmin>> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admin_users)")
        .fetch_one(db)
        .await?;
    if exists {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(given) => (given.to_owned(), false),
        None => (random_password(), true),
    };
    let hashed = hash_password(&password)?;
    let mut tx = db.begin().await?;
    // One statement, so two instances starting together make one user, not two passwords.
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO admin_users (username, password_hash)
         SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM admin_users)
         ON CONFLICT (username) DO NOTHING
         RETURNING id",
    )
    .bind(FIRST_ADMIN)
    .bind(hashed)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user_id) = inserted else {
        return Ok(None);
    };
    // The first user owns the default workspace, which holds everything made before
    // workspaces existed.
    join_default_workspace(&mut tx, user_id, FIRST_ADMIN).await?;
    tx.commit().await?;
    Ok(Some(FirstAdmin {
        password: generated.then_some(password),
    }))
}

/// Makes a user the operator just made an owner of the default workspace (1), logged as
/// `member.joined` by the operator.
async fn join_default_workspace(
    tx: &mut sqlx::PgConnection,
    user_id: i64,
    username: &str,
) -> Result<(), Error> {
    let workspace = crate::caller::WorkspaceId::trusted(1);
    let joined_at: OffsetDateTime = sqlx::query_scalar(
        "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'owner')
         RETURNING joined_at",
    )
    .bind(workspace.get())
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    let member = shortlink::workspace::Member {
        user_id,
        username: username.to_owned(),
        role: Role::Owner,
        joined_at,
    };
    let change = crate::audit::Change {
        action: "member.joined",
        target: ("member", user_id),
        before: None,
        after: Some(crate::members::audited(&member)?),
    };
    crate::audit::record(tx, workspace, crate::audit::ActorRef::operator(), change).await
}

#[derive(Debug)]
pub struct FirstAdmin {
    /// Set when the password was generated (not given in the environment).
    pub password: Option<String>,
}

/// Creates `username` with `password` (or resets its password when `reset`); signs out its
/// existing sessions on a reset. Returns whether the user already existed. `code_key` is the
/// server's (`KURZ_CODE_KEY`): the sign-in limits' keys are made with it.
pub async fn set_admin(
    db: &PgPool,
    code_key: &CodeKey,
    username: &str,
    password: &str,
    reset: bool,
) -> anyhow::Result<bool> {
    let username = username.trim();
    anyhow::ensure!(
        !username.is_empty() && username.len() <= MAX_USERNAME_BYTES,
        "the username must be 1 to {MAX_USERNAME_BYTES} bytes"
    );
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD_CHARS,
        "the password must be at least {MIN_PASSWORD_CHARS} characters"
    );
    let hashed = hash_password(password)?;
    let mut tx = db.begin().await?;
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM admin_users WHERE username = $1 FOR UPDATE")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
    match existing {
        Some(_) if !reset => {
            anyhow::bail!("the user {username:?} exists; pass --reset to set a new password")
        }
        Some(id) => {
            sqlx::query("UPDATE admin_users SET password_hash = $2 WHERE id = $1")
                .bind(id)
                .bind(hashed)
                .execute(&mut *tx)
                .await?;
            // The operator vouches for the user again: strangers' guesses no longer count
            // against it.
            sqlx::query("DELETE FROM sign_in_attempts WHERE scope = 'user' AND key = $1")
                .bind(Keys::new(code_key).user(username).as_slice())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM admin_sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // Nor is any address exempt from that limit now: they knew the old password.
            sqlx::query("DELETE FROM sign_in_known_addresses WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        None => {
            // Made by the operator: an owner of the default workspace, like the first user.
            let user_id: i64 = sqlx::query_scalar(
                "INSERT INTO admin_users (username, password_hash) VALUES ($1, $2) RETURNING id",
            )
            .bind(username)
            .bind(hashed)
            .fetch_one(&mut *tx)
            .await?;
            join_default_workspace(&mut tx, user_id, username).await?;
        }
    }
    tx.commit().await?;
    Ok(existing.is_some())
}

/// A password for a person to type: 20 characters from an alphabet without look-alikes.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect()
}

/// A new password (a sign-up's, or a change): at least [`MIN_PASSWORD_CHARS`] characters and
/// at most [`MAX_PASSWORD_BYTES`] bytes; 422 naming `field` otherwise.
pub(crate) fn check_new_password(field: &str, password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            field,
            format!("the password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(
            field,
            format!("the password must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| anyhow::anyhow!("cannot hash the password: {err}"))
}

/// [`hash_password`] computed in `memory` (grown to the hash's size, and kept by the caller for
/// the next hash): for hashes made under the sign-in limiter's permits (sign-ups through an
/// invitation, password changes), so they reuse its memory like the sign-ins' checks do.
pub(crate) fn hash_password_in(password: &str, memory: &mut Vec<Block>) -> anyhow::Result<String> {
    let failed =
        |err: argon2::password_hash::Error| anyhow::anyhow!("cannot hash the password: {err}");
    let params = Params::default();
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes).map_err(failed)?;
    let argon2 = Argon2::new(Algorithm::default(), Version::default(), params.clone());
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(argon2.hash_password_into_with_memory(
            password.as_bytes(),
            raw_salt,
            out,
            &mut **memory,
        )?)
    })
    .map_err(failed)?;
    let hash = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Most working memory a stored hash may ask for (256 MiB; ours take 19 MiB).
const MAX_HASH_BLOCKS: usize = 256 * 1024;

/// Whether `password` matches the PHC string `stored`, computed in `memory` (grown to the
/// hash's size, and kept by the caller for the next hash) rather than in a fresh allocation.
pub(crate) fn verify(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        parsed
            .version
            .map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_HASH_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    // `Output`'s equality takes the same time wherever the outputs differ.
    Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, &mut **memory)?)
    })
    .is_ok_and(|computed| computed == expected)
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&random_password()).unwrap_or_default());

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    hex::encode(bytes)
}

pub(crate) fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `; Secure` when the dashboard is reached over HTTPS, so the cookie never travels in clear
/// text there, while plain-HTTP local use still works.
fn secure_suffix(state: &crate::State, headers: &HeaderMap) -> &'static str {
    if served_over_https(state, headers) {
        "; Secure"
    } else {
        ""
    }
}

/// Whether a request came over HTTPS: the public URL's scheme, or a proxy that says so. What
/// sets a cookie `Secure` (the session's, a link's unlock).
pub(crate) fn served_over_https(state: &crate::State, headers: &HeaderMap) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    forwarded_https || state.inner.public_url.is_https()
}

fn set_cookie(cookie: &str) -> Result<[(header::HeaderName, HeaderValue); 2], Error> {
    let value = HeaderValue::from_str(cookie).map_err(|err| Error::Internal(err.into()))?;
    Ok([
        (header::SET_COOKIE, value),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hashed = hash_password("correct horse battery").expect("hashes");
        assert!(hashed.starts_with("$argon2id$"));
        let mut memory = Vec::new();
        assert!(verify("correct horse battery", &hashed, &mut memory));
        assert!(!verify("correct horse batterx", &hashed, &mut memory));
        assert!(!verify("anything", "not a hash", &mut memory));
        assert_eq!(memory.len(), Params::default().block_count());
        // Made in reused memory: the same PHC string as `hash_password` makes.
        let reused = hash_password_in("correct horse battery", &mut memory).expect("hashes");
        assert!(
            reused.starts_with(
                hashed
                    .split('$')
                    .take(4)
                    .collect::<Vec<_>>()
                    .join("$")
                    .as_str()
            ),
            "{reused}"
        );
        assert!(verify("correct horse battery", &reused, &mut memory));
        assert!(!verify("correct horse batterx", &reused, &mut memory));
        assert_eq!(memory.len(), Params::default().block_count());
        // Hashes made with other parameters (an older release's, argon2i) verify in the same
        // reused memory, as argon2's own verifier says.
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::new(4096, 3, 2, Some(24)).expect("params");
        for algorithm in [Algorithm::Argon2id, Algorithm::Argon2i] {
            let other = Argon2::new(algorithm, Version::V0x13, params.clone())
                .hash_password(b"another password", &salt)
                .expect("hashes")
                .to_string();
            assert!(verify("another password", &other, &mut memory), "{other}");
            assert!(!verify("another passwort", &other, &mut memory), "{other}");
        }
        assert_eq!(memory.len(), Params::default().block_count());
    }

    #[test]
    fn cookie_parsing() {
        let cases = [
            ("kurz_session=abc", Some("abc")),
            ("a=1; kurz_session=abc; b=2", Some("abc")),
            ("kurz_session_x=abc", None),
            ("kurz_session=", None),
            ("other=1", None),
        ];
        for (cookie, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_static(cookie));
            assert_eq!(session_cookie(&headers), expected, "{cookie}");
        }
    }

    #[test]
    fn generated_passwords() {
        let (a, b) = (random_password(), random_password());
        assert_ne!(a, b);
        assert_eq!(a.chars().count(), 20);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
