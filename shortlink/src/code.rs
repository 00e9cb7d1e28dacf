//! Short codes: the path segment a visitor follows, whether generated or chosen (a custom slug).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest custom slug. Long enough for readable slugs, short enough to stay a short link.
const MAX_LEN: usize = 64;

/// Path segments kurz uses for its own routes, refused as codes (compared case-insensitively,
/// so `Admin` cannot pose as the dashboard either). A new top-level route must be added here.
pub const RESERVED_CODES: &[&str] = &[
    "_edge",
    "admin",
    "api",
    "assets",
    "favicon.ico",
    "health",
    "metrics",
    "ready",
    "report",
    "robots.txt",
    "static",
];

/// Codes that name routes of the links API beside `/api/v1/links/{code}`
/// (`/api/v1/links/bulk`, `/api/v1/links/export`): a link with one could not be read, changed
/// or deleted through the API. A new link may not take one ([`ShortCode::names_api_route`],
/// checked when a link is created), but a code with one still parses: a link that took it
/// before the route existed keeps redirecting at the origin and the edge, and still reads in
/// the list. Compared exactly, as the router compares paths.
pub const API_ROUTE_CODES: &[&str] = &["bulk", "export"];

/// A short code: 1–64 characters from `[A-Za-z0-9_-]`, case-sensitive, not reserved.
///
/// Generated codes (see [`crate::CodeScrambler`]) and custom slugs share this one type and one
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShortCode(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    ShortCode,
    crate::openapi::text_example(
        "A short code: letters, digits, `-` and `_`, case-sensitive, not a reserved word.",
        (1, MAX_LEN),
        Some("^[A-Za-z0-9_-]+$"),
        EXAMPLE_CODE,
    )
);

/// The code the API's document gives as its example (`cargo xtask schemathesis` makes a link
/// with it, so the fuzzer reaches past the lookup of `/links/{code}`).
pub const EXAMPLE_CODE: &str = "launch";

impl ShortCode {
    /// Parses a custom slug or a generated code.
    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::check(input)?;
        Ok(Self(input.to_owned()))
    }

    /// The rules, without allocating: the redirect path runs this on every request.
    pub(crate) fn check(input: &str) -> Result<(), Error> {
        Self::check_form(input)?;
        if RESERVED_CODES
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(input))
        {
            return Err(Error::CodeReserved {
                code: input.to_owned(),
            });
        }
        Ok(())
    }

    /// The rules but the reserved words: what a code is made of.
    fn check_form(input: &str) -> Result<(), Error> {
        if input.is_empty() {
            return Err(Error::CodeEmpty);
        }
        if let Some(found) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(Error::CodeInvalidChar { found });
        }
        // Every accepted character is one byte, so the byte length is the character count.
        if input.len() > MAX_LEN {
            return Err(Error::CodeTooLong {
                max: MAX_LEN,
                len: input.len(),
            });
        }
        Ok(())
    }

    /// Wraps a string already known to satisfy the rules (made by the scrambler).
    pub(crate) fn from_generated(code: String) -> Self {
        debug_assert!(
            Self::check(&code).is_ok(),
            "generated code {code:?} is invalid"
        );
        Self(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the code is one of [`API_ROUTE_CODES`], which no new link may take.
    pub fn names_api_route(&self) -> bool {
        API_ROUTE_CODES.contains(&self.0.as_str())
    }
}

/// A code as a record of a visit names it (`ClickEvent::code`, with `deserialize_with`): the
/// rules of [`ShortCode::parse`] but for the reserved words. A release that reserves another
/// word must not make a click in flight on a link with that code unreadable, and with it every
/// other click of its queue message or ingest post.
pub(crate) fn recorded<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<ShortCode, D::Error> {
    let code = String::deserialize(deserializer)?;
    ShortCode::check_form(&code).map_err(serde::de::Error::custom)?;
    Ok(ShortCode(code))
}

impl TryFrom<String> for ShortCode {
    type Error = Error;

    fn try_from(value: String) -> Result<Self, Error> {
        Self::check(&value)?;
        Ok(Self(value))
    }
}

impl std::str::FromStr for ShortCode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl From<ShortCode> for String {
    fn from(code: ShortCode) -> Self {
        code.0
    }
}

impl AsRef<str> for ShortCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let long_ok = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases: &[(&str, Result<(), Error>)] = &[
            ("a", Ok(())),
            ("abc123", Ok(())),
            ("Launch-2026_final", Ok(())),
            ("A", Ok(())),
            ("-", Ok(())),
            ("_", Ok(())),
            ("0000000", Ok(())),
            (&long_ok, Ok(())),
            ("", Err(Error::CodeEmpty)),
            (&too_long, Err(Error::CodeTooLong { max: 64, len: 65 })),
            ("a b", Err(Error::CodeInvalidChar { found: ' ' })),
            ("a/b", Err(Error::CodeInvalidChar { found: '/' })),
            ("a.b", Err(Error::CodeInvalidChar { found: '.' })),
            ("caf\u{e9}", Err(Error::CodeInvalidChar { found: '\u{e9}' })),
            ("%41", Err(Error::CodeInvalidChar { found: '%' })),
            ("a?b", Err(Error::CodeInvalidChar { found: '?' })),
            ("api", Err(Error::CodeReserved { code: "api".into() })),
            ("API", Err(Error::CodeReserved { code: "API".into() })),
            (
                "Admin",
                Err(Error::CodeReserved {
                    code: "Admin".into(),
                }),
            ),
            (
                "_edge",
                Err(Error::CodeReserved {
                    code: "_edge".into(),
                }),
            ),
            (
                "health",
                Err(Error::CodeReserved {
                    code: "health".into(),
                }),
            ),
            (
                "ready",
                Err(Error::CodeReserved {
                    code: "ready".into(),
                }),
            ),
            ("favicon.ico", Err(Error::CodeInvalidChar { found: '.' })),
            ("robots.txt", Err(Error::CodeInvalidChar { found: '.' })),
            ("apis", Ok(())),
            ("readyz", Ok(())),
        ];
        for (input, expected) in cases {
            let got = ShortCode::parse(input).map(|code| assert_eq!(code.as_str(), *input));
            assert_eq!(&got, expected, "input {input:?}");
        }
    }

    #[test]
    fn api_route_codes_parse_but_are_told() {
        for (input, names_route) in [
            ("bulk", true),
            ("export", true),
            ("Export", false),
            ("bulk-2", false),
            ("exports", false),
        ] {
            let code = ShortCode::parse(input).expect("a stored link may have it");
            assert_eq!(code.names_api_route(), names_route, "{input}");
        }
    }

    #[test]
    fn case_sensitive() {
        assert_ne!(ShortCode::parse("Abc"), ShortCode::parse("abc"));
    }

    #[test]
    fn deserialize_runs_the_rules() {
        let ok: ShortCode = serde_json::from_str("\"launch\"").expect("valid code");
        assert_eq!(ok.as_str(), "launch");
        let err = serde_json::from_str::<ShortCode>("\"api\"").expect_err("reserved");
        assert!(err.to_string().contains("reserved"), "{err}");
    }
}
