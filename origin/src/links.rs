//! The links API (`/api/v1/links`): where links are created, read, listed, changed and deleted.
//!
//! Validation happens when the body is parsed into `shortlink` types; what is checked here is
//! what depends on this deployment (loops to our own host) or on the clock (expiry).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use shortlink::api::{CreateLink, Link, LinkPage, UpdateLink};
use shortlink::redirect::LinkRecord;
use shortlink::{Destination, RedirectStatus, ShortCode};
use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::error::Error;
use crate::extract::{ApiJson, ApiQuery, CodePath};
use crate::outbox;

/// Generated codes that are already taken (by a custom slug) make us draw the next id; this
/// many in a row means something is wrong rather than unlucky.
const MAX_CODE_ATTEMPTS: usize = 16;
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;
/// Longest search: longer than any code (64) and most URLs a person would search by.
const MAX_SEARCH_CHARS: usize = 200;
/// Longest cursor: a code (64 characters) or an id.
const MAX_CURSOR_CHARS: usize = 64;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/links", get(list).post(create))
        .route("/links/{code}", get(fetch).patch(update).delete(delete))
}

/// The columns every query returns, in `links` order.
const COLUMNS: &str = "id, code, destination, status, expires_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct LinkRow {
    id: i64,
    code: String,
    destination: String,
    status: i16,
    expires_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl LinkRow {
    fn into_link(self, state: &crate::State) -> Result<Link, Error> {
        Ok(Link {
            short_url: state.inner.public_url.short_url(&self.code),
            id: self.id,
            code: stored(ShortCode::parse(&self.code))?,
            destination: stored(Destination::parse(&self.destination))?,
            status: stored(RedirectStatus::try_from(self.status as u16))?,
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A stored value that breaks a rule was written around the API: a bug or manual edit, 500.
fn stored<T>(value: Result<T, shortlink::Error>) -> Result<T, Error> {
    value.map_err(|err| Error::Internal(anyhow::anyhow!("invalid value stored in links: {err}")))
}

async fn create(
    State(state): State<crate::State>,
    ApiJson(body): ApiJson<CreateLink>,
) -> Result<impl IntoResponse, Error> {
    check_destination(&state, &body.destination)?;
    check_expiry(body.expires_at)?;
    let row = insert(&state, &body).await?;
    let link = row.into_link(&state)?;
    let location = format!("/api/v1/links/{}", link.code);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(link),
    ))
}

/// Inserts the link, drawing ids until a generated code is free. A custom slug that is taken
/// is a 409: the unique index decides, so two concurrent requests cannot both get it.
async fn insert(state: &crate::State, body: &CreateLink) -> Result<LinkRow, Error> {
    let sql = format!(
        "INSERT INTO links (id, code, destination, status, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (code) WHERE deleted_at IS NULL DO NOTHING
         RETURNING {COLUMNS}"
    );
    for _ in 0..MAX_CODE_ATTEMPTS {
        let id: i64 = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('links', 'id'))")
            .fetch_one(state.db())
            .await?;
        let code = match &body.code {
            Some(custom) => custom.clone(),
            None => {
                let id = u64::try_from(id).map_err(|e| Error::Internal(e.into()))?;
                state.inner.scrambler.encode(id)?
            }
        };
        let mut tx = state.db().begin().await?;
        let inserted: Option<LinkRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(code.as_str())
            .bind(body.destination.as_str())
            .bind(body.status.code() as i16)
            .bind(body.expires_at)
            .fetch_optional(&mut *tx)
            .await?;
        match inserted {
            Some(row) => {
                // A visit before this link existed may have cached "no such code".
                finish_change(state, tx, &row.code).await?;
                return Ok(row);
            }
            None if body.code.is_some() => {
                return Err(Error::CodeTaken {
                    code: code.to_string(),
                });
            }
            None => {
                tracing::info!(%code, "generated code already taken by a custom slug; drawing another");
            }
        }
    }
    Err(Error::Internal(anyhow::anyhow!(
        "{MAX_CODE_ATTEMPTS} generated codes in a row were taken"
    )))
}

async fn fetch(
    State(state): State<crate::State>,
    CodePath(code): CodePath,
) -> Result<Json<Link>, Error> {
    let row: Option<LinkRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM links WHERE code = $1 AND deleted_at IS NULL"
    ))
    .bind(code.as_str())
    .fetch_optional(state.db())
    .await?;
    let row = row.ok_or_else(|| Error::LinkNotFound(code.to_string()))?;
    Ok(Json(row.into_link(&state)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// From a previous page's `next_cursor` (with the same `sort`).
    cursor: Option<String>,
    limit: Option<i64>,
    /// Matches codes or destinations that contain it (case-insensitive).
    q: Option<String>,
    #[serde(default)]
    sort: Sort,
}

/// The orders a list can come in. Each is a keyset over a unique index, so any page of
/// millions of links costs the same as the first.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Sort {
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

    fn by_id(self) -> bool {
        matches!(self, Self::Newest | Self::Oldest)
    }
}

