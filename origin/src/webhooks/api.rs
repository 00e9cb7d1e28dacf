//! The webhook API (`/api/v1/webhooks`): a workspace's endpoints (listed, created with their
//! signing secret shown once, changed, switched on again, deleted, their secret rotated), a
//! test event, and each endpoint's delivery log with its attempts and redelivery.
//!
//! Everything needs [`Permission::Administer`]: an endpoint decides where the workspace's data
//! goes, like an API key decides who reads it. Its messages need what they carry to be
//! readable too: links [`Permission::ReadLinks`], clicks [`Permission::ReadStats`]
//! (`may_receive`). Every query takes the caller's [`WorkspaceId`],
//! so another workspace's endpoint or delivery is a 404 like one that never existed.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use shortlink::webhook::{
    CreateWebhook, CreatedWebhook, DeliveryAttempt, DeliveryDetail, DeliveryPage, DeliveryQuery,
    DeliveryState, Description, EventType, Events, MAX_WEBHOOKS_PER_WORKSPACE, UpdateWebhook,
    Webhook, WebhookDelivery, WebhookUrl,
};
use shortlink::workspace::Permission;
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::audit::{self, Change};
use crate::caller::{Caller, WorkspaceId};
use crate::error::Error;
use crate::extract::{ApiJson, ApiQuery, IdPath};

/// Random bytes of a signing secret: the Standard Webhooks specification asks for 24 to 64.
const SECRET_BYTES: usize = 32;
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;

pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(fetch).patch(update).delete(remove))
        .route("/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery}", get(delivery))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

/// The columns of an endpoint as the API shows it (never `secret`), for [`EndpointRow`].
const ENDPOINT: &str = "id, url, description, events, enabled, disabled_reason, disabled_at, \
                        failing_since, last_success_at, created_at";

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: i64,
    url: String,
    description: String,
    events: Vec<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    disabled_at: Option<OffsetDateTime>,
    failing_since: Option<OffsetDateTime>,
    last_success_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
}

/// The one conversion of a stored endpoint. The API wrote every value through the same types,
/// so a failure here is a row written around it: a 500, logged.
fn webhook(row: EndpointRow) -> Result<Webhook, Error> {
    let corrupt = |what: &str| Error::Internal(anyhow::anyhow!("webhook {}: bad {what}", row.id));
    let events = row
        .events
        .iter()
        .map(|name| EventType::parse(name))
        .collect::<Option<Vec<_>>>()
        .and_then(|events| Events::parse(events).ok())
        .ok_or_else(|| corrupt("events"))?;
    Ok(Webhook {
        id: row.id,
        url: WebhookUrl::parse(&row.url).map_err(|_| corrupt("url"))?,
        description: Description::parse(&row.description).map_err(|_| corrupt("description"))?,
        events,
        enabled: row.enabled,
        disabled_reason: row.disabled_reason,
        disabled_at: row.disabled_at,
        failing_since: row.failing_since,
        last_success_at: row.last_success_at,
        created_at: row.created_at,
    })
}

fn event_names(events: &Events) -> Vec<&'static str> {
    events
        .as_slice()
        .iter()
        .map(|event| event.as_str())
        .collect()
}

/// Refuses a URL on one of this deployment's own hosts, by the check links' destinations get
/// ([`shortlink::Destination::points_to_any`]): kurz would POST its data to itself. Unless the
/// deployment delivers to private networks (`KURZ_WEBHOOK_ALLOW_PRIVATE`), also a URL without
/// TLS, and one whose host is `localhost` or an address the deliverer would refuse
/// ([`super::deliver::is_public`]): said now rather than at every attempt. (A name that
/// resolves to such an address is refused at delivery, when it is resolved.)
fn check_url(state: &crate::State, url: &WebhookUrl) -> Result<(), Error> {
    let destination = url.as_destination();
    if !state.inner.webhooks.config.allow_private {
        if !destination.as_str().starts_with("https://") {
            return Err(Error::invalid(
                "url",
                "url must use https: this deployment sends webhooks only over TLS",
            ));
        }
        let host = destination.host();
        let address = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>();
        let private = match address {
            Ok(ip) => !super::deliver::is_public(ip),
            Err(_) => host == "localhost" || host.ends_with(".localhost"),
        };
        if private {
            return Err(Error::invalid(
                "url",
                format!(
                    "url points to a private or local address ({host}): webhooks go to public hosts"
                ),
            ));
        }
    }
    if destination.points_to_any(&state.inner.redirects.own_hosts) {
        return Err(Error::invalid(
            "url",
            format!(
                "url points to this shortener ({}): webhooks go to another service",
                destination.host()
            ),
        ));
    }
    Ok(())
}

