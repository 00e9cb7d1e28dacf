//! The one error of the client: what went wrong, and which exit code says so.

use std::fmt;

use shortlink::api::ErrorDetail;

use crate::Exit;

/// Why a command stopped. Rows of an import that failed are not errors of the command: the
/// import reports them and goes on.
#[derive(Debug)]
pub enum Error {
    /// The command line or the environment cannot work (a missing key, a bad URL): exit 2.
    Config(String),
    /// The API refused the request and said why in its error shape.
    Api { status: u16, detail: ErrorDetail },
    /// An answer that is not the API's (a proxy's error page, a body that does not parse).
    UnexpectedAnswer { status: u16, what: String },
    /// No answer at all: the origin could not be reached, or the connection broke.
    Http(reqwest::Error),
    /// A local file or the output could not be read or written.
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A file to import that cannot be read as the format it is in.
    Input(String),
    /// The last attempt of a request failed before any work (the origin unreachable, or
    /// busy), but an earlier attempt of it may have been done (its answer was lost).
    Unsure(Box<Error>),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Self::Config(_) => Exit::Usage,
            _ => Exit::Failure,
        }
    }

    /// Whether the origin may have done what the failed request asked: no answer came after
    /// it was sent, it failed past the point where work may have been committed (a 5xx
    /// other than `busy`), or it succeeded with an answer that could not be read.
    pub(crate) fn may_have_been_done(&self) -> bool {
        match self {
            Self::Unsure(_) => true,
            Self::Http(err) => !err.is_connect(),
            Self::Api { status, detail } => *status >= 500 && detail.code != "busy",
            Self::UnexpectedAnswer { status, .. } => *status >= 500 || (200..300).contains(status),
            Self::Config(_) | Self::Io { .. } | Self::Input(_) => false,
        }
    }

    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(message) | Self::Input(message) => f.write_str(message),
            Self::Api { detail, .. } => {
                f.write_str(&detail.message)?;
                if let Some(field) = &detail.field {
                    write!(f, " (field: {field})")?;
                }
                Ok(())
            }
            Self::UnexpectedAnswer { status, what } => {
                write!(f, "unexpected answer (HTTP {status}): {what}")
            }
            // reqwest's own text is only the outer layer ("error sending request for url
            // ..."); the reason (connection refused, a certificate) is in its sources.
            Self::Http(err) => {
                write!(f, "{err}")?;
                let mut source = std::error::Error::source(err);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            Self::Io { path, source } => write!(f, "{path}: {source}"),
            Self::Unsure(last) => {
                write!(f, "{last} (an earlier attempt may have been carried out)")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<reqwest::Error> for Error {
    fn from(err: reqwest::Error) -> Self {
        // A request that could not be built or sent is never about the key, and reqwest
        // leaves headers out of its errors: the URL it shows holds no secret.
        Self::Http(err)
    }
}
