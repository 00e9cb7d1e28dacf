//! Calls to the origin's `/api/v1`, with the session cookie (same origin) and the CSRF token.
//!
//! Every failure becomes an [`ApiError`] a person can act on: the API's own message (and the
//! field at fault), or what went wrong on the way (network, unexpected answer).
//!
//! Every call names the workspace the page shows (`Kurz-Workspace`), so a request made in a
//! tab that still shows workspace A after another tab switched the session to B is refused
//! (409 `workspace_changed`) rather than applied to B. Errors of that kind, and 401 (the
//! session ended), run the handler given to [`on_session_error`]: one place for every page.

use std::cell::{Cell, RefCell};

use crate::i18n::td_string;

use gloo_net::http::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shortlink::api::{ErrorBody, Link};
pub use shortlink::workspace::Session;
use shortlink::workspace::{
    ChangePassword, ChangeRole, CreateApiKey, CreateInvitation, CreatedApiKey, CreatedInvitation,
    InvitationPreview, InvitationToken, Role, SignUp, SwitchWorkspace, Workspace, WorkspaceName,
};
use wasm_bindgen::JsValue;

/// What runs when the session ended or changed workspace.
type SessionErrorHandler = Box<dyn Fn(&ApiError)>;

thread_local! {
    /// The workspace the dashboard shows, sent with every call (none before signing in).
    static SHOWN_WORKSPACE: Cell<Option<i64>> = const { Cell::new(None) };
    /// What to do when the session ended, or now works in another workspace.
    static SESSION_ERROR: RefCell<Option<SessionErrorHandler>> = const { RefCell::new(None) };
}

/// Names the workspace the page shows in every call from now on.
pub fn show_workspace(id: Option<i64>) {
    SHOWN_WORKSPACE.with(|shown| shown.set(id));
}

/// The workspace the page shows now: what a long task (an import) pins its calls to.
pub fn shown_workspace() -> Option<i64> {
    SHOWN_WORKSPACE.with(Cell::get)
}

/// The header naming a workspace.
const WORKSPACE_HEADER: &str = "Kurz-Workspace";

/// Sets what happens when a call is refused because the session ended (401) or another tab
/// switched its workspace (409 `workspace_changed`).
pub fn on_session_error(handler: impl Fn(&ApiError) + 'static) {
    SESSION_ERROR.with(|slot| *slot.borrow_mut() = Some(Box::new(handler)));
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status; 0 when no answer came.
    pub status: u16,
    /// The API's error code (`invalid_input`, `code_taken`, ...), or `network`/`unexpected`.
    pub code: String,
    pub message: String,
    /// The request field at fault, to show the message next to it.
    pub field: Option<String>,
}

impl ApiError {
    fn network(err: &gloo_net::Error) -> Self {
        let detail = err.to_string();
        Self {
            status: 0,
            code: "network".to_owned(),
            message: td_string!(crate::range::locale(), errors.network, detail),
            field: None,
        }
    }

    /// A 2xx whose body broke off: status 0, as an answer lost on the way (the import sends
    /// its chunk again with its key, and the origin answers with the first), but saying that
    /// the change may have been made.
    fn cut_short(err: &gloo_net::Error) -> Self {
        let detail = err.to_string();
        Self {
            status: 0,
            code: "cut_short".to_owned(),
            message: td_string!(crate::range::locale(), errors.cut_short, detail),
            field: None,
        }
    }

    fn unexpected(status: u16, detail: &str) -> Self {
        Self {
            status,
            code: "unexpected".to_owned(),
            message: td_string!(crate::range::locale(), errors.unexpected, detail),
            field: None,
        }
    }

    /// The session is gone (expired, or signed out elsewhere): show the sign-in.
    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }

    /// The session works in another workspace than the page shows (switched in another tab).
    pub fn is_workspace_changed(&self) -> bool {
        self.status == 409 && self.code == "workspace_changed"
    }

    /// The message for `field`, if this error is about it.
    pub fn for_field(&self, field: &str) -> Option<String> {
        (self.field.as_deref() == Some(field)).then(|| self.message.clone())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `POST /api/v1/links` and `PATCH`: what the person typed, unparsed, so the origin's
/// validation (the one source of the rules) answers with the field at fault.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkForm {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Some(None)` clears the expiry (JSON `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// A number as typed (a JSON number when it is one); `Some(None)` removes the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clicks: Option<Option<Typed>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_url: Option<Option<String>>,
    /// Only sent to set or (`Some(None)`) remove it: the API never shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Option<String>>,
    /// Rules, variants, UTM values and tags replace the link's whole list when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetForm>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<VariantForm>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm: Option<UtmForm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<Option<String>>,
}