/// A new signing secret: `whsec_` and the standard base64 of [`SECRET_BYTES`] random bytes,
/// the form the Standard Webhooks libraries take.
fn new_secret() -> Result<String, Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| Error::Internal(anyhow::anyhow!("{err}")))?;
    Ok(format!("whsec_{}", BASE64_STANDARD.encode(bytes)))
}

/// The workspace's endpoints, newest first (at most [`MAX_WEBHOOKS_PER_WORKSPACE`]).
#[utoipa::path(
    get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "The workspace's endpoints (never their secrets).", body = Vec<shortlink::webhook::Webhook>), crate::openapi::Refusals),
)]
async fn list(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<Webhook>>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let rows: Vec<EndpointRow> = sqlx::query_as(&format!(
        "SELECT {ENDPOINT} FROM webhook_endpoints WHERE workspace_id = $1
         ORDER BY id DESC LIMIT $2"
    ))
    .bind(workspace.get())
    .bind(MAX_WEBHOOKS_PER_WORKSPACE as i64)
    .fetch_all(state.db())
    .await?;
    rows.into_iter()
        .map(webhook)
        .collect::<Result<_, _>>()
        .map(Json)
}

#[utoipa::path(
    post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = shortlink::webhook::CreateWebhook,
    responses((status = 201, description = "The endpoint, with its signing secret (shown once).", body = shortlink::webhook::CreatedWebhook), crate::openapi::Refusals),
)]
async fn create(
    State(state): State<crate::State>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<impl IntoResponse, Error> {
    let workspace = caller.may(Permission::Administer)?;
    may_receive(&caller, body.events.as_slice())?;
    check_url(&state, &body.url)?;
    let secret = new_secret()?;
    let mut tx = state.db().begin().await?;
    lock_and_count(&mut tx, workspace).await?;
    // Its authority now: a revocation or a demotion it waited for above has taken it away.
    let caller = caller.as_now(&mut tx).await?;
    caller.may(Permission::Administer)?;
    may_receive(&caller, body.events.as_slice())?;
    let row: EndpointRow = sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (workspace_id, url, description, events, secret)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING {ENDPOINT}"
    ))
    .bind(workspace.get())
    .bind(body.url.as_str())
    .bind(body.description.as_str())
    .bind(event_names(&body.events))
    .bind(&secret)
    .fetch_one(&mut *tx)
    .await?;
    let webhook = webhook(row)?;
    let change = Change {
        action: "webhook.created",
        target: ("webhook", webhook.id),
        before: None,
        // Never the secret: the log is read by every admin.
        after: Some(audit::fields(&webhook)?),
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook { webhook, secret }),
    ))
}

/// Refuses a workspace at [`MAX_WEBHOOKS_PER_WORKSPACE`] endpoints. The workspace's row is
/// locked until commit, so two creations at once cannot both see room for one more.
async fn lock_and_count(tx: &mut PgConnection, workspace: WorkspaceId) -> Result<(), Error> {
    crate::members::lock(tx, workspace).await?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE workspace_id = $1")
            .bind(workspace.get())
            .fetch_one(&mut *tx)
            .await?;
    if count >= MAX_WEBHOOKS_PER_WORKSPACE as i64 {
        return Err(Error::Conflict {
            code: "too_many_webhooks",
            message: format!(
                "a workspace may have at most {MAX_WEBHOOKS_PER_WORKSPACE} webhook endpoints: \
                 delete one first"
            ),
        });
    }
    Ok(())
}

#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The endpoint (never its secret).", body = shortlink::webhook::Webhook), crate::openapi::Refusals),
)]
async fn fetch(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Webhook>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut conn = state.db().acquire().await?;
    find(&mut conn, workspace, id, false).await.map(Json)
}

