//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`, and the reference
//! page that reads it at `/api/docs`.
//!
//! The document is derived from the code: each handler's `#[utoipa::path]` states its route,
//! parameters and answers, and the schemas come from the very types the handlers parse and
//! answer with (`shortlink`'s bodies and queries). A test checks that every route the router
//! has under `/api/v1` is in it (`tests/api/openapi.rs`), and schemathesis checks the answers
//! against it (`cargo xtask schemathesis`).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use shortlink::api::ErrorBody;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The security scheme of API keys (`Authorization: Bearer <key>`).
pub(crate) const API_KEY: &str = "api_key";
/// The security scheme of the dashboard's session cookie.
pub(crate) const SESSION: &str = "session";

/// The answers every operation may give besides its own: refusals (`4XX`: a value breaking a
/// rule, no or a wrong credential, a missing permission, not found, a conflict, a rate limit)
/// and failures (`5XX`: busy, timed out, the database unavailable), all in the API's error
/// body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its schema is used.
pub(crate) enum Refusals {
    /// `error.code` says which (`invalid_input` with `error.field`, `unauthorized`,
    /// `forbidden`, `not_found`, `rate_limited`, ...).
    #[response(
        status = "4XX",
        headers(("Retry-After" = Option<u64>, description = "Seconds to wait, with 429 `rate_limited`."))
    )]
    Refused(ErrorBody),
    /// The request may succeed later (`Retry-After` says when, for 503).
    #[response(
        status = "5XX",
        headers(("Retry-After" = Option<u64>, description = "Seconds to wait, with 503."))
    )]
    Failed(ErrorBody),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kurz",
        description = "The API of the kurz URL shortener. Every operation works in one \
            workspace: an API key's, or the one a dashboard session works in. Errors are \
            `{\"error\": {\"code\", \"message\", \"field\"}}`.",
    ),
    paths(
        crate::links::list,
        crate::links::create,
        crate::links::fetch,
        crate::links::update,
        crate::links::delete,
        crate::links::bulk::create,
        crate::import_parse::parse,
        crate::links::export::export,
        crate::qr::svg,
        crate::qr::png,
        crate::analytics::stats::link_stats,
        crate::analytics::export::export_csv,
        crate::analytics::stats::workspace_stats,
        crate::workspaces::list,
        crate::workspaces::create,
        crate::workspaces::current,
        crate::workspaces::rename,
        crate::workspaces::switch,
        crate::members::list,
        crate::members::change_role,
        crate::members::remove,
        crate::invitations::list_invitations,
        crate::invitations::invite,
        crate::invitations::revoke,
        crate::invitations::accept,
        crate::invitations::lookup,
        crate::invitations::sign_up,
        crate::audit::list,
        crate::profile::sessions,
        crate::profile::sign_out_everywhere,
        crate::profile::sign_out_session,
        crate::profile::change_password,
        crate::accounts::current,
        crate::accounts::sign_in,
        crate::accounts::sign_out,
        crate::abuse::blocklist::list,
        crate::abuse::blocklist::add,
        crate::abuse::blocklist::remove,
        crate::abuse::reports::list,
        crate::abuse::reports::resolve,
        crate::abuse::takedown::lift,
        crate::webhooks::api::list,
        crate::webhooks::api::create,
        crate::webhooks::api::fetch,
        crate::webhooks::api::update,
        crate::webhooks::api::remove,
        crate::webhooks::api::rotate_secret,
        crate::webhooks::api::send_test,
        crate::webhooks::api::deliveries,
        crate::webhooks::api::delivery,
        crate::webhooks::api::redeliver,
        // Last: a run of schemathesis with its key revokes it now and then.
        crate::keys::list,
        crate::keys::create,
        crate::keys::revoke,
        openapi_json,
    ),
    // Named by `Refusals`, whose derive does not collect it.
    components(schemas(ErrorBody)),
    modifiers(&Security),
    security(("api_key" = []), ("session" = [])),
    tags(
        (name = "links", description = "Short links and their rules."),
        (name = "stats", description = "Clicks counted by the hour; the raw clicks as CSV."),
        (name = "workspaces", description = "Workspaces, their members and invitations."),
        (name = "keys", description = "API keys of a workspace, with scopes."),
        (name = "audit", description = "Who changed what."),
        (name = "webhooks", description = "Endpoints that get the workspace's events, signed (Standard Webhooks), and their delivery log."),
        (name = "abuse", description = "The deployment's destination blocklist and abuse reports (its operator's admins only)."),
        (name = "session", description = "Signing in to the dashboard, a person's sessions and password."),
        (name = "meta", description = "This document."),
    ),
)]
pub(crate) struct ApiDoc;

/// The security schemes: API keys, and the dashboard's session cookie (which also needs its
/// CSRF token in `X-CSRF-Token` on every request that changes something).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key of the workspace (`Authorization: Bearer <key>`); its \
                         scopes decide what it may do.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::accounts::COOKIE,
                "A dashboard session (`POST /api/v1/session`). Requests that change something \
                 must also send the session's `csrf_token` in `X-CSRF-Token`; \
                 `Kurz-Workspace` may name the workspace the page shows.",
            ))),
        );
    }
}

/// The document, built once: it is the same for the life of the process.
fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            // Serialising a document of plain maps and strings cannot fail; an empty object
            // would at least be valid JSON.
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The document.", content_type = "application/json", body = Object),
        Refusals,
    ),
)]
pub(crate) async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// The interactive reference: one page and its script, served by the origin itself (no CDN:
/// it works offline). The policy lets nothing but that script run, and it reaches only this
/// origin: whatever text the document holds is set as text, never as HTML.
pub(crate) async fn docs_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, DOCS_POLICY),
        ],
        include_str!("api_docs.html"),
    )
        .into_response()
}

/// The reference page's script (`/api/docs/docs.js`).
pub(crate) async fn docs_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, DOCS_POLICY),
        ],
        include_str!("api_docs.js"),
    )
        .into_response()
}

/// Scripts from this origin only (the page's own file; no inline script, no eval), calls to
/// this origin only; inline styles are the page's one stylesheet.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