/// A number as typed: a JSON number when it is one, else the text (for the API to refuse
/// with its own message).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Typed {
    Number(u64),
    Text(String),
}

impl Typed {
    pub fn of(typed: &str) -> Self {
        let typed = typed.trim();
        typed
            .parse()
            .map_or_else(|_| Self::Text(typed.to_owned()), Self::Number)
    }
}

/// A targeting rule as typed: `{"when": {"country": ["DE"]}, "destination": "…"}`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetForm {
    pub when: When,
    pub destination: String,
}

/// A condition as typed: its kind (`country`, `device`, `os`, `language`) and values, or a
/// query parameter.
#[derive(Debug, Clone)]
pub enum When {
    List(&'static str, Vec<String>),
    Query { param: String, value: String },
}

impl Serialize for When {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Query<'a> {
            param: &'a str,
            value: &'a str,
        }
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Self::List(kind, values) => map.serialize_entry(kind, values),
            Self::Query { param, value } => map.serialize_entry("query", &Query { param, value }),
        }?;
        map.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantForm {
    /// The variant's id, for one the link has (`shortlink::rules::Variant::id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u8>,
    pub destination: String,
    pub weight: Typed,
}

/// The UTM values typed; empty ones are left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UtmForm {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// Sends a request: the body of a 2xx answer, or the error. One function, not one per type of
/// answer, does the sending for every call (the dashboard's .wasm has a size budget).
async fn call(
    method: Method,
    url: &str,
    session: Option<&Session>,
    body: Option<String>,
) -> Result<String, ApiError> {
    call_if(method, url, session, body, None).await
}

/// [`call`], changing the resource only if it is still at `version` (`If-Match`).
async fn call_if(
    method: Method,
    url: &str,
    session: Option<&Session>,
    body: Option<String>,
    version: Option<u64>,
) -> Result<String, ApiError> {
    let if_match = version.map(|version| ("If-Match", format!("\"{version}\"")));
    call_with(method, url, session, body, if_match.as_slice()).await
}

/// [`call`] with more request headers.
async fn call_with(
    method: Method,
    url: &str,
    session: Option<&Session>,
    body: Option<String>,
    headers: &[(&str, String)],
) -> Result<String, ApiError> {
    let body = body.map(|body| (JsValue::from(body), "application/json"));
    call_raw(method, url, session, body, headers).await
}

/// [`call_with`] whose body is any JavaScript value with its content type (a file, which the
/// browser sends without the dashboard reading it).
async fn call_raw(
    method: Method,
    url: &str,
    session: Option<&Session>,
    body: Option<(JsValue, &str)>,
    headers: &[(&str, String)],
) -> Result<String, ApiError> {
    let mut builder = RequestBuilder::new(url).method(method.clone());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    // The workspace shown, unless the call names its own (an import pinned to the one it
    // began in). Asking who is signed in names none: that is how a tab learns the current one.
    let named = headers.iter().any(|(name, _)| *name == WORKSPACE_HEADER);
    if let Some(id) = shown_workspace()
        && !named
        && (url != "/api/v1/session" || method != Method::GET)
    {
        builder = builder.header(WORKSPACE_HEADER, &id.to_string());
    }
    if let Some(session) = session {
        builder = builder.header("X-CSRF-Token", &session.csrf_token);
    }
    let request = match body {
        Some((body, content_type)) => builder.header("Content-Type", content_type).body(body),
        None => builder.build(),
    }
    .map_err(|err| ApiError::unexpected(0, &err.to_string()))?;
    let response = request
        .send()
        .await
        .map_err(|err| ApiError::network(&err))?;
    if !response.ok() {
        return Err(error_of(response).await);
    }
    response
        .text()
        .await
        .map_err(|err| ApiError::cut_short(&err))
}

