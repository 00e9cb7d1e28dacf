//! Every query on the `links` table, and the one conversion of its rows into what the API
//! shows ([`LinkRow::into_link`]) and what a redirect needs ([`RecordRow::into_record`]).
//!
//! Queries of the API take a [`WorkspaceId`], which only the caller's extractor makes, so no
//! code path reaches a link of another workspace. The redirect path and the edge's sync take
//! a link by (domain, code), its unique key: a visitor has no workspace.

use shortlink::api::{CreateLink, Link, UpdateLink};
use shortlink::redirect::LinkRecord;
use shortlink::{Destination, RedirectStatus, ShortCode};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use crate::caller::WorkspaceId;
use crate::config::PublicUrl;
use crate::error::Error;

/// The deployment's own domain (`0012_workspaces.sql`): the only one until custom domains
/// come, and the one the edge serves.
pub(crate) const DEFAULT_DOMAIN: i64 = 1;

/// The columns of a [`LinkRow`].
const COLUMNS: &str = "id, code, destination, status, expires_at, created_at, updated_at";

/// A link as the API shows it, before its short URL is made.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub(crate) struct LinkRow {
    pub(crate) id: i64,
    pub(crate) code: String,
    destination: String,
    status: i16,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(skip)]
    created_at: OffsetDateTime,
    #[serde(skip)]
    updated_at: OffsetDateTime,
}

impl LinkRow {
    pub(crate) fn into_link(self, public_url: &PublicUrl) -> Result<Link, Error> {
        Ok(Link {
            short_url: public_url.short_url(&self.code),
            id: self.id,
            code: stored(ShortCode::parse(&self.code))?,
            destination: stored(Destination::parse(&self.destination))?,
            status: stored(RedirectStatus::try_from(self.status as u16))?,
            expires_at: self.expires_at,
            disabled: false,
            max_clicks: None,
            clicks_used: 0,
            fallback_url: None,
            password_protected: false,
            targets: Default::default(),
            split: Default::default(),
            utm: Default::default(),
            tags: Default::default(),
            note: None,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    /// The fields an edit can change, for the audit log.
    pub(crate) fn audited(&self) -> Result<serde_json::Value, Error> {
        crate::audit::fields(self)
    }
}

/// A stored value that breaks a rule was written around the API: a bug or manual edit, 500.
fn stored<T>(value: Result<T, shortlink::Error>) -> Result<T, Error> {
    value.map_err(|err| Error::Internal(anyhow::anyhow!("invalid value stored in links: {err}")))
}

/// The id the next link will have (generated codes are made from it).
pub(crate) async fn next_id(db: impl PgExecutor<'_>) -> Result<i64, Error> {
    Ok(
        sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('links', 'id'))")
            .fetch_one(db)
            .await?,
    )
}

/// Inserts a link of `workspace` with this id and code on the default domain; `None` if a
/// live link has the code (the unique index decides, so two inserts cannot both get it).
pub(crate) async fn insert(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    id: i64,
    code: &ShortCode,
    body: &CreateLink,
) -> Result<Option<LinkRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO links (id, workspace_id, domain_id, code, destination, status, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (domain_id, code) WHERE deleted_at IS NULL DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .bind(body.destination.as_str())
    .bind(body.status.code() as i16)
    .bind(body.expires_at)
    .fetch_optional(tx)
    .await?)
}

/// The live link of `workspace` with this code.
pub(crate) async fn find(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    code: &ShortCode,
) -> Result<LinkRow, Error> {
    let row: Option<LinkRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM links
         WHERE workspace_id = $1 AND domain_id = $2 AND code = $3 AND deleted_at IS NULL"
    ))
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(db)
    .await?;
    row.ok_or_else(|| Error::LinkNotFound(code.to_string()))
}

/// The id of the live link of `workspace` with this code (statistics, QR codes, exports:
/// those of deleted links are not reachable by code).
pub(crate) async fn find_id(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    code: &ShortCode,
) -> Result<i64, Error> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM links
         WHERE workspace_id = $1 AND domain_id = $2 AND code = $3 AND deleted_at IS NULL",
    )
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(db)
    .await?;
    id.ok_or_else(|| Error::LinkNotFound(code.to_string()))
}

