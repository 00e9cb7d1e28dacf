//! Abuse reports: the public form at `/report` (HTML for people, JSON for scripts) and the
//! admins' `/api/v1/abuse/reports`.
//!
//! What strangers can grow is bounded three ways: a body of at most [`BODY_LIMIT`] bytes, at
//! most [`PER_HOUR`] reports an hour from one address (counted in PostgreSQL under a keyed
//! hash of the address, so the limit holds across instances; 429 + `Retry-After`), and at
//! most [`MAX_OPEN`] reports waiting for an admin in all (503 beyond, until some are
//! resolved). An instance stores at most [`AT_ONCE`] reports at a time, refusing more at
//! once (503), so a flood never waits on the database's connections; an address over its
//! limit is refused by the instance's memory ([`RecentReporters`]) before it takes one of
//! them, so it cannot keep others from reporting.
//!
//! The reporter's address is the request's (`KURZ_CLIENT_IP_HEADER`, or the connection's),
//! or the visitor's that the edge gives in a request it forwards and signs
//! ([`signature::CLIENT_IP_HEADER`]): believed only when the signature holds, so a request
//! sent straight to the origin cannot choose the address it is counted under.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota};
use moka::future::Cache;
use shortlink::ShortCode;
use shortlink::abuse::{
    MAX_CONTACT_CHARS, MAX_DETAILS_CHARS, MAX_REPORTED_CHARS, NewReport, Report, ReportCategory,
    ReportPage, ReportQuery, ReportStatus, ResolveReport,
};
use shortlink::api::UpdateLink;
use shortlink::signature;
use shortlink::webhook::EventType;
use time::OffsetDateTime;

use crate::audit::{self, ActorRef, Change};
use crate::caller::{Caller, WorkspaceId};
use crate::edge_api;
use crate::error::Error;
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::links::store;
use crate::outbox;

use super::takedown;

/// Largest body of a report (its longest fields are 2,000 characters of details, up to
/// 4 bytes each in UTF-8, percent-encoded by a form as 3 bytes per byte: a report that long
/// in non-Latin script needs a JSON body).
pub(crate) const BODY_LIMIT: usize = 8 * 1024;
/// Reports one address may send in an hour.
pub(crate) const PER_HOUR: i64 = 5;
/// Reports waiting for an admin, at most.
pub(crate) const MAX_OPEN: i64 = 10_000;
/// Reports waiting for an admin from one network (an IPv6 /48, an IPv4 /24), at most: a
/// network of many addresses cannot fill [`MAX_OPEN`].
pub(crate) const MAX_OPEN_PER_NETWORK: i64 = 50;

/// Whom a report is counted against: the reporter's address ([`super::Abuse::reporter`]),
/// and its wider network's, keyed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reporter {
    pub(crate) key: [u8; 32],
    pub(crate) network: [u8; 32],
}
/// Reports an instance stores at once.
pub(crate) const AT_ONCE: usize = 4;
/// Reporters whose budgets an instance keeps in memory (a few hundred bytes each).
pub(crate) const REPORTERS_KEPT: u64 = 10_000;
/// [`PER_HOUR`] for a limiter (checked at compile time).
const PER_HOUR_NONZERO: NonZeroU32 = match NonZeroU32::new(PER_HOUR as u32) {
    Some(figure) => figure,
    None => panic!("PER_HOUR must be positive"),
};
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

/// `GET` and `POST /report`, without credentials.
pub(crate) fn public_routes() -> Router<crate::State> {
    Router::new().route("/report", get(form).post(submit))
}

/// The admins' routes.
pub(crate) fn routes() -> Router<crate::State> {
    Router::new()
        .route("/abuse/reports", get(list))
        .route("/abuse/reports/{id}", patch(resolve))
}

async fn form() -> Html<String> {
    Html(page(&Filled::default(), None))
}

/// What the form shows again after a refusal.
#[derive(Debug, Default)]
struct Filled {
    link: String,
    category: Option<ReportCategory>,
    details: String,
    contact: String,
}