/// The JSON of an answer as `T`.
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|err| ApiError::unexpected(200, &err.to_string()))
}

fn json<B: Serialize>(body: &B) -> Option<String> {
    // Serialising the dashboard's own request types cannot fail.
    serde_json::to_string(body).ok()
}

async fn get<T: DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    decode(&call(Method::GET, url, None, None).await?)
}

/// A call that changes something, with a JSON body, answered with JSON.
async fn send<B: Serialize, T: DeserializeOwned>(
    session: &Session,
    method: Method,
    url: &str,
    body: &B,
) -> Result<T, ApiError> {
    decode(&call(method, url, Some(session), json(body)).await?)
}

/// A call that changes something, whose answer is not needed (204, or a body the dashboard
/// reloads anyway).
async fn act(
    session: &Session,
    method: Method,
    url: &str,
    body: Option<String>,
) -> Result<(), ApiError> {
    call(method, url, Some(session), body).await.map(drop)
}

async fn error_of(response: Response) -> ApiError {
    let status = response.status();
    let error = match response.json::<ErrorBody>().await {
        Ok(body) => ApiError {
            status,
            message: localized(&body.error.code, &body.error.message),
            code: body.error.code,
            field: body.error.field,
        },
        Err(_) => ApiError::unexpected(status, &format!("HTTP {status}")),
    };
    if error.is_unauthorized() || error.is_workspace_changed() {
        SESSION_ERROR.with(|handler| {
            if let Some(handler) = handler.borrow().as_ref() {
                handler(&error);
            }
        });
    }
    error
}

/// The API's error in the dashboard's language: the API writes English, so the English
/// dashboard shows its message as it is; in another language a known code gets its own
/// sentence (with the API's detail where the code alone does not say what is wrong).
pub fn localized(code: &str, detail: &str) -> String {
    let locale = crate::range::locale();
    match code {
        "invalid_input" => td_string!(locale, errors.invalid_input, detail),
        "bad_request" => td_string!(locale, errors.bad_request, detail),
        "malformed_json" => td_string!(locale, errors.malformed_json, detail),
        "payload_too_large" => td_string!(locale, errors.payload_too_large, detail),
        "unsupported_media_type" => td_string!(locale, errors.unsupported_media_type, detail),
        "unauthorized" => td_string!(locale, errors.unauthorized, detail),
        "csrf" => td_string!(locale, errors.csrf, detail),
        "forbidden" => td_string!(locale, errors.forbidden, detail),
        "not_found" => td_string!(locale, errors.not_found, detail),
        "code_taken" => td_string!(locale, errors.code_taken, detail),
        "precondition_failed" => td_string!(locale, errors.precondition_failed, detail),
        "rate_limited" => td_string!(locale, errors.rate_limited, detail),
        "too_many_sign_ins" => td_string!(locale, errors.too_many_sign_ins, detail),
        "sign_in_failed" => td_string!(locale, errors.sign_in_failed, detail),
        "busy" => td_string!(locale, errors.busy, detail),
        "timeout" => td_string!(locale, errors.timeout, detail),
        "unavailable" => td_string!(locale, errors.unavailable, detail),
        "internal" => td_string!(locale, errors.internal, detail),
        "workspace_changed" => td_string!(locale, errors.workspace_changed, detail),
        "no_workspace" => td_string!(locale, errors.no_workspace, detail),
        "idempotency_key_reused" => td_string!(locale, errors.idempotency_key_reused, detail),
        "invitation_invalid" => td_string!(locale, errors.invitation_invalid, detail),
        "last_owner" => td_string!(locale, errors.last_owner, detail),
        "workspace_keeps_an_owner" => td_string!(locale, errors.workspace_keeps_an_owner, detail),
        "already_member" => td_string!(locale, errors.already_member, detail),
        "username_taken" => td_string!(locale, errors.username_taken, detail),
        "too_many_invitations" => td_string!(locale, errors.too_many_invitations, detail),
        "too_many_keys" => td_string!(locale, errors.too_many_keys, detail),
        "too_many_members" => td_string!(locale, errors.too_many_members, detail),
        "too_many_webhooks" => td_string!(locale, errors.too_many_webhooks, detail),
        "too_many_workspaces" => td_string!(locale, errors.too_many_workspaces, detail),
        "rule_exists" => td_string!(locale, errors.rule_exists, detail),
        "reports_full" => td_string!(locale, errors.reports_full, detail),
        "report_resolved" => td_string!(locale, errors.report_resolved, detail),
        "link_taken_down" => td_string!(locale, errors.link_taken_down, detail),
        "no_takedown" => td_string!(locale, errors.no_takedown, detail),
        "delivery_in_flight" => td_string!(locale, errors.delivery_in_flight, detail),
        "newer_delivery_pending" => td_string!(locale, errors.newer_delivery_pending, detail),
        "webhook_disabled" => td_string!(locale, errors.webhook_disabled, detail),
        _ => detail.to_owned(),
    }
}

