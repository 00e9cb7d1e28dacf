//! Bodies of the JSON API under `/api/v1`, shared by the origin and the admin UI.
//!
//! Request bodies refuse unknown fields, so a typo such as `"destnation"` is an error rather
//! than a silently ignored value.

use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::password::LinkPassword;
use crate::rules::{ClickLimit, Note, Split, Tags, Targets, Title, Utm};
use crate::{Destination, RedirectStatus, ShortCode};

/// `POST /api/v1/links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    pub destination: Destination,
    /// A custom slug; when absent the origin generates a 7-character code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ShortCode>,
    #[serde(default)]
    pub status: RedirectStatus,
    /// After this instant the link answers 410 Gone (see [`crate::timestamp`] for the range).
    #[serde(default, with = "crate::timestamp::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Switched off: answers 404 (or goes to `fallback_url`) until switched on again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// After this many clicks by people the link answers like an expired one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clicks: Option<ClickLimit>,
    /// Where an expired, used-up or disabled link sends visitors instead of a 410 or 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_url: Option<Destination>,
    /// Visitors must enter it first. Stored only as a salted hash; never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<LinkPassword>,
    /// Targeting rules, in order: the first that matches a visit picks its destination.
    #[serde(default, skip_serializing_if = "Targets::is_empty")]
    pub targets: Targets,
    /// An A/B split of the visits that no targeting rule took.
    #[serde(default, skip_serializing_if = "Split::is_empty")]
    pub split: Split,
    #[serde(default, skip_serializing_if = "Utm::is_empty")]
    pub utm: Utm,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Title>,
    /// For imports: when the link was made at the shortener it comes from (not in the
    /// future). The new link's `created_at`; absent means now.
    #[serde(
        default,
        with = "crate::timestamp::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<OffsetDateTime>,
    /// For imports: the clicks the link had at the shortener it comes from. Kept as the
    /// link's `imported_clicks`, apart from the clicks kurz counts (they have no time).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub imported_clicks: u64,
    /// For imports: the clicks the link already used against its `max_clicks` (which it
    /// needs; at most `max_clicks`), so that a used-up link stays used up and a half-used
    /// one keeps what is left. The link's count starts from it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub clicks_used: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !value
}

/// `PATCH /api/v1/links/{code}`: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateLink {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RedirectStatus>,
    /// Absent: unchanged; `null`: the link no longer expires; a time: the new expiry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null",
        serialize_with = "serialize_present"
    )]
    pub expires_at: Option<Option<OffsetDateTime>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Absent: unchanged; `null`: no limit; a number: the new limit (clicks already counted
    /// stay counted).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub max_clicks: Option<Option<ClickLimit>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub fallback_url: Option<Option<Destination>>,
    /// Absent: unchanged; `null`: no password; a string: the new password.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub password: Option<Option<LinkPassword>>,
    /// Replaces every targeting rule (`[]` removes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm: Option<Utm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub note: Option<Option<Note>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub title: Option<Option<Title>>,
}

