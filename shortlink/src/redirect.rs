//! Where a redirect is decided: given a link and the current time, what a visitor gets.
//!
//! The origin and the edge both call [`decide`], so a link behaves the same wherever it is
//! served.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Destination, RedirectStatus};

/// What a server needs to answer a visit to a code without any other lookup. It is also the
/// edge's KV record for a code (JSON, versioned by `v`) and the origin's cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The format version: readers refuse versions they do not know.
    pub v: RecordVersion,
    /// Grows with every change of any link (PostgreSQL's `link_version_seq`), deletes included,
    /// so a writer of KV can tell the newer of two states of a code and keep it. Records
    /// written before versions existed read as 0.
    #[serde(default)]
    pub version: u64,
    /// Identifies the link in click events, whatever its code is later changed to.
    pub link_id: i64,
    pub destination: Destination,
    pub status: RedirectStatus,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// The answer to a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    Redirect {
        status: RedirectStatus,
        location: &'a str,
        cache_control: CacheControl,
    },
    /// The link existed but its expiry has passed: 410 Gone.
    Expired,
}

/// How long browsers and proxies may keep a redirect: the `Cache-Control` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheControl {
    /// `private, no-store`: temporary redirects are never stored, so edits take effect at once
    /// and every visit is counted.
    NoStore,
    /// `public, max-age=N`: permanent redirects, for at most a day rather than the browsers'
    /// default of forever (so even a 301 link can still be corrected), and never past the
    /// link's expiry.
    Public { max_age: u32 },
}

/// The longest a permanent redirect may be kept: a day.
const PERMANENT_MAX_AGE: u32 = 86_400;

impl CacheControl {
    /// The header's text without formatting, for every value but a `max-age` shortened by an
    /// expiry: what nearly every redirect answers, so the hot path does not allocate.
    pub fn as_static(self) -> Option<&'static str> {
        match self {
            Self::NoStore => Some("private, no-store"),
            Self::Public {
                max_age: PERMANENT_MAX_AGE,
            } => Some("public, max-age=86400"),
            Self::Public { .. } => None,
        }
    }
}

impl fmt::Display for CacheControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStore => f.write_str("private, no-store"),
            Self::Public { max_age } => write!(f, "public, max-age={max_age}"),
        }
    }
}

impl LinkRecord {
    pub fn new(
        link_id: i64,
        version: u64,
        destination: Destination,
        status: RedirectStatus,
        expires_at: Option<OffsetDateTime>,
    ) -> Self {
        Self {
            v: RecordVersion,
            version,
            link_id,
            destination,
            status,
            expires_at,
        }
    }
}

/// Version 1 of the record format, written as `"v": 1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordVersion;

impl Serialize for RecordVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for RecordVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u64::deserialize(deserializer)? {
            1 => Ok(Self),
            other => Err(serde::de::Error::custom(format!(
                "link record version {other} is not supported (this build reads version 1)"
            ))),
        }
    }
}

