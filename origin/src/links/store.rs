//! Every query on the `links` table, and the one conversion of its rows into what the API
//! shows ([`LinkRow::into_link`]) and what a redirect needs ([`RecordRow::into_record`]).
//!
//! Queries of the API take a [`WorkspaceId`], which only the caller's extractor makes, so no
//! code path reaches a link of another workspace. The redirect path and the edge's sync take
//! a link by (domain, code), its unique key: a visitor has no workspace.

use serde::de::DeserializeOwned;
use shortlink::api::{CreateLink, Link, UpdateLink};
use shortlink::password::PasswordHash;
use shortlink::redirect::{LinkRecord, Rules};
use shortlink::rules::{ClickLimit, Note, Split, Tag, Tags, Title};
use shortlink::{Destination, RedirectStatus, ShortCode};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;

use crate::caller::WorkspaceId;
use crate::config::PublicUrl;
use crate::error::Error;

/// The deployment's own domain (`0012_workspaces.sql`): the only one until custom domains
/// come, and the one the edge serves.
pub(crate) const DEFAULT_DOMAIN: i64 = 1;

/// Clicks counted against the link's limit (`link_click_counts`), 0 when it has none: counts
/// stay when a limit is removed (a new limit continues from them), but a link without one
/// has used nothing, and its record stays plain. A subquery rather than a join, so that the
/// same column list serves `SELECT` and `RETURNING` alike. By the count's key, which leads with
/// the workspace (0032).
macro_rules! clicks_used {
    () => {
        "CASE WHEN max_clicks IS NULL THEN 0 ELSE COALESCE(
            (SELECT c.used FROM link_click_counts c
             WHERE c.workspace_id = links.workspace_id AND c.link_id = links.id), 0) END"
    };
}

/// The columns of a [`LinkRow`]. Not the password's hash: only whether there is one.
const COLUMNS: &str = concat!(
    "id, code, destination, status, expires_at, disabled, max_clicks, ",
    clicks_used!(),
    " AS clicks_used, fallback_url, password_hash IS NOT NULL AS password_protected, ",
    "targets, split, split_ids_used, utm, tags, note, title, imported_clicks, created_at, ",
    "updated_at, version"
);

/// A link as the API shows it, before its short URL is made. It serialises as the audit log
/// shows a link: the fields an edit can change, and of a password only whether there is one.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub(crate) struct LinkRow {
    pub(crate) id: i64,
    pub(crate) code: String,
    destination: String,
    status: i16,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    disabled: bool,
    max_clicks: Option<i64>,
    /// Visits change it, not edits.
    #[serde(skip)]
    clicks_used: i64,
    fallback_url: Option<String>,
    password_protected: bool,
    /// The jsonb columns are read as plain JSON and parsed into their `shortlink` types by
    /// [`LinkRow::into_link`], so a stored value that breaks a rule is the same error as
    /// every other bad value here.
    targets: Json<serde_json::Value>,
    split: Json<serde_json::Value>,
    /// How many A/B variant ids the link's splits have had ([`Split::settle`]); `None` for a
    /// link last written before ids (0056): [`variant_ids_counted`] then tells.
    #[serde(skip)]
    split_ids_used: Option<i16>,
    utm: Json<serde_json::Value>,
    tags: Vec<String>,
    note: Option<String>,
    title: Option<String>,
    /// Set once, by an import.
    #[serde(skip)]
    imported_clicks: i64,
    #[serde(skip)]
    created_at: OffsetDateTime,
    #[serde(skip)]
    updated_at: OffsetDateTime,
    /// Set by the `links_version` trigger on every write; the API's `ETag`.
    #[serde(skip)]
    pub(crate) version: i64,
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
            disabled: self.disabled,
            max_clicks: click_limit(self.max_clicks)?,
            clicks_used: count(self.clicks_used)?,
            fallback_url: self
                .fallback_url
                .as_deref()
                .map(Destination::parse)
                .transpose()
                .map_err(invalid)?,
            password_protected: self.password_protected,
            targets: json("targets", self.targets)?,
            split: json::<Split>("split", self.split)?.named(),
            utm: json("utm", self.utm)?,
            tags: tags(&self.tags)?,
            note: self
                .note
                .as_deref()
                .map(Note::parse)
                .transpose()
                .map_err(invalid)?,
            title: self
                .title
                .as_deref()
                .map(Title::parse)
                .transpose()
                .map_err(invalid)?,
            imported_clicks: count(self.imported_clicks)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: count(self.version)?,
            click_counts: None,
        })
    }

    /// The fields an edit can change, for the audit log.
    pub(crate) fn audited(&self) -> Result<serde_json::Value, Error> {
        crate::audit::fields(self)
    }
}

/// A stored value that breaks a rule was written around the API: a bug or manual edit, 500.
fn stored<T>(value: Result<T, shortlink::Error>) -> Result<T, Error> {
    value.map_err(invalid)
}

fn invalid(err: impl std::fmt::Display) -> Error {
    Error::Internal(anyhow::anyhow!("invalid value stored in links: {err}"))
}

