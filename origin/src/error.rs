//! The origin's one error type: every failure of a request, and how it is answered.
//!
//! API routes answer `{"error": {"code", "message", "field"}}`. Details of 5xx errors are logged,
//! never sent: a visitor learns that something failed, not how.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shortlink::api::{ErrorBody, ErrorDetail};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value broke a rule (422).
    #[error("{message}")]
    InvalidInput {
        message: String,
        field: Option<String>,
    },
    /// The body is not JSON at all (400).
    #[error("{0}")]
    MalformedJson(String),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the request body is larger than the {limit} bytes allowed")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in, or send an API key: `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("wrong username or password")]
    SignInFailed,
    /// The same answer whichever limit was reached, and for known and unknown usernames alike.
    #[error("too many sign-in attempts; try again in {seconds} s")]
    TooManySignIns { seconds: i64 },
    /// A caller used up one of its API budgets, or the one its workspace's keys share
    /// (`rate_limit.rs`; `limit` names it: api, create, stats, workspace_api, …), 429 with
    /// `Retry-After`.
    #[error("rate limit {limit:?} reached; try again in {retry_after_secs} s")]
    RateLimited {
        limit: &'static str,
        retry_after_secs: u64,
    },
    /// A signed-in browser's request that changes something without the session's CSRF token.
    #[error("missing or wrong X-CSRF-Token header; reload the page")]
    CsrfMismatch,
    /// A `/_edge/*` request without a valid signature, or a replay.
    #[error("{0}")]
    EdgeUnauthorized(String),
    /// The caller is known but may not do this in its workspace (403).
    #[error("not allowed: this needs {needs}")]
    Forbidden { needs: &'static str },
    /// A person who belongs to no workspace asked for a workspace's data (403).
    #[error("you belong to no workspace: accept an invitation or create a workspace")]
    NoWorkspace,
    /// The `Kurz-Workspace` header names another workspace than the caller works in: the
    /// dashboard was switched to another workspace in another tab (409).
    #[error("this page shows another workspace than your session now works in; reload the page")]
    WorkspaceChanged,
    /// The request conflicts with the state of a resource (409); `code` says which rule.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("no link has the code {0:?}")]
    LinkNotFound(String),
    #[error("not found")]
    NotFound,
    /// An invitation's token that is unknown, used, revoked or expired: one answer for all,
    /// so none tells why (404).
    #[error("this invitation is invalid, used or expired")]
    InvitationInvalid,
    #[error("the code {code:?} is already taken; choose another")]
    CodeTaken { code: String },
    /// `If-Match` named another version than the link's (412): somebody changed it meanwhile.
    #[error(
        "the link changed since the version you sent in If-Match: it is now at version {current}; read it again and retry"
    )]
    PreconditionFailed { current: u64 },
    /// An `Idempotency-Key` sent again with another body (422): a retry must repeat its request.
    #[error(
        "this Idempotency-Key was used with another request body; use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// Work that needs a CPU of its own (encoding an image) while every one is taken: retry
    /// in a moment (503).
    #[error("the server is busy; try again in a moment")]
    Busy,
    /// The abuse reports still open reached their cap (`abuse::reports::MAX_OPEN`): nothing
    /// more is stored until admins resolve some (503).
    #[error("too many abuse reports are waiting to be reviewed; please try again later")]
    ReportsFull,
    /// The answer did not begin within `KURZ_REQUEST_TIMEOUT_SECS` (503: the server was too
    /// slow, not the client; 408 would blame the client's sending).
    #[error("the request took too long; try again shortly")]
    Timeout,
    /// PostgreSQL cannot be reached; the request may be retried (503).
    #[error("the database is unavailable; try again shortly")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or an unexpected state (500).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Largest JSON body the API reads unless `KURZ_API_BODY_LIMIT` says otherwise. The biggest
