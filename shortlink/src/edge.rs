//! The contracts between the edge and the origin: link sync, click events, KV entries.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ShortCode;
use crate::redirect::{LinkRecord, RecordVersion};

/// Where every route between the edge and the origin lives, on both sides.
pub const EDGE_PREFIX: &str = "/_edge";
/// The edge's route for link sync (origin → edge, signed): [`SyncBatch`].
pub const SYNC_PATH: &str = "/_edge/sync";
/// The edge's route that moves parked clicks back onto the click queue (origin → edge,
/// signed): [`ReplayRequest`].
pub const REPLAY_PATH: &str = "/_edge/replay";
/// The origin's route for click events (edge → origin, signed): [`IngestBatch`].
pub const INGEST_PATH: &str = "/_edge/ingest";
/// The origin's route for one link record on a KV miss (edge → origin, signed), followed by
/// the code: `GET /_edge/resolve/{code}`.
pub const RESOLVE_PATH_PREFIX: &str = "/_edge/resolve/";
/// The header of the resolve route's 404 for a code that has no link. The edge takes only
/// such a 404 as "no link", and remembers it; any other 404 (an origin without the edge's
/// secret, whose edge routes do not exist, or another server at `ORIGIN_URL`) is the origin
/// failing: a 503 for the visitor, counted by the breaker, remembered nowhere.
pub const NO_LINK_HEADER: &str = "kurz-no-link";

/// The KV key of a code's entry.
pub fn kv_key(code: &ShortCode) -> String {
    format!("link:{code}")
}

/// The KV value that says "the origin has no link with this code" (a short-lived negative
/// entry, so floods of unknown codes do not reach the origin). A link record for the code,
/// written by sync when the link is created, replaces it.
pub const KV_MISSING: &str = r#"{"v":1,"missing":true}"#;

/// The KV entry of a code whose links were all deleted: `{"v":1,"version":N,"deleted":true}`.
/// It outlives any write that was under way when the delete happened (see
/// [`TOMBSTONE_TTL_SECS`]), so a late write of an older record finds it and leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TombstoneJson", into = "TombstoneJson")]
pub struct Tombstone {
    /// The highest version among the code's links (the delete's own).
    pub version: u64,
}

/// How long a tombstone stays in KV: far longer than a sync request or a miss fill can be
/// under way (seconds), short enough that deleted codes do not pile up in KV.
pub const TOMBSTONE_TTL_SECS: u64 = 7 * 24 * 3600;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TombstoneJson {
    v: RecordVersion,
    version: u64,
    deleted: bool,
}

impl TryFrom<TombstoneJson> for Tombstone {
    type Error = &'static str;

    fn try_from(json: TombstoneJson) -> Result<Self, Self::Error> {
        if json.deleted {
            Ok(Self {
                version: json.version,
            })
        } else {
            Err("a tombstone says \"deleted\": true")
        }
    }
}

impl From<Tombstone> for TombstoneJson {
    fn from(tombstone: Tombstone) -> Self {
        Self {
            v: RecordVersion::Plain,
            version: tombstone.version,
            deleted: true,
        }
    }
}

/// `POST /_edge/sync` (origin → edge): the current state of some codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBatch {
    pub changes: Vec<SyncChange>,
    /// Random, so that no two requests carry the same body and so the same signature: the
    /// edge refuses a signature it has seen as a replay, and the signature covers only whole
    /// seconds. The edge does not read it otherwise. Absent from origins that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncChange {
    pub code: ShortCode,
    /// The version of this state: the record's own, or for a code without a live link the
    /// highest version among its deleted links (the tombstone's). 0 from an origin that
    /// predates versions, whose changes the edge applies unconditionally, as it did then.
    #[serde(default)]
    pub version: u64,
    /// The record to store, or `None` when the code has no live link any more.
    pub record: Option<LinkRecord>,
}

/// What the edge answers to a sync batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    pub written: usize,
    pub deleted: usize,
    /// Changes not applied because KV already held a newer version of the code.
    #[serde(default)]
    pub stale: usize,
}

/// `POST /_edge/ingest` (edge queue consumer → origin). The edge passes its queue's events on
/// as they were written, and the origin reads each on its own: it stores those it reads, and
/// names those it cannot ([`IngestResult::unread`]: a worker of a newer release wrote them),
/// whose messages the edge retries until an origin of that release stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestBatch {
    pub events: Vec<ClickEvent>,
}

