//! The links API (`/api/v1/links`): where links are created, read, listed, changed and deleted.
//!
//! Validation happens when the body is parsed into `shortlink` types; what is checked here is
//! what depends on this deployment (loops to our own host, for every destination a link can
//! send to) or on the clock (expiry). A link's password is hashed here and stored only as its
//! hash; no answer and no audit entry shows either.

pub(crate) mod bulk;
pub(crate) mod export;
pub(crate) mod idempotency;
pub(crate) mod limit;
pub(crate) mod store;
mod versions;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use shortlink::Destination;
use shortlink::api::{ClickCounts, CreateLink, Link, LinkPage, UpdateLink};
use shortlink::password::{LinkPassword, PasswordHash};
use shortlink::rules::{Split, Tag, Targets};
use shortlink::webhook::EventType;
use shortlink::workspace::Permission;
use time::OffsetDateTime;

use self::idempotency::{Claim, Retryable, Route};
use self::store::{Filter, Sort};
use self::versions::IfMatch;
use crate::audit::{self, Change};
use crate::caller::{Caller, WorkspaceId};
use crate::error::Error;
use crate::extract::{ApiJson, ApiJsonBytes, ApiQuery, CodePath};
use crate::outbox;
use crate::webhooks::events as webhooks;

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
        // Static segments beside `/links/{code}`: no new link may take these codes
        // (`ShortCode::names_api_route`).
        .route(
            "/links/bulk",
            post(bulk::create).layer(DefaultBodyLimit::max(bulk::BODY_LIMIT)),
        )
        .route("/links/export", get(export::export))
        .route("/links/{code}", get(fetch).patch(update).delete(delete))
}