/// A jsonb column as its `shortlink` type (which runs that type's rules).
fn json<T: DeserializeOwned>(column: &str, value: Json<serde_json::Value>) -> Result<T, Error> {
    serde_json::from_value(value.0).map_err(|err| invalid(format_args!("{column}: {err}")))
}

fn click_limit(stored: Option<i64>) -> Result<Option<ClickLimit>, Error> {
    stored
        .map(|limit| ClickLimit::new(count(limit)?).map_err(invalid))
        .transpose()
}

fn count(stored: i64) -> Result<u64, Error> {
    u64::try_from(stored).map_err(|_| invalid(format_args!("negative count {stored}")))
}

fn tags(stored: &[String]) -> Result<Tags, Error> {
    let tags = stored
        .iter()
        .map(|tag| Tag::parse(tag))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    Tags::new(tags).map_err(invalid)
}

fn tag_texts(tags: &Tags) -> Vec<String> {
    tags.as_slice()
        .iter()
        .map(|tag| tag.as_str().to_owned())
        .collect()
}

/// A note of only spaces is no note.
fn note_text(note: Option<&Note>) -> Option<&str> {
    note.map(Note::as_str).filter(|note| !note.is_empty())
}

/// Nor is a title of only spaces a title.
fn title_text(title: Option<&Title>) -> Option<&str> {
    title.map(Title::as_str).filter(|title| !title.is_empty())
}

/// The most clicks an imported link may bring: more than any link ever had, and far enough
/// inside `i64` that the export's sum with the clicks kurz counted cannot overflow.
const MAX_IMPORTED_CLICKS: u64 = 1_000_000_000_000_000;

/// A new link's imported clicks as stored (422 `imported_clicks` beyond
/// [`MAX_IMPORTED_CLICKS`]).
pub(crate) fn imported_clicks(body: &CreateLink) -> Result<i64, Error> {
    if body.imported_clicks > MAX_IMPORTED_CLICKS {
        return Err(Error::invalid(
            "imported_clicks",
            format!("imported_clicks must be at most {MAX_IMPORTED_CLICKS}"),
        ));
    }
    i64::try_from(body.imported_clicks).map_err(|err| Error::Internal(err.into()))
}

fn limit_value(limit: Option<ClickLimit>) -> Option<i64> {
    // At most 10^12 (ClickLimit's rule), far inside i64.
    limit.map(|limit| i64::try_from(limit.get()).unwrap_or(i64::MAX))
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
/// `password` is the hash of `body.password`, made by the caller. A batch of one for
/// [`insert_many`], so that the columns a link is stored with are listed once.
pub(crate) async fn insert(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    id: i64,
    code: &ShortCode,
    body: &CreateLink,
    password: Option<&PasswordHash>,
) -> Result<Option<LinkRow>, Error> {
    let link = NewLink {
        id,
        code,
        body,
        password,
    };
    Ok(insert_many(tx, workspace, &[link]).await?.pop())
}

/// The ids the next `count` links will have, from the sequence in one call (a bulk create).
pub(crate) async fn next_ids(db: impl PgExecutor<'_>, count: usize) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('links', 'id')) FROM generate_series(1, $1)",
    )
    .bind(i64::try_from(count).map_err(|err| Error::Internal(err.into()))?)
    .fetch_all(db)
    .await?)
}

/// A link for [`insert_many`].
#[derive(Debug)]
pub(crate) struct NewLink<'a> {
    pub(crate) id: i64,
    pub(crate) code: &'a ShortCode,
    pub(crate) body: &'a CreateLink,
    /// The hash of `body.password`, made by the caller.
    pub(crate) password: Option<&'a PasswordHash>,
}