/// What the origin answers to an ingest batch: how many events were new (a retried batch
/// reports 0 for the events it already delivered), and which it could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResult {
    pub received: usize,
    pub inserted: u64,
    /// The indices (in the batch's `events`) of the events this origin cannot read (a worker
    /// of a newer release wrote them): not stored. The edge retries the messages holding them
    /// until an origin of that release stores them, and acknowledges the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<usize>,
}

/// `POST /_edge/replay` (origin → edge, signed): a nonce (see [`SyncBatch::nonce`]), and
/// where the last request of the same replay stopped. Origins that predate it send an empty
/// body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The last parked key the request before handled ([`ReplayResult::last`]): the keys up
    /// to it are skipped unread. KV's listing shows a deleted key for up to a minute, so a
    /// replay that read every listed key again soon read only deleted ones. Absent: from the
    /// oldest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// What the edge answers to `POST /_edge/replay`: parked click messages moved back onto the
/// click queue by this request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayResult {
    /// Parked messages moved.
    pub replayed: usize,
    /// The click events in them.
    pub clicks: usize,
    /// Parked messages left (at least this many; 0 when none are left).
    pub remaining: usize,
    /// The last parked key this request handled (moved, or found gone): the next request's
    /// [`ReplayRequest::after`]. Absent from edges that predate it, and when none was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

/// Where a click was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClickSource {
    Edge,
    Origin,
}

/// One visit to a short link, as recorded where it was served.
///
/// What is absent (`None`, `false`) is left out of the JSON, and read back as absent: events
/// travel by the hundred in queue messages, billed per 64 KB, and the fields left out were a
/// third of a typical event's bytes. Readers of either form take both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickEvent {
    /// Unique per visit, made where the visit was served: ingest is idempotent on it.
    pub id: String,
    pub link_id: i64,
    /// Read without the reserved words' check (`code::recorded`): a word reserved since the
    /// click was made loses nothing.
    #[serde(deserialize_with = "crate::code::recorded")]
    pub code: ShortCode,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// ISO 3166 alpha-2, from the edge's request data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Opened from a QR code (the short URL carried `?qr=1`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub qr: bool,
    /// A HEAD request: a link checker or preview, not a person.
    #[serde(default, skip_serializing_if = "is_false")]
    pub head: bool,
    pub source: ClickSource,
    /// The visitor key of [`crate::visitor`], made where the IP address was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<String>,
    /// The A/B variant the visitor was sent to (its id in the link's split, [`crate::rules::Variant::id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<u8>,
}

/// `skip_serializing_if` passes a reference.
fn is_false(flag: &bool) -> bool {
    !flag
}

/// Longest id, user agent and referrer kept: enough to classify, bounded so a hostile client
/// cannot make events (and queue messages) large.
const MAX_ID: usize = 64;
const MAX_USER_AGENT: usize = 512;
const MAX_REFERRER: usize = 1024;