impl UpdateLink {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A field that tells absent (`None`, by `#[serde(default)]`) from `null` (`Some(None)`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A link as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Link {
    pub id: i64,
    pub code: ShortCode,
    /// The full short URL, ready to share.
    pub short_url: String,
    pub destination: Destination,
    pub status: RedirectStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub max_clicks: Option<ClickLimit>,
    /// Clicks counted against `max_clicks` (people's GET visits; 0 without a limit).
    #[serde(default)]
    pub clicks_used: u64,
    #[serde(default)]
    pub fallback_url: Option<Destination>,
    /// Whether visitors must enter a password (the password is never shown).
    #[serde(default)]
    pub password_protected: bool,
    #[serde(default)]
    pub targets: Targets,
    #[serde(default)]
    pub split: Split,
    #[serde(default)]
    pub utm: Utm,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub note: Option<Note>,
    #[serde(default)]
    pub title: Option<Title>,
    /// Clicks the link had at the shortener it was imported from (not in its statistics,
    /// which have a time for every click).
    #[serde(default)]
    pub imported_clicks: u64,
    /// When the link was made (for an imported link, at the shortener it comes from).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Rises with every change of the link (also the `ETag` of its answers): send it back in
    /// `If-Match` to change the link only if nobody changed it meanwhile.
    #[serde(default)]
    pub version: u64,
    /// The link's clicks, in the links list only (`GET /api/v1/links`), for a caller who may
    /// read statistics (a key needs `stats:read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_counts: Option<ClickCounts>,
}

/// A link's clicks as the links list shows them, from the hourly rollups (so a click shows
/// within moments of being stored): people's clicks and QR scans, never bots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClickCounts {
    /// In all: those kurz counted and those imported with the link (`imported_clicks`), as
    /// the links export counts them.
    pub total: u64,
    /// Counted in the last 7 days (by whole UTC hours: from 7 days before the current hour).
    pub last_7_days: u64,
}

/// One line of the JSON-lines export of a workspace's links (`GET /api/v1/links/export`): the
/// link as the API shows it, and its clicks in all (counted by kurz, and imported). Importing
/// the file into another deployment makes each line a [`CreateLink`] again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportedLink {
    #[serde(flatten)]
    pub link: Link,
    /// Absent when the caller may not read statistics (a key without `stats:read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clicks: Option<u64>,
}

/// The most links `POST /api/v1/links/bulk` takes in one request.
pub const MAX_BULK_LINKS: usize = 1000;

/// The largest body `POST /api/v1/links/bulk` takes (a larger one is refused whole, 413): a
/// thousand links of about 4 KiB each (a link with tags, note, title, UTM and a few targeting
/// rules is 1–2 KiB). The API's limit for other bodies is sized for one link.
pub const MAX_BULK_BYTES: usize = 4 * 1024 * 1024;

/// What [`bulk_runs`] leaves of [`MAX_BULK_BYTES`] for the rest of a body (`{"links":[`, `]`,
/// `"atomic"`, `"dry_run"`): far more than they take.
const BULK_ENVELOPE_BYTES: usize = 64 * 1024;

/// The links of an import split into request-sized runs for `POST /api/v1/links/bulk`, given
/// the length of each link's JSON, in order: at most [`MAX_BULK_LINKS`] links a run, and at
/// most [`MAX_BULK_BYTES`] a body, so that links with long notes or many rules are not refused
/// as a body too large. Every link is in exactly one run, in order; a link too large for a
/// body by itself is a run of its own (which the origin refuses, with that link's line).
pub fn bulk_runs(json_lengths: impl IntoIterator<Item = usize>) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut end, mut bytes) = (0, 0, 0);
    for length in json_lengths {
        // The link and the comma before the next.
        let size = length + 1;
        if end > start
            && (end - start == MAX_BULK_LINKS
                || bytes + size > MAX_BULK_BYTES - BULK_ENVELOPE_BYTES)
        {
            runs.push(start..end);
            (start, bytes) = (end, 0);
        }
        bytes += size;
        end += 1;
    }
    if start < end {
        runs.push(start..end);
    }
    runs
}

/// `POST /api/v1/links/bulk`: up to [`MAX_BULK_LINKS`] links, each created or refused on its
/// own. `L` is [`CreateLink`] for a client; the origin reads each item as raw JSON first, so
/// that one malformed item gets its own error instead of failing the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkCreate<L = CreateLink> {
    /// At most [`MAX_BULK_LINKS`], refused at the first one more as the body is read: a body
    /// of millions of tiny items is never held as a list.
    #[serde(
        deserialize_with = "at_most_bulk_links",
        bound(deserialize = "L: Deserialize<'de>")
    )]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub links: Vec<L>,
    /// All or nothing: when any item fails, none is created (the others answer `rolled_back`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub atomic: bool,
    /// Check every item (its values, the blocklist, whether its code is free) and create
    /// nothing: the items that would be created answer `would_create`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

