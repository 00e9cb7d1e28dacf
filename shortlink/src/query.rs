//! Query strings of the API's `GET` routes: the links list, the stats and the clicks export.
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
}

impl LinkSort {
    /// Whether the list is ordered by id (its cursor is then an id), else by code.
    pub fn by_id(self) -> bool {
        matches!(self, Self::Newest | Self::Oldest)
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
    /// IANA time zone of the buckets, e.g. `Europe/Berlin`; default UTC.
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