async fn list(
    State(state): State<crate::State>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<LinkPage>, Error> {
    let ListQuery {
        cursor,
        limit,
        q: search,
        sort,
    } = query.checked()?;
    let (cursor, search) = (cursor.as_deref(), search.as_deref());
    let (column, after, direction) = sort.sql();
    let limit = limit.unwrap_or(DEFAULT_PAGE);
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
    let rows: Vec<LinkRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM links
         WHERE deleted_at IS NULL AND {cursor_clause} AND {search_clause}
         ORDER BY {column} {direction} LIMIT $2"
    ))
    .bind(cursor)
    .bind(limit + 1)
    .bind(search.map(|q| format!("%{}%", escape_like(q))))
    .fetch_all(state.db())
    .await?;
    let has_more = rows.len() as i64 > limit;
    let links = rows
        .into_iter()
        .take(limit as usize)
        .map(|row| row.into_link(&state))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = has_more
        .then(|| {
            links.last().map(|link| match sort.by_id() {
                true => link.id.to_string(),
                false => link.code.to_string(),
            })
        })
        .flatten();
    Ok(Json(LinkPage { links, next_cursor }))
}

impl ListQuery {
    /// The query with its values checked: `limit` set and in bounds, `cursor` and `q`
    /// absent when empty (`q` trimmed) and within their lengths.
    fn checked(self) -> Result<Self, Error> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        // The cursor is the sort key of the last link shown (its id, or its code): "after
        // the cursor" is stable however many links are created meanwhile.
        let cursor = self.cursor.filter(|cursor| !cursor.is_empty());
        let bad_cursor = |cursor: &String| {
            // A cursor is an id or a code (at most 64 characters).
            (self.sort.by_id() && cursor.parse::<i64>().is_err())
                || cursor.chars().count() > MAX_CURSOR_CHARS
        };
        if cursor.as_ref().is_some_and(bad_cursor) {
            return Err(Error::invalid(
                "cursor",
                "cursor must be a next_cursor from a previous page",
            ));
        }
        // A search longer than a person types would only make PostgreSQL scan with a
        // bigger pattern.
        let search = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned);
        if search
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(Error::invalid(
                "q",
                format!("q must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        Ok(Self {
            cursor,
            limit: Some(limit),
            q: search,
            sort: self.sort,
        })
    }
}

/// `%` and `_` in a search are literal characters, not wildcards.
fn escape_like(input: &str) -> String {
    input
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

async fn update(
    State(state): State<crate::State>,
    CodePath(code): CodePath,
    ApiJson(body): ApiJson<UpdateLink>,
) -> Result<Json<Link>, Error> {
    if body.is_empty() {
        return Err(Error::InvalidInput {
            message: "nothing to update: send destination, status or expires_at".to_owned(),
            field: None,
        });
    }
    if let Some(destination) = &body.destination {
        check_destination(&state, destination)?;
    }
    if let Some(expires_at) = body.expires_at {
        check_expiry(expires_at)?;
    }
    let mut tx = state.db().begin().await?;
    let row: Option<LinkRow> = sqlx::query_as(&format!(
        "UPDATE links SET
            destination = COALESCE($2, destination),
            status = COALESCE($3, status),
            expires_at = CASE WHEN $4 THEN $5 ELSE expires_at END,
            updated_at = now()
         WHERE code = $1 AND deleted_at IS NULL
         RETURNING {COLUMNS}"
    ))
    .bind(code.as_str())
    .bind(body.destination.as_ref().map(Destination::as_str))
    .bind(body.status.map(|status| status.code() as i16))
    .bind(body.expires_at.is_some())
    .bind(body.expires_at.flatten())
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| Error::LinkNotFound(code.to_string()))?;
    finish_change(&state, tx, code.as_str()).await?;
    Ok(Json(row.into_link(&state)?))
}