fn at_most_bulk_links<'de, D, L>(deserializer: D) -> Result<Vec<L>, D::Error>
where
    D: Deserializer<'de>,
    L: Deserialize<'de>,
{
    crate::bounded::at_most(deserializer, MAX_BULK_LINKS, |_| {
        format!("at most {MAX_BULK_LINKS} links per request: send the rest in another request")
    })
}

/// The answer to `POST /api/v1/links/bulk`: one result per item, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkResult {
    pub results: Vec<BulkItemResult>,
    /// How many items were created (0 for a dry run).
    pub created: u64,
    /// How many items failed (their own error, not `rolled_back`).
    pub failed: u64,
}

/// What became of one item of a bulk create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BulkItemResult {
    Created {
        link: Box<Link>,
    },
    /// A dry run found nothing against it.
    WouldCreate,
    /// The item's own error, as a single create would answer it (`field` names the item's field).
    Failed {
        error: ErrorDetail,
    },
    /// An atomic request in which another item failed: this one was fine but not created.
    RolledBack,
}

/// One page of `GET /api/v1/links`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkPage {
    pub links: Vec<Link>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The body of every error answer: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_input`, `not_found`, `code_taken`, ...
    pub code: String,
    /// For people: what went wrong and, where it helps, what to do.
    pub message: String,
    /// The request field at fault, as a path (`destination`, `expires_at`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

fn present_or_null<'de, D>(deserializer: D) -> Result<Option<Option<OffsetDateTime>>, D::Error>
where
    D: Deserializer<'de>,
{
    crate::timestamp::rfc3339::option::deserialize(deserializer).map(Some)
}

fn serialize_present<S>(
    value: &Option<Option<OffsetDateTime>>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
{
    time::serde::rfc3339::option::serialize(&value.flatten(), serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request stays within both of the origin's bounds, and every link is in exactly
    /// one request, in order.
    #[test]
    fn bulk_runs_stay_within_the_count_and_the_body_limit() {
        let link = |destination: &str, note: Option<&str>| -> CreateLink {
            serde_json::from_value(serde_json::json!({ "destination": destination, "note": note }))
                .expect("a valid link")
        };
        let long = format!("https://example.com/{}", "a".repeat(4000));
        let note = "n".repeat(2000);
        let cases: Vec<(Vec<CreateLink>, usize)> = vec![
            (vec![], 0),
            (vec![link("https://example.com/", None); 2500], 3),
            (vec![link(&long, Some(&note)); 1500], 3),
            (vec![link(&long, Some(&note))], 1),
        ];
        for (links, expected_runs) in cases {
            let runs = bulk_runs(
                links
                    .iter()
                    .map(|link| serde_json::to_vec(link).expect("JSON").len()),
            );
            assert_eq!(runs.len(), expected_runs, "{runs:?}");
            let mut next = 0;
            for run in runs {
                assert_eq!(run.start, next);
                assert!(!run.is_empty() && run.len() <= MAX_BULK_LINKS);
                let body = BulkCreate {
                    links: links[run.clone()].to_vec(),
                    atomic: true,
                    dry_run: true,
                };
                let bytes = serde_json::to_vec(&body).expect("JSON").len();
                assert!(bytes <= MAX_BULK_BYTES, "{bytes}");
                next = run.end;
            }
            assert_eq!(next, links.len());
        }
        // A link larger than a body alone still goes, on its own, for the origin to refuse.
        assert_eq!(bulk_runs([1, MAX_BULK_BYTES, 1]), [0..1, 1..2, 2..3]);
    }

    #[test]
    fn create_defaults_and_validation() {
        let create: CreateLink =
            serde_json::from_str(r#"{"destination":"https://example.com"}"#).expect("valid");
        assert_eq!(create.status, RedirectStatus::Found);
        assert_eq!(create.code, None);
        assert_eq!(create.expires_at, None);
        let ruled: CreateLink = serde_json::from_str(
            r#"{"destination":"https://example.com","max_clicks":5,"password":"hunter22",
                "tags":["Launch","launch"," q4 "],"utm":{"source":"mail"},
                "targets":[{"when":{"os":["ios"]},"destination":"https://apps.apple.com/x"}]}"#,
        )
        .expect("valid");
        assert_eq!(ruled.tags.as_slice().len(), 2);
        assert_eq!(ruled.max_clicks.map(ClickLimit::get), Some(5));

        // Each body is refused; the error names the rule that failed.
        let cases = [
            (r#"{"destination":"ftp://x.example"}"#, "http or https"),
            (
                r#"{"destination":"https://x.example","code":"a b"}"#,
                "only contain",
            ),
            (
                r#"{"destination":"https://x.example","status":303}"#,
                "301, 302, 307 or 308",
            ),
            (
                r#"{"destination":"https://x.example","expires_at":"tomorrow"}"#,
                "RFC 3339",
            ),
            (
                r#"{"destination":"https://x.example","expires_at":"9999-12-31T23:30:00-05:00"}"#,
                "between 1970",
            ),
            (
                r#"{"destination":"https://x.example","colour":"red"}"#,
                "colour",
            ),
            (r#"{}"#, "destination"),
            (
                r#"{"destination":"https://x.example","max_clicks":0}"#,
                "max_clicks must be between 1",
            ),
            (
                r#"{"destination":"https://x.example","password":"abc"}"#,
                "password must be 4 to 200",
            ),
            (
                r#"{"destination":"https://x.example","split":[{"destination":"https://a.example","weight":60},{"destination":"https://b.example","weight":60}]}"#,
                "add up to 120",
            ),
            (
                r#"{"destination":"https://x.example","targets":[{"when":{"country":["Germany"]},"destination":"https://a.example"}]}"#,
                "two-letter",
            ),
            (
                r#"{"destination":"https://x.example","tags":["a/b"]}"#,
                "may only contain",
            ),
            (
                r#"{"destination":"https://x.example","utm":{"source":"x","campaing":"y"}}"#,
                "campaing",
            ),
        ];
        for (input, mentions) in cases {
            let err = serde_json::from_str::<CreateLink>(input).expect_err(input);
            assert!(err.to_string().contains(mentions), "{input}: {err}");
        }
    }

    #[test]
    fn update_tells_absent_from_null() {
        let absent: UpdateLink = serde_json::from_str("{}").expect("valid");
        assert_eq!(absent.expires_at, None);
        assert!(absent.is_empty());
        let null: UpdateLink = serde_json::from_str(r#"{"expires_at":null}"#).expect("valid");
        assert_eq!(null.expires_at, Some(None));
        let set: UpdateLink =
            serde_json::from_str(r#"{"expires_at":"2030-01-01T00:00:00Z"}"#).expect("valid");
        assert!(matches!(set.expires_at, Some(Some(_))));
        let err =
            serde_json::from_str::<UpdateLink>(r#"{"expires_at":"9999-12-31T23:30:00-05:00"}"#)
                .expect_err("past the year 9000");
        assert!(err.to_string().contains("between 1970"), "{err}");
        let cleared: UpdateLink =
            serde_json::from_str(r#"{"password":null,"max_clicks":null,"tags":[]}"#)
                .expect("valid");
        assert_eq!(cleared.password, Some(None));
        assert_eq!(cleared.max_clicks, Some(None));
        assert_eq!(cleared.tags, Some(Tags::default()));
        assert!(!cleared.is_empty());
        let round_trip: UpdateLink =
            serde_json::from_str(&serde_json::to_string(&null).expect("serialises"))
                .expect("valid");
        assert_eq!(round_trip, null);
    }
}
