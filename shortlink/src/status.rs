//! The HTTP status a link redirects with.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The redirect statuses a link may use. 302 is the default: browsers do not cache it, so an
/// edited link takes effect at once and every visit is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum RedirectStatus {
    MovedPermanently,
    #[default]
    Found,
    TemporaryRedirect,
    PermanentRedirect,
}

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    RedirectStatus,
    crate::openapi::one_of_integers(
        "The redirect's HTTP status (302 by default).",
        &[301, 302, 307, 308],
    )
);

impl RedirectStatus {
    pub fn code(self) -> u16 {
        match self {
            Self::MovedPermanently => 301,
            Self::Found => 302,
            Self::TemporaryRedirect => 307,
            Self::PermanentRedirect => 308,
        }
    }

    /// Whether browsers and proxies may remember the redirect.
    pub fn is_permanent(self) -> bool {
        matches!(self, Self::MovedPermanently | Self::PermanentRedirect)
    }
}

impl TryFrom<u16> for RedirectStatus {
    type Error = Error;

    fn try_from(status: u16) -> Result<Self, Error> {
        match status {
            301 => Ok(Self::MovedPermanently),
            302 => Ok(Self::Found),
            307 => Ok(Self::TemporaryRedirect),
            308 => Ok(Self::PermanentRedirect),
            _ => Err(Error::RedirectStatus { status }),
        }
    }
}

impl From<RedirectStatus> for u16 {
    fn from(status: RedirectStatus) -> Self {
        status.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_status() {
        for code in [301, 302, 307, 308] {
            let status = RedirectStatus::try_from(code).expect("valid status");
            assert_eq!(u16::from(status), code);
        }
    }

    #[test]
    fn refuses_other_statuses() {
        for code in [0, 200, 300, 303, 304, 305, 306, 309, 404, 500] {
            assert_eq!(
                RedirectStatus::try_from(code),
                Err(Error::RedirectStatus { status: code })
            );
        }
    }
}