/// The orders a list can come in. Each is a keyset over an index of the workspace's live
/// links, so any page of millions of links costs the same as the first.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Sort {
    #[default]
    Newest,
    Oldest,
    CodeAsc,
    CodeDesc,
}

impl Sort {
    /// The column, the comparison that continues after the cursor, and the direction.
    fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Newest => ("id", "<", "DESC"),
            Self::Oldest => ("id", ">", "ASC"),
            Self::CodeAsc => ("code", ">", "ASC"),
            Self::CodeDesc => ("code", "<", "DESC"),
        }
    }

    pub(crate) fn by_id(self) -> bool {
        matches!(self, Self::Newest | Self::Oldest)
    }
}

/// Up to `limit` live links of `workspace` after `cursor` (an id or a code, as `sort` says),
/// whose code or destination contains `search` (case-insensitive).
pub(crate) async fn list(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    cursor: Option<&str>,
    search: Option<&str>,
    sort: Sort,
    limit: i64,
) -> Result<Vec<LinkRow>, Error> {
    let (column, after, direction) = sort.sql();
    let cursor_clause = match (cursor, sort.by_id()) {
        (None, _) => "TRUE".to_owned(),
        (Some(_), true) => format!("{column} {after} $1::text::bigint"),
        (Some(_), false) => format!("{column} {after} $1"),
    };
    let search_clause = if search.is_some() {
        "(code ILIKE $3 OR destination ILIKE $3)"
    } else {
        "($3::text IS NULL)"
    };
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM links
         WHERE workspace_id = $4 AND deleted_at IS NULL AND {cursor_clause} AND {search_clause}
         ORDER BY {column} {direction} LIMIT $2"
    ))
    .bind(cursor)
    .bind(limit)
    .bind(search.map(|q| format!("%{}%", escape_like(q))))
    .bind(workspace.get())
    .fetch_all(db)
    .await?)
}

/// `%` and `_` in a search are literal characters, not wildcards.
fn escape_like(input: &str) -> String {
    input
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Changes the live link of `workspace` with this code as `body` says; returns it before and
/// after the change.
pub(crate) async fn update(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    code: &ShortCode,
    body: &UpdateLink,
) -> Result<(LinkRow, LinkRow), Error> {
    let before: Option<LinkRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM links
         WHERE workspace_id = $1 AND domain_id = $2 AND code = $3 AND deleted_at IS NULL
         FOR UPDATE"
    ))
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let before = before.ok_or_else(|| Error::LinkNotFound(code.to_string()))?;
    let after: LinkRow = sqlx::query_as(&format!(
        "UPDATE links SET
            destination = COALESCE($2, destination),
            status = COALESCE($3, status),
            expires_at = CASE WHEN $4 THEN $5 ELSE expires_at END,
            updated_at = now()
         WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(before.id)
    .bind(body.destination.as_ref().map(Destination::as_str))
    .bind(body.status.map(|status| status.code() as i16))
    .bind(body.expires_at.is_some())
    .bind(body.expires_at.flatten())
    .fetch_one(&mut *tx)
    .await?;
    Ok((before, after))
}

/// Soft-deletes the live link of `workspace` with this code; returns it as it was.
pub(crate) async fn delete(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    code: &ShortCode,
) -> Result<LinkRow, Error> {
    let row: Option<LinkRow> = sqlx::query_as(&format!(
        "UPDATE links SET deleted_at = now(), updated_at = now()
         WHERE workspace_id = $1 AND domain_id = $2 AND code = $3 AND deleted_at IS NULL
         RETURNING {COLUMNS}"
    ))
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(tx)
    .await?;
    row.ok_or_else(|| Error::LinkNotFound(code.to_string()))
}

/// The live links of `workspace` most visited between `from` and `to` (`bots` counted or not),
/// at most `top`: (id, code, visits). Deleted ones are left out (their clicks still count in
/// the workspace's totals): they can no longer be opened, and their code may name another link
/// now.
pub(crate) async fn most_visited(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    (from, to): (OffsetDateTime, OffsetDateTime),
    bots: bool,
    top: i64,
) -> Result<Vec<(i64, String, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT s.link_id, l.code, s.count FROM (
             SELECT link_id, sum(clicks + qr_scans + CASE WHEN $3 THEN bots ELSE 0 END)::int8 AS count
             FROM link_stats_hourly
             WHERE hour >= $1 AND hour < $2
               AND link_id IN (SELECT id FROM links WHERE workspace_id = $5 AND deleted_at IS NULL)
             GROUP BY link_id
         ) AS s JOIN links l ON l.id = s.link_id
         WHERE s.count > 0
         ORDER BY s.count DESC, l.code
         LIMIT $4",
    )
    .bind(from)
    .bind(to)
    .bind(bots)
    .bind(top)
    .bind(workspace.get())
    .fetch_all(db)
    .await?)
}