/// Inserts these links of `workspace` on the default domain in one statement, and returns
/// the rows inserted (in no particular order: tell them by id). A link whose code a live link
/// already has is left out, as [`insert`] leaves it (the unique index decides); codes must be
/// distinct within `links`.
///
/// The values go in as one array per column (`UNNEST`), so the statement's size does not grow
/// with the batch. Tags, an array per link, go as JSON: `UNNEST` would flatten an array of
/// arrays.
///
/// Rows go in by code: each insert locks its code in the unique index (or waits for the
/// transaction that holds it), so two batches sharing codes in different orders would each
/// wait for the other (a deadlock, one of them failed by PostgreSQL). In one order, the second
/// waits for the first, then meets its codes as taken.
pub(crate) async fn insert_many(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    links: &[NewLink<'_>],
) -> Result<Vec<LinkRow>, Error> {
    if links
        .iter()
        .any(|link| link.body.password.is_some() != link.password.is_some())
    {
        return Err(Error::Internal(anyhow::anyhow!(
            "a link's password must be hashed before it is stored"
        )));
    }
    let ids: Vec<i64> = links.iter().map(|link| link.id).collect();
    let codes: Vec<&str> = links.iter().map(|link| link.code.as_str()).collect();
    let destinations: Vec<&str> = links
        .iter()
        .map(|link| link.body.destination.as_str())
        .collect();
    let statuses: Vec<i16> = links
        .iter()
        .map(|link| link.body.status.code() as i16)
        .collect();
    let expires: Vec<Option<OffsetDateTime>> =
        links.iter().map(|link| link.body.expires_at).collect();
    let disabled: Vec<bool> = links.iter().map(|link| link.body.disabled).collect();
    let max_clicks: Vec<Option<i64>> = links
        .iter()
        .map(|link| limit_value(link.body.max_clicks))
        .collect();
    let fallbacks: Vec<Option<&str>> = links
        .iter()
        .map(|link| link.body.fallback_url.as_ref().map(Destination::as_str))
        .collect();
    let passwords: Vec<Option<String>> = links
        .iter()
        .map(|link| link.password.map(PasswordHash::to_string))
        .collect();
    let targets: Vec<Json<_>> = links.iter().map(|link| Json(&link.body.targets)).collect();
    // A new link's variants take ids 0, 1, …, whatever the request named (`split_ids_used`
    // is then their number).
    let splits = links
        .iter()
        .map(|link| Ok(Json(link.body.split.clone().settle(&Split::NONE, 0)?.0)))
        .collect::<Result<Vec<Json<Split>>, Error>>()?;
    let utms: Vec<Json<_>> = links.iter().map(|link| Json(&link.body.utm)).collect();
    let tags: Vec<Json<Vec<String>>> = links
        .iter()
        .map(|link| Json(tag_texts(&link.body.tags)))
        .collect();
    let notes: Vec<Option<&str>> = links
        .iter()
        .map(|link| note_text(link.body.note.as_ref()))
        .collect();
    let titles: Vec<Option<&str>> = links
        .iter()
        .map(|link| title_text(link.body.title.as_ref()))
        .collect();
    let created: Vec<Option<OffsetDateTime>> =
        links.iter().map(|link| link.body.created_at).collect();
    let imported = links
        .iter()
        .map(|link| imported_clicks(link.body))
        .collect::<Result<Vec<i64>, Error>>()?;
    let used = links
        .iter()
        .map(|link| clicks_used(link.body))
        .collect::<Result<Vec<i64>, Error>>()?;
    // A link whose imported count reached its limit is created used up.
    // Each code is claimed in `link_codes` first (a code another live link holds is skipped,
    // as one being claimed meanwhile is once that commits); only the links whose code was
    // claimed are inserted.
    let mut rows: Vec<LinkRow> = sqlx::query_as(&format!(
        "WITH u AS (
             SELECT * FROM UNNEST($3::int8[], $4::text[], $5::text[], $6::int2[],
                                  $7::timestamptz[], $8::bool[], $9::int8[], $10::text[],
                                  $11::text[], $12::jsonb[], $13::jsonb[], $14::jsonb[],
                                  $15::jsonb[], $16::text[], $17::text[], $18::timestamptz[],
                                  $19::int8[], $20::int8[])
                 AS u(id, code, destination, status, expires_at, disabled, max_clicks,
                      fallback_url, password_hash, targets, split, utm, tags, note, title,
                      created_at, imported_clicks, clicks_used)
         ), claimed AS (
             INSERT INTO link_codes (domain_id, code, workspace_id, link_id)
             SELECT $2, u.code, $1, u.id FROM u ORDER BY u.code
             ON CONFLICT (domain_id, code) DO NOTHING
             RETURNING link_id
         )
         INSERT INTO links (id, workspace_id, domain_id, code, destination, status, expires_at,
                            disabled, max_clicks, fallback_url, password_hash, targets, split,
                            split_ids_used, utm, tags, note, title, created_at, imported_clicks,
                            exhausted_at)
         SELECT u.id, $1, $2, u.code, u.destination, u.status, u.expires_at, u.disabled,
                u.max_clicks, u.fallback_url, u.password_hash, u.targets, u.split,
                jsonb_array_length(u.split), u.utm,
                ARRAY(SELECT jsonb_array_elements_text(u.tags)), u.note, u.title,
                COALESCE(u.created_at, now()), u.imported_clicks,
                CASE WHEN u.clicks_used > 0 AND u.clicks_used >= u.max_clicks THEN now() END
         FROM u JOIN claimed ON claimed.link_id = u.id
         ORDER BY u.code
         RETURNING {COLUMNS}"
    ))
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(ids)
    .bind(codes)
    .bind(destinations)
    .bind(statuses)
    .bind(expires)
    .bind(disabled)
    .bind(max_clicks)
    .bind(fallbacks)
    .bind(passwords)
    .bind(targets)
    .bind(splits)
    .bind(utms)
    .bind(tags)
    .bind(notes)
    .bind(titles)
    .bind(created)
    .bind(imported)
    .bind(&used)
    .fetch_all(&mut *tx)
    .await?;
    seed_click_counts(tx, links, &used, &mut rows).await?;
    Ok(rows)
}

/// An import's clicks used against a link's limit, as stored (the API checked it is at most
/// the limit, itself far inside `i64`).
fn clicks_used(body: &CreateLink) -> Result<i64, Error> {
    i64::try_from(body.clicks_used).map_err(|err| Error::Internal(err.into()))
}