/// An endpoint of the workspace (404 for any other), its row locked until commit if `lock`.
async fn find(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    id: i64,
    lock: bool,
) -> Result<Webhook, Error> {
    let lock = if lock { "FOR UPDATE" } else { "" };
    let row: Option<EndpointRow> = sqlx::query_as(&format!(
        "SELECT {ENDPOINT} FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2 {lock}"
    ))
    .bind(id)
    .bind(workspace.get())
    .fetch_optional(conn)
    .await?;
    webhook(row.ok_or(Error::NotFound)?)
}

/// Changes the fields present. `enabled: true` on an endpoint kurz switched off also forgets
/// why and since when it failed, so the 24 hours of failing start again from zero; `enabled:
/// false` is a person's choice, with no reason recorded (on an endpoint kurz already switched
/// off, kurz's reason stays).
#[utoipa::path(
    patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id.")),
    request_body = shortlink::webhook::UpdateWebhook,
    responses((status = 200, description = "The endpoint as changed.", body = shortlink::webhook::Webhook), crate::openapi::Refusals),
)]
async fn update(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<Webhook>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    if body.is_empty() {
        return Err(Error::InvalidInput {
            message: "send at least one of url, description, events, enabled".to_owned(),
            field: None,
        });
    }
    if let Some(url) = &body.url {
        check_url(&state, url)?;
    }
    let mut tx = state.db().begin().await?;
    // As a creation: an update queued behind the caller's revocation or demotion is refused.
    crate::members::lock(&mut tx, workspace).await?;
    let caller = caller.as_now(&mut tx).await?;
    caller.may(Permission::Administer)?;
    let before = find(&mut tx, workspace, id, true).await?;
    // Where its messages go is their reader's choice: a new URL takes the messages already
    // queued for it too, whatever it is subscribed to now or next (an earlier change may have
    // unsubscribed what is still queued).
    if body.url.is_some() {
        may_receive(&caller, before.events.as_slice())?;
        let queued: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT event_type FROM webhook_deliveries
             WHERE endpoint_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let queued: Vec<EventType> = queued.iter().filter_map(|e| EventType::parse(e)).collect();
        may_receive(&caller, &queued)?;
    }
    if let Some(events) = &body.events {
        may_receive(&caller, events.as_slice())?;
    }
    let row: EndpointRow = sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET
             url = COALESCE($3, url),
             description = COALESCE($4, description),
             events = COALESCE($5, events),
             enabled = COALESCE($6, enabled),
             disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,
             disabled_at = CASE
                 WHEN $6 IS NULL THEN disabled_at
                 WHEN $6 THEN NULL
                 ELSE COALESCE(disabled_at, now()) END,
             -- Switched on, or sent elsewhere: the failing was the old receiver's.
             failing_since = CASE WHEN ($6 AND NOT enabled) OR $3 <> url THEN NULL
                                  ELSE failing_since END,
             updated_at = now()
         WHERE id = $1 AND workspace_id = $2
         RETURNING {ENDPOINT}"
    ))
    .bind(id)
    .bind(workspace.get())
    .bind(body.url.as_ref().map(WebhookUrl::as_str))
    .bind(body.description.as_ref().map(Description::as_str))
    .bind(body.events.as_ref().map(event_names))
    .bind(body.enabled)
    .fetch_one(&mut *tx)
    .await?;
    let after = webhook(row)?;
    // Switched off, its pending messages wait (parked, never read by a claim); switched on
    // or sent elsewhere, they are due now: the wait was for the receiver that failed.
    let unparked = after.enabled && (!before.enabled || before.url != after.url);
    if before.enabled && !after.enabled {
        super::deliver::park(&mut tx, id).await?;
    } else if unparked {
        super::deliver::unpark(&mut tx, id).await?;
    }
    let change = Change {
        action: "webhook.updated",
        target: ("webhook", id),
        before: Some(audit::fields(&before)?),
        after: Some(audit::fields(&after)?),
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    if unparked {
        super::wake(&state);
    }
    Ok(Json(after))
}

