//! Who may call `/api/v1`: scripts with API keys, people with a dashboard session
//! (see [`crate::accounts`]).
//!
//! A key is `kurz_` followed by 48 hex characters (192 random bits). Only its SHA-256 is stored.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use shortlink::workspace::{ApiKey, CreateApiKey, CreatedApiKey, Scope};
use sqlx::PgPool;

use crate::accounts;
use crate::caller::{Actor, Caller, Grant, WorkspaceId};
use crate::error::Error;

const KEY_PREFIX: &str = "kurz_";

/// The header in which the dashboard says which workspace its page shows: a request whose
/// caller now works in another one (switched in another tab) is refused with 409 rather than
/// applied to a workspace the person is not looking at.
pub(crate) const WORKSPACE_HEADER: &str = "kurz-workspace";

/// Refuses the request with 401 unless it carries a live API key (`Authorization: Bearer`)
/// or a dashboard session cookie. A session must also send its CSRF token with any request
/// that may change something (403 otherwise). Puts the [`Caller`] in the request's extensions.
pub(crate) async fn require_caller(
    State(state): State<crate::State>,
    mut request: Request,
    next: Next,
) -> Result<Response, Error> {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let caller = match (bearer, accounts::session_cookie(request.headers())) {
        (Some(key), _) => find_key(state.db(), key).await?,
        (None, Some(token)) => accounts::find_session(state.db(), token).await?,
        (None, None) => None,
    };
    let caller = caller.ok_or(Error::Unauthorized)?;
    if let Some(session) = caller.session() {
        let safe = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let sent = request
            .headers()
            .get(accounts::CSRF_HEADER)
            .and_then(|value| value.to_str().ok());
        if !safe && !sent.is_some_and(|sent| accounts::same_secret(sent, &session.csrf_token)) {
            return Err(Error::CsrfMismatch);
        }
    }
    if let Some(shown) = request.headers().get(WORKSPACE_HEADER) {
        // Refused outright: read as "no workspace", it would pass for a caller who has none.
        let shown = shown
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "the {WORKSPACE_HEADER} header must be a workspace's id (a number)"
                ))
            })?;
        works_in(&caller, Some(shown))?;
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// Refuses (409) a caller who works in another workspace than `shown`, the one the request
/// means (the dashboard's page shows): sent as the [`WORKSPACE_HEADER`], checked for every
/// route, or as the `workspace` query parameter of a download (which carries no header).
pub(crate) fn works_in(caller: &Caller, shown: Option<i64>) -> Result<(), Error> {
    match shown {
        Some(shown) if Some(shown) != caller.workspace_id() => Err(Error::WorkspaceChanged),
        _ => Ok(()),
    }
}

/// The caller of a live key (not revoked, not expired); notes its use (to the minute).
async fn find_key(db: &PgPool, key: &str) -> Result<Option<Caller>, Error> {
    let row: Option<(i64, String, i64, Vec<String>, bool)> = sqlx::query_as(
        "SELECT id, name, workspace_id, scopes,
                last_used_at IS NULL OR last_used_at < now() - interval '1 minute'
         FROM api_keys
         WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(hash(key).as_slice())
    .fetch_optional(db)
    .await?;
    let Some((id, name, workspace, scopes, stale)) = row else {
        return Ok(None);
    };
    if stale {
        // Once a minute at most: a busy key does not write a row per request.
        sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?;
    }
    let scopes = scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    Ok(Some(Caller::new(
        Actor::Key { id, name },
        Some((workspace, Grant::Scopes(scopes))),
    )))
}

/// A new key of `workspace`: the only time its secret exists outside the caller. `created_by`
/// is the person on whose authority it is made (its maker, or the person behind the key that
/// makes it), `made_by_key` the key that makes it (0048).
pub(crate) async fn create_key(
    tx: &mut sqlx::PgConnection,
    workspace: WorkspaceId,
    body: &CreateApiKey,
    created_by: Option<i64>,
    made_by_key: Option<i64>,
) -> Result<CreatedApiKey, sqlx::Error> {
    let key = generate();
    let mut scopes = body.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let (id, created_at, created_by_name): (i64, time::OffsetDateTime, Option<String>) =
        sqlx::query_as(
            "INSERT INTO api_keys (name, key_hash, prefix, workspace_id, scopes, expires_at, created_by,
                                   made_by_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING id, created_at, (SELECT username FROM admin_users WHERE id = $7)",
        )
        .bind(&body.name)
        .bind(hash(&key).as_slice())
        .bind(&key[..KEY_PREFIX.len() + 6])
        .bind(workspace.get())
        .bind(&names)
        .bind(body.expires_at)
        .bind(created_by)
        .bind(made_by_key)
        .fetch_one(tx)
        .await?;
    Ok(CreatedApiKey {
        api_key: ApiKey {
            id,
            name: body.name.clone(),
            prefix: key[..KEY_PREFIX.len() + 6].to_owned(),
            scopes,
            created_by: created_by_name,
            created_at,
            expires_at: body.expires_at,
            last_used_at: None,
        },
        key,
    })
}

/// A key of `workspace` with `scopes`, made by an operator (the CLI) or a test, and logged in
/// the workspace's audit log as made by the operator; its secret.
pub async fn create_operator_key(
    db: &PgPool,
    workspace: i64,
    name: &str,
    scopes: &[Scope],
) -> Result<String, Error> {
    let workspace = WorkspaceId::trusted(workspace);
    let mut tx = db.begin().await?;
    let body = CreateApiKey {
        name: name.to_owned(),
        scopes: scopes.to_vec(),
        expires_at: None,
    };
    let created = create_key(&mut tx, workspace, &body, None, None).await?;
    let change = crate::audit::Change {
        action: "key.created",
        target: ("key", created.api_key.id),
        before: None,
        after: Some(crate::audit::fields(&created.api_key)?),
    };
    crate::audit::record(
        &mut tx,
        workspace,
        crate::audit::ActorRef::operator(),
        change,
    )
    .await?;
    tx.commit().await?;
    Ok(created.key)
}

/// A key with every scope in the default workspace (workspace 1), named `name`.
pub async fn create_default_key(db: &PgPool, name: &str) -> Result<String, Error> {
    create_operator_key(db, 1, name, &Scope::ALL).await
}

/// Creates the first key if there is none, and returns it (to be shown once): every scope
/// in the default workspace.
pub async fn create_first_key(db: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let key = generate();
    // Two instances starting together would each see an empty table (neither sees the
    // other's row before it commits) and each make a key: they take turns.
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('kurz first key'))")
        .execute(&mut *tx)
        .await?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO api_keys (name, key_hash, prefix, workspace_id, scopes)
         SELECT 'initial', $1, $2, 1, $3 WHERE NOT EXISTS (SELECT 1 FROM api_keys)
         RETURNING id",
    )
    .bind(hash(&key).as_slice())
    .bind(&key[..KEY_PREFIX.len() + 6])
    .bind(Scope::ALL.map(Scope::as_str).as_slice())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(inserted.map(|_| key))
}

fn generate() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_well_formed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 48);
        assert_ne!(hash(&a), hash(&b));
    }
}