/// The report form, or the thank-you page when `done`.
fn page(filled: &Filled, problem: Option<&str>) -> String {
    let options: String = ReportCategory::ALL
        .iter()
        .map(|category| {
            format!(
                "<option value=\"{}\"{}>{}</option>",
                category.as_str(),
                if filled.category == Some(*category) {
                    " selected"
                } else {
                    ""
                },
                category.label()
            )
        })
        .collect();
    let problem = problem.map_or_else(String::new, |problem| {
        format!(
            "<p id=\"error\" role=\"alert\" style=\"color:#b00020\">{}</p>",
            shortlink::pages::escape(problem)
        )
    });
    format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>Report a link</title>\
         <body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">\
         <main><h1>Report a link</h1>\
         <p>Tell us about a short link that leads to phishing, malware, spam or other abuse. \
         The people who run this service will look at it.</p>{problem}\
         <form method=\"post\" action=\"/report\" style=\"display:grid;gap:.75rem\">\
         <label>Short URL or code <input name=\"link\" required maxlength=\"{MAX_REPORTED_CHARS}\" value=\"{link}\" style=\"width:100%\"></label>\
         <label>What is wrong <select name=\"category\" required>{options}</select></label>\
         <label>Details <textarea name=\"details\" rows=\"5\" maxlength=\"{MAX_DETAILS_CHARS}\" style=\"width:100%\">{details}</textarea></label>\
         <label>Your email (optional, if we may contact you) <input name=\"contact\" type=\"email\" maxlength=\"{MAX_CONTACT_CHARS}\" value=\"{contact}\" style=\"width:100%\"></label>\
         <button type=\"submit\">Send report</button></form></main></body></html>",
        link = shortlink::pages::escape(&filled.link),
        details = shortlink::pages::escape(&filled.details),
        contact = shortlink::pages::escape(&filled.contact),
    )
}

const THANKS: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
    <meta name=\"viewport\" content=\"width=device-width\"><title>Thank you</title>\
    <body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">\
    <main><h1>Thank you</h1><p>Your report was received. The people who run this service \
    will look at it.</p></main></body></html>";

/// `POST /report`: a JSON body answers 202 (or the API's error shape); the form's answer is
/// the thank-you page, or the form again with what went wrong.
async fn submit(State(state): State<crate::State>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"));
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut filled = Filled::default();
    let outcome = async {
        if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
            return Err(Error::PayloadTooLarge { limit: BODY_LIMIT });
        }
        let bytes = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map_err(|_| Error::PayloadTooLarge { limit: BODY_LIMIT })?;
        let report = if json {
            serde_json::from_slice::<NewReport>(&bytes)
                .map_err(|err| Error::BadRequest(format!("not a report: {err}")))?
        } else {
            from_form(&bytes, &mut filled)?
        };
        let reporter = state
            .inner
            .abuse
            .reporter(address_of(&state, &parts, &bytes).await);
        store_report(&state, report, &reporter).await
    }
    .await;
    match (outcome, json) {
        (Ok(()), true) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"status": "received"})),
        )
            .into_response(),
        (Ok(()), false) => Html(THANKS).into_response(),
        (Err(err), true) => err.into_response(),
        (Err(err), false) => {
            let message = err.to_string();
            // The error's own answer gives the status, its headers and its metric; the form
            // replaces its body.
            let mut response = err.into_response();
            let html = page(&filled, Some(&message));
            *response.body_mut() = Body::from(html);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response.headers_mut().remove(header::CONTENT_LENGTH);
            response
        }
    }
}