/// A query string (`a=1&b=x`) of one of the API's query types (`shortlink::query`): the
/// dashboard asks with the very types the origin parses.
pub fn query_string<Q: Serialize>(query: &Q) -> String {
    // The query types are flat structs of strings, numbers and booleans: they always encode.
    serde_urlencoded::to_string(query).unwrap_or_default()
}

/// Query-string encoding of one value.
pub fn encode(value: &str) -> String {
    js_sys::encode_uri_component(value).into()
}

pub async fn current_session() -> Result<Session, ApiError> {
    get("/api/v1/session").await
}

pub async fn sign_in(username: &str, password: &str) -> Result<Session, ApiError> {
    #[derive(Serialize)]
    struct Body<'a> {
        username: &'a str,
        password: &'a str,
    }
    let body = json(&Body { username, password });
    decode(&call(Method::POST, "/api/v1/session", None, body).await?)
}

pub async fn sign_out(session: &Session) -> Result<(), ApiError> {
    act(session, Method::DELETE, "/api/v1/session", None).await
}

/// Switches a link off (it answers 404 or goes to its fallback) or on again.
pub async fn set_disabled(session: &Session, code: &str, disabled: bool) -> Result<(), ApiError> {
    let url = format!("/api/v1/links/{}", encode(code));
    let body = json(&LinkForm {
        disabled: Some(disabled),
        ..LinkForm::default()
    });
    act(session, Method::PATCH, &url, body).await
}

pub async fn create_link(session: &Session, form: &LinkForm) -> Result<Link, ApiError> {
    send(session, Method::POST, "/api/v1/links", form).await
}

/// Saves an edit of the link as it was at `version`: if somebody changed it meanwhile, the
/// edit is refused rather than silently undoing theirs.
pub async fn update_link(
    session: &Session,
    code: &str,
    version: u64,
    form: &LinkForm,
) -> Result<Link, ApiError> {
    let url = format!("/api/v1/links/{}", encode(code));
    let answer = call_if(
        Method::PATCH,
        &url,
        Some(session),
        json(form),
        Some(version),
    )
    .await;
    decode(&answer.map_err(|mut err| {
        if err.code == "precondition_failed" {
            err.message = "Somebody else changed this link while you were editing it. \
                           Close this form and open the link again to see their changes."
                .to_owned();
        }
        err
    })?)
}

pub async fn delete_link(session: &Session, code: &str) -> Result<(), ApiError> {
    let url = format!("/api/v1/links/{}", encode(code));
    act(session, Method::DELETE, &url, None).await
}

/// Work in another of one's workspaces: the session (and every tab) follows.
pub async fn switch_workspace(session: &Session, workspace_id: i64) -> Result<Session, ApiError> {
    let body = SwitchWorkspace { workspace_id };
    send(session, Method::PUT, "/api/v1/session/workspace", &body).await
}

/// A new workspace; the caller is its owner.
pub async fn create_workspace(session: &Session, name: String) -> Result<Workspace, ApiError> {
    send(
        session,
        Method::POST,
        "/api/v1/workspaces",
        &WorkspaceName { name },
    )
    .await
}

pub async fn rename_workspace(session: &Session, name: String) -> Result<(), ApiError> {
    let body = json(&WorkspaceName { name });
    act(session, Method::PATCH, "/api/v1/workspace", body).await
}

