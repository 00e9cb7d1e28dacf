//! Where a redirect is decided: given a link's record and a visit, what the visitor gets.
//!
//! The origin and the edge both call [`decide`], so a link behaves the same wherever it is
//! served. It is pure: the caller passes in the time, what the request says about the visitor
//! ([`Visit`]) and whether a password cookie checked out.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::agent::Agent;
use crate::password::PasswordHash;
use crate::rules::{ClickLimit, Condition, Split, Targets, Utm};
use crate::{Destination, RedirectStatus};

/// What a server needs to answer a visit to a code without any other lookup. It is also the
/// edge's KV record for a code (JSON, versioned by `v`) and the origin's cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The format version: 1 for a plain link, 2 for one with rules. Readers refuse versions
    /// they do not know, so an edge from before rules never serves a rule-bound link as a
    /// plain one (it asks the origin, and answers 503 rather than skip a password).
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
    /// `None` for a plain link: most links have no rules, and the caches hold many records
    /// (a plain record allocates nothing for them). Read them with [`LinkRecord::rules`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Box<Rules>>,
}

/// The rules of every plain link.
static PLAIN: Rules = Rules {
    disabled: false,
    max_clicks: None,
    clicks: 0,
    exhausted: false,
    fallback: None,
    password: None,
    targets: Targets::NONE,
    split: Split::NONE,
    utm: Utm::NONE,
};

/// Everything a link does beyond one destination, as the redirect needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rules {
    /// Switched off: answers like an unknown code (or goes to the fallback).
    #[serde(skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clicks: Option<ClickLimit>,
    /// Clicks counted against `max_clicks` when this record was read.
    #[serde(skip_serializing_if = "is_zero")]
    pub clicks: u64,
    /// The origin counted `max_clicks` clicks: the link answers like an expired one.
    #[serde(skip_serializing_if = "is_false")]
    pub exhausted: bool,
    /// Where an expired, used-up or disabled link sends visitors instead of a 410 or 404.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Destination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordHash>,
    #[serde(skip_serializing_if = "Targets::is_empty")]
    pub targets: Targets,
    #[serde(skip_serializing_if = "Split::is_empty")]
    pub split: Split,
    #[serde(skip_serializing_if = "Utm::is_empty")]
    pub utm: Utm,
}

fn is_false(value: &bool) -> bool {
    !value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Rules {
    /// No rule at all: the link redirects everyone to its destination.
    pub fn is_plain(&self) -> bool {
        // The rules of every plain record are this very value: no fields to compare.
        std::ptr::eq(self, &PLAIN) || *self == PLAIN
    }

    /// The bytes these rules hold on the heap (their box, every destination, condition value
    /// and UTM value, and the fixed parts of the lists that hold them): what a cache of
    /// records weighs them at. Nothing for a plain link's.
    pub fn heap_bytes(&self) -> usize {
        const STRING: usize = std::mem::size_of::<String>();
        if self.is_plain() {
            return 0;
        }
        let targets: usize = self
            .targets
            .as_slice()
            .iter()
            .map(|target| {
                let condition = match &target.when {
                    Condition::Country(countries) => countries.len() * (STRING + 2),
                    Condition::Device(devices) => devices.len(),
                    Condition::Os(systems) => systems.len(),
                    Condition::Language(languages) => languages
                        .iter()
                        .map(|language| STRING + language.as_str().len())
                        .sum(),
                    Condition::Query(query) => query.param.len() + query.value.len(),
                };
                std::mem::size_of_val(target) + target.destination.as_str().len() + condition
            })
            .sum();
        let split: usize = self
            .split
            .as_slice()
            .iter()
            .map(|variant| std::mem::size_of_val(variant) + variant.destination.as_str().len())
            .sum();
        let fallback = self
            .fallback
            .as_ref()
            .map_or(0, |fallback| fallback.as_str().len());
        let utm: usize = self.utm.pairs().map(|(_, value)| value.len()).sum();
        // The password hash's bytes are inline in the box.
        std::mem::size_of::<Self>() + targets + split + fallback + utm
    }

    /// Whether the answer depends on more than the link and the time (so no browser or proxy
    /// may keep it, and every visit must reach us to be counted, checked or targeted).
    pub fn is_dynamic(&self) -> bool {
        self.max_clicks.is_some()
            || self.password.is_some()
            || !self.targets.is_empty()
            || !self.split.is_empty()
    }
}

/// What a request says about its visitor, as far as rules care.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    pub now: OffsetDateTime,
    /// ISO 3166 alpha-2, as the platform reports it (`cf.country`, or the origin's header).
    pub country: Option<&'a str>,
    /// The user agent's classification ([`crate::agent::classify`]).
    pub agent: Agent,
    /// The `Accept-Language` header.
    pub accept_language: Option<&'a str>,
    /// The short URL's query string, without `?`.
    pub query: Option<&'a str>,
    /// The day's visitor key ([`crate::visitor`]): keeps a visitor in one A/B variant.
    pub visitor: Option<&'a str>,
    /// A valid unlock cookie for this link came with the request.
    pub unlocked: bool,
    /// Clicks this server let through that the record does not count yet (the edge's clicks in
    /// flight since it read the record; 0 at the origin, which counts exactly).
    pub clicks_in_flight: u64,
}