/// The reporter's address: the visitor's if the edge forwarded the request and signed it
/// with that address (a POST once: the edge's nonce check), else the request's own.
async fn address_of(state: &crate::State, parts: &Parts, body: &[u8]) -> Option<IpAddr> {
    let own = || state.inner.redirects.client_ip.of_request(parts);
    let claimed = parts
        .headers
        .get(signature::CLIENT_IP_HEADER)
        .and_then(|value| value.to_str().ok());
    let (Some(secret), Some(claimed)) = (state.inner.edge.secret.as_deref(), claimed) else {
        return own();
    };
    let signed = signature::forwarded_path(parts.uri.path(), claimed);
    match edge_api::verify(state, secret, parts, &signed, body).await {
        Ok(()) => claimed.trim().parse().ok().or_else(own),
        Err(err) => {
            tracing::debug!(error = %err, "a report's edge address is not believed");
            own()
        }
    }
}

/// A report from the form's fields (kept in `filled` to show again).
fn from_form(bytes: &[u8], filled: &mut Filled) -> Result<NewReport, Error> {
    for (name, value) in url::form_urlencoded::parse(bytes) {
        match &*name {
            "link" => filled.link = value.into_owned(),
            "category" => filled.category = ReportCategory::parse(&value),
            "details" => filled.details = value.into_owned(),
            "contact" => filled.contact = value.into_owned(),
            _ => {}
        }
    }
    let category = filled
        .category
        .ok_or_else(|| Error::invalid("category", "choose what is wrong with the link"))?;
    Ok(NewReport {
        link: filled.link.clone(),
        category,
        details: filled.details.clone(),
        contact: Some(filled.contact.clone()),
    })
}

/// Checks and stores a report, within the reporter's limit (first in this instance's memory,
/// then in PostgreSQL) and the cap on open reports.
async fn store_report(
    state: &crate::State,
    report: NewReport,
    reporter: &Reporter,
) -> Result<(), Error> {
    let link = report.link.trim();
    if link.is_empty() {
        return Err(Error::invalid(
            "link",
            "give the short URL or code you report",
        ));
    }
    if link.chars().count() > MAX_REPORTED_CHARS {
        return Err(Error::invalid(
            "link",
            format!("link must be at most {MAX_REPORTED_CHARS} characters"),
        ));
    }
    let details = report.details.trim();
    if details.chars().count() > MAX_DETAILS_CHARS {
        return Err(Error::invalid(
            "details",
            format!("details must be at most {MAX_DETAILS_CHARS} characters"),
        ));
    }
    Error::unless_storable("link", link)?;
    Error::unless_storable("details", details)?;
    let contact = report
        .contact
        .as_deref()
        .map(str::trim)
        .filter(|contact| !contact.is_empty());
    if let Some(contact) = contact
        && (contact.chars().count() > MAX_CONTACT_CHARS || !contact.contains('@'))
    {
        return Err(Error::invalid(
            "contact",
            format!("contact must be an email address of at most {MAX_CONTACT_CHARS} characters"),
        ));
    }
    if let Some(contact) = contact {
        Error::unless_storable("contact", contact)?;
    }
    // Before a permit: an address over its limit takes none of them.
    state.inner.abuse.recent.take(&reporter.key).await?;
    let _permit = state
        .inner
        .abuse
        .report_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::Busy)?;
    let code = code_of(link);
    let link_id = match &code {
        Some(code) => store::find_record(state.db(), code)
            .await?
            .map(|record| record.link_id),
        None => None,
    };
    let mut tx = state.db().begin().await?;
    // One report at a time per network, so its counts and its addresses' are exact across
    // instances; other networks go on in parallel.
    let lock = i64::from_be_bytes(reporter.network[..8].try_into().unwrap_or_default());
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(&mut *tx)
        .await?;
    let (recent, wait): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*),
                ceil(extract(epoch FROM min(created_at) + interval '1 hour' - now()))::int8
         FROM abuse_reports WHERE reporter = $1 AND created_at > now() - interval '1 hour'",
    )
    .bind(reporter.key.as_slice())
    .fetch_one(&mut *tx)
    .await?;
    if recent >= PER_HOUR {
        return Err(Error::RateLimited {
            limit: "report",
            retry_after_secs: u64::try_from(wait.unwrap_or(1).max(1)).unwrap_or(1),
        });
    }
    // Reports from different addresses may pass this at once: the cap holds within the
    // reports being stored at that moment (at most `AT_ONCE` per instance).
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM abuse_reports WHERE resolved_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
    if open >= MAX_OPEN {
        return Err(Error::ReportsFull);
    }
    let open_here: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM abuse_reports WHERE network = $1 AND resolved_at IS NULL",
    )
    .bind(reporter.network.as_slice())
    .fetch_one(&mut *tx)
    .await?;
    if open_here >= MAX_OPEN_PER_NETWORK {
        // Until an admin handles some of them.
        return Err(Error::RateLimited {
            limit: "report",
            retry_after_secs: 3600,
        });
    }
    sqlx::query(
        "INSERT INTO abuse_reports (reported, link_id, code, category, details, contact, reporter,
                                    network)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(link)
    .bind(link_id)
    .bind(
        code.as_ref()
            .filter(|_| link_id.is_some())
            .map(ShortCode::as_str),
    )
    .bind(report.category.as_str())
    .bind(details)
    .bind(contact)
    .bind(reporter.key.as_slice())
    .bind(reporter.network.as_slice())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Reporters' budgets in this instance's memory: [`PER_HOUR`] reports an hour, in bursts of
