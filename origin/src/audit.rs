//! The audit log: every change of links, keys, members and settings, with who made it, when,
//! and the fields before and after. [`record`] is called in the transaction of the change, so
//! a change and its entry commit together or not at all. Rows are only added (a trigger
//! refuses updates) and deleted by the retention once older than `KURZ_AUDIT_RETENTION_DAYS`.

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use shortlink::workspace::{Actor, AuditEntry, AuditPage, AuditQuery, Permission};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::caller::{Caller, WorkspaceId};
use crate::error::Error;
use crate::extract::ApiQuery;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;
/// Longest action filter: longer than any action (`member.role_changed`).
const MAX_ACTION_CHARS: usize = 64;

/// Who made a change, as the log names them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActorRef<'a> {
    kind: &'static str,
    id: i64,
    name: &'a str,
}

impl<'a> ActorRef<'a> {
    pub(crate) fn user(id: i64, name: &'a str) -> Self {
        Self {
            kind: "user",
            id,
            name,
        }
    }

    /// Whoever ran a command of the origin's binary on the server.
    pub(crate) fn operator() -> Self {
        Self {
            kind: "operator",
            id: 0,
            name: "operator (command line)",
        }
    }

    /// The deployment's own rules acting on a workspace's data (the abuse blocklist
    /// disabling a link): the log names the rule, not the operator's admin, whom another
    /// workspace need not know.
    pub(crate) fn system(name: &'a str) -> Self {
        Self {
            kind: "operator",
            id: 0,
            name,
        }
    }

    pub(crate) fn key(id: i64, name: &'a str) -> Self {
        Self {
            kind: "key",
            id,
            name,
        }
    }
}

/// What changed: `target` is (`link` | `key` | `member` | `invitation` | `workspace`, id);
/// `before` and `after` are the changed thing's fields as the API shows them ([`fields`]).
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) action: &'static str,
    pub(crate) target: (&'static str, i64),
    pub(crate) before: Option<serde_json::Value>,
    pub(crate) after: Option<serde_json::Value>,
}

/// A value's fields for the log.
pub(crate) fn fields(value: &impl Serialize) -> Result<serde_json::Value, crate::Error> {
    serde_json::to_value(value).map_err(|err| crate::Error::Internal(err.into()))
}