/// Deletes the endpoint with its deliveries and their log: nothing more is sent to it.
#[utoipa::path(
    delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id.")),
    responses((status = 204, description = "Deleted, with its delivery log."), crate::openapi::Refusals),
)]
async fn remove(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut tx = state.db().begin().await?;
    let row: Option<EndpointRow> = sqlx::query_as(&format!(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2 RETURNING {ENDPOINT}"
    ))
    .bind(id)
    .bind(workspace.get())
    .fetch_optional(&mut *tx)
    .await?;
    let before = webhook(row.ok_or(Error::NotFound)?)?;
    let change = Change {
        action: "webhook.deleted",
        target: ("webhook", id),
        before: Some(audit::fields(&before)?),
        after: None,
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown once; the old one stops at once (messages not yet sent are
/// signed with the new one when they go).
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id.")),
    responses((status = 200, description = "The endpoint, with its new secret (shown once).", body = shortlink::webhook::CreatedWebhook), crate::openapi::Refusals),
)]
async fn rotate_secret(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<CreatedWebhook>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let secret = new_secret()?;
    let mut tx = state.db().begin().await?;
    let row: Option<EndpointRow> = sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET secret = $3, updated_at = now()
         WHERE id = $1 AND workspace_id = $2 RETURNING {ENDPOINT}"
    ))
    .bind(id)
    .bind(workspace.get())
    .bind(&secret)
    .fetch_optional(&mut *tx)
    .await?;
    let webhook = webhook(row.ok_or(Error::NotFound)?)?;
    // The entry says that it happened; neither secret is in it.
    let change = Change {
        action: "webhook.secret_rotated",
        target: ("webhook", id),
        before: None,
        after: None,
    };
    audit::record(&mut tx, workspace, caller.audit_actor(), change).await?;
    tx.commit().await?;
    Ok(Json(CreatedWebhook { webhook, secret }))
}

/// The columns of a delivery as the log shows it, for [`DeliveryRow`] (`d` is the delivery).
const DELIVERY: &str = "d.id, d.message_id, d.event_type, d.state, d.attempts, d.last_status, \
                        d.last_error, d.created_at, d.last_attempt_at, d.delivered_at, \
                        NULLIF(d.next_attempt_at, 'infinity') AS next_attempt_at";

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    message_id: String,
    event_type: String,
    state: String,
    attempts: i32,
    last_status: Option<i16>,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    last_attempt_at: Option<OffsetDateTime>,
    delivered_at: Option<OffsetDateTime>,
    /// None while parked (`infinity`, which `OffsetDateTime` cannot hold): the endpoint is off.
    next_attempt_at: Option<OffsetDateTime>,
}

fn delivery_of(row: DeliveryRow) -> Result<WebhookDelivery, Error> {
    let corrupt = |what: &str| Error::Internal(anyhow::anyhow!("delivery {}: bad {what}", row.id));
    let state = DeliveryState::parse(&row.state).ok_or_else(|| corrupt("state"))?;
    Ok(WebhookDelivery {
        id: row.id,
        message_id: row.message_id,
        event_type: EventType::parse(&row.event_type).ok_or_else(|| corrupt("event_type"))?,
        state,
        attempts: u32::try_from(row.attempts).map_err(|_| corrupt("attempts"))?,
        last_status: row
            .last_status
            .and_then(|status| u16::try_from(status).ok()),
        last_error: row.last_error,
        created_at: row.created_at,
        last_attempt_at: row.last_attempt_at,
        delivered_at: row.delivered_at,
        next_attempt_at: row
            .next_attempt_at
            .filter(|_| state == DeliveryState::Pending),
    })
}

/// Sends a `webhook.test` message through the delivery path every event takes (outbox row,
/// signature, retries), so what the receiver gets is what events will look like.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id.")),
    responses((status = 202, description = "The test message, queued for delivery.", body = shortlink::webhook::WebhookDelivery), crate::openapi::Refusals),
)]
async fn send_test(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<impl IntoResponse, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut tx = state.db().begin().await?;
    let endpoint = find(&mut tx, workspace, id, true).await?;
    refuse_disabled(&endpoint)?;
    let delivery = super::events::test_event(&mut tx, workspace, endpoint.id)
        .await?
        .ok_or(Error::NotFound)?;
    let path = DeliveryPath {
        endpoint: id,
        delivery,
    };
    let (row, _) = find_delivery(&mut tx, workspace, &path).await?;
    tx.commit().await?;
    super::wake(&state);
    Ok((StatusCode::ACCEPTED, Json(delivery_of(row)?)))
}