/// Starts the click counts (`link_click_counts`, see `limit.rs`) of the inserted `rows` that
/// an import says used clicks already (`used`, by index of `links`), and shows them in
/// `rows` (whose `RETURNING` ran before the counts existed).
async fn seed_click_counts(
    tx: &mut PgConnection,
    links: &[NewLink<'_>],
    used: &[i64],
    rows: &mut [LinkRow],
) -> Result<(), Error> {
    let by_id: std::collections::HashMap<i64, i64> = links
        .iter()
        .zip(used)
        .filter(|(_, used)| **used > 0)
        .map(|(link, used)| (link.id, *used))
        .collect();
    if by_id.is_empty() {
        return Ok(());
    }
    let mut seeded: Vec<(i64, i64)> = Vec::new();
    for row in rows.iter_mut() {
        if let Some(&used) = by_id.get(&row.id) {
            row.clicks_used = used;
            seeded.push((row.id, used));
        }
    }
    // By id, like every writer of the counts (`limit.rs`).
    seeded.sort_unstable();
    let (ids, counts): (Vec<i64>, Vec<i64>) = seeded.into_iter().unzip();
    sqlx::query(
        "INSERT INTO link_click_counts (workspace_id, link_id, used)
         SELECT l.workspace_id, c.link_id, c.used
         FROM UNNEST($1::int8[], $2::int8[]) AS c (link_id, used) JOIN links l ON l.id = c.link_id
         ORDER BY c.link_id",
    )
    .bind(ids)
    .bind(counts)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Which of these codes a live link on the default domain has (a bulk create's dry run).
pub(crate) async fn taken_codes(
    db: impl PgExecutor<'_>,
    codes: &[&str],
) -> Result<Vec<String>, Error> {
    Ok(
        sqlx::query_scalar("SELECT code FROM link_codes WHERE domain_id = $1 AND code = ANY($2)")
            .bind(DEFAULT_DOMAIN)
            .bind(codes)
            .fetch_all(db)
            .await?,
    )
}

/// A link of an export, with all its clicks: those it was imported with, and those counted in
/// the hourly rollups (people's clicks and QR scans, as the stats' totals count them).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ExportRow {
    #[sqlx(flatten)]
    pub(crate) link: LinkRow,
    pub(crate) clicks: i64,
}

/// Up to `limit` live links of `workspace` with an id above `after`, by id (an export's
/// keyset page), each with its clicks, in one query.
pub(crate) async fn export_page(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS}, (imported_clicks + COALESCE(
                    (SELECT sum(s.clicks + s.qr_scans) FROM link_stats_hourly s
                     WHERE (s.workspace_id, s.link_id) = (links.workspace_id, links.id)),
                    0))::int8 AS clicks
         FROM links
         WHERE workspace_id = $1 AND deleted_at IS NULL AND id > $2
         ORDER BY id LIMIT $3"
    ))
    .bind(workspace.get())
    .bind(after)
    .bind(limit)
    .fetch_all(db)
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
/// links (or of their rows in `link_click_totals`, 0029), so any page of millions of links
/// costs the same as the first.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Sort {
    #[default]
    Newest,
    Oldest,
    CodeAsc,
    CodeDesc,
    /// Most clicks in all first, ties by the newest link.
    Clicks,
    /// Most clicks in the last 7 days first, ties by the newest link.
    Clicks7d,
}

impl Sort {
    /// The column, the comparison that continues after the cursor, and the direction.
    fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Newest => ("id", "<", "DESC"),
            Self::Oldest => ("id", ">", "ASC"),
            Self::CodeAsc => ("code", ">", "ASC"),
            Self::CodeDesc => ("code", "<", "DESC"),
            Self::Clicks => ("t.total", "<", "DESC"),
            Self::Clicks7d => ("t.recent", "<", "DESC"),
        }
    }

    pub(crate) fn by_id(self) -> bool {
        matches!(self, Self::Newest | Self::Oldest)
    }

    pub(crate) fn by_clicks(self) -> bool {
        matches!(self, Self::Clicks | Self::Clicks7d)
    }
}

/// Where a page of a list starts: after the sort key of the last link of the page before.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cursor<'a> {
    /// A code or an id (as text), as the sort says.
    Key(&'a str),
    /// A count of clicks and the id of the link that had it.
    Clicks(i64, i64),
}

/// A link of a list, with its counts from `link_clicks_totals` when the list is sorted by
/// them (the values it was sorted by, for the next page's cursor).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ListRow {
    #[sqlx(flatten)]
    pub(crate) link: LinkRow,
    pub(crate) total: Option<i64>,
    pub(crate) recent: Option<i64>,
}

/// Which of a workspace's live links a list shows; each part that is set must hold.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Filter<'a> {
    /// Code, destination, note or title contains it (case-insensitive; each has a trigram
    /// index over the live links: 0001, 0005, 0022, 0028).
    pub(crate) search: Option<&'a str>,
    /// Has this tag (the GIN index of `0020_links_tags_index.sql`).
    pub(crate) tag: Option<&'a Tag>,
    pub(crate) disabled: Option<bool>,
}

