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
}