/// A switched-off endpoint gets nothing, not even on request: switch it on first.
fn refuse_disabled(endpoint: &Webhook) -> Result<(), Error> {
    if endpoint.enabled {
        return Ok(());
    }
    Err(Error::Conflict {
        code: "webhook_disabled",
        message: "this endpoint is switched off: switch it on (enabled: true) first".to_owned(),
    })
}

/// The endpoint's deliveries, newest first, by pages whose cursor is the last one's id.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id."), shortlink::webhook::DeliveryQuery),
    responses((status = 200, description = "A page of the endpoint's deliveries.", body = shortlink::webhook::DeliveryPage), crate::openapi::Refusals),
)]
async fn deliveries(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryPage>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let cursor = query
        .cursor
        .filter(|cursor| !cursor.is_empty())
        .map(|cursor| {
            cursor.parse::<i64>().map_err(|_| {
                Error::invalid(
                    "cursor",
                    "cursor must be a next_cursor from a previous page",
                )
            })
        })
        .transpose()?;
    let mut conn = state.db().acquire().await?;
    // An endpoint of another workspace has no log to show, not even an empty one.
    find(&mut conn, workspace, id, false).await?;
    let rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
        "SELECT {DELIVERY} FROM webhook_deliveries d
         WHERE d.endpoint_id = $1
           AND ($2::text IS NULL OR d.state = $2)
           AND ($3::bigint IS NULL OR d.id < $3)
         ORDER BY d.id DESC
         LIMIT $4"
    ))
    .bind(id)
    .bind(query.state.map(DeliveryState::as_str))
    .bind(cursor)
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let mut deliveries = rows
        .into_iter()
        .map(delivery_of)
        .collect::<Result<Vec<_>, _>>()?;
    let has_more = deliveries.len() as i64 > limit;
    deliveries.truncate(limit as usize);
    let next_cursor = has_more
        .then(|| deliveries.last().map(|last| last.id.to_string()))
        .flatten();
    Ok(Json(DeliveryPage {
        deliveries,
        next_cursor,
    }))
}

/// The `{id}` and `{delivery}` of a delivery's path; anything but two numbers names nothing.
struct DeliveryPath {
    endpoint: i64,
    delivery: i64,
}

impl<S: Send + Sync> FromRequestParts<S> for DeliveryPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path((endpoint, delivery)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound)?;
        Ok(Self {
            endpoint: endpoint.parse().map_err(|_| Error::NotFound)?,
            delivery: delivery.parse().map_err(|_| Error::NotFound)?,
        })
    }
}

/// A delivery of one of the workspace's endpoints (404 for any other).
async fn find_delivery(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    path: &DeliveryPath,
) -> Result<(DeliveryRow, serde_json::Value), Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        delivery: DeliveryRow,
        payload: serde_json::Value,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {DELIVERY}, d.payload
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.id = $1 AND d.endpoint_id = $2 AND e.workspace_id = $3"
    ))
    .bind(path.delivery)
    .bind(path.endpoint)
    .bind(workspace.get())
    .fetch_optional(conn)
    .await?;
    let row = row.ok_or(Error::NotFound)?;
    Ok((row.delivery, row.payload))
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i32,
    at: OffsetDateTime,
    status: Option<i16>,
    error: Option<String>,
    duration_ms: i32,
}