/// The answer to a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    Redirect {
        status: RedirectStatus,
        location: Location<'a>,
        cache_control: CacheControl,
        /// The A/B variant chosen (its id, [`crate::rules::Variant::id`]), for the click's record.
        variant: Option<u8>,
    },
    /// Expired, or its clicks are used up: 410 Gone.
    Expired,
    /// Disabled: 404, like an unknown code.
    Disabled,
    /// Needs its password: the form (401).
    Password,
    /// Disabled, expired or used up, with a fallback: a `302` there, never stored, no click
    /// taken.
    Fallback { location: &'a str },
}

/// Where a redirect sends the visitor: one of the link's destinations, with the link's UTM
/// parameters added when the location is written out ([`Location::to_str`]). Kept apart so
/// that a server that prepared the link's own location once (the origin's cache) need not
/// build it again for each visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    /// The link's own destination, a targeting rule's or an A/B variant's.
    pub destination: &'a Destination,
    pub utm: &'a Utm,
}

impl<'a> Location<'a> {
    /// The `Location` header's text: the destination with the UTM parameters in its query.
    pub fn to_str(&self) -> Cow<'a, str> {
        self.utm.apply(self.destination.as_str())
    }
}

impl Decision<'_> {
    /// Whether this answer uses up one of a link's limited clicks (when the visitor is a
    /// person and the method GET): only a redirect to the link's own destinations does.
    pub fn takes_a_click(&self) -> bool {
        matches!(self, Self::Redirect { .. })
    }
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
            v: RecordVersion::Plain,
            version,
            link_id,
            destination,
            status,
            expires_at,
            rules: None,
        }
    }

    /// The link's rules (all off for a plain link).
    pub fn rules(&self) -> &Rules {
        self.rules.as_deref().unwrap_or(&PLAIN)
    }

    /// The record with `rules` (and the format version they need).
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.v = if rules.is_plain() {
            RecordVersion::Plain
        } else {
            RecordVersion::WithRules
        };
        self.rules = (!rules.is_plain()).then(|| Box::new(rules));
        self
    }
}

/// The record format: `"v": 1` (plain links, readable by every edge) or `"v": 2` (with rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordVersion {
    #[default]
    Plain,
    WithRules,
}

impl Serialize for RecordVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(match self {
            Self::Plain => 1,
            Self::WithRules => 2,
        })
    }
}

impl<'de> Deserialize<'de> for RecordVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u64::deserialize(deserializer)? {
            1 => Ok(Self::Plain),
            2 => Ok(Self::WithRules),
            other => Err(serde::de::Error::custom(format!(
                "link record version {other} is not supported (this build reads versions 1 and 2)"
            ))),
        }
    }
}