/// The body of a GET, to decode with [`decode`] when read.
pub async fn get_text(url: &str) -> Result<String, ApiError> {
    call(Method::GET, url, None, None).await
}

pub async fn change_role(session: &Session, user_id: i64, role: Role) -> Result<(), ApiError> {
    let url = format!("/api/v1/members/{user_id}");
    act(session, Method::PATCH, &url, json(&ChangeRole { role })).await
}

/// Removes a member; the caller's own id leaves the workspace.
pub async fn remove_member(session: &Session, user_id: i64) -> Result<(), ApiError> {
    let url = format!("/api/v1/members/{user_id}");
    act(session, Method::DELETE, &url, None).await
}

pub async fn create_invitation(
    session: &Session,
    role: Role,
) -> Result<CreatedInvitation, ApiError> {
    let body = CreateInvitation { role };
    send(session, Method::POST, "/api/v1/invitations", &body).await
}

pub async fn revoke_invitation(session: &Session, id: i64) -> Result<(), ApiError> {
    let url = format!("/api/v1/invitations/{id}");
    act(session, Method::DELETE, &url, None).await
}

/// What an invitation opens; needs no session.
pub async fn lookup_invitation(token: String) -> Result<InvitationPreview, ApiError> {
    let body = json(&InvitationToken { token });
    decode(&call(Method::POST, "/api/v1/invitations/lookup", None, body).await?)
}

/// A new user joins through an invitation, and is signed in.
pub async fn sign_up(body: &SignUp) -> Result<Session, ApiError> {
    decode(
        &call(
            Method::POST,
            "/api/v1/invitations/sign-up",
            None,
            json(body),
        )
        .await?,
    )
}

/// The signed-in person joins through an invitation.
pub async fn accept_invitation(session: &Session, token: String) -> Result<Session, ApiError> {
    let body = InvitationToken { token };
    send(session, Method::POST, "/api/v1/invitations/accept", &body).await
}

pub async fn create_key(session: &Session, body: &CreateApiKey) -> Result<CreatedApiKey, ApiError> {
    send(session, Method::POST, "/api/v1/keys", body).await
}

/// Adds a rule to the deployment's blocklist; the answer says how many links it disabled.
pub async fn block(
    session: &Session,
    body: &shortlink::abuse::AddBlockRule,
) -> Result<shortlink::abuse::BlockEntry, ApiError> {
    send(session, Method::POST, "/api/v1/abuse/blocklist", body).await
}

pub async fn unblock(session: &Session, id: i64) -> Result<(), ApiError> {
    act(
        session,
        Method::DELETE,
        &format!("/api/v1/abuse/blocklist/{id}"),
        None,
    )
    .await
}

/// Resolves an abuse report, and disables its link when asked.
pub async fn resolve_report(
    session: &Session,
    id: i64,
    disable_link: bool,
) -> Result<shortlink::abuse::Report, ApiError> {
    let body = shortlink::abuse::ResolveReport {
        status: shortlink::abuse::ReportStatus::Resolved,
        disable_link,
    };
    send(
        session,
        Method::PATCH,
        &format!("/api/v1/abuse/reports/{id}"),
        &body,
    )
    .await
}

/// Lifts the takedown a resolved report holds on its link (the link stays disabled).
pub async fn lift_takedown(session: &Session, id: i64) -> Result<(), ApiError> {
    let url = format!("/api/v1/abuse/reports/{id}/takedown");
    act(session, Method::DELETE, &url, None).await
}

pub async fn revoke_key(session: &Session, id: i64) -> Result<(), ApiError> {
    act(session, Method::DELETE, &format!("/api/v1/keys/{id}"), None).await
}

/// Signs out one of the caller's sessions (another browser).
pub async fn end_session(session: &Session, id: i64) -> Result<(), ApiError> {
    let url = format!("/api/v1/me/sessions/{id}");
    act(session, Method::DELETE, &url, None).await
}

/// Signs out every session of the caller, this one too.
pub async fn end_all_sessions(session: &Session) -> Result<(), ApiError> {
    act(session, Method::DELETE, "/api/v1/me/sessions", None).await
}