/// A delivery, the body it sends, and each of its attempts, oldest first.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}/deliveries/{delivery}", tag = "webhooks",
    params(
        ("id" = i64, Path, description = "The endpoint's id."),
        ("delivery" = i64, Path, description = "The delivery's id."),
    ),
    responses((status = 200, description = "The delivery with its attempts.", body = shortlink::webhook::DeliveryDetail), crate::openapi::Refusals),
)]
async fn delivery(
    State(state): State<crate::State>,
    caller: Caller,
    path: DeliveryPath,
) -> Result<Json<DeliveryDetail>, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut conn = state.db().acquire().await?;
    let (row, payload) = find_delivery(&mut conn, workspace, &path).await?;
    let delivery = delivery_of(row)?;
    may_receive(&caller, &[delivery.event_type])?;
    // A delivery's attempts are bounded by its retry schedule.
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempt, at, status, error, duration_ms FROM webhook_attempts
         WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery.id)
    .fetch_all(&mut *conn)
    .await?;
    let attempts = attempts
        .into_iter()
        .map(|row| DeliveryAttempt {
            // The columns' values are what the deliverer counts and measures: never negative.
            attempt: u32::try_from(row.attempt).unwrap_or_default(),
            at: row.at,
            status: row.status.and_then(|status| u16::try_from(status).ok()),
            error: row.error,
            duration_ms: u32::try_from(row.duration_ms).unwrap_or_default(),
        })
        .collect();
    Ok(Json(DeliveryDetail {
        delivery,
        payload,
        attempts,
    }))
}

/// Sends a delivery again, with its message id (so a receiver that got it drops the repeat),
/// through the same retries; one still pending is tried now.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(
        ("id" = i64, Path, description = "The endpoint's id."),
        ("delivery" = i64, Path, description = "The delivery's id."),
    ),
    responses((status = 202, description = "The delivery, queued again.", body = shortlink::webhook::WebhookDelivery), crate::openapi::Refusals),
)]
async fn redeliver(
    State(state): State<crate::State>,
    caller: Caller,
    path: DeliveryPath,
) -> Result<impl IntoResponse, Error> {
    let workspace = caller.may(Permission::Administer)?;
    let mut tx = state.db().begin().await?;
    let endpoint = find(&mut tx, workspace, path.endpoint, true).await?;
    refuse_disabled(&endpoint)?;
    // A click's message sent again is clicks sent, as reading it is (`delivery`).
    let (row, _) = find_delivery(&mut tx, workspace, &path).await?;
    may_receive(&caller, &[delivery_of(row)?.event_type])?;
    if !super::deliver::redeliver(&mut tx, workspace, path.endpoint, path.delivery).await? {
        return Err(Error::NotFound);
    }
    let (row, _) = find_delivery(&mut tx, workspace, &path).await?;
    tx.commit().await?;
    super::wake(&state);
    Ok((StatusCode::ACCEPTED, Json(delivery_of(row)?)))
}

/// What a caller must be allowed to read to receive `event`: an endpoint's messages are the
/// workspace's links (their destinations, rules, notes) and clicks (each one's country,
/// device, referrer…), so an endpoint is made, subscribed, pointed elsewhere or its deliveries
/// read by callers who may read those (`links:read`, `stats:read`), not by a key with
/// `workspace:admin` alone, which `/links`, `/stats` and the exports refuse.
fn reads(event: EventType) -> Option<Permission> {
    match event {
        EventType::LinkClicked => Some(Permission::ReadStats),
        EventType::LinkCreated
        | EventType::LinkUpdated
        | EventType::LinkDeleted
        | EventType::LinkLimitReached => Some(Permission::ReadLinks),
        EventType::Test => None,
    }
}

/// Refuses (403) a caller who may not read every one of `events` ([`reads`]).
fn may_receive(caller: &Caller, events: &[EventType]) -> Result<(), Error> {
    for permission in events.iter().copied().filter_map(reads) {
        caller.may(permission)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_what_standard_webhooks_libraries_take() {
        let secret = new_secret().expect("randomness");
        assert!(secret.starts_with("whsec_"), "{secret}");
        assert_eq!(secret.len(), "whsec_".len() + 44);
        assert_ne!(secret, new_secret().expect("randomness"));
        // The library decodes it to the same key: it signs as the raw bytes would.
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).expect("randomness");
        let secret = format!("whsec_{}", BASE64_STANDARD.encode(bytes));
        let from_secret = standardwebhooks::Webhook::new(&secret).expect("a valid secret");
        let from_bytes = standardwebhooks::Webhook::from_bytes(bytes.to_vec()).expect("bytes");
        assert_eq!(
            from_secret
                .sign("msg_1", 1_700_000_000, b"{}")
                .expect("signs"),
            from_bytes
                .sign("msg_1", 1_700_000_000, b"{}")
                .expect("signs"),
        );
    }
}