/// How many links after the cursor a search filters in the list's order before it asks the
/// trigram indexes for the rest (see [`list`]).
const SEARCH_WINDOW: i64 = 5_000;

/// Up to `limit` live links of `workspace` after `cursor` (an id, a code or clicks, as `sort`
/// says) that pass `filter`.
///
/// Sorted by clicks, the list walks the workspace's rows of `link_click_totals` by the sort's
/// index and joins each link by its key, so a page costs the same as by id (a filter that few
/// links pass may walk further, as with the other sorts).
///
/// A search is read in up to two steps, since the planner cannot tell how many links a
/// substring matches and would walk the sort's index through millions of links that do not
/// (docs/scaling.md, "The scale bench at 10,000,000 links"):
/// 1. the [`SEARCH_WINDOW`] links after the cursor, in the list's order, are filtered: a
///    common term fills the page from them, at about the cost of a first page;
/// 2. only if they do not fill it, the links past them are read through the trigram indexes
///    (an ordering expression no index has keeps the planner off the walk), so a rare term, or
///    one that matches nothing, costs index probes and a sort of what matches.
///
/// Both steps read one snapshot (a read-only repeatable-read transaction): the second finds
/// the window's end again, and a link made or deleted between two snapshots moved it, so a
/// link was listed twice or skipped.
pub(crate) async fn list(
    db: &PgPool,
    workspace: WorkspaceId,
    cursor: Option<Cursor<'_>>,
    filter: Filter<'_>,
    sort: Sort,
    limit: i64,
) -> Result<Vec<ListRow>, Error> {
    let (column, after, direction) = sort.sql();
    // The values of a cursor the sort does not use are bound as NULL and not named.
    let cursor_clause = match (cursor, sort.by_id()) {
        (None, _) => "TRUE".to_owned(),
        (Some(Cursor::Clicks(..)), _) => format!("({column}, t.link_id) {after} ($7, $8)"),
        (Some(Cursor::Key(_)), true) => format!("{column} {after} $1::text::bigint"),
        (Some(Cursor::Key(_)), false) => format!("{column} {after} $1"),
    };
    // Each part is left out of the SQL when it is not asked for, rather than written as
    // `$n IS NULL OR ...`, so that the planner sees only the conditions that apply (and the
    // tag's GIN index when there is one).
    let search_clause = if filter.search.is_some() {
        "(code ILIKE $3 OR destination ILIKE $3 OR note ILIKE $3 OR title ILIKE $3)"
    } else {
        "($3::text IS NULL)"
    };
    let tag_clause = if filter.tag.is_some() {
        "tags @> ARRAY[$5::text]"
    } else {
        "($5::text IS NULL)"
    };
    let disabled_clause = if filter.disabled.is_some() {
        "disabled = $6"
    } else {
        "($6::bool IS NULL)"
    };
    let filters = format!("{search_clause} AND {tag_clause} AND {disabled_clause}");
    // The workspace's live links after the cursor, their sort key, the list's order, and the
    // same order by expressions no index has. Sorted by clicks, the workspace is the totals'
    // (their index's first column; a link's row has its link's workspace), and the rows carry
    // `t.link_id` too, so that the search's window (aliased `t`) sorts by the same names.
    let (select, from, key, order, unindexed_order) = if sort.by_clicks() {
        (
            format!("SELECT {COLUMNS}, t.total, t.recent, t.link_id"),
            format!(
                "FROM link_click_totals t JOIN links ON links.id = t.link_id
                 WHERE t.workspace_id = $4 AND deleted_at IS NULL AND {cursor_clause}"
            ),
            format!("{column}, t.link_id"),
            format!("{column} {direction}, t.link_id {direction}"),
            format!("{column} + 0 {direction}, t.link_id + 0 {direction}"),
        )
    } else {
        (
            format!("SELECT {COLUMNS}, NULL::int8 AS total, NULL::int8 AS recent"),
            format!(
                "FROM links WHERE workspace_id = $4 AND deleted_at IS NULL AND {cursor_clause}"
            ),
            column.to_owned(),
            format!("{column} {direction}"),
            if sort.by_id() {
                format!("{column} + 0 {direction}")
            } else {
                format!("{column} || '' {direction}")
            },
        )
    };
    if filter.search.is_none() {
        let sql = format!("{select} {from} AND {filters} ORDER BY {order} LIMIT $2");
        return fetch_list(db, &sql, workspace, cursor, filter, limit).await;
    }
    let mut snapshot = db
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let mut rows = fetch_list(
        &mut *snapshot,
        &format!(
            "SELECT * FROM ({select} {from} ORDER BY {order} LIMIT {SEARCH_WINDOW}) t
             WHERE {filters} ORDER BY {order} LIMIT $2"
        ),
        workspace,
        cursor,
        filter,
        limit,
    )
    .await?;
    if rows.len() as i64 == limit {
        snapshot.commit().await?;
        return Ok(rows);
    }
    // Past the window's last link (none when the window held every link after the cursor).
    let last_of_window = format!(
        "(SELECT {key} {from} ORDER BY {order} OFFSET {} LIMIT 1)",
        SEARCH_WINDOW - 1
    );
    let rest = format!(
        "{select} {from} AND ({key}) {after} {last_of_window} AND {filters}
         ORDER BY {unindexed_order} LIMIT $2"
    );
    let wanted = limit - rows.len() as i64;
    rows.extend(fetch_list(&mut *snapshot, &rest, workspace, cursor, filter, wanted).await?);
    snapshot.commit().await?;
    Ok(rows)
}