/// valid link (4 KiB destinations in 20 targeting rules, 10 variants and the fallback, every
/// condition list full, tags, note and UTM) is about 171 KiB; at `KURZ_API_CONCURRENCY` (256)
/// requests at once that is at most 64 MiB of bodies.
pub(crate) const BODY_LIMIT: usize = 256 * 1024;

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// Refuses free text (a reason, a report's details) holding a NUL, which PostgreSQL's text
    /// cannot store: at its field (422), not by the database (a 500). Names refuse every
    /// control character ([`Error::unless_name`]).
    pub(crate) fn unless_storable(field: &str, text: &str) -> Result<(), Self> {
        if text.contains('\0') {
            return Err(Self::invalid(
                field,
                format!("{field} must not contain a NUL character"),
            ));
        }
        Ok(())
    }

    /// Refuses a name (of a workspace, a key, a person) holding a control character: a name
    /// is one line of text, and PostgreSQL's text cannot store a NUL.
    pub(crate) fn unless_name(field: &str, text: &str) -> Result<(), Self> {
        if text.chars().any(char::is_control) {
            return Err(Self::invalid(
                field,
                format!("{field} must not contain control characters"),
            ));
        }
        Ok(())
    }

    /// A change that would leave a workspace without an owner.
    pub(crate) fn last_owner() -> Self {
        Self::Conflict {
            code: "last_owner",
            message: "a workspace must keep at least one owner: make another member owner first"
                .to_owned(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidInput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MalformedJson(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized | Self::EdgeUnauthorized(_) | Self::SignInFailed => {
                StatusCode::UNAUTHORIZED
            }
            Self::TooManySignIns { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::CsrfMismatch | Self::Forbidden { .. } | Self::NoWorkspace => {
                StatusCode::FORBIDDEN
            }
            Self::WorkspaceChanged | Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::LinkNotFound(_) | Self::NotFound | Self::InvitationInvalid => {
                StatusCode::NOT_FOUND
            }
            Self::CodeTaken { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Busy | Self::Timeout | Self::Unavailable(_) | Self::ReportsFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::MalformedJson(_) => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized | Self::EdgeUnauthorized(_) => "unauthorized",
            Self::SignInFailed => "sign_in_failed",
            Self::TooManySignIns { .. } => "too_many_sign_ins",
            Self::RateLimited { .. } => "rate_limited",
            Self::CsrfMismatch => "csrf",
            Self::Forbidden { .. } => "forbidden",
            Self::NoWorkspace => "no_workspace",
            Self::WorkspaceChanged => "workspace_changed",
            Self::Conflict { code, .. } => code,
            Self::LinkNotFound(_) | Self::NotFound => "not_found",
            Self::InvitationInvalid => "invitation_invalid",
            Self::CodeTaken { .. } => "code_taken",
            Self::PreconditionFailed { .. } => "precondition_failed",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Busy => "busy",
            Self::ReportsFull => "reports_full",
            Self::Timeout => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The error as the API's body shows it; also each failed item of a bulk create.
    pub(crate) fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code().to_owned(),
            message: self.to_string(),
            field: self.field(),
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            Self::InvalidInput { field, .. } => field.clone(),
            Self::CodeTaken { .. } => Some("code".to_owned()),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            // The server is shutting down or restarting (admin_shutdown, cannot_connect_now).
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| c.starts_with("57P")) => {
                Self::Unavailable(err)
            }
            // The check at commit of `0012_workspaces.sql`.
            sqlx::Error::Database(ref db)
                if db.constraint() == Some("workspace_keeps_an_owner") =>
            {
                Self::last_owner()
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(err) => tracing::error!(error = ?err, "request failed"),
            Self::Unavailable(err) => tracing::warn!(error = %err, "database unavailable"),
            _ => {}
        }
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable(_) | Self::Timeout => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::ReportsFull => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
            }
            Self::Busy => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TooManySignIns { seconds } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            Self::RateLimited {
                limit,
                retry_after_secs,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                metrics::counter!("kurz_rate_limited_total", "limit" => limit).increment(1);
            }
            _ => {}
        }
        response
    }
}

impl From<shortlink::Error> for Error {
    fn from(err: shortlink::Error) -> Self {
        use shortlink::Error as E;
        let field = match err {
            E::CodeEmpty
            | E::CodeTooLong { .. }
            | E::CodeInvalidChar { .. }
            | E::CodeReserved { .. } => "code",
            E::DestinationUnparsable { .. }
            | E::DestinationScheme { .. }
            | E::DestinationNoHost
            | E::DestinationUserInfo
            | E::DestinationTooLong { .. } => "destination",
            E::RedirectStatus { .. } => "status",
            E::Country { .. } | E::Language { .. } => "targets",
            E::Tag { .. } => "tags",
            E::ClickLimit { .. } => "max_clicks",
            E::Split { .. } | E::VariantIds(_) => "split",
            E::PasswordLength { .. } => "password",
            E::BlockRule { .. } => "rule",
            E::WebhookUrl { .. } => "url",
            E::WebhookEvent { .. } => "events",
            E::TooMany { what, .. }
            | E::Empty { what }
            | E::TooLong { what, .. }
            | E::ControlCharacter { what } => what,
            E::IdOutOfRange { .. } | E::PasswordHash => return Self::Internal(err.into()),
        };
        Self::invalid(field, err.to_string())
    }
}