/// as many (GCRA), so it refuses only what PostgreSQL's count would (which an instance sees
/// a share of). It saves the permits and the database from an address over its limit; the
/// count in PostgreSQL stays the limit across instances. Bounded (moka): a reporter forgotten
/// (least used, or idle for an hour, when its budget is full again anyway) starts with a full
/// budget, and PostgreSQL still counts it.
pub(crate) struct RecentReporters {
    limiters: Cache<[u8; 32], Arc<DefaultDirectRateLimiter>>,
}

impl RecentReporters {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            limiters: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Takes one report from `reporter`'s budget, or refuses it (429).
    async fn take(&self, reporter: &[u8; 32]) -> Result<(), Error> {
        let limiter = self
            .limiters
            .get_with(*reporter, async {
                Arc::new(governor::RateLimiter::direct(Quota::per_hour(
                    PER_HOUR_NONZERO,
                )))
            })
            .await;
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            Error::RateLimited {
                limit: "report",
                retry_after_secs: wait
                    .as_secs()
                    .saturating_add(u64::from(wait.subsec_nanos() > 0))
                    .max(1),
            }
        })
    }

    /// How many reporters are kept, once the cache's pending evictions are done.
    #[cfg(test)]
    async fn len(&self) -> u64 {
        self.limiters.run_pending_tasks().await;
        self.limiters.entry_count()
    }
}

/// The code a report names: the last segment of a short URL's path (`https://kurz.example/abc`,
/// `kurz.example/abc+`, `/abc`), or the text itself.
fn code_of(text: &str) -> Option<ShortCode> {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let segment = path.split('/').rfind(|s| !s.is_empty())?;
    ShortCode::parse(segment.trim_end_matches('+')).ok()
}

const REPORT_COLUMNS: &str = "r.id, r.reported, r.code, r.category, r.details, r.contact,
    r.created_at, r.resolved_at, r.resolved_by, l.workspace_id, l.destination,
    l.disabled AS link_disabled,
    CASE WHEN l.id IS NOT NULL THEN EXISTS (
        SELECT FROM link_takedowns t
        WHERE t.workspace_id = l.workspace_id AND t.link_id = l.id AND t.report_id = r.id)
    END AS link_taken_down";

#[derive(sqlx::FromRow)]
struct ReportRow {
    id: i64,
    reported: String,
    code: Option<String>,
    category: String,
    details: String,
    contact: Option<String>,
    created_at: OffsetDateTime,
    resolved_at: Option<OffsetDateTime>,
    resolved_by: Option<String>,
    workspace_id: Option<i64>,
    destination: Option<String>,
    link_disabled: Option<bool>,
    link_taken_down: Option<bool>,
}