#[utoipa::path(
    post, path = "/api/v1/links", tag = "links",
    params(("Idempotency-Key" = Option<String>, Header, description = "A retried create with the same key (and body) gets the first answer.")),
    request_body = shortlink::api::CreateLink,
    responses((status = 201, description = "The link, created.", body = shortlink::api::Link, headers(("Location" = String, description = "The link's path in the API."), ("ETag" = String, description = "The link's version, for `If-Match`."), ("Idempotent-Replayed" = Option<String>, description = "`true` when this is the first answer to the same request, sent again with its `Idempotency-Key`."))), crate::openapi::Refusals),
)]
async fn create(
    State(state): State<crate::State>,
    caller: Caller,
    headers: HeaderMap,
    body: ApiJsonBytes<CreateLink>,
) -> Result<Response, Error> {
    let workspace = caller.may(Permission::WriteLinks)?;
    let retryable = Retryable::from_request(
        &headers,
        Route::Create,
        &body.bytes,
        &state.inner.redirects.visitor_secret,
    )?;
    let body = body.value;
    let answered = match &retryable {
        Some(retryable) => {
            idempotency::answered(state.db(), workspace, &caller.actor, retryable).await?
        }
        None => None,
    };
    let Created { link, replayed } = match answered {
        Some(link) => Created {
            link,
            replayed: true,
        },
        None => {
            check_new(&state, &body, OffsetDateTime::now_utc())?;
            let password = match &body.password {
                Some(password) => Some(hash_password(password).await?),
                None => None,
            };
            insert(
                &state,
                &caller,
                workspace,
                &body,
                password.as_ref(),
                retryable.as_ref(),
            )
            .await?
        }
    };
    let location = format!("/api/v1/links/{}", link.code);
    let etag = versions::etag(link.version);
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        [(header::ETAG, etag)],
        Json(link),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// What a create answers.
#[derive(Debug)]
struct Created {
    link: Link,
    /// The same request, with its `Idempotency-Key`, was answered before with this link.
    replayed: bool,
}

/// Inserts the link, drawing ids until a generated code is free. A custom slug that is taken
/// is a 409: the unique index decides, so two concurrent requests cannot both get it. With
/// an `Idempotency-Key`, the key is claimed in the same transaction, first.
async fn insert(
    state: &crate::State,
    caller: &Caller,
    workspace: WorkspaceId,
    body: &CreateLink,
    password: Option<&PasswordHash>,
    retryable: Option<&Retryable>,
) -> Result<Created, Error> {
    for _ in 0..MAX_CODE_ATTEMPTS {
        let id = store::next_id(state.db()).await?;
        let code = match &body.code {
            Some(custom) => custom.clone(),
            None => {
                let id = u64::try_from(id).map_err(|e| Error::Internal(e.into()))?;
                match state.inner.redirects.scrambler.encode(id) {
                    // A reserved word (`metrics`): the next id.
                    Err(shortlink::Error::CodeReserved { .. }) => continue,
                    code => code?,
                }
            }
        };
        let mut tx = state.db().begin().await?;
        if let Some(retryable) = retryable
            && let Claim::Answered(link) =
                idempotency::claim(&mut tx, workspace, &caller.actor, retryable).await?
        {
            return Ok(Created {
                link: *link,
                replayed: true,
            });
        }
        // In the transaction, so a blocklist rule added meanwhile sees this link or is seen.
        crate::abuse::blocklist::check_create(&mut tx, body).await?;
        match store::insert(&mut tx, workspace, id, &code, body, password).await? {
            Some(row) => {
                let change = Change {
                    action: "link.created",
                    target: ("link", row.id),
                    before: None,
                    after: Some(row.audited()?),
                };
                audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
                let link = row.clone().into_link(&state.inner.public_url)?;
                webhooks::link_event(&mut tx, workspace, EventType::LinkCreated, &link).await?;
                if let Some(retryable) = retryable {
                    idempotency::remember(&mut tx, workspace, &caller.actor, retryable, &link)
                        .await?;
                }
                // A visit before this link existed may have cached "no such code".
                finish_change(state, tx, &row.code).await?;
                return Ok(Created {
                    link,
                    replayed: false,
                });
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

#[utoipa::path(
    get, path = "/api/v1/links/{code}", tag = "links",
    params(("code" = shortlink::ShortCode, Path, description = "The link's short code.")),
    responses((status = 200, description = "The link; `ETag` is its version.", body = shortlink::api::Link, headers(("ETag" = String, description = "The link's version, for `If-Match`."))), crate::openapi::Refusals),
)]
async fn fetch(
    State(state): State<crate::State>,
    caller: Caller,
    CodePath(code): CodePath,
) -> Result<Response, Error> {
    let workspace = caller.may(Permission::ReadLinks)?;
    let row = store::find(state.db(), workspace, &code).await?;
    Ok(with_etag(row.into_link(&state.inner.public_url)?))
}

/// A link's answer, with its version as the `ETag`.
fn with_etag(link: Link) -> Response {
    ([(header::ETAG, versions::etag(link.version))], Json(link)).into_response()
}

use shortlink::query::{LinkListQuery as ListQuery, LinkSort};

impl From<LinkSort> for Sort {
    fn from(sort: LinkSort) -> Self {
        match sort {
            LinkSort::Newest => Self::Newest,
            LinkSort::Oldest => Self::Oldest,
            LinkSort::CodeAsc => Self::CodeAsc,
            LinkSort::CodeDesc => Self::CodeDesc,
            LinkSort::Clicks => Self::Clicks,
            LinkSort::Clicks7d => Self::Clicks7d,
        }
    }
}

/// The cursor of a list sorted by clicks: the count of the last link shown, and its id.
fn clicks_cursor(cursor: &str) -> Option<(i64, i64)> {
    let (clicks, id) = cursor.split_once('_')?;
    Some((clicks.parse().ok()?, id.parse().ok()?))
}

/// A [`ListQuery`] with its values checked.
#[derive(Debug)]
struct CheckedList {
    cursor: Option<String>,
    limit: i64,
    search: Option<String>,
    tag: Option<Tag>,
    disabled: Option<bool>,
    sort: Sort,
}

#[utoipa::path(
    get, path = "/api/v1/links", tag = "links",
    params(shortlink::query::LinkListQuery),
    responses((status = 200, description = "A page of links, each with its `click_counts` (in all, with imported clicks, and in the last 7 days; from the hourly rollups, so a click shows within moments; left out for a key without `stats:read`). Sorted by `clicks` or `clicks_7d` (which needs `stats:read`), most first; ties newest first.", body = shortlink::api::LinkPage), crate::openapi::Refusals),
)]
async fn list(
    State(state): State<crate::State>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<LinkPage>, Error> {
    let workspace = caller.may(Permission::ReadLinks)?;
    let CheckedList {
        cursor,
        limit,
        search,
        tag,
        disabled,
        sort,
    } = query.checked()?;
    // Clicks are statistics: a key without `stats:read` lists links without them, and may
    // not rank links by them.
    let with_clicks = match caller.may(Permission::ReadStats) {
        Ok(_) => true,
        Err(refused) if sort.by_clicks() => return Err(refused),
        Err(_) => false,
    };
    let filter = Filter {
        search: search.as_deref(),
        tag: tag.as_ref(),
        disabled,
    };
    let cursor = match cursor.as_deref() {
        None => None,
        Some(cursor) if sort.by_clicks() => {
            let (clicks, id) = clicks_cursor(cursor).ok_or_else(bad_cursor)?;
            Some(store::Cursor::Clicks(clicks, id))
        }
        Some(cursor) => Some(store::Cursor::Key(cursor)),
    };
    // Lists may lag on a read replica (a link created a moment ago may be missing for as long).
    let reads = state.reads();
    let mut rows = reads
        .read(|db| store::list(db, workspace, cursor, filter, sort, limit + 1))
        .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match (has_more, rows.last()) {
        (true, Some(last)) => Some(match sort {
            Sort::Clicks => format!("{}_{}", last.total.unwrap_or(0), last.link.id),
            Sort::Clicks7d => format!("{}_{}", last.recent.unwrap_or(0), last.link.id),
            _ if sort.by_id() => last.link.id.to_string(),
            _ => last.link.code.clone(),
        }),
        _ => None,
    };
    // Sorted by clicks, the page's query read its counts; otherwise one look-up by key for
    // the page's links (not a join the planner could turn into a read of every link's row).
    let mut counts: std::collections::HashMap<i64, (i64, i64)> = rows
        .iter()
        .filter_map(|row| Some((row.link.id, (row.total?, row.recent?))))
        .collect();
    if with_clicks && !sort.by_clicks() && !rows.is_empty() {
        let ids: Vec<i64> = rows.iter().map(|row| row.link.id).collect();
        counts.extend(
            reads
                .read(|db| store::click_counts(db, workspace, &ids))
                .await?
                .into_iter()
                .map(|(id, total, recent)| (id, (total, recent))),
        );
    }
    let links = rows
        .into_iter()
        .map(|row| {
            let (total, recent) = counts.get(&row.link.id).copied().unwrap_or_default();
            let mut link = row.link.into_link(&state.inner.public_url)?;
            link.click_counts = with_clicks.then_some(ClickCounts {
                total: total.max(0).unsigned_abs(),
                last_7_days: recent.max(0).unsigned_abs(),
            });
            Ok(link)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Json(LinkPage { links, next_cursor }))
}

fn bad_cursor() -> Error {
    Error::invalid(
        "cursor",
        "cursor must be a next_cursor from a previous page",
    )
}

/// The checks of a [`ListQuery`] (a trait: the query is `shortlink`'s).
trait Check {
    fn checked(self) -> Result<CheckedList, Error>;
}

impl Check for ListQuery {
    /// The query with its values checked: `limit` in bounds, `cursor`, `q` and `tag` absent
    /// when empty (`q` trimmed) and within their lengths, `tag` normalised.
    fn checked(self) -> Result<CheckedList, Error> {
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
        let malformed = |cursor: &String| {
            // A cursor is an id, a code (at most 64 characters), or clicks and an id.
            (self.sort.by_id() && cursor.parse::<i64>().is_err())
                || (self.sort.by_clicks() && clicks_cursor(cursor).is_none())
                || cursor.chars().count() > MAX_CURSOR_CHARS
                // No code holds one, and PostgreSQL's text refuses NUL.
                || cursor.chars().any(char::is_control)
        };
        if cursor.as_ref().is_some_and(malformed) {
            return Err(bad_cursor());
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
        // Nothing searched holds one, and PostgreSQL's text refuses NUL.
        if search
            .as_ref()
            .is_some_and(|q| q.chars().any(char::is_control))
        {
            return Err(Error::invalid("q", "q must not hold control characters"));
        }
        let tag = self
            .tag
            .as_deref()
            .filter(|tag| !tag.is_empty())
            .map(Tag::parse)
            .transpose()
            .map_err(|err| Error::invalid("tag", err.to_string()))?;
        Ok(CheckedList {
            cursor,
            limit,
            search,
            tag,
            disabled: self.disabled,
            sort: self.sort.into(),
        })
    }
}

#[utoipa::path(
    patch, path = "/api/v1/links/{code}", tag = "links",
    params(("code" = shortlink::ShortCode, Path, description = "The link's short code."), ("If-Match" = Option<String>, Header, description = "The version (`ETag`) the change is based on: 412 if the link changed since.")),
    request_body = shortlink::api::UpdateLink,
    responses((status = 200, description = "The link, changed.", body = shortlink::api::Link, headers(("ETag" = String, description = "The link's new version, for `If-Match`."))), crate::openapi::Refusals),
)]
async fn update(
    State(state): State<crate::State>,
    caller: Caller,
    CodePath(code): CodePath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateLink>,
) -> Result<Response, Error> {
    let workspace = caller.may(Permission::WriteLinks)?;
    let if_match = IfMatch::from_headers(&headers)?;
    if body.is_empty() {
        return Err(Error::InvalidInput {
            message: "nothing to update: send at least one field of the link to change".to_owned(),
            field: None,
        });
    }
    if let Some(destination) = &body.destination {
        check_destination(&state, "destination", destination)?;
    }
    check_rules(
        &state,
        body.fallback_url.as_ref().and_then(Option::as_ref),
        body.targets.as_ref(),
        body.split.as_ref(),
    )?;
    if let Some(expires_at) = body.expires_at {
        check_expiry(expires_at)?;
    }
    let password = match &body.password {
        Some(Some(password)) => Some(Some(hash_password(password).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut tx = state.db().begin().await?;
    // In the transaction, so a blocklist rule added meanwhile sees this edit or is seen.
    crate::abuse::blocklist::check_update(&state, &mut tx, workspace, &code, &body).await?;
    crate::abuse::takedown::check_update(&mut tx, workspace, &code, &body).await?;
    let (before, after) = store::update(
        &mut tx,
        workspace,
        &code,
        &body,
        password.as_ref().map(Option::as_ref),
    )
    .await?;
    // `before` is the version the edit found (under the row's lock): one that is not the
    // client's rolls the edit back.
    if let Some(if_match) = &if_match {
        if_match.check(u64::try_from(before.version).unwrap_or(u64::MAX))?;
    }
    let change = Change {
        action: "link.updated",
        target: ("link", after.id),
        before: Some(before.audited()?),
        after: Some(after.audited()?),
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    let link = after.into_link(&state.inner.public_url)?;
    webhooks::link_event(&mut tx, workspace, EventType::LinkUpdated, &link).await?;
    finish_change(&state, tx, code.as_str()).await?;
    Ok(with_etag(link))
}

#[utoipa::path(
    delete, path = "/api/v1/links/{code}", tag = "links",
    params(("code" = shortlink::ShortCode, Path, description = "The link's short code."), ("If-Match" = Option<String>, Header, description = "The version (`ETag`) the delete is based on: 412 if the link changed since.")),
    responses((status = 204, description = "Deleted (its code is free again)."), crate::openapi::Refusals),
)]
async fn delete(
    State(state): State<crate::State>,
    caller: Caller,
    CodePath(code): CodePath,
    headers: HeaderMap,
) -> Result<StatusCode, Error> {
    let workspace = caller.may(Permission::WriteLinks)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let mut tx = state.db().begin().await?;
    // Every delete locks the link's row before its code's, as a conditional one must to check
    // it: two deletes of one link that took them in opposite orders deadlocked.
    let (id, current) = store::lock_version(&mut tx, workspace, &code).await?;
    if let Some(if_match) = &if_match {
        if_match.check(u64::try_from(current).unwrap_or(u64::MAX))?;
    }
    crate::abuse::takedown::check_delete(&mut tx, workspace, id, &code).await?;
    let before = store::delete(&mut tx, workspace, &code).await?;
    // The link as it was last: what a `link.deleted` webhook shows.
    let last = before.clone().into_link(&state.inner.public_url)?;
    webhooks::link_event(&mut tx, workspace, EventType::LinkDeleted, &last).await?;
    let change = Change {
        action: "link.deleted",
        target: ("link", before.id),
        before: Some(before.audited()?),
        after: None,
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
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
    if state.inner.edge.sync.is_some() {
        outbox::record_change(&mut tx, code).await?;
    }
    tx.commit().await?;
    state.inner.redirects.cache.invalidate(code).await;
    if let Some(edge) = &state.inner.edge.sync {
        edge.wake.notify_one();
    }
    crate::webhooks::wake(state);
    Ok(())
}

/// The checks of a new link (a create's, and each of a bulk create's) that depend on this
/// deployment or the clock: its code is not one of the API's own routes, no destination loops
/// to us, and its dates are possible at `now`.
fn check_new(state: &crate::State, body: &CreateLink, now: OffsetDateTime) -> Result<(), Error> {
    if let Some(code) = body.code.as_ref().filter(|code| code.names_api_route()) {
        return Err(shortlink::Error::CodeReserved {
            code: code.to_string(),
        }
        .into());
    }
    check_destination(state, "destination", &body.destination)?;
    check_rules(
        state,
        body.fallback_url.as_ref(),
        Some(&body.targets),
        Some(&body.split),
    )?;
    check_dates(body, now)?;
    store::imported_clicks(body)?;
    check_clicks_used(body)?;
    Ok(())
}

/// An import's clicks used against the link's limit: only with a limit, and at most it (a
/// link created used up is created exhausted, not over its limit).
fn check_clicks_used(body: &CreateLink) -> Result<(), Error> {
    match body.max_clicks {
        _ if body.clicks_used == 0 => Ok(()),
        None => Err(Error::invalid(
            "clicks_used",
            "clicks_used needs max_clicks: only a link with a click limit counts its clicks",
        )),
        Some(max) if body.clicks_used > max.get() => Err(Error::invalid(
            "clicks_used",
            format!("clicks_used must be at most max_clicks ({})", max.get()),
        )),
        Some(_) => Ok(()),
    }
}

/// A new link was not made in the future, and expires after it was made: in the future, or,
/// for an import that says when the link was made (`created_at`), after that. An imported
/// link that already expired at its old shortener comes back expired (410, or its fallback)
/// rather than not at all, keeping its code from being taken by another link.
fn check_dates(body: &CreateLink, now: OffsetDateTime) -> Result<(), Error> {
    if body.created_at.is_some_and(|at| at > now) {
        return Err(Error::invalid(
            "created_at",
            "created_at must not be in the future",
        ));
    }
    match (body.expires_at, body.created_at) {
        (Some(expires_at), Some(created_at)) if expires_at <= created_at => Err(Error::invalid(
            "expires_at",
            "expires_at must be after created_at",
        )),
        (_, Some(_)) => Ok(()),
        (expires_at, None) => check_expiry(expires_at),
    }
}

/// Refuses a destination on one of our own hosts: the redirect would loop. `field` names
/// where in the body it is (`destination`, `targets[2].destination`).
fn check_destination(
    state: &crate::State,
    field: &str,
    destination: &Destination,
) -> Result<(), Error> {
    if destination.points_to_any(&state.inner.redirects.own_hosts) {
        return Err(Error::invalid(
            field,
            format!(
                "{field} points to this shortener ({}), which would make a redirect loop",
                destination.host()
            ),
        ));
    }
    Ok(())
}

/// Every other destination a link can send visitors to gets the main destination's check.
fn check_rules(
    state: &crate::State,
    fallback_url: Option<&Destination>,
    targets: Option<&Targets>,
    split: Option<&Split>,
) -> Result<(), Error> {
    if let Some(fallback_url) = fallback_url {
        check_destination(state, "fallback_url", fallback_url)?;
    }
    for (index, target) in targets
        .map_or(&[][..], Targets::as_slice)
        .iter()
        .enumerate()
    {
        check_destination(
            state,
            &format!("targets[{index}].destination"),
            &target.destination,
        )?;
    }
    for (index, variant) in split.map_or(&[][..], Split::as_slice).iter().enumerate() {
        check_destination(
            state,
            &format!("split[{index}].destination"),
            &variant.destination,
        )?;
    }
    Ok(())
}

/// The stored form of a link's password: PBKDF2 with a random salt
/// (`shortlink::password`). Its thousands of rounds run on a blocking thread, off the
/// threads that answer requests.
async fn hash_password(password: &LinkPassword) -> Result<PasswordHash, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|err| Error::Internal(anyhow::anyhow!("no randomness for a salt: {err}")))?;
    let password = password.clone();
    tokio::task::spawn_blocking(move || PasswordHash::new(&password, salt))
        .await
        .map_err(|err| Error::Internal(err.into()))
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
            Just("true".to_owned()),
            Just(" Spring  Sale ".to_owned()),
            "[a-z0-9-]{0,80}",
            any::<String>(),
        ];
        let key = prop_oneof![
            Just("cursor".to_owned()),
            Just("limit".to_owned()),
            Just("q".to_owned()),
            Just("sort".to_owned()),
            Just("tag".to_owned()),
            Just("disabled".to_owned()),
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
                    proptest::prop_assert!((1..=MAX_PAGE).contains(&checked.limit));
                    proptest::prop_assert!(checked.cursor.is_none_or(|c| !c.is_empty() && c.chars().count() <= MAX_CURSOR_CHARS));
                    proptest::prop_assert!(checked.search.is_none_or(|q| !q.is_empty() && q.chars().count() <= MAX_SEARCH_CHARS));
                    proptest::prop_assert!(checked.tag.is_none_or(|t| Tag::parse(t.as_str()).is_ok_and(|again| again == t)));
                }
                Err(err) => proptest::prop_assert!(
                    matches!(err, Error::InvalidInput { field: Some(_), .. }),
                    "{query}: not a refusal naming a field: {err:?}"
                ),
            }
        }
    }
}
