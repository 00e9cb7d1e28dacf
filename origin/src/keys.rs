//! The API keys of a workspace (`/api/v1/keys`): listed, created (the secret shown once,
//! only its SHA-256 stored, see [`crate::auth`]) and revoked, by its admins.
//!
//! A key that creates a key may grant only the scopes it holds itself, so a key can never
//! make a more powerful one than it is.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use shortlink::workspace::{ApiKey, CreateApiKey, Permission, Scope};
use time::OffsetDateTime;

use crate::audit::{self, ActorRef, Change};
use crate::auth;
use crate::caller::{Actor, Caller, Grant, WorkspaceId};
use crate::error::Error;
use crate::extract::{ApiJson, IdPath};

/// Longest key name, in characters (the column is unbounded; the dashboard shows it in a row).
pub(crate) const MAX_NAME_CHARS: usize = 100;
/// Keys neither revoked nor expired a workspace may hold through the API: more is a script
/// gone wrong, and the list is never paged.
pub(crate) const MAX_LIVE_KEYS: i64 = 100;
/// Keys listed at most: live ones first. Only an operator's `create-api-key` can pass
/// [`MAX_LIVE_KEYS`], but expired keys stay listed for 30 days (a CI job's hourly keys), and
/// the list stays bounded even then.
const MAX_LISTED: i64 = 1_000;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/keys", get(list).post(create))
        .route("/keys/{id}", delete(revoke))
}

/// The workspace's unrevoked keys: the live ones, newest first, then the expired ones (the
/// dashboard shows them as expired, so that they can be revoked and their names reused).
/// Newest first alone hid a live key behind a thousand newer expired ones.
#[utoipa::path(
    get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, description = "The workspace's live keys (never their secrets).", body = Vec<shortlink::workspace::ApiKey>), crate::openapi::Refusals),
)]
async fn list(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<ApiKey>>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT k.id, k.name, k.prefix, k.scopes, u.username, k.created_at, k.expires_at,
                k.last_used_at
         FROM api_keys k LEFT JOIN admin_users u ON u.id = k.created_by
         WHERE k.workspace_id = $1 AND k.revoked_at IS NULL
         ORDER BY k.expires_at IS NULL OR k.expires_at > now() DESC, k.id DESC
         LIMIT $2",
    )
    .bind(workspace.get())
    .bind(MAX_LISTED)
    .fetch_all(state.db())
    .await?;
    Ok(Json(rows.into_iter().map(api_key).collect()))
}

/// A key as stored: id, name, prefix, scopes, creator's username, created, expires, last used.
type KeyRow = (
    i64,
    String,
    String,
    Vec<String>,
    Option<String>,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
);

fn api_key(row: KeyRow) -> ApiKey {
    let (id, name, prefix, scopes, created_by, created_at, expires_at, last_used_at) = row;
    ApiKey {
        id,
        name,
        prefix,
        // The column's CHECK admits only known scopes.
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        created_by,
        created_at,
        expires_at,
        last_used_at,
    }
}