/// What `link` answers to `visit`. In order: disabled, expired or used up (each to the
/// fallback when there is one), the password, the first targeting rule that matches, the A/B
/// split, the destination; then the UTM parameters are merged into where it goes.
pub fn decide<'a>(link: &'a LinkRecord, visit: &Visit<'_>) -> Decision<'a> {
    let rules = link.rules();
    let fallback = || {
        rules.fallback.as_ref().map(|fallback| Decision::Fallback {
            location: fallback.as_str(),
        })
    };
    if rules.disabled {
        return fallback().unwrap_or(Decision::Disabled);
    }
    let expired = link
        .expires_at
        .is_some_and(|expires_at| expires_at <= visit.now);
    let used_up = rules.exhausted
        || rules.max_clicks.is_some_and(|limit| {
            rules.clicks.saturating_add(visit.clicks_in_flight) >= limit.get()
        });
    if expired || used_up {
        return fallback().unwrap_or(Decision::Expired);
    }
    if rules.password.is_some() && !visit.unlocked {
        return Decision::Password;
    }
    let (destination, variant) = match rules
        .targets
        .as_slice()
        .iter()
        .find(|target| matches(&target.when, visit))
    {
        Some(target) => (&target.destination, None),
        None => match rules.split.pick(bucket(link.link_id, visit)) {
            Some((id, variant)) => (&variant.destination, Some(id)),
            None => (&link.destination, None),
        },
    };
    let cache_control = if rules.is_dynamic() || !link.status.is_permanent() {
        CacheControl::NoStore
    } else {
        // A browser that kept the redirect past the expiry would go on following it instead
        // of getting the 410: the whole seconds left, rounded down, bound the day.
        let left = link.expires_at.map_or(i64::MAX, |expires_at| {
            (expires_at - visit.now).whole_seconds()
        });
        CacheControl::Public {
            max_age: u32::try_from(left.clamp(0, i64::from(PERMANENT_MAX_AGE)))
                .unwrap_or(PERMANENT_MAX_AGE),
        }
    };
    Decision::Redirect {
        status: link.status,
        location: Location {
            destination,
            utm: &rules.utm,
        },
        cache_control,
        variant,
    }
}

/// Whether a targeting condition holds for a visit.
fn matches(condition: &Condition, visit: &Visit<'_>) -> bool {
    match condition {
        Condition::Country(countries) => visit
            .country
            .is_some_and(|country| countries.iter().any(|c| c.matches(country))),
        Condition::Device(devices) => devices.contains(&visit.agent.device),
        Condition::Os(systems) => systems.contains(&visit.agent.os),
        Condition::Language(languages) => preferred_language(visit.accept_language)
            .is_some_and(|tag| languages.iter().any(|language| language.matches(tag))),
        Condition::Query(wanted) => visit.query.is_some_and(|query| {
            form_urlencoded::parse(query.as_bytes()).any(|(name, value)| {
                name == wanted.param.as_str() && value == wanted.value.as_str()
            })
        }),
    }
}

/// The visitor's first choice in `Accept-Language` (`de-DE,de;q=0.9` → `de-DE`), skipping `*`
/// and anything refused with `q=0`.
fn preferred_language(header: Option<&str>) -> Option<&str> {
    header?
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(';');
            let tag = parts.next()?.trim();
            // `q=0` (or `0.0`, `0.000`) refuses a language. Read without parsing a float: the
            // edge's .wasm would carry a float parser for this alone.
            let refused = parts.any(|p| {
                p.trim().strip_prefix("q=").is_some_and(|q| {
                    let q = q.trim();
                    q.starts_with('0') && q.bytes().all(|b| b == b'0' || b == b'.')
                })
            });
            (!tag.is_empty() && tag != "*" && !refused).then_some(tag)
        })
        .next()
}