impl ClickEvent {
    /// Bounds every free-text field, and takes out NUL characters (PostgreSQL refuses them in
    /// text, which would refuse the event); producers call this before sending and the origin
    /// again before storing.
    #[must_use]
    pub fn bounded(mut self) -> Self {
        strip_nul(&mut self.id);
        truncate(&mut self.id, MAX_ID);
        if let Some(user_agent) = &mut self.user_agent {
            strip_nul(user_agent);
            truncate(user_agent, MAX_USER_AGENT);
        }
        if let Some(referrer) = &mut self.referrer {
            strip_nul(referrer);
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

fn strip_nul(text: &mut String) {
    if text.contains('\0') {
        text.retain(|c| c != '\0');
    }
}

fn truncate(text: &mut String, max: usize) {
    let end = prefix(text, max).len();
    text.truncate(end);
}

/// The longest start of `text` of at most `max` bytes that ends on a character.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The part of a user agent that a click's event keeps ([`ClickEvent::bounded`]), for one
/// without NULs (a header's has none): what a click is classified by where its event is not
/// made.
pub fn kept_user_agent(user_agent: &str) -> &str {
    prefix(user_agent, MAX_USER_AGENT)
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
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;
    use crate::{Destination, RedirectStatus};

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
            variant: None,
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

    /// An edge's click with nothing but what every click has.
    fn bare() -> ClickEvent {
        ClickEvent {
            id: "e1".into(),
            link_id: 7,
            code: ShortCode::parse("abc").expect("valid"),
            at: datetime!(2026-01-01 0:00 UTC),
            country: None,
            referrer: None,
            user_agent: None,
            qr: false,
            head: false,
            source: ClickSource::Edge,
            visitor: None,
            variant: None,
        }
    }

    #[test]
    fn click_events_leave_out_what_is_absent_and_read_both_forms() {
        let bare = bare();
        let json = serde_json::to_string(&bare).expect("serialises");
        assert_eq!(
            json,
            r#"{"id":"e1","link_id":7,"code":"abc","at":"2026-01-01T00:00:00Z","source":"edge"}"#
        );
        assert_eq!(
            serde_json::from_str::<ClickEvent>(&json).expect("parses"),
            bare
        );
        // As events were written before: every field present, absent ones as null or false.
        let old = r#"{"id":"e1","link_id":7,"code":"abc","at":"2026-01-01T00:00:00Z","country":null,"referrer":null,"user_agent":null,"qr":false,"head":false,"source":"edge","visitor":null}"#;
        assert_eq!(
            serde_json::from_str::<ClickEvent>(old).expect("parses"),
            bare
        );
        let full = ClickEvent {
            country: Some("DE".into()),
            referrer: Some("https://a.example/".into()),
            user_agent: Some("Mozilla/5.0".into()),
            qr: true,
            head: true,
            visitor: Some("0".repeat(32)),
            variant: Some(1),
            ..bare
        };
        let json = serde_json::to_string(&full).expect("serialises");
        assert_eq!(
            serde_json::from_str::<ClickEvent>(&json).expect("parses"),
            full
        );
    }

    #[test]
    fn bounded_strips_nul_characters() {
        let event = ClickEvent {
            id: "\0id\0".into(),
            link_id: 1,
            code: ShortCode::parse("abc").expect("valid"),
            at: datetime!(2026-01-01 0:00 UTC),
            country: None,
            referrer: Some("https://a.example/\0x".into()),
            user_agent: Some(format!("Mozilla/5.0\0{}", "a".repeat(600))),
            qr: false,
            head: false,
            source: ClickSource::Edge,
            visitor: None,
            variant: None,
        }
        .bounded();
        assert_eq!(event.id, "id");
        assert_eq!(event.referrer.as_deref(), Some("https://a.example/x"));
        let agent = event.user_agent.expect("user agent");
        assert!(!agent.contains('\0'), "{agent:?}");
        // The limit applies to what is kept.
        assert_eq!(agent.len(), MAX_USER_AGENT);
        assert!(agent.starts_with("Mozilla/5.0a"), "{agent:?}");
    }

    #[test]
    fn the_kept_user_agent_is_what_the_event_keeps() {
        let event = |user_agent: &str| ClickEvent {
            user_agent: Some(user_agent.to_owned()),
            ..bare()
        };
        for user_agent in [
            String::new(),
            "curl/8".to_owned(),
            "a".repeat(MAX_USER_AGENT),
            "a".repeat(MAX_USER_AGENT + 1),
            // A character across the limit is left out whole.
            format!("{}é bot", "a".repeat(MAX_USER_AGENT - 1)),
            "ü".repeat(MAX_USER_AGENT),
        ] {
            let kept = event(&user_agent).bounded().user_agent;
            assert_eq!(kept.as_deref(), Some(kept_user_agent(&user_agent)));
        }
    }

    #[test]
    fn missing_marker_is_not_a_link_record() {
        assert!(serde_json::from_str::<LinkRecord>(KV_MISSING).is_err());
        assert!(serde_json::from_str::<Tombstone>(KV_MISSING).is_err());
    }

    #[test]
    fn tombstones() {
        let json = serde_json::to_string(&Tombstone { version: 42 }).expect("serialises");
        assert_eq!(json, r#"{"v":1,"version":42,"deleted":true}"#);
        let cases: [(&str, Option<u64>); 8] = [
            (r#"{"v":1,"version":42,"deleted":true}"#, Some(42)),
            (r#"{"deleted":true,"version":0,"v":1}"#, Some(0)),
            (r#"{"v":1,"version":42,"deleted":false}"#, None),
            (r#"{"v":3,"version":42,"deleted":true}"#, None),
            (r#"{"v":1,"deleted":true}"#, None),
            (r#"{"v":1,"version":-1,"deleted":true}"#, None),
            // A link record is not a tombstone, nor the other way round.
            (
                r#"{"v":1,"version":3,"link_id":1,"destination":"https://example.com/","status":302,"expires_at":null}"#,
                None,
            ),
            (KV_MISSING, None),
        ];
        for (json, expected) in cases {
            let parsed = serde_json::from_str::<Tombstone>(json).ok();
            assert_eq!(parsed.map(|t| t.version), expected, "{json}");
        }
        assert!(
            serde_json::from_str::<LinkRecord>(r#"{"v":1,"version":42,"deleted":true}"#).is_err()
        );
    }

    proptest! {
        /// Every record and tombstone reads back as itself, and never as the other kind.
        #[test]
        fn kv_entries_round_trip(
            link_id in any::<i64>(),
            version in any::<u64>(),
            path in "[a-zA-Z0-9/\\\\%\"é ]{0,40}",
            status in prop::sample::select(vec![301u16, 302, 307, 308]),
            expires_at in prop::option::of(0i64..253_402_300_799),
        ) {
            let Ok(destination) = Destination::parse(&format!("https://example.com/{path}")) else {
                return Ok(());
            };
            let record = LinkRecord::new(
                link_id,
                version,
                destination,
                RedirectStatus::try_from(status).expect("valid status"),
                expires_at.map(|secs| OffsetDateTime::from_unix_timestamp(secs).expect("in range")),
            );
            let json = serde_json::to_string(&record).expect("serialises");
            prop_assert_eq!(serde_json::from_str::<LinkRecord>(&json).expect("parses"), record);
            prop_assert!(serde_json::from_str::<Tombstone>(&json).is_err());

            let tombstone = Tombstone { version };
            let json = serde_json::to_string(&tombstone).expect("serialises");
            prop_assert_eq!(serde_json::from_str::<Tombstone>(&json).expect("parses"), tombstone);
            prop_assert!(serde_json::from_str::<LinkRecord>(&json).is_err());
        }
    }

    #[test]
    fn sync_changes_from_an_origin_without_versions_read_as_version_0() {
        let change: SyncChange =
            serde_json::from_str(r#"{"code":"abc","record":null}"#).expect("parses");
        assert_eq!(change.version, 0);
        let json = serde_json::to_string(&SyncChange {
            code: ShortCode::parse("abc").expect("valid"),
            version: 9,
            record: None,
        })
        .expect("serialises");
        assert_eq!(json, r#"{"code":"abc","version":9,"record":null}"#);
    }

    #[test]
    fn every_edge_route_is_under_the_prefix() {
        for path in [SYNC_PATH, REPLAY_PATH, INGEST_PATH, RESOLVE_PATH_PREFIX] {
            assert!(path.starts_with(&format!("{EDGE_PREFIX}/")), "{path}");
        }
    }

    #[test]
    fn sync_batches_with_and_without_a_nonce() {
        let cases = [
            (r#"{"changes":[]}"#, Some(None)),
            (r#"{"nonce":"0f1e","changes":[]}"#, Some(Some("0f1e"))),
            (r#"{"changes":[],"nonce":"ab"}"#, Some(Some("ab"))),
            (r#"{"changes":[],"nonce":null}"#, Some(None)),
            (r#"{"changes":[],"nonce":1}"#, None),
            (r#"{"changes":[],"other":1}"#, None),
        ];
        for (json, expected) in cases {
            let parsed = serde_json::from_str::<SyncBatch>(json).ok();
            assert_eq!(
                parsed.as_ref().map(|batch| batch.nonce.as_deref()),
                expected,
                "{json}"
            );
        }
        let without = SyncBatch {
            changes: Vec::new(),
            nonce: None,
        };
        assert_eq!(
            serde_json::to_string(&without).expect("serialises"),
            r#"{"changes":[]}"#
        );
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