impl ReportRow {
    fn into_report(self) -> Result<Report, Error> {
        let category = ReportCategory::parse(&self.category).ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "invalid category {:?} stored in abuse_reports",
                self.category
            ))
        })?;
        Ok(Report {
            id: self.id,
            link: self.reported,
            code: self.code,
            workspace_id: self.workspace_id,
            destination: self.destination,
            link_disabled: self.link_disabled,
            link_taken_down: self.link_taken_down,
            category,
            details: self.details,
            contact: self.contact,
            status: if self.resolved_at.is_some() {
                ReportStatus::Resolved
            } else {
                ReportStatus::Open
            },
            created_at: self.created_at,
            resolved_at: self.resolved_at,
            resolved_by: self.resolved_by,
        })
    }
}

/// The reports, newest first: open ones unless `status=resolved`.
#[utoipa::path(
    get, path = "/api/v1/abuse/reports", tag = "abuse",
    params(ReportQuery),
    responses((status = 200, description = "A page of abuse reports.", body = shortlink::abuse::ReportPage), crate::openapi::Refusals),
)]
async fn list(
    State(state): State<crate::State>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Json<ReportPage>, Error> {
    caller.may_operate()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
            Error::invalid(
                "cursor",
                "cursor must be a next_cursor from a previous page",
            )
        })?),
        None => None,
    };
    // The status is in the query's text, not a parameter: each then matches its partial index
    // (`abuse_reports_open`, `abuse_reports_resolved`), also in a generic plan.
    let status = if query.status == Some(ReportStatus::Resolved) {
        "r.resolved_at IS NOT NULL"
    } else {
        "r.resolved_at IS NULL"
    };
    // The deleted link of a report shows no workspace or destination: it leads nowhere now.
    let rows: Vec<ReportRow> = sqlx::query_as(&format!(
        "SELECT {REPORT_COLUMNS} FROM abuse_reports r
         LEFT JOIN links l ON l.id = r.link_id AND l.deleted_at IS NULL
         WHERE {status} AND ($1::int8 IS NULL OR r.id < $1)
         ORDER BY r.id DESC LIMIT $2"
    ))
    .bind(cursor)
    .bind(limit + 1)
    .fetch_all(state.db())
    .await?;
    let has_more = rows.len() as i64 > limit;
    let reports = rows
        .into_iter()
        .take(limit as usize)
        .map(ReportRow::into_report)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = has_more
        .then(|| reports.last().map(|report| report.id.to_string()))
        .flatten();
    Ok(Json(ReportPage {
        reports,
        next_cursor,
    }))
}