/// One chunk of an import: each link created (or, in a dry run, checked) on its own. `body`
/// is a [`shortlink::api::BulkCreate`] the caller serialised (it sizes its chunks by bytes).
/// With an `Idempotency-Key`, the same request sent again (its answer lost) gets the first
/// answer and creates nothing.
/// A chunk of an import, in `workspace` (the one the import began in: a retry after the page
/// switched workspace is refused, 409, rather than made in the other).
pub async fn bulk_create(
    session: &Session,
    body: String,
    idempotency_key: Option<&str>,
    workspace: Option<i64>,
) -> Result<shortlink::api::BulkResult, ApiError> {
    let url = "/api/v1/links/bulk";
    let headers: Vec<(&str, String)> = idempotency_key
        .map(|key| ("Idempotency-Key", key.to_owned()))
        .into_iter()
        .chain(workspace.map(|id| (WORKSPACE_HEADER, id.to_string())))
        .collect();
    decode(&call_with(Method::POST, url, Some(session), Some(body), &headers).await?)
}

/// An import's file read by the origin (`POST /api/v1/links/import/parse`): the links it would
/// import (as JSON: the dashboard only passes them on), the rows that failed and the warnings.
/// The browser sends the file as it is.
pub async fn parse_import(
    session: &Session,
    query: &shortlink::import::ParseQuery,
    file: &web_sys::Blob,
) -> Result<shortlink::import::ParsedFile<serde_json::Value>, ApiError> {
    let url = format!("/api/v1/links/import/parse?{}", query_string(query));
    let body = Some((JsValue::from(file), "application/octet-stream"));
    decode(&call_raw(Method::POST, &url, Some(session), body, &[]).await?)
}

/// A new webhook endpoint; the answer holds its signing secret, shown once.
pub async fn create_webhook(
    session: &Session,
    body: &WebhookForm,
) -> Result<shortlink::webhook::CreatedWebhook, ApiError> {
    send(session, Method::POST, "/api/v1/webhooks", body).await
}

/// `POST /api/v1/webhooks` and its `PATCH`: the URL as typed, unparsed, so that the origin
/// normalises it (the dashboard's shortlink has no URL parser, and takes only normalised
/// URLs: `HTTPS://…` or a host in Unicode were refused here though the API takes them).
#[derive(Debug, Clone, Serialize)]
pub struct WebhookForm {
    pub url: String,
    pub description: shortlink::webhook::Description,
    pub events: shortlink::webhook::Events,
}

/// Changes an endpoint (only the fields present): its URL, events, or switching it on or off
/// (a `shortlink::webhook::UpdateWebhook`, or the form's [`WebhookForm`]).
pub async fn update_webhook(
    session: &Session,
    id: i64,
    body: &impl Serialize,
) -> Result<shortlink::webhook::Webhook, ApiError> {
    send(
        session,
        Method::PATCH,
        &format!("/api/v1/webhooks/{id}"),
        body,
    )
    .await
}

pub async fn delete_webhook(session: &Session, id: i64) -> Result<(), ApiError> {
    act(
        session,
        Method::DELETE,
        &format!("/api/v1/webhooks/{id}"),
        None,
    )
    .await
}

/// A new signing secret for the endpoint, shown once.
pub async fn rotate_webhook_secret(
    session: &Session,
    id: i64,
) -> Result<shortlink::webhook::CreatedWebhook, ApiError> {
    let url = format!("/api/v1/webhooks/{id}/rotate-secret");
    decode(&call(Method::POST, &url, Some(session), None).await?)
}

/// Queues a `webhook.test` message to the endpoint.
pub async fn test_webhook(session: &Session, id: i64) -> Result<(), ApiError> {
    let url = format!("/api/v1/webhooks/{id}/test");
    act(session, Method::POST, &url, None).await
}

/// Sends a delivery again (a new attempt of the same message, with the same id).
pub async fn redeliver(session: &Session, id: i64, delivery: i64) -> Result<(), ApiError> {
    let url = format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver");
    act(session, Method::POST, &url, None).await
}

pub async fn change_password(session: &Session, body: &ChangePassword) -> Result<(), ApiError> {
    act(session, Method::PUT, "/api/v1/me/password", json(body)).await
}
