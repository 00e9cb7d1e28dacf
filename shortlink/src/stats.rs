//! Bodies of the stats API (`/api/v1/stats`, `/api/v1/links/{code}/stats`), shared by the
//! origin and the admin UI.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The width of one point of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Hour,
    #[default]
    Day,
    Week,
}

impl Interval {
    /// The unit as PostgreSQL's `date_trunc` and intervals name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    /// Its length in hours (a week or day across a clock change is an hour off; this is
    /// for limits, not arithmetic).
    pub fn hours(self) -> i64 {
        match self {
            Self::Hour => 1,
            Self::Day => 24,
            Self::Week => 24 * 7,
        }
    }
}

/// Counts of one bucket or of a whole range.
///
/// `clicks` are visits by people not from a QR code, `qr_scans` visits by people from a QR
/// code, `bots` visits by crawlers, link previews, scripts and HEAD requests. `uniques` are
/// unique visitors per UTC day, summed over the days of the bucket or range. `total` is
/// `clicks + qr_scans`, plus `bots` when bots were asked for.
///
/// `details_shed` are visits (of people and bots alike) that the origin counted without
/// storing their details, because it was too busy to store them all: they are in `clicks`,
/// `qr_scans`, `bots` and `total`, but in no breakdown, no unique visitor count and no raw
/// click of the CSV export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    pub total: i64,
    pub clicks: i64,
    pub qr_scans: i64,
    pub bots: i64,
    pub uniques: i64,
    #[serde(default)]
    pub details_shed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Point {
    /// Start of the bucket (local midnight for days, Monday for weeks, in the asked zone).
    #[serde(with = "time::serde::rfc3339")]
    pub t: OffsetDateTime,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One value of a breakdown (a referrer host, a country, …) with its visits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ranked {
    pub value: String,
    pub count: i64,
}

/// The value that stands for every value a breakdown kept no row of its own for: each
/// breakdown keeps at most 100 values per link and UTC hour (and per UTC day; 1,000 for the
/// whole account), the first ones seen, and sums the clicks of any further ones here. The
/// space keeps it apart from every real value (no host, country, device, browser or OS name
/// is written so).
pub const OTHER_VALUES: &str = "(other values)";

/// The top values of each breakdown. Referrers are hosts (`direct` without a referrer),
/// countries ISO 3166 codes (`unknown` when not known), devices `desktop`, `mobile`,
/// `tablet`, `bot` or `other`. Any breakdown may hold [`OTHER_VALUES`]. Bots' referrers are
/// not kept (a bot can claim any referrer), so with bots asked for the referrers add up to
/// the people's visits only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Breakdowns {
    pub referrer: Vec<Ranked>,
    pub country: Vec<Ranked>,
    pub device: Vec<Ranked>,
    pub browser: Vec<Ranked>,
    pub os: Vec<Ranked>,
    /// For a link with an A/B split: visits by variant, named by the variant's id
    /// ([`crate::rules::Variant::id`]: `"0"`, `"1"`, …; a removed variant's keeps its id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variant: Vec<Ranked>,
    /// For the whole workspace: visits by the tags of their links (a link with two tags
    /// counts under both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<Ranked>,
}

/// A link among the account's most visited. Only live links are listed: a deleted link's code
/// may name another link now, so open a link by `link_id`, not by `code` alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopLink {
    pub code: String,
    pub link_id: i64,
    pub count: i64,
}

/// The answer of the stats routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// The range, `[from, to)`, in whole hours.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub interval: Interval,
    /// IANA time zone of the buckets.
    pub tz: String,
    pub bots: bool,
    pub totals: Counts,
    pub series: Vec<Point>,
    pub top: Breakdowns,
    /// Only for the whole account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_links: Option<Vec<TopLink>>,
}