pub fn decide(link: &LinkRecord, now: OffsetDateTime) -> Decision<'_> {
    if link.expires_at.is_some_and(|expires_at| expires_at <= now) {
        return Decision::Expired;
    }
    let cache_control = if link.status.is_permanent() {
        // A browser that kept the redirect past the expiry would go on following it instead
        // of getting the 410: the whole seconds left, rounded down, bound the day.
        let left = link
            .expires_at
            .map_or(i64::MAX, |expires_at| (expires_at - now).whole_seconds());
        CacheControl::Public {
            max_age: u32::try_from(left.clamp(0, i64::from(PERMANENT_MAX_AGE)))
                .unwrap_or(PERMANENT_MAX_AGE),
        }
    } else {
        CacheControl::NoStore
    };
    Decision::Redirect {
        status: link.status,
        location: link.destination.as_str(),
        cache_control,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn static_cache_control_texts_equal_the_formatted_ones() {
        let values = [
            CacheControl::NoStore,
            CacheControl::Public {
                max_age: PERMANENT_MAX_AGE,
            },
            CacheControl::Public { max_age: 600 },
        ];
        for value in values {
            if let Some(text) = value.as_static() {
                assert_eq!(text, value.to_string());
            }
        }
        assert_eq!(CacheControl::Public { max_age: 600 }.as_static(), None);
    }

    fn target(status: RedirectStatus, expires_at: Option<OffsetDateTime>) -> LinkRecord {
        LinkRecord::new(
            1,
            7,
            Destination::parse("https://example.com/x").expect("valid"),
            status,
            expires_at,
        )
    }

    #[test]
    fn record_format_is_versioned_json() {
        let record = target(
            RedirectStatus::MovedPermanently,
            Some(datetime!(2030-01-01 0:00 UTC)),
        );
        let json = serde_json::to_string(&record).expect("serialises");
        assert_eq!(
            json,
            r#"{"v":1,"version":7,"link_id":1,"destination":"https://example.com/x","status":301,"expires_at":"2030-01-01T00:00:00Z"}"#
        );
        assert_eq!(
            serde_json::from_str::<LinkRecord>(&json).expect("parses"),
            record
        );
        // Records written before versions existed read as version 0.
        let unversioned = json.replace(r#""version":7,"#, "");
        let parsed = serde_json::from_str::<LinkRecord>(&unversioned).expect("parses");
        assert_eq!(
            parsed,
            LinkRecord {
                version: 0,
                ..record
            }
        );
        let future = json.replace(r#""v":1"#, r#""v":2"#);
        let err = serde_json::from_str::<LinkRecord>(&future).expect_err("unknown version");
        assert!(err.to_string().contains("version 2"), "{err}");
        let bad = json.replace("https://example.com/x", "ftp://example.com/x");
        assert!(serde_json::from_str::<LinkRecord>(&bad).is_err());
    }

    #[test]
    fn decisions() {
        const TEMPORARY: &str = "private, no-store";
        const DAY: &str = "public, max-age=86400";
        let now = datetime!(2026-06-01 12:00 UTC);
        let cases = [
            (RedirectStatus::Found, None, Some((302, TEMPORARY))),
            (
                RedirectStatus::TemporaryRedirect,
                None,
                Some((307, TEMPORARY)),
            ),
            (RedirectStatus::MovedPermanently, None, Some((301, DAY))),
            (RedirectStatus::PermanentRedirect, None, Some((308, DAY))),
            (
                RedirectStatus::Found,
                Some(datetime!(2026-06-01 12:00:01 UTC)),
                Some((302, TEMPORARY)),
            ),
            (RedirectStatus::Found, Some(now), None),
            (
                RedirectStatus::MovedPermanently,
                Some(datetime!(2025-01-01 0:00 UTC)),
                None,
            ),
            // A permanent redirect is kept no longer than the link lives.
            (
                RedirectStatus::MovedPermanently,
                Some(datetime!(2026-06-01 13:00 UTC)),
                Some((301, "public, max-age=3600")),
            ),
            (
                RedirectStatus::PermanentRedirect,
                Some(datetime!(2026-06-01 12:00:59.9 UTC)),
                Some((308, "public, max-age=59")),
            ),
            (
                RedirectStatus::PermanentRedirect,
                Some(datetime!(2026-06-01 12:00:00.5 UTC)),
                Some((308, "public, max-age=0")),
            ),
            (
                RedirectStatus::MovedPermanently,
                Some(datetime!(2026-06-02 12:00 UTC)),
                Some((301, DAY)),
            ),
            (
                RedirectStatus::MovedPermanently,
                Some(datetime!(9999-12-31 23:59 UTC)),
                Some((301, DAY)),
            ),
        ];
        for (status, expires_at, expected) in cases {
            let link = target(status, expires_at);
            let got = match decide(&link, now) {
                Decision::Redirect {
                    status,
                    location,
                    cache_control,
                } => {
                    assert_eq!(location, "https://example.com/x");
                    Some((status.code(), cache_control.to_string()))
                }
                Decision::Expired => None,
            };
            let expected = expected.map(|(code, header)| (code, header.to_owned()));
            assert_eq!(got, expected, "{status:?} expiring {expires_at:?}");
        }
    }
}
