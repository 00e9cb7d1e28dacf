//! The contracts between the edge and the origin: link sync, click events, KV entries.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ShortCode;
use crate::redirect::LinkRecord;

/// The KV key of a code's entry.
pub fn kv_key(code: &ShortCode) -> String {
    format!("link:{code}")
}

/// The KV value that says "the origin has no link with this code" (a short-lived negative
/// entry, so floods of unknown codes do not reach the origin). A link record for the code,
/// written by sync when the link is created, replaces it.
pub const KV_MISSING: &str = r#"{"v":1,"missing":true}"#;

/// `POST /_edge/sync` (origin → edge): the current state of some codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBatch {
    pub changes: Vec<SyncChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncChange {
    pub code: ShortCode,
    /// The record to store, or `None` when the code has no live link any more.
    pub record: Option<LinkRecord>,
}

/// What the edge answers to a sync batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    pub written: usize,
    pub deleted: usize,
}

/// `POST /_edge/ingest` (edge queue consumer → origin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestBatch {
    pub events: Vec<ClickEvent>,
}

/// What the origin answers to an ingest batch: how many events were new (a retried batch
/// reports 0 for the events it already delivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResult {
    pub received: usize,
    pub inserted: u64,
}

/// Where a click was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClickSource {
    Edge,
    Origin,
}

/// One visit to a short link, as recorded where it was served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickEvent {
    /// Unique per visit, made where the visit was served: ingest is idempotent on it.
    pub id: String,
    pub link_id: i64,
    pub code: ShortCode,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// ISO 3166 alpha-2, from the edge's request data.
    pub country: Option<String>,
    pub referrer: Option<String>,
    pub user_agent: Option<String>,
    /// Opened from a QR code (the short URL carried `?qr=1`).
    #[serde(default)]
    pub qr: bool,
    /// A HEAD request: a link checker or preview, not a person.
    #[serde(default)]
    pub head: bool,
    pub source: ClickSource,
    /// The visitor key of [`crate::visitor`], made where the IP address was seen.
    #[serde(default)]
    pub visitor: Option<String>,
}

/// Longest id, user agent and referrer kept: enough to classify, bounded so a hostile client
/// cannot make events (and queue messages) large.
const MAX_ID: usize = 64;
const MAX_USER_AGENT: usize = 512;
const MAX_REFERRER: usize = 1024;

impl ClickEvent {
    /// Bounds every free-text field; producers call this before sending and the origin again
    /// before storing.
    #[must_use]
    pub fn bounded(mut self) -> Self {
        truncate(&mut self.id, MAX_ID);
        if let Some(user_agent) = &mut self.user_agent {
            truncate(user_agent, MAX_USER_AGENT);
        }
        if let Some(referrer) = &mut self.referrer {
            truncate(referrer, MAX_REFERRER);
        }
        self.visitor = self
            .visitor
            .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        self.country = self
            .country
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(|c| c.to_ascii_uppercase());
        self
    }
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Whether the visit came from a QR code: the printed URL carries `?qr=1`.
pub fn is_qr_scan(query: Option<&str>) -> bool {
    query.is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "qr" | "qr=1" | "qr=true"))
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn bounded_clamps_free_text() {
        let event = ClickEvent {
            id: "x".repeat(100),
            link_id: 1,
            code: ShortCode::parse("abc").expect("valid"),
            at: datetime!(2026-01-01 0:00 UTC),
            country: Some("de".into()),
            referrer: Some("é".repeat(1000)),
            user_agent: Some("a".repeat(600)),
            qr: false,
            head: false,
            source: ClickSource::Edge,
            visitor: Some("not hex".into()),
        }
        .bounded();
        assert_eq!(event.visitor, None);
        assert_eq!(event.id.len(), 64);
        assert_eq!(event.user_agent.as_deref().map(str::len), Some(512));
        assert_eq!(event.referrer.as_deref().map(str::len), Some(1024));
        assert_eq!(event.country.as_deref(), Some("DE"));
        for bad in ["DEU", "1A", "", "XX "] {
            let mut copy = event.clone();
            copy.country = Some(bad.into());
            assert_eq!(copy.bounded().country, None, "{bad:?}");
        }
    }

    #[test]
    fn missing_marker_is_not_a_link_record() {
        assert!(serde_json::from_str::<LinkRecord>(KV_MISSING).is_err());
    }

    #[test]
    fn qr_flag() {
        let cases = [
            (None, false),
            (Some(""), false),
            (Some("qr=1"), true),
            (Some("utm_source=x&qr=1"), true),
            (Some("qr"), true),
            (Some("qr=0"), false),
            (Some("qrx=1"), false),
        ];
        for (query, expected) in cases {
            assert_eq!(is_qr_scan(query), expected, "{query:?}");
        }
    }
}