#[utoipa::path(
    post, path = "/api/v1/keys", tag = "keys",
    request_body = shortlink::workspace::CreateApiKey,
    responses((status = 201, description = "The key, with its secret (shown once).", body = shortlink::workspace::CreatedApiKey), crate::openapi::Refusals),
)]
async fn create(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<impl IntoResponse, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let body = checked(body, caller.grant(), OffsetDateTime::now_utc())?;
    let mut tx = state.db().begin().await?;
    lock_and_count(&mut tx, workspace).await?;
    // Revoked or demoted while this waited for the lock: refused (`revoke` takes it too).
    caller.as_now(&mut tx).await?.may(Permission::Administer)?;
    // A key made by a key is made on the authority of the person behind its maker (it goes
    // when they go, `revoke_made_by`), goes when its maker is revoked (`revoke`), and may
    // not outlive it.
    let (created_by, made_by_key) = match &caller.actor {
        Actor::User { id, .. } => (Some(*id), None),
        Actor::Key { id, .. } => {
            let (person, expires_at): (Option<i64>, Option<OffsetDateTime>) =
                sqlx::query_as("SELECT created_by, expires_at FROM api_keys WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            check_within(body.expires_at, expires_at)?;
            (person, Some(*id))
        }
    };
    let created = auth::create_key(&mut tx, workspace, &body, created_by, made_by_key).await?;
    let change = Change {
        action: "key.created",
        target: ("key", created.api_key.id),
        before: None,
        // Never the secret: the log is read by every admin.
        after: Some(audit::fields(&created.api_key)?),
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Refuses a workspace at [`MAX_LIVE_KEYS`] keys neither revoked nor expired. The workspace's
/// row is locked until commit ([`crate::members::lock`], before the creator's row is key-share
/// locked by the insert), so two creations at once cannot both see room for one more.
///
/// Keys that ended (revoked or expired) a month ago or more go first: the audit log keeps
/// their story, and a workspace's rows stay bounded however many keys are made and revoked
/// (a script's key a job).
async fn lock_and_count(tx: &mut sqlx::PgConnection, workspace: WorkspaceId) -> Result<(), Error> {
    crate::members::lock(tx, workspace).await?;
    sqlx::query(
        "DELETE FROM api_keys WHERE workspace_id = $1
         AND (revoked_at < now() - interval '30 days' OR expires_at < now() - interval '30 days')",
    )
    .bind(workspace.get())
    .execute(&mut *tx)
    .await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE workspace_id = $1 AND revoked_at IS NULL
         AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(workspace.get())
    .fetch_one(&mut *tx)
    .await?;
    if live >= MAX_LIVE_KEYS {
        return Err(Error::Conflict {
            code: "too_many_keys",
            message: format!("a workspace may have at most {MAX_LIVE_KEYS} keys: revoke one first"),
        });
    }
    Ok(())
}

/// Refuses a key made by a key that would outlive it (`maker`'s expiry, if it has one).
fn check_within(
    expires_at: Option<OffsetDateTime>,
    maker: Option<OffsetDateTime>,
) -> Result<(), Error> {
    match maker {
        Some(limit) if expires_at.is_none_or(|at| at > limit) => Err(Error::invalid(
            "expires_at",
            format!(
                "a key made by a key may not outlive it: expires_at must be at or before {}",
                limit
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| limit.to_string())
            ),
        )),
        _ => Ok(()),
    }
}

/// The body with its name trimmed and its scopes sorted without duplicates, if it breaks no
/// rule. A key (`grant` of scopes) may grant only scopes it holds.
fn checked(
    body: CreateApiKey,
    grant: Option<&Grant>,
    now: OffsetDateTime,
) -> Result<CreateApiKey, Error> {
    let name = check_name(&body.name)?;
    let mut scopes = body.scopes;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(Error::invalid(
            "scopes",
            "scopes must name at least one of links:read, links:write, stats:read, workspace:admin",
        ));
    }
    if let Some(Grant::Scopes(held)) = grant
        && !scopes.iter().all(|scope| held.contains(scope))
    {
        return Err(Error::Forbidden {
            needs: "every scope the new key is given (a key may grant only its own scopes)",
        });
    }
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::invalid(
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    Ok(CreateApiKey {
        name,
        scopes,
        expires_at: body.expires_at,
    })
}

/// A key's name, trimmed: 1 to [`MAX_NAME_CHARS`] characters (also for the CLI).
pub(crate) fn check_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Error::unless_name("name", name)?;
    Ok(name.to_owned())
}

/// Revokes a key of the caller's workspace (it is refused from then on), and the keys made
/// with it, to any depth; a key may revoke itself. The rows stay for a month (see
/// [`lock_and_count`]); the audit log's entries keep their story after.
#[utoipa::path(
    delete, path = "/api/v1/keys/{id}", tag = "keys",
    params(("id" = i64, Path, description = "The key's id.")),
    responses((status = 204, description = "Revoked."), crate::openapi::Refusals),
)]
async fn revoke(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut tx = state.db().begin().await?;
    // As every change of the workspace's keys and members: a key being made with the key
    // revoked here either commits first (and is revoked with it) or sees it revoked.
    crate::members::lock(&mut tx, workspace).await?;
    // Its authority now: a revocation or a demotion it waited for above has taken it away.
    caller.as_now(&mut tx).await?.may(Permission::Administer)?;
    let rows: Vec<KeyRow> = sqlx::query_as(&revoking_with_made(
        "id = $2 AND workspace_id = $1 AND revoked_at IS NULL",
        "r.id <> $2, r.id",
    ))
    .bind(workspace.get())
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    // Another workspace's key is as unknown as one that never existed.
    if rows.first().is_none_or(|row| row.0 != id) {
        return Err(Error::NotFound);
    }
    audit_revoked(&mut tx, workspace, caller.audit_actor(), rows).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A statement that revokes the live keys of workspace `$1` that match `chosen` and the keys
/// made from them, to any depth (0048): what a key made goes with it. Its rows are the keys
/// revoked, in `order`.
fn revoking_with_made(chosen: &str, order: &str) -> String {
    format!(
        "WITH RECURSIVE made (id) AS (
             SELECT id FROM api_keys WHERE {chosen}
             UNION
             SELECT k.id FROM api_keys k JOIN made ON k.made_by_key = made.id
         ), revoked AS (
             UPDATE api_keys SET revoked_at = now()
             WHERE id IN (SELECT id FROM made) AND workspace_id = $1 AND revoked_at IS NULL
             RETURNING id, name, prefix, scopes, created_by, created_at, expires_at, last_used_at
         )
         SELECT r.id, r.name, r.prefix, r.scopes, u.username, r.created_at, r.expires_at,
                r.last_used_at
         FROM revoked r LEFT JOIN admin_users u ON u.id = r.created_by
         ORDER BY {order}"
    )
}

