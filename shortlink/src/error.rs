//! The one error type of this crate: every way a value can fail its rules.

/// Why a value was refused. The messages are written for the person who typed the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("short code must not be empty")]
    CodeEmpty,
    #[error("short code must be at most {max} characters long (got {len})")]
    CodeTooLong { max: usize, len: usize },
    #[error("short code may only contain letters, digits, '-' and '_' (found {found:?})")]
    CodeInvalidChar { found: char },
    #[error("short code {code:?} is reserved by kurz")]
    CodeReserved { code: String },
    #[error("link id {id} is outside the space of generated codes")]
    IdOutOfRange { id: u64 },
    #[error("destination is not a valid URL: {reason}")]
    DestinationUnparsable { reason: String },
    #[error("destination must use http or https (got {scheme:?})")]
    DestinationScheme { scheme: String },
    #[error("destination must have a host")]
    DestinationNoHost,
    #[error("destination must not contain a user name or password")]
    DestinationUserInfo,
    #[error("destination must be at most {max} bytes long (got {len})")]
    DestinationTooLong { max: usize, len: usize },
    #[error("redirect status must be one of 301, 302, 307 or 308 (got {status})")]
    RedirectStatus { status: u16 },
    #[error("{what} may hold at most {max} entries (got {len})")]
    TooMany {
        what: &'static str,
        max: usize,
        len: usize,
    },
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} must be at most {max} characters long (got {len})")]
    TooLong {
        what: &'static str,
        max: usize,
        len: usize,
    },
    #[error("{what} must not contain control characters")]
    ControlCharacter { what: &'static str },
    #[error("country must be a two-letter ISO 3166 code such as \"DE\" (got {found:?})")]
    Country { found: String },
    #[error("language must be a language tag such as \"de\" or \"pt-BR\" (got {found:?})")]
    Language { found: String },
    #[error("tag {found:?} may only contain letters, digits, spaces, '-', '_' and '.'")]
    Tag { found: String },
    #[error("max_clicks must be between 1 and {max} (got {found})")]
    ClickLimit { found: u64, max: u64 },
    #[error(
        "a split needs 2 to {max} destinations whose weights (1 to 100) add up to 100: {reason}"
    )]
    Split { max: usize, reason: String },
    /// The A/B variants' ids ([`crate::rules::Variant::id`]): named twice, or none left.
    #[error("{0}")]
    VariantIds(String),
    #[error("password must be {min} to {max} characters long")]
    PasswordLength { min: usize, max: usize },
    #[error("stored password hash is not in the pbkdf2-sha256 format")]
    PasswordHash,
    #[error(
        "rule must be a domain (evil.example) or a URL pattern (example.com/phish/*): {reason}"
    )]
    BlockRule { reason: String },
    #[error(
        "url must be an absolute http or https URL with a host, no user name, password or fragment, and at most 2048 bytes: {reason}"
    )]
    WebhookUrl { reason: String },
    #[error("event {event:?} {reason}")]
    WebhookEvent {
        event: &'static str,
        reason: &'static str,
    },
}