/// Resolves a report, and disables its link when asked (a link change like a `PATCH`, with
/// its audit entry in the link's workspace and its outbox row).
#[utoipa::path(
    patch, path = "/api/v1/abuse/reports/{id}", tag = "abuse",
    params(("id" = i64, Path, description = "The report's id.")),
    request_body = shortlink::abuse::ResolveReport,
    responses((status = 200, description = "The report, resolved.", body = shortlink::abuse::Report), crate::openapi::Refusals),
)]
async fn resolve(
    State(state): State<crate::State>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ResolveReport>,
) -> Result<Json<Report>, Error> {
    let operator = caller.may_operate()?;
    if body.status != ReportStatus::Resolved {
        return Err(Error::invalid(
            "status",
            "status must be \"resolved\" (a report is not reopened)",
        ));
    }
    let by = match &caller.actor {
        crate::caller::Actor::User { name, .. } | crate::caller::Actor::Key { name, .. } => name,
    };
    let mut tx = state.db().begin().await?;
    let resolved: Option<(Option<i64>, Option<String>, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT link_id, code, resolved_at FROM abuse_reports WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (link_id, code, resolved_at) = resolved.ok_or(Error::NotFound)?;
    if resolved_at.is_some() {
        return Err(Error::Conflict {
            code: "report_resolved",
            message: format!("report {id} is already resolved"),
        });
    }
    sqlx::query("UPDATE abuse_reports SET resolved_at = now(), resolved_by = $2 WHERE id = $1")
        .bind(id)
        .bind(by)
        .execute(&mut *tx)
        .await?;
    let taken_down = match (body.disable_link, link_id, code) {
        (true, Some(link_id), Some(code)) => {
            disable_link(&state, &mut tx, id, link_id, &code).await?
        }
        _ => None,
    };
    let taken_down_link = taken_down.as_ref().map(|down| &down.code);
    let disabled = taken_down
        .as_ref()
        .filter(|down| down.changed)
        .map(|down| &down.code);
    let change = Change {
        action: "abuse.report_resolved",
        target: ("abuse_report", id),
        before: None,
        after: Some(
            serde_json::json!({"disabled_link": disabled, "taken_down_link": taken_down_link}),
        ),
    };
    audit::record(&mut tx, operator, caller.audit_actor(), change).await?;
    tx.commit().await?;
    if let Some(code) = disabled {
        state.inner.redirects.cache.invalidate(code).await;
        if let Some(edge) = &state.inner.edge.sync {
            edge.wake.notify_one();
        }
        crate::webhooks::wake(&state);
    }
    Ok(Json(fetch(&state, id).await?))
}

/// The report `id` as the API shows it.
pub(crate) async fn fetch(state: &crate::State, id: i64) -> Result<Report, Error> {
    let row: Option<ReportRow> = sqlx::query_as(&format!(
        "SELECT {REPORT_COLUMNS} FROM abuse_reports r
         LEFT JOIN links l ON l.id = r.link_id AND l.deleted_at IS NULL WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    row.ok_or(Error::NotFound)?.into_report()
}

/// Takes the reported link down if it is still live ([`takedown`]: its workspace cannot
/// enable it again), and disables it if it redirects (enabled, or disabled with a fallback: a
/// disabled link sends its visitors there, so the fallback goes too, as the blocklist's sweep
/// does). A reported link deleted since is followed to the live link of its workspace that
/// holds the reported `code` now: deleting and making the link again left every open report
/// with nothing to take down. (A code another workspace took since is that one's, untouched.)
async fn disable_link(
    state: &crate::State,
    tx: &mut sqlx::PgConnection,
    report: i64,
    reported: i64,
    code: &str,
) -> Result<Option<TakenDown>, Error> {
    // Locked as an edit locks it, so an edit in flight is refused by the takedown or seen by it.
    let link: Option<(i64, i64, String, bool)> = sqlx::query_as(
        "SELECT id, workspace_id, code, NOT disabled OR fallback_url IS NOT NULL FROM links
         WHERE domain_id = $2 AND deleted_at IS NULL
           AND id = coalesce(
                   (SELECT id FROM links WHERE id = $1 AND deleted_at IS NULL),
                   (SELECT c.link_id FROM link_codes c JOIN links r ON r.id = $1
                    WHERE c.domain_id = $2 AND c.code = $3
                      AND c.workspace_id = r.workspace_id))
         FOR NO KEY UPDATE",
    )
    .bind(reported)
    .bind(store::DEFAULT_DOMAIN)
    .bind(code)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((link_id, workspace, code, redirects)) = link else {
        return Ok(None);
    };
    if link_id != reported {
        // The report names the link it took down: its page and the lift find this one.
        sqlx::query("UPDATE abuse_reports SET link_id = $2 WHERE id = $1")
            .bind(report)
            .bind(link_id)
            .execute(&mut *tx)
            .await?;
    }
    let workspace = WorkspaceId::trusted(workspace);
    // A link its workspace had disabled is held down too: otherwise it could enable it again.
    takedown::hold(tx, workspace, link_id, report).await?;
    if !redirects {
        return Ok(Some(TakenDown {
            code,
            changed: false,
        }));
    }
    let disable = UpdateLink {
        disabled: Some(true),
        fallback_url: Some(None),
        ..UpdateLink::default()
    };
    let (before, after) =
        store::update(tx, workspace, &ShortCode::parse(&code)?, &disable, None).await?;
    let actor = format!("abuse report #{report}");
    let change = Change {
        action: "link.updated",
        target: ("link", after.id),
        before: Some(before.audited()?),
        after: Some(after.audited()?),
    };
    audit::record(tx, workspace, ActorRef::system(&actor), change).await?;
    // A stored row that no longer shows as a link loses its webhook, never its disabling.
    match after.into_link(&state.inner.public_url) {
        Ok(link) => {
            crate::webhooks::events::link_event(tx, workspace, EventType::LinkUpdated, &link)
                .await?;
        }
        Err(err) => {
            tracing::warn!(link = link_id, error = ?err, "no link.updated webhook for a reported link that cannot be shown");
        }
    }
    if state.inner.edge.sync.is_some() {
        outbox::record_change(tx, &code).await?;
    }
    Ok(Some(TakenDown {
        code,
        changed: true,
    }))
}

/// A reported link taken down: its code, and whether it was disabled (or lost its fallback)
/// then.
struct TakenDown {
    code: String,
    changed: bool,
}

/// Deletes reports resolved before `cutoff`, in batches; returns how many. Open reports stay
/// whatever their age (at most [`MAX_OPEN`]), and so do reports that hold their link down
/// ([`takedown`]: the operator lifts a takedown through its report); a resolution is in the
/// audit log, which keeps it as long.
async fn delete_resolved_before(
    db: &sqlx::PgPool,
    cutoff: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    crate::db::delete_in_batches(
        db,
        "DELETE FROM abuse_reports WHERE id = ANY(ARRAY(
             SELECT r.id FROM abuse_reports r WHERE r.resolved_at < $1
               AND NOT EXISTS (SELECT FROM link_takedowns t WHERE t.report_id = r.id)
             LIMIT $2 FOR UPDATE OF r SKIP LOCKED))",
        cutoff,
    )
    .await
}

/// Resolved reports are kept as long as the audit log (`KURZ_AUDIT_RETENTION_DAYS`), then
/// deleted, at start and hourly ([`crate::db::hourly`]): without it the table would only grow.
pub(crate) async fn forget_resolved_forever(db: sqlx::PgPool, retention: time::Duration) {
    crate::db::hourly("resolved abuse reports", || {
        delete_resolved_before(&db, OffsetDateTime::now_utc() - retention)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_what_reporters_type() {
        let cases = [
            ("abc123", Some("abc123")),
            ("https://kurz.example/abc123", Some("abc123")),
            ("https://kurz.example/abc123+", Some("abc123")),
            ("kurz.example/abc123?x=1", Some("abc123")),
            ("/abc123/", Some("abc123")),
            ("https://kurz.example/", None),
            ("not a code!", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                code_of(text).as_ref().map(ShortCode::as_str),
                expected,
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_reporter_over_its_budget_is_refused_in_memory() {
        let recent = RecentReporters::new(10);
        for _ in 0..PER_HOUR {
            recent.take(&[1; 32]).await.expect("within the budget");
        }
        let Err(Error::RateLimited {
            limit,
            retry_after_secs,
        }) = recent.take(&[1; 32]).await
        else {
            panic!("over the budget");
        };
        assert_eq!(limit, "report");
        // One report more in 12 minutes.
        assert!((1..=720).contains(&retry_after_secs), "{retry_after_secs}");
        assert!(recent.take(&[2; 32]).await.is_ok(), "another reporter");
    }

    #[tokio::test]
    async fn reporters_kept_are_bounded() {
        let recent = RecentReporters::new(50);
        for n in 0..5_000u32 {
            let mut reporter = [0; 32];
            reporter[..4].copy_from_slice(&n.to_be_bytes());
            recent.take(&reporter).await.ok();
        }
        assert!(recent.len().await <= 50);
    }

    #[test]
    fn the_form_escapes_what_it_shows_again() {
        let filled = Filled {
            link: "\"><script>".into(),
            details: "</textarea><b>".into(),
            ..Filled::default()
        };
        let html = page(&filled, Some("<i>"));
        assert!(!html.contains("<script>") && !html.contains("<b>") && !html.contains("<i>"));
    }
}