/// Adds an entry to `workspace`'s log, in the transaction of the change.
pub(crate) async fn record(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    actor: ActorRef<'_>,
    change: Change,
) -> Result<(), crate::Error> {
    sqlx::query(
        "INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                                target_kind, target_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(workspace.get())
    .bind(actor.kind)
    .bind(actor.id)
    .bind(actor.name)
    .bind(change.action)
    .bind(change.target.0)
    .bind(change.target.1)
    .bind(change.before)
    .bind(change.after)
    .execute(tx)
    .await?;
    Ok(())
}

/// Adds an entry per change to `workspace`'s log in one statement (a bulk create's), all by
/// `actor`, in the transaction of the changes.
pub(crate) async fn record_many(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    actor: ActorRef<'_>,
    changes: Vec<Change>,
) -> Result<(), crate::Error> {
    let mut actions = Vec::with_capacity(changes.len());
    let mut kinds = Vec::with_capacity(changes.len());
    let mut ids = Vec::with_capacity(changes.len());
    let mut befores = Vec::with_capacity(changes.len());
    let mut afters = Vec::with_capacity(changes.len());
    for change in changes {
        actions.push(change.action);
        kinds.push(change.target.0);
        ids.push(change.target.1);
        befores.push(change.before);
        afters.push(change.after);
    }
    sqlx::query(
        "INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                                target_kind, target_id, before, after)
         SELECT $1, $2, $3, $4, u.action, u.target_kind, u.target_id, u.before, u.after
         FROM UNNEST($5::text[], $6::text[], $7::int8[], $8::jsonb[], $9::jsonb[])
              AS u(action, target_kind, target_id, before, after)",
    )
    .bind(workspace.get())
    .bind(actor.kind)
    .bind(actor.id)
    .bind(actor.name)
    .bind(actions)
    .bind(kinds)
    .bind(ids)
    .bind(befores)
    .bind(afters)
    .execute(tx)
    .await?;
    Ok(())
}

pub(crate) fn routes() -> axum::Router<crate::State> {
    axum::Router::new().route("/audit", get(list))
}

/// An [`AuditQuery`] whose values are checked.
#[derive(Debug, PartialEq, Eq)]
struct Filter {
    actor: Option<(&'static str, i64)>,
    action: Option<String>,
    link: Option<i64>,
    cursor: Option<i64>,
    limit: i64,
}

/// The filter of `query`, or a 422 naming the parameter at fault. Empty values count as
/// absent (a form sends its empty fields).
fn checked(query: AuditQuery) -> Result<Filter, Error> {
    let present =
        |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let actor = present(query.actor)
        .map(|actor| {
            let (kind, id) = actor.split_once(':').unwrap_or((&actor, ""));
            let kind = match kind {
                "user" => Some("user"),
                "key" => Some("key"),
                _ => None,
            };
            kind.zip(id.parse::<i64>().ok())
                .ok_or_else(|| Error::invalid("actor", "actor must be user:<id> or key:<id>"))
        })
        .transpose()?;
    let action = present(query.action);
    if action
        .as_ref()
        .is_some_and(|a| a.chars().count() > MAX_ACTION_CHARS)
    {
        return Err(Error::invalid(
            "action",
            format!("action must be at most {MAX_ACTION_CHARS} characters"),
        ));
    }
    if let Some(action) = &action {
        Error::unless_storable("action", action)?;
    }
    let link = present(query.link)
        .map(|link| {
            link.parse::<i64>()
                .map_err(|_| Error::invalid("link", "link must be a link's id"))
        })
        .transpose()?;
    let cursor = present(query.cursor)
        .map(|cursor| {
            cursor.parse::<i64>().map_err(|_| {
                Error::invalid(
                    "cursor",
                    "cursor must be a next_cursor from a previous page",
                )
            })
        })
        .transpose()?;
    Ok(Filter {
        actor,
        action,
        link,
        cursor,
        limit,
    })
}

/// An entry as stored: id, at, actor kind, id and name, action, target kind and id, before,
/// after.
type EntryRow = (
    i64,
    OffsetDateTime,
    String,
    i64,
    String,
    String,
    String,
    i64,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
);

/// The caller's workspace's log, newest first, by pages whose cursor is the last entry's id
/// (stable however many entries are added meanwhile).
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "A page of the audit log, newest first.", body = shortlink::workspace::AuditPage), crate::openapi::Refusals),
)]
async fn list(
    State(state): State<crate::State>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    // A link's entries hold the link as it was and became (its destination, rules, note): a
    // key with `workspace:admin` alone, which may not read links, sees who did what to which
    // link, without them.
    let link_contents = caller.may(Permission::ReadLinks).is_ok();
    let filter = checked(query)?;
    // Built, not `$n IS NULL OR ...`: each filter's query gets a plan that uses its index
    // (the link filter's is `audit_log_target`).
    let mut sql = sqlx::QueryBuilder::new(
        "SELECT id, at, actor_kind, actor_id, actor_name, action, target_kind, target_id,
                before, after
         FROM audit_log WHERE workspace_id = ",
    );
    sql.push_bind(workspace.get());
    if let Some((kind, id)) = filter.actor {
        sql.push(" AND actor_kind = ").push_bind(kind);
        sql.push(" AND actor_id = ").push_bind(id);
    }
    if let Some(action) = &filter.action {
        sql.push(" AND action = ").push_bind(action);
    }
    if let Some(link) = filter.link {
        sql.push(" AND target_kind = 'link' AND target_id = ")
            .push_bind(link);
    }
    if let Some(cursor) = filter.cursor {
        sql.push(" AND id < ").push_bind(cursor);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(filter.limit + 1);
    let rows: Vec<EntryRow> = sql.build_query_as().fetch_all(state.db()).await?;
    let has_more = rows.len() as i64 > filter.limit;
    let entries: Vec<AuditEntry> = rows
        .into_iter()
        .take(filter.limit as usize)
        .map(|row| entry(row, link_contents))
        .collect();
    let next_cursor = has_more
        .then(|| entries.last().map(|entry| entry.id.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}

/// An entry as the caller sees it: a link's without its `before` and `after` unless
/// `link_contents`.
fn entry(row: EntryRow, link_contents: bool) -> AuditEntry {
    let (id, at, kind, actor_id, name, action, target_kind, target_id, mut before, mut after) = row;
    if target_kind == "link" && !link_contents {
        (before, after) = (None, None);
    }
    AuditEntry {
        id,
        at,
        actor: Actor {
            kind,
            id: actor_id,
            name,
        },
        action,
        target_kind,
        target_id,
        before,
        after,
    }
}

/// Deletes every workspace's entries older than `cutoff`, in batches (`db::delete_in_batches`,
/// so one run never holds a huge transaction, or its locks and WAL, however much is due);
/// returns how many. Rows another instance is deleting at the same time are skipped.
pub(crate) async fn delete_before(db: &PgPool, cutoff: OffsetDateTime) -> Result<u64, sqlx::Error> {
    crate::db::delete_in_batches(
        db,
        "DELETE FROM audit_log WHERE (workspace_id, id) IN (
             SELECT workspace_id, id FROM audit_log WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        cutoff,
    )
    .await
}

impl crate::State {
    /// Deletes audit entries older than `cutoff` (a serving origin deletes those past
    /// `KURZ_AUDIT_RETENTION_DAYS` every hour); returns how many.
    pub async fn delete_audit_entries_before(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<u64, sqlx::Error> {
        delete_before(self.db(), cutoff).await
    }
}

/// Applies the retention at start and every hour ([`crate::db::hourly`]).
pub(crate) async fn forget_old_forever(db: PgPool, retention: time::Duration) {
    crate::db::hourly("audit log entries", || {
        delete_before(&db, OffsetDateTime::now_utc() - retention)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(query: &str) -> Result<Filter, Error> {
        crate::extract::parse_query::<AuditQuery>(query).and_then(checked)
    }

    fn refused_field(query: &str) -> String {
        match filter(query) {
            Err(Error::InvalidInput { field: Some(f), .. }) => f,
            other => panic!("{query}: not a refusal naming a field: {other:?}"),
        }
    }

    #[test]
    fn filters() {
        assert_eq!(
            filter("").expect("valid"),
            Filter {
                actor: None,
                action: None,
                link: None,
                cursor: None,
                limit: DEFAULT_PAGE
            }
        );
        assert_eq!(
            filter("actor=key:7&action=link.updated&link=3&cursor=99&limit=200").expect("valid"),
            Filter {
                actor: Some(("key", 7)),
                action: Some("link.updated".to_owned()),
                link: Some(3),
                cursor: Some(99),
                limit: 200
            }
        );
        let empty = filter("actor=&action=&link=&cursor=").expect("valid");
        assert_eq!(
            (empty.actor, empty.action, empty.link, empty.cursor),
            (None, None, None, None)
        );
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=x", "limit"),
            ("actor=user", "actor"),
            ("actor=team:1", "actor"),
            ("actor=user:x", "actor"),
            ("actor=user:99999999999999999999", "actor"),
            ("cursor=abc", "cursor"),
            ("link=abc", "link"),
            ("unknown=1", "unknown"),
        ] {
            assert_eq!(refused_field(query), field, "{query}");
        }
        let long = format!("action={}", "a".repeat(MAX_ACTION_CHARS + 1));
        assert_eq!(refused_field(&long), "action");
    }

    /// Arbitrary query strings over the log's parameters.
    fn any_audit_query() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let value = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0i64..300).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| format!("user:{n}")),
            any::<i64>().prop_map(|n| format!("key:{n}")),
            "[a-z.:_0-9]{0,80}",
            any::<String>(),
        ];
        let key = prop_oneof![
            Just("actor".to_owned()),
            Just("action".to_owned()),
            Just("link".to_owned()),
            Just("cursor".to_owned()),
            Just("limit".to_owned()),
            any::<String>(),
        ];
        proptest::collection::vec((key, value), 0..6).prop_map(|pairs| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        })
    }

    proptest::proptest! {
        /// Any query string is a checked filter or a refusal naming a field.
        #[test]
        fn no_audit_query_panics(query in any_audit_query()) {
            match filter(&query) {
                Ok(checked) => {
                    proptest::prop_assert!((1..=MAX_PAGE).contains(&checked.limit));
                    proptest::prop_assert!(checked.action.is_none_or(|a| !a.is_empty() && a.chars().count() <= MAX_ACTION_CHARS));
                    proptest::prop_assert!(checked.actor.is_none_or(|(kind, _)| kind == "user" || kind == "key"));
                }
                Err(err) => proptest::prop_assert!(
                    matches!(err, Error::InvalidInput { field: Some(_), .. }),
                    "{query}: not a refusal naming a field: {err:?}"
                ),
            }
        }
    }
}
