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
use shortlink::api::CreatedApiKey;
use sqlx::PgPool;

use crate::accounts::{self, Caller};
use crate::error::Error;

const KEY_PREFIX: &str = "kurz_";

/// Refuses the request with 401 unless it carries a known API key (`Authorization: Bearer`)
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
        (Some(key), _) => {
            let known: Option<i64> =
                sqlx::query_scalar("SELECT id FROM api_keys WHERE key_hash = $1")
                    .bind(hash(key).as_slice())
                    .fetch_optional(state.db())
                    .await?;
            known.map(|_| Caller::ApiKey)
        }
        (None, Some(token)) => accounts::find_session(state.db(), token).await?,
        (None, None) => None,
    };
    let caller = caller.ok_or(Error::Unauthorized)?;
    if let Caller::Session { info, .. } = &caller {
        let safe = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let sent = request
            .headers()
            .get(accounts::CSRF_HEADER)
            .and_then(|value| value.to_str().ok());
        if !safe && !sent.is_some_and(|sent| accounts::same_secret(sent, &info.csrf_token)) {
            return Err(Error::CsrfMismatch);
        }
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// Creates a key named `name` and returns it: the only time it exists outside the caller.
pub async fn create_key(db: &PgPool, name: &str) -> Result<CreatedApiKey, sqlx::Error> {
    let key = generate();
    let id = sqlx::query_scalar(
        "INSERT INTO api_keys (name, key_hash, prefix) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(hash(&key).as_slice())
    .bind(&key[..KEY_PREFIX.len() + 6])
    .fetch_one(db)
    .await?;
    Ok(CreatedApiKey {
        id,
        name: name.to_owned(),
        key,
    })
}

/// Creates the first key if there is none, and returns it (to be shown once).
pub async fn create_first_key(db: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let key = generate();
    // One statement, so two instances starting together cannot both see an empty table
    // and each think the key they did not insert is valid.
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO api_keys (name, key_hash, prefix)
         SELECT 'initial', $1, $2 WHERE NOT EXISTS (SELECT 1 FROM api_keys)
         RETURNING id",
    )
    .bind(hash(&key).as_slice())
    .bind(&key[..KEY_PREFIX.len() + 6])
    .fetch_optional(db)
    .await?;
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