/// Runs a query of [`list`] with its parameters: $1 a cursor's key, $2 the limit, $3 the
/// search's pattern, $4 the workspace, $5 the tag, $6 disabled, $7 and $8 a cursor's clicks
/// and link.
async fn fetch_list(
    db: impl PgExecutor<'_>,
    sql: &str,
    workspace: WorkspaceId,
    cursor: Option<Cursor<'_>>,
    filter: Filter<'_>,
    limit: i64,
) -> Result<Vec<ListRow>, Error> {
    let (key, clicks, id) = match cursor {
        None => (None, None, None),
        Some(Cursor::Key(key)) => (Some(key), None, None),
        Some(Cursor::Clicks(clicks, id)) => (None, Some(clicks), Some(id)),
    };
    Ok(sqlx::query_as(sql)
        .bind(key)
        .bind(limit)
        .bind(filter.search.map(|q| format!("%{}%", escape_like(q))))
        .bind(workspace.get())
        .bind(filter.tag.map(Tag::as_str))
        .bind(filter.disabled)
        .bind(clicks)
        .bind(id)
        .fetch_all(db)
        .await?)
}

/// The counts of the links list (`link_click_totals`) of these links of `workspace`: (id,
/// total, last 7 days). One look-up by key per link; a link without a row (deleted
/// meanwhile) is left out.
pub(crate) async fn click_counts(
    db: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    ids: &[i64],
) -> Result<Vec<(i64, i64, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT link_id, total, recent FROM link_click_totals
         WHERE link_id = ANY($1) AND workspace_id = $2",
    )
    .bind(ids)
    .bind(workspace.get())
    .fetch_all(db)
    .await?)
}

