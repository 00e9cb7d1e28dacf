//! Query strings of the API's `GET` routes: the links list, the stats, the clicks export and
//! the links export.
//!
//! Beside the bodies, so that the origin parses them (one extractor, whose refusals name the
//! parameter), a client can build them, and the OpenAPI document describes them from the same
//! types. Each refuses unknown parameters, so `?limt=5` is an error rather than ignored.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::stats::Interval;

/// `GET /api/v1/links`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct LinkListQuery {
    /// From a previous page's `next_cursor` (with the same `sort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Links per page: 1 to 200, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Matches codes, destinations, notes or titles that contain it (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Only links with this tag (normalised like a link's tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Only links that are (`true`) or are not (`false`) switched off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// The order of the list.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub sort: LinkSort,
}

/// The orders the links list can come in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LinkSort {
    #[default]
    Newest,
    Oldest,
    CodeAsc,
    CodeDesc,
    /// Most clicks in all first (imported ones included, as `click_counts.total`); ties
    /// newest first.
    Clicks,
    /// Most clicks in the last 7 days first (`click_counts.last_7_days`); ties newest first.
    #[serde(rename = "clicks_7d")]
    Clicks7d,
}

impl LinkSort {
    /// Whether the list is ordered by id (its cursor is then an id), else by code or clicks.
    pub fn by_id(self) -> bool {
        matches!(self, Self::Newest | Self::Oldest)
    }

    /// Whether the list is ordered by a count of clicks (its cursor is then the count and the
    /// id).
    pub fn by_clicks(self) -> bool {
        matches!(self, Self::Clicks | Self::Clicks7d)
    }
}

/// `GET /api/v1/stats` and `GET /api/v1/links/{code}/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Start of the range (RFC 3339); default: 7 days before `to`.
    #[serde(
        default,
        with = "crate::timestamp::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<OffsetDateTime>,
    /// End of the range (RFC 3339, exclusive); default: now.
    #[serde(
        default,
        with = "crate::timestamp::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<OffsetDateTime>,
    /// The width of one point of the series.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub interval: Interval,
    /// IANA time zone of the buckets, e.g. `Europe/Berlin`; default UTC. Abbreviations such as
    /// `CET` and POSIX rules such as `UTC+3` are refused (PostgreSQL reads them as fixed offsets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// Count bots in totals and breakdowns.
    #[serde(default)]
    pub bots: bool,
    /// How many values of each breakdown: 1 to 100, default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<i64>,
}

/// `GET /api/v1/links/{code}/clicks.csv`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// The first instant (RFC 3339); default: the oldest click kept.
    #[serde(
        default,
        with = "crate::timestamp::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<OffsetDateTime>,
    /// The end, exclusive (RFC 3339); default: now.
    #[serde(
        default,
        with = "crate::timestamp::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<OffsetDateTime>,
    /// The workspace the caller means to export from: refused (409 `workspace_changed`) when
    /// the caller works in another. The dashboard sends the one its page shows, as it sends
    /// the `Kurz-Workspace` header with its other calls (a download carries no header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<i64>,
}

/// `GET /api/v1/links/export`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct LinkExportQuery {
    /// `jsonl` (the default) or `csv`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub format: ExportFormat,
    /// As [`ExportQuery::workspace`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<i64>,
}

/// What the links export is written as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON object per line: each link as the API shows it, with `clicks`
    /// ([`ExportedLink`](crate::api::ExportedLink)), which `kurz import` reads back.
    #[default]
    Jsonl,
    /// A header row, then a row per link; the link's rules as one JSON cell.
    Csv,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 2] = [ExportFormat::Jsonl, ExportFormat::Csv];

    /// As the query (and the CLI's `--format`) names it; also the file's extension.
    pub fn id(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.id() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client serialises, the origin reads back the same.
    #[test]
    fn queries_round_trip_through_a_query_string() {
        let list = LinkListQuery {
            cursor: Some("42".into()),
            limit: Some(10),
            q: Some("a b&c".into()),
            tag: None,
            disabled: Some(false),
            sort: LinkSort::CodeDesc,
        };
        assert_eq!(
            pairs(&list),
            [
                "cursor=42",
                "disabled=false",
                "limit=10",
                "q=a+b%26c",
                "sort=code_desc"
            ]
        );
        let from = time::macros::datetime!(2030-01-02 03:00 UTC);
        let stats = StatsQuery {
            from: Some(from),
            bots: true,
            ..StatsQuery::default()
        };
        assert_eq!(
            pairs(&stats),
            ["bots=true", "from=2030-01-02T03%3A00%3A00Z", "interval=day"]
        );
        assert!(LinkSort::Oldest.by_id() && !LinkSort::CodeAsc.by_id());
        assert!(LinkSort::Clicks7d.by_clicks() && !LinkSort::Clicks.by_id());
        let by_week = LinkListQuery {
            sort: LinkSort::Clicks7d,
            ..LinkListQuery::default()
        };
        assert_eq!(pairs(&by_week), ["sort=clicks_7d"]);
        let read: LinkListQuery =
            serde_json::from_value(serde_json::json!({ "sort": "clicks" })).expect("read");
        assert_eq!(read.sort, LinkSort::Clicks);
        assert_eq!(pairs(&LinkExportQuery::default()), ["format=jsonl"]);
    }

    /// The id a client puts in the query is the one the origin reads.
    #[test]
    fn export_formats_are_named_as_the_query_names_them() {
        for format in ExportFormat::ALL {
            let query = LinkExportQuery {
                format,
                workspace: None,
            };
            assert_eq!(pairs(&query), [format!("format={}", format.id())]);
            assert_eq!(ExportFormat::from_id(format.id()), Some(format));
            let read: LinkExportQuery =
                serde_json::from_value(serde_json::json!({ "format": format.id() })).expect("read");
            assert_eq!(read, query);
        }
        assert_eq!(ExportFormat::from_id("xlsx"), None);
    }

    /// The pairs of a flat value as a query string has them, percent-encoded, sorted.
    fn pairs<T: Serialize>(value: &T) -> Vec<String> {
        let json = serde_json::to_value(value).expect("serialises");
        let mut pairs: Vec<String> = json
            .as_object()
            .expect("an object")
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                form_urlencoded::Serializer::new(String::new())
                    .append_pair(key, &text)
                    .finish()
            })
            .collect();
        pairs.sort();
        pairs
    }
}