/// What the redirect route needs, for the live link with this code on the default domain.
pub(crate) async fn find_record(
    db: impl PgExecutor<'_>,
    code: &ShortCode,
) -> Result<Option<LinkRecord>, Error> {
    let row: Option<RecordRow> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM links
         WHERE domain_id = $1 AND code = $2 AND deleted_at IS NULL"
    ))
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(db)
    .await?;
    row.map(RecordRow::into_record).transpose()
}

/// The columns of a [`RecordRow`].
const RECORD_COLUMNS: &str = "id, version, destination, status, expires_at";

/// A link as a [`LinkRecord`] is made from, for every query that makes one (the redirect
/// route, `/_edge/resolve`, delivery to the edge), so all of them treat a bad row alike.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RecordRow {
    pub(crate) id: i64,
    /// Set by the `links_version` trigger on every write (`0007_link_versions.sql`).
    pub(crate) version: i64,
    destination: String,
    status: i16,
    expires_at: Option<OffsetDateTime>,
}

impl RecordRow {
    pub(crate) fn into_record(self) -> Result<LinkRecord, Error> {
        let version = u64::try_from(self.version).map_err(|_| {
            Error::Internal(anyhow::anyhow!(
                "negative version {} stored in links",
                self.version
            ))
        })?;
        Ok(LinkRecord::new(
            self.id,
            version,
            stored(Destination::parse(&self.destination))?,
            stored(RedirectStatus::try_from(self.status as u16))?,
            self.expires_at,
        ))
    }
}

/// A code's newest row on the default domain: its live link if it has one, else its latest
/// deleted one (what the edge is to hold for the code).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CodeState {
    pub(crate) code: String,
    pub(crate) live: bool,
    /// The highest version among all of the code's rows.
    pub(crate) newest: i64,
    #[sqlx(flatten)]
    pub(crate) row: RecordRow,
}

/// The [`CodeState`] of each of these codes that has any row.
pub(crate) async fn code_states(
    tx: &mut PgConnection,
    codes: &[String],
) -> Result<Vec<CodeState>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT DISTINCT ON (code) code, deleted_at IS NULL AS live,
                max(version) OVER (PARTITION BY code) AS newest, {RECORD_COLUMNS}
         FROM links WHERE domain_id = $1 AND code = ANY($2)
         ORDER BY code, deleted_at IS NULL DESC, version DESC"
    ))
    .bind(DEFAULT_DOMAIN)
    .bind(codes)
    .fetch_all(tx)
    .await
}

/// Gives the live link `id` a new version (the trigger's) if it is still at `version`.
pub(crate) async fn reversion(
    db: impl PgExecutor<'_>,
    id: i64,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE links SET version = 0 WHERE id = $1 AND version = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(version)
    .execute(db)
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escaping() {
        let cases = [
            ("abc", "abc"),
            ("50%", "50\\%"),
            ("a_b", "a\\_b"),
            ("c:\\x", "c:\\\\x"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_like(input), expected);
        }
    }
}