/// `%` and `_` in a search are literal characters, not wildcards.
pub(crate) fn escape_like(input: &str) -> String {
    input
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Changes the live link of `workspace` with this code as `body` says; returns it before and
/// after the change. `password` is the change of its password as `body.password` says it,
/// hashed by the caller: absent, `None` (remove it) or the new hash.
///
/// A new click limit decides whether the link is used up: at or below the clicks already
/// counted it is (from now, or since it already was), above them or removed it is not, so
/// raising the limit of a used-up link brings it back.
pub(crate) async fn update(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    code: &ShortCode,
    body: &UpdateLink,
    password: Option<Option<&PasswordHash>>,
) -> Result<(LinkRow, LinkRow), Error> {
    if body.password.as_ref().map(Option::is_some) != password.map(|hash| hash.is_some()) {
        return Err(Error::Internal(anyhow::anyhow!(
            "a link's password must be hashed before it is stored"
        )));
    }
    // The lock the update itself takes (it changes no key), not FOR UPDATE: a click counted
    // meanwhile inserts into `link_click_counts`, whose foreign key locks this row FOR KEY
    // SHARE, and need not wait for the edit.
    let before: Option<LinkRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM links
         WHERE workspace_id = $1 AND domain_id = $2 AND code = $3 AND deleted_at IS NULL
         FOR NO KEY UPDATE"
    ))
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let before = before.ok_or_else(|| Error::LinkNotFound(code.to_string()))?;
    // A new split keeps the ids of the variants it keeps, under the row's lock. No split
    // gives no id: the count of ids used stays as it is (the dashboard sends an empty split
    // with every save, and a link last written before ids would read its clicks for nothing).
    let split = match &body.split {
        Some(split) if split.is_empty() => Some((Split::NONE, None)),
        Some(split) => {
            let current: Split = json("split", before.split.clone())?;
            let used = match before.split_ids_used {
                Some(used) => used,
                None => variant_ids_counted(tx, workspace, before.id).await?,
            };
            let used = u16::try_from(used).map_err(invalid)?;
            let (split, used) = split.clone().settle(&current, used)?;
            Some((split, Some(i16::try_from(used).map_err(invalid)?)))
        }
        None => None,
    };
    let after: LinkRow = sqlx::query_as(&format!(
        "UPDATE links SET
            destination = COALESCE($2, destination),
            status = COALESCE($3, status),
            expires_at = CASE WHEN $4 THEN $5 ELSE expires_at END,
            disabled = COALESCE($6, disabled),
            max_clicks = CASE WHEN $7 THEN $8 ELSE max_clicks END,
            exhausted_at = CASE
                WHEN NOT $7 THEN exhausted_at
                WHEN $8::int8 IS NULL THEN NULL
                WHEN COALESCE((SELECT c.used FROM link_click_counts c
                               WHERE c.workspace_id = links.workspace_id AND c.link_id = links.id), 0)
                     >= $8 THEN COALESCE(exhausted_at, now())
                ELSE NULL
            END,
            fallback_url = CASE WHEN $9 THEN $10 ELSE fallback_url END,
            password_hash = CASE WHEN $11 THEN $12 ELSE password_hash END,
            targets = COALESCE($13, targets),
            split = COALESCE($14, split),
            split_ids_used = COALESCE($21, split_ids_used),
            utm = COALESCE($15, utm),
            tags = COALESCE($16, tags),
            note = CASE WHEN $17 THEN $18 ELSE note END,
            title = CASE WHEN $19 THEN $20 ELSE title END,
            updated_at = now()
         WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(before.id)
    .bind(body.destination.as_ref().map(Destination::as_str))
    .bind(body.status.map(|status| status.code() as i16))
    .bind(body.expires_at.is_some())
    .bind(body.expires_at.flatten())
    .bind(body.disabled)
    .bind(body.max_clicks.is_some())
    .bind(limit_value(body.max_clicks.flatten()))
    .bind(body.fallback_url.is_some())
    .bind(body.fallback_url.as_ref().and_then(|url| url.as_ref().map(Destination::as_str)))
    .bind(password.is_some())
    .bind(password.flatten().map(PasswordHash::to_string))
    .bind(body.targets.as_ref().map(Json))
    .bind(split.as_ref().map(|(split, _)| Json(split)))
    .bind(body.utm.as_ref().map(Json))
    .bind(body.tags.as_ref().map(tag_texts))
    .bind(body.note.is_some())
    .bind(body.note.as_ref().and_then(|note| note_text(note.as_ref())))
    .bind(body.title.is_some())
    .bind(body.title.as_ref().and_then(|title| title_text(title.as_ref())))
    .bind(split.as_ref().and_then(|&(_, used)| used))
    .fetch_one(&mut *tx)
    .await?;
    // The link's clicks counted so far move to its new tags (`analytics::tags`).
    if before.tags != after.tags {
        crate::analytics::tags::note_change(tx, workspace, before.id, &before.tags).await?;
    }
    Ok((before, after))
}

/// How many variant ids the clicks counted for a link last written before variants had ids
/// (0056) name: one more than the highest, 0 for none. Its split then may have had more
/// variants than it has now, whose clicks are counted under their positions then.
async fn variant_ids_counted(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    link: i64,
) -> Result<i16, Error> {
    // The counted clicks' breakdowns, and those still waiting to be counted (a few seconds'
    // worth; the table has no index by link, so this reads it whole, once per such link).
    let used: Option<i16> = sqlx::query_scalar(
        "SELECT (max(variant) + 1)::int2 FROM (
             SELECT CASE WHEN value ~ '^[0-9]{1,3}$' THEN value::int2 END AS variant
             FROM link_breakdown_daily
             WHERE workspace_id = $1 AND link_id = $2 AND dimension = 'variant'
             UNION ALL
             SELECT CASE WHEN value ~ '^[0-9]{1,3}$' THEN value::int2 END
             FROM link_breakdown_hourly
             WHERE workspace_id = $1 AND link_id = $2 AND dimension = 'variant'
             UNION ALL
             SELECT variant FROM clicks_pending
             WHERE link_workspace_id = $1 AND link_id = $2 AND workspace_id IS NULL
         ) AS counted
         WHERE variant BETWEEN 0 AND 255",
    )
    .bind(workspace.get())
    .bind(link)
    .fetch_one(&mut *tx)
    .await?;
    Ok(used.unwrap_or(0))
}

/// The id and version of the live link of `workspace` with this code, its row locked until
/// `tx` ends (a conditional delete checks it, then deletes what it checked).
pub(crate) async fn lock_version(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    code: &ShortCode,
) -> Result<(i64, i64), Error> {
    let link: Option<(i64, i64)> = sqlx::query_as(
        "SELECT id, version FROM links
         WHERE workspace_id = $1 AND domain_id = $2 AND code = $3 AND deleted_at IS NULL
         FOR UPDATE",
    )
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(tx)
    .await?;
    link.ok_or_else(|| Error::LinkNotFound(code.to_string()))
}

/// Soft-deletes the live link of `workspace` with this code; returns it as it was.
pub(crate) async fn delete(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    code: &ShortCode,
) -> Result<LinkRow, Error> {
    // The code is freed in the statement that deletes the link.
    let row: Option<LinkRow> = sqlx::query_as(&format!(
        "WITH freed AS (
             DELETE FROM link_codes WHERE domain_id = $2 AND code = $3 AND workspace_id = $1
             RETURNING link_id
         )
         UPDATE links SET deleted_at = now(), updated_at = now()
         FROM freed
         WHERE links.workspace_id = $1 AND links.id = freed.link_id AND links.deleted_at IS NULL
         RETURNING {COLUMNS}"
    ))
    .bind(workspace.get())
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(tx)
    .await?;
    row.ok_or_else(|| Error::LinkNotFound(code.to_string()))
}

