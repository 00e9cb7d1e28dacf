//! Bodies of the JSON API under `/api/v1`, shared by the origin and the admin UI.
//!
//! Request bodies refuse unknown fields, so a typo such as `"destnation"` is an error rather
//! than a silently ignored value.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::{Destination, RedirectStatus, ShortCode};

/// `POST /api/v1/links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// `PATCH /api/v1/links/{code}`: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl UpdateLink {
    pub fn is_empty(&self) -> bool {
        self.destination.is_none() && self.status.is_none() && self.expires_at.is_none()
    }
}

/// A link as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub id: i64,
    pub code: ShortCode,
    /// The full short URL, ready to share.
    pub short_url: String,
    pub destination: Destination,
    pub status: RedirectStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One page of `GET /api/v1/links`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPage {
    pub links: Vec<Link>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The body of every error answer: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    #[test]
    fn create_defaults_and_validation() {
        let create: CreateLink =
            serde_json::from_str(r#"{"destination":"https://example.com"}"#).expect("valid");
        assert_eq!(create.status, RedirectStatus::Found);
        assert_eq!(create.code, None);
        assert_eq!(create.expires_at, None);

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
        let round_trip: UpdateLink =
            serde_json::from_str(&serde_json::to_string(&null).expect("serialises"))
                .expect("valid");
        assert_eq!(round_trip, null);
    }
}