async fn delete(
    State(state): State<crate::State>,
    CodePath(code): CodePath,
) -> Result<StatusCode, Error> {
    let mut tx = state.db().begin().await?;
    let deleted = sqlx::query(
        "UPDATE links SET deleted_at = now(), updated_at = now()
         WHERE code = $1 AND deleted_at IS NULL",
    )
    .bind(code.as_str())
    .execute(&mut *tx)
    .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::LinkNotFound(code.to_string()));
    }
    finish_change(&state, tx, code.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Completes a link change: the outbox row for the edge (when there is one) commits with the
/// change itself, then this instance's cache entry is dropped and delivery is woken.
async fn finish_change(
    state: &crate::State,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    code: &str,
) -> Result<(), Error> {
    if state.inner.edge_sync.is_some() {
        outbox::record_change(&mut tx, code).await?;
    }
    tx.commit().await?;
    state.inner.cache.invalidate(code).await;
    if let Some(edge) = &state.inner.edge_sync {
        edge.wake.notify_one();
    }
    Ok(())
}

/// What the redirect route needs, for the live link with this code.
pub(crate) async fn find_record(
    db: impl PgExecutor<'_>,
    code: &ShortCode,
) -> Result<Option<LinkRecord>, Error> {
    let row: Option<RecordRow> = sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM links WHERE code = $1 AND deleted_at IS NULL"
    ))
    .bind(code.as_str())
    .fetch_optional(db)
    .await?;
    row.map(RecordRow::into_record).transpose()
}

/// The columns of a [`RecordRow`].
pub(crate) const RECORD_COLUMNS: &str = "id, version, destination, status, expires_at";

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

fn check_destination(state: &crate::State, destination: &Destination) -> Result<(), Error> {
    if destination.points_to_any(&state.inner.own_hosts) {
        return Err(Error::invalid(
            "destination",
            format!(
                "destination points to this shortener ({}), which would make a redirect loop",
                destination.host()
            ),
        ));
    }
    Ok(())
}

fn check_expiry(expires_at: Option<OffsetDateTime>) -> Result<(), Error> {
    if expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
        return Err(Error::invalid(
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arbitrary query strings over the list's parameters.
    fn any_list_query() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let value = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0i64..300).prop_map(|n| n.to_string()),
            Just("code_asc".to_owned()),
            "[a-z0-9-]{0,80}",
            any::<String>(),
        ];
        let key = prop_oneof![
            Just("cursor".to_owned()),
            Just("limit".to_owned()),
            Just("q".to_owned()),
            Just("sort".to_owned()),
            any::<String>(),
        ];
        proptest::collection::vec((key, value), 0..5).prop_map(|pairs| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        })
    }

    proptest::proptest! {
        /// Any query string is a checked list request or a refusal naming a field.
        #[test]
        fn no_list_query_panics(query in any_list_query()) {
            match crate::extract::parse_query::<ListQuery>(&query).and_then(ListQuery::checked) {
                Ok(checked) => {
                    let limit = checked.limit.expect("set");
                    proptest::prop_assert!((1..=MAX_PAGE).contains(&limit));
                    proptest::prop_assert!(checked.cursor.is_none_or(|c| !c.is_empty() && c.chars().count() <= MAX_CURSOR_CHARS));
                    proptest::prop_assert!(checked.q.is_none_or(|q| !q.is_empty() && q.chars().count() <= MAX_SEARCH_CHARS));
                }
                Err(err) => proptest::prop_assert!(
                    matches!(err, Error::InvalidInput { field: Some(_), .. }),
                    "{query}: not a refusal naming a field: {err:?}"
                ),
            }
        }
    }

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