/// What the redirect route needs, for the live link with this code on the default domain.
pub(crate) async fn find_record(
    db: impl PgExecutor<'_>,
    code: &ShortCode,
) -> Result<Option<LinkRecord>, Error> {
    let row: Option<RecordRow> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM {BY_CODE}
         WHERE c.domain_id = $1 AND c.code = $2 AND links.deleted_at IS NULL"
    ))
    .bind(DEFAULT_DOMAIN)
    .bind(code.as_str())
    .fetch_optional(db)
    .await?;
    row.map(RecordRow::into_record).transpose()
}

/// [`find_record`] of many codes in one query (the redirects' cache misses, looked up
/// together by `crate::lookup`): the live links found, each with its code.
///
/// The same query as [`find_record`]'s, in the function `link_records`
/// (`0043_link_records.sql`, which says why): any change to [`RECORD_COLUMNS`] changes it too.
pub(crate) async fn find_records(
    db: impl PgExecutor<'_>,
    codes: &[&str],
) -> Result<Vec<(String, Result<LinkRecord, Error>)>, Error> {
    let rows: Vec<CodedRecordRow> = sqlx::query_as("SELECT * FROM link_records($1, $2)")
        .bind(DEFAULT_DOMAIN)
        .bind(codes)
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|found| (found.code, found.row.into_record()))
        .collect())
}

/// A [`RecordRow`] with its code.
#[derive(sqlx::FromRow)]
struct CodedRecordRow {
    code: String,
    #[sqlx(flatten)]
    row: RecordRow,
}

/// A live link found by its code: the code's row in `link_codes` (its key, on one shard when
/// distributed by code), then the link by its own key.
const BY_CODE: &str = "link_codes c
     JOIN links ON links.workspace_id = c.workspace_id AND links.id = c.link_id";

/// The columns of a [`RecordRow`].
const RECORD_COLUMNS: &str = concat!(
    "id, version, destination, status, expires_at, disabled, max_clicks, ",
    clicks_used!(),
    " AS clicks, exhausted_at IS NOT NULL AS exhausted, fallback_url, password_hash, ",
    "targets, split, utm"
);

/// A link as a [`LinkRecord`] is made from, for every query that makes one (the redirect
/// route, `/_edge/resolve`, delivery to the edge), so all of them treat a bad row alike: a
/// value that breaks a rule fails [`RecordRow::into_record`], not the query (delivery parks
/// that code and goes on with the others).
#[derive(sqlx::FromRow)]
pub(crate) struct RecordRow {
    pub(crate) id: i64,
    /// Set by the `links_version` trigger on every write (`0007_link_versions.sql`).
    pub(crate) version: i64,
    destination: String,
    status: i16,
    expires_at: Option<OffsetDateTime>,
    disabled: bool,
    max_clicks: Option<i64>,
    clicks: i64,
    exhausted: bool,
    fallback_url: Option<String>,
    /// Parsed into the record: the redirect checks passwords against it. Never logged (this
    /// type's `Debug` leaves it out).
    password_hash: Option<String>,
    targets: Json<serde_json::Value>,
    split: Json<serde_json::Value>,
    utm: Json<serde_json::Value>,
}

impl std::fmt::Debug for RecordRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordRow")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("destination", &self.destination)
            .field("password", &self.password_hash.is_some())
            .finish_non_exhaustive()
    }
}

impl RecordRow {
    pub(crate) fn into_record(self) -> Result<LinkRecord, Error> {
        let version = u64::try_from(self.version).map_err(|_| {
            Error::Internal(anyhow::anyhow!(
                "negative version {} stored in links",
                self.version
            ))
        })?;
        let rules = Rules {
            disabled: self.disabled,
            max_clicks: click_limit(self.max_clicks)?,
            clicks: count(self.clicks)?,
            exhausted: self.exhausted,
            fallback: self
                .fallback_url
                .as_deref()
                .map(Destination::parse)
                .transpose()
                .map_err(invalid)?,
            password: self
                .password_hash
                .as_deref()
                .map(PasswordHash::parse)
                .transpose()
                .map_err(invalid)?,
            targets: json("targets", self.targets)?,
            split: json("split", self.split)?,
            utm: json("utm", self.utm)?,
        };
        Ok(LinkRecord::new(
            self.id,
            version,
            stored(Destination::parse(&self.destination))?,
            stored(RedirectStatus::try_from(self.status as u16))?,
            self.expires_at,
        )
        .with_rules(rules))
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

/// A live link with its workspace: for a change made on behalf of no caller (a click limit
/// reached), whose webhooks go to the link's workspace.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WorkspaceLink {
    pub(crate) workspace_id: i64,
    #[sqlx(flatten)]
    pub(crate) row: LinkRow,
}

/// The live links of these ids, whatever their workspaces, by id.
pub(crate) async fn find_by_ids(
    tx: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<WorkspaceLink>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT workspace_id, {COLUMNS} FROM links
         WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id"
    ))
    .bind(ids)
    .fetch_all(tx)
    .await
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