/// The visitor's A/B bucket, 0–99: from the day's visitor key (so a visitor keeps a variant
/// all day, at the edge and the origin alike), else from the time.
fn bucket(link_id: i64, visit: &Visit<'_>) -> u8 {
    let seed = visit
        .visitor
        .and_then(|key| key.get(..16))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(visit.now.unix_timestamp_nanos() as u64);
    // splitmix64's finaliser: every bit of the seed and the link id moves the bucket.
    let mut z = seed ^ (link_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 100) as u8
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
        let future = json.replace(r#""v":1"#, r#""v":3"#);
        let err = serde_json::from_str::<LinkRecord>(&future).expect_err("unknown version");
        assert!(err.to_string().contains("version 3"), "{err}");
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
            let got = match decide(&link, &visit(now)) {
                Decision::Redirect {
                    status,
                    location,
                    cache_control,
                    variant: None,
                } => {
                    assert_eq!(location.to_str(), "https://example.com/x");
                    Some((status.code(), cache_control.to_string()))
                }
                Decision::Expired => None,
                other => panic!("{other:?}"),
            };
            let expected = expected.map(|(code, header)| (code, header.to_owned()));
            assert_eq!(got, expected, "{status:?} expiring {expires_at:?}");
        }
    }

    fn visit(now: OffsetDateTime) -> Visit<'static> {
        Visit {
            now,
            country: None,
            agent: crate::agent::classify(Some(CHROME_WINDOWS)),
            accept_language: None,
            query: None,
            visitor: None,
            unlocked: false,
            clicks_in_flight: 0,
        }
    }

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

    fn ruled(rules: &str) -> LinkRecord {
        let rules: Rules = serde_json::from_str(rules).expect("valid rules");
        target(RedirectStatus::MovedPermanently, None).with_rules(rules)
    }

    /// Where a visit goes: `Some(location)` for a redirect, else the other answer's name.
    fn outcome(link: &LinkRecord, visit: &Visit<'_>) -> String {
        match decide(link, visit) {
            Decision::Redirect { location, .. } => location.to_str().into_owned(),
            Decision::Fallback { location } => format!("fallback {location}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn plain_rules_are_the_default_ones() {
        assert_eq!(PLAIN, Rules::default());
        assert!(Rules::default().is_plain());
        let plain = target(RedirectStatus::Found, None).with_rules(Rules::default());
        assert!(plain.rules.is_none() && plain.rules().is_plain());
        assert!(!ruled(r#"{"utm":{"campaign":"x"}}"#).rules().is_plain());
        assert!(!ruled(r#"{"disabled":true}"#).rules().is_plain());
    }

    #[test]
    fn rules_decide_in_order() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let targeted = ruled(
            r#"{"targets":[
                {"when":{"country":["DE","AT"]},"destination":"https://de.example/"},
                {"when":{"device":["mobile"]},"destination":"https://m.example/"},
                {"when":{"os":["macos"]},"destination":"https://mac.example/"},
                {"when":{"language":["fr"]},"destination":"https://fr.example/"},
                {"when":{"query":{"param":"ref","value":"mail list"}},"destination":"https://q.example/"}
            ],"utm":{"source":"kurz"}}"#,
        );
        let base = visit(now);
        let mac = crate::agent::classify(Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        ));
        let cases: Vec<(&str, Visit<'_>, &str)> = vec![
            (
                "nothing matches",
                base,
                "https://example.com/x?utm_source=kurz",
            ),
            (
                "country",
                Visit {
                    country: Some("at"),
                    ..base
                },
                "https://de.example/?utm_source=kurz",
            ),
            (
                "first match wins",
                Visit {
                    country: Some("DE"),
                    agent: crate::agent::classify(Some(IPHONE)),
                    ..base
                },
                "https://de.example/?utm_source=kurz",
            ),
            (
                "device",
                Visit {
                    agent: crate::agent::classify(Some(IPHONE)),
                    ..base
                },
                "https://m.example/?utm_source=kurz",
            ),
            (
                "os",
                Visit { agent: mac, ..base },
                "https://mac.example/?utm_source=kurz",
            ),
            (
                "first language",
                Visit {
                    accept_language: Some("fr-CH, en;q=0.8"),
                    ..base
                },
                "https://fr.example/?utm_source=kurz",
            ),
            (
                "only the first language counts",
                Visit {
                    accept_language: Some("en, fr;q=0.8"),
                    ..base
                },
                "https://example.com/x?utm_source=kurz",
            ),
            (
                "a refused language is skipped",
                Visit {
                    accept_language: Some("en;q=0, fr"),
                    ..base
                },
                "https://fr.example/?utm_source=kurz",
            ),
            (
                "q=0.000 refuses too, q=0.5 does not",
                Visit {
                    accept_language: Some("en;q=0.000, fr;q=0.5"),
                    ..base
                },
                "https://fr.example/?utm_source=kurz",
            ),
            (
                "q=0.5 does not refuse",
                Visit {
                    accept_language: Some("fr;q=0.5, de"),
                    ..base
                },
                "https://fr.example/?utm_source=kurz",
            ),
            (
                "query, decoded",
                Visit {
                    query: Some("x=1&ref=mail+list"),
                    ..base
                },
                "https://q.example/?utm_source=kurz",
            ),
            (
                "query, other value",
                Visit {
                    query: Some("ref=mail"),
                    ..base
                },
                "https://example.com/x?utm_source=kurz",
            ),
        ];
        for (name, visit, expected) in cases {
            assert_eq!(outcome(&targeted, &visit), expected, "{name}");
        }
        // Rules that depend on the visit are never cached by browsers, even for a 301.
        assert!(matches!(
            decide(&targeted, &base),
            Decision::Redirect {
                cache_control: CacheControl::NoStore,
                status: RedirectStatus::MovedPermanently,
                ..
            }
        ));
        // UTM alone keeps the link cacheable.
        let utm_only = ruled(r#"{"utm":{"campaign":"x"}}"#);
        assert!(matches!(
            decide(&utm_only, &base),
            Decision::Redirect {
                cache_control: CacheControl::Public { .. },
                ..
            }
        ));
    }

    #[test]
    fn limits_passwords_and_switches() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let base = visit(now);
        let hash = crate::password::PasswordHash::new(
            &crate::password::LinkPassword::parse("hunter22").expect("valid"),
            [1; 16],
        );
        let limited = ruled(r#"{"max_clicks":3,"clicks":2}"#);
        assert_eq!(outcome(&limited, &base), "https://example.com/x");
        assert_eq!(
            outcome(
                &limited,
                &Visit {
                    clicks_in_flight: 1,
                    ..base
                }
            ),
            "Expired"
        );
        let exhausted = ruled(r#"{"max_clicks":3,"exhausted":true}"#);
        assert_eq!(outcome(&exhausted, &base), "Expired");
        let with_fallback =
            ruled(r#"{"max_clicks":1,"clicks":1,"fallback":"https://sold-out.example/"}"#);
        assert_eq!(
            outcome(&with_fallback, &base),
            "fallback https://sold-out.example/"
        );
        assert!(!decide(&with_fallback, &base).takes_a_click());
        let disabled = ruled(r#"{"disabled":true,"utm":{"source":"x"}}"#);
        assert_eq!(outcome(&disabled, &base), "Disabled");
        let expired = LinkRecord {
            expires_at: Some(now),
            ..ruled(r#"{"fallback":"https://later.example/"}"#)
        };
        assert_eq!(outcome(&expired, &base), "fallback https://later.example/");
        let mut locked = ruled("{}");
        locked = locked.with_rules(Rules {
            password: Some(hash),
            ..Rules::default()
        });
        assert_eq!(outcome(&locked, &base), "Password");
        assert_eq!(
            outcome(
                &locked,
                &Visit {
                    unlocked: true,
                    ..base
                }
            ),
            "https://example.com/x"
        );
        // A disabled or used-up link says so before it asks for a password.
        let both = locked.clone().with_rules(Rules {
            disabled: true,
            ..locked.rules().clone()
        });
        assert_eq!(outcome(&both, &base), "Disabled");
    }

    #[test]
    fn a_split_keeps_each_visitor_in_one_variant_and_follows_the_weights() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let link = ruled(
            r#"{"split":[{"destination":"https://a.example/","weight":20},{"destination":"https://b.example/","weight":80}]}"#,
        );
        let mut counts = [0u32; 2];
        for i in 0..10_000u32 {
            let key = format!(
                "{:032x}",
                u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
            );
            let visit = Visit {
                visitor: Some(&key),
                ..visit(now)
            };
            let first = decide(&link, &visit);
            let Decision::Redirect {
                variant: Some(index),
                ..
            } = first
            else {
                panic!("{first:?}");
            };
            assert_eq!(decide(&link, &visit), first, "sticky");
            counts[usize::from(index)] += 1;
        }
        assert!((1_700..2_300).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn a_rule_record_is_version_2_and_a_plain_one_stays_version_1() {
        let plain = target(RedirectStatus::Found, None);
        let json = serde_json::to_string(&plain).expect("serialises");
        assert!(
            json.starts_with(r#"{"v":1,"#) && !json.contains("rules"),
            "{json}"
        );
        let rules = ruled(r#"{"max_clicks":5,"utm":{"source":"x"}}"#);
        let json = serde_json::to_string(&rules).expect("serialises");
        assert!(json.starts_with(r#"{"v":2,"#), "{json}");
        assert!(
            json.ends_with(r#""rules":{"max_clicks":5,"utm":{"source":"x"}}}"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<LinkRecord>(&json).expect("parses"),
            rules
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::agent::{Device, Os};

        fn destination() -> impl Strategy<Value = Destination> {
            (0u8..4, "[a-z]{0,6}").prop_map(|(host, path)| {
                Destination::parse(&format!("https://h{host}.example/{path}?k=v")).expect("valid")
            })
        }

        fn rules() -> impl Strategy<Value = Rules> {
            let condition = prop_oneof![
                prop::collection::vec("[A-Z]{2}", 1..3).prop_map(|c| Condition::Country(
                    c.iter()
                        .map(|c| crate::rules::Country::parse(c).expect("valid"))
                        .collect()
                )),
                prop::sample::subsequence(Device::ALL.to_vec(), 1..3).prop_map(Condition::Device),
                prop::sample::subsequence(Os::ALL.to_vec(), 1..3).prop_map(Condition::Os),
                prop::sample::subsequence(vec!["de", "en", "fr-ch"], 1..3).prop_map(|l| {
                    Condition::Language(
                        l.iter()
                            .map(|l| crate::rules::Language::parse(l).expect("valid"))
                            .collect(),
                    )
                }),
                ("[a-z]{1,3}", "[a-z ]{0,3}").prop_map(|(param, value)| Condition::Query(
                    crate::rules::QueryMatch { param, value }
                )),
            ];
            let target = (condition, destination())
                .prop_map(|(when, destination)| crate::rules::Target { when, destination });
            let split =
                prop::option::of((1u8..100, destination(), destination())).prop_map(|split| {
                    split.map_or_else(Split::default, |(weight, a, b)| {
                        Split::new(vec![
                            crate::rules::Variant {
                                id: None,
                                destination: a,
                                weight,
                            },
                            crate::rules::Variant {
                                id: None,
                                destination: b,
                                weight: 100 - weight,
                            },
                        ])
                        .expect("valid")
                    })
                });
            (
                any::<bool>(),
                prop::option::of(1u64..5),
                0u64..6,
                any::<bool>(),
                prop::option::of(destination()),
                prop::collection::vec(target, 0..4),
                split,
                prop::option::of("[a-z +&]{1,8}"),
            )
                .prop_map(
                    |(
                        disabled,
                        max_clicks,
                        clicks,
                        exhausted,
                        fallback,
                        targets,
                        split,
                        source,
                    )| Rules {
                        disabled,
                        max_clicks: max_clicks.map(|m| ClickLimit::new(m).expect("valid")),
                        clicks,
                        exhausted,
                        fallback,
                        password: None,
                        targets: Targets::new(targets).expect("valid"),
                        split,
                        utm: Utm {
                            source: source.and_then(|s| crate::rules::UtmValue::parse(&s).ok()),
                            ..Utm::default()
                        },
                    },
                )
        }

        proptest! {
            /// The edge decides from the record as KV holds it (JSON written by the origin);
            /// the origin from the record it read from PostgreSQL. For any record and visit,
            /// both decide the same, and every redirect goes to a valid destination.
            #[test]
            fn the_edge_and_the_origin_decide_the_same(
                rules in rules(),
                country in prop::option::of(prop::sample::select(vec!["DE", "at", "US"])),
                agent in prop::sample::select(vec![CHROME_WINDOWS, IPHONE, "curl/8", ""]),
                language in prop::option::of(prop::sample::select(vec!["de-DE,en", "fr-CH", "*"])),
                query in prop::option::of("[a-z=& ]{0,8}"),
                visitor in prop::option::of("[0-9a-f]{32}"),
                unlocked in any::<bool>(),
                in_flight in 0u64..3,
                seconds in 0i64..7200,
            ) {
                let origin = LinkRecord {
                    expires_at: Some(datetime!(2026-06-01 13:00 UTC)),
                    ..target(RedirectStatus::Found, None).with_rules(rules)
                };
                let edge: LinkRecord = serde_json::from_str(&serde_json::to_string(&origin).expect("serialises")).expect("parses");
                prop_assert_eq!(&edge, &origin);
                let visit = Visit {
                    now: datetime!(2026-06-01 12:00 UTC) + time::Duration::seconds(seconds),
                    country,
                    agent: crate::agent::classify(Some(agent)),
                    accept_language: language,
                    query: query.as_deref(),
                    visitor: visitor.as_deref(),
                    unlocked,
                    clicks_in_flight: in_flight,
                };
                let decision = decide(&origin, &visit);
                prop_assert_eq!(&decide(&edge, &visit), &decision);
                if let Decision::Redirect { location, .. } = &decision {
                    let location = location.to_str();
                    prop_assert!(Destination::parse(&location).is_ok(), "{}", location);
                }
            }
        }
    }
}