/// A `key.revoked` entry by `actor` for each of `rows`, the keys just revoked.
async fn audit_revoked(
    tx: &mut sqlx::PgConnection,
    workspace: WorkspaceId,
    actor: ActorRef<'_>,
    rows: Vec<KeyRow>,
) -> Result<(), Error> {
    for row in rows {
        let key = api_key(row);
        let change = Change {
            action: "key.revoked",
            target: ("key", key.id),
            before: Some(audit::fields(&key)?),
            after: None,
        };
        audit::record(&mut *tx, workspace, actor, change).await?;
    }
    Ok(())
}

/// Revokes the live keys `user_id` made in `workspace` that hold any of `scopes`, and the keys
/// made from those, each with a `key.revoked` entry by `actor`: a person's keys go with their
/// authority (they left, or their new role may not do what the keys may).
pub(crate) async fn revoke_made_by(
    tx: &mut sqlx::PgConnection,
    workspace: WorkspaceId,
    user_id: i64,
    scopes: &[Scope],
    actor: ActorRef<'_>,
) -> Result<(), Error> {
    if scopes.is_empty() {
        return Ok(());
    }
    let scopes: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    let rows: Vec<KeyRow> = sqlx::query_as(&revoking_with_made(
        "workspace_id = $1 AND created_by = $2 AND revoked_at IS NULL AND scopes && $3::text[]",
        "r.id",
    ))
    .bind(workspace.get())
    .bind(user_id)
    .bind(&scopes)
    .fetch_all(&mut *tx)
    .await?;
    audit_revoked(tx, workspace, actor, rows).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str, scopes: &[Scope]) -> CreateApiKey {
        CreateApiKey {
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            expires_at: None,
        }
    }

    fn field(result: Result<CreateApiKey, Error>) -> Option<String> {
        match result {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("not a refusal naming a field: {other:?}"),
        }
    }

    #[test]
    fn checks_the_body() {
        let now = OffsetDateTime::now_utc();
        let admin = Grant::Role(shortlink::workspace::Role::Admin);
        let ok = checked(
            body(
                "  deploy  ",
                &[Scope::StatsRead, Scope::LinksRead, Scope::StatsRead],
            ),
            Some(&admin),
            now,
        )
        .expect("valid");
        assert_eq!(ok.name, "deploy");
        assert_eq!(ok.scopes, [Scope::LinksRead, Scope::StatsRead]);
        for name in ["", "   ", &"x".repeat(MAX_NAME_CHARS + 1)] {
            let refused = checked(body(name, &[Scope::LinksRead]), Some(&admin), now);
            assert_eq!(field(refused).as_deref(), Some("name"), "{name:?}");
        }
        let long = "é".repeat(MAX_NAME_CHARS);
        assert!(checked(body(&long, &[Scope::LinksRead]), Some(&admin), now).is_ok());
        let no_scopes = checked(body("x", &[]), Some(&admin), now);
        assert_eq!(field(no_scopes).as_deref(), Some("scopes"));
        let mut past = body("x", &[Scope::LinksRead]);
        past.expires_at = Some(now);
        assert_eq!(
            field(checked(past, Some(&admin), now)).as_deref(),
            Some("expires_at")
        );
    }

    #[test]
    fn a_key_made_by_a_key_expires_no_later() {
        let now = OffsetDateTime::now_utc();
        let day = time::Duration::DAY;
        // (asked, the maker's expiry, allowed)
        let cases = [
            (None, None, true),
            (Some(now + day), None, true),
            (None, Some(now + day), false),
            (Some(now + 2 * day), Some(now + day), false),
            (Some(now + day), Some(now + day), true),
            (Some(now), Some(now + day), true),
        ];
        for (asked, maker, allowed) in cases {
            assert_eq!(
                check_within(asked, maker).is_ok(),
                allowed,
                "{asked:?} {maker:?}"
            );
        }
    }

    #[test]
    fn a_key_grants_only_its_own_scopes() {
        let now = OffsetDateTime::now_utc();
        let key = Grant::Scopes(vec![Scope::LinksRead, Scope::WorkspaceAdmin]);
        assert!(checked(body("x", &[Scope::LinksRead]), Some(&key), now).is_ok());
        assert!(
            checked(
                body("x", &[Scope::LinksRead, Scope::WorkspaceAdmin]),
                Some(&key),
                now
            )
            .is_ok()
        );
        assert!(matches!(
            checked(
                body("x", &[Scope::LinksRead, Scope::LinksWrite]),
                Some(&key),
                now
            ),
            Err(Error::Forbidden { .. })
        ));
        let admin = Grant::Role(shortlink::workspace::Role::Admin);
        assert!(checked(body("x", &Scope::ALL), Some(&admin), now).is_ok());
    }
}
