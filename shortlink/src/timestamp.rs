//! Timestamps a request may carry: RFC 3339, between 1970 and 9000, and always returned in UTC.
//!
//! `time` represents the years −9999 to 9999. An instant near either end is valid as typed
//! but cannot be converted to UTC (`9999-12-31T23:30:00-05:00` is in the year 10000), nor have
//! a day or a bucket added to it: those operations panic, and so does binding the value to a
//! query. Every timestamp taken from outside is therefore checked here, at parse time, to lie
//! in `[1970-01-01T00:00:00Z, 9000-01-01T00:00:00Z)`. Nothing before the Unix epoch can be a
//! click or an expiry, and no link can meaningfully expire after 9000, while a millennium of
//! headroom below `time`'s limit keeps every range and bucket computed from an accepted value
//! (at most 400 days wide, any UTC offset) representable. PostgreSQL (up to 294276 AD) and
//! JavaScript's `Date` (up to 275760 AD) hold every accepted value.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{OffsetDateTime, UtcOffset};

/// The earliest instant accepted.
pub const EARLIEST: OffsetDateTime = datetime!(1970-01-01 0:00 UTC);
/// The first instant past the accepted ones.
pub const END: OffsetDateTime = datetime!(9000-01-01 0:00 UTC);

/// Why a timestamp was refused; the message is for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampError {
    /// Not RFC 3339 (`2030-01-01T00:00:00Z`, `2030-01-01T01:00:00+01:00`).
    Unparsable,
    /// RFC 3339, but outside the accepted years.
    OutOfRange,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unparsable => f.write_str(
                "must be an RFC 3339 timestamp such as 2030-01-01T00:00:00Z or \
                 2030-01-01T01:00:00+01:00",
            ),
            Self::OutOfRange => {
                f.write_str("must be between 1970-01-01T00:00:00Z and 9000-01-01T00:00:00Z")
            }
        }
    }
}

impl std::error::Error for TimestampError {}

/// Parses an RFC 3339 timestamp in the accepted range; the result is in UTC.
pub fn parse(input: &str) -> Result<OffsetDateTime, TimestampError> {
    let parsed = OffsetDateTime::parse(input, &Rfc3339).map_err(|_| TimestampError::Unparsable)?;
    check(parsed)
}

/// Checks an instant against the accepted range and converts it to UTC, without panicking
/// whatever its offset.
pub fn check(instant: OffsetDateTime) -> Result<OffsetDateTime, TimestampError> {
    let utc = instant
        .checked_to_offset(UtcOffset::UTC)
        .ok_or(TimestampError::OutOfRange)?;
    if (EARLIEST..END).contains(&utc) {
        Ok(utc)
    } else {
        Err(TimestampError::OutOfRange)
    }
}

/// `#[serde(with = "shortlink::timestamp::rfc3339")]`: RFC 3339, checked when read.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(
        value: &OffsetDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::serialize(value, serializer)
    }

    /// `#[serde(default, with = "shortlink::timestamp::rfc3339::option")]`: absent or `null` is
    /// `None`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            <Option<String>>::deserialize(deserializer)?
                .map(|text| super::super::parse(&text).map_err(serde::de::Error::custom))
                .transpose()
        }

        pub fn serialize<S: Serializer>(
            value: &Option<OffsetDateTime>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            time::serde::rfc3339::option::serialize(value, serializer)
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn accepted_range() {
        let cases: &[(&str, Result<OffsetDateTime, TimestampError>)] = &[
            ("2030-01-01T00:00:00Z", Ok(datetime!(2030-01-01 0:00 UTC))),
            (
                "2030-01-01T01:00:00+01:00",
                Ok(datetime!(2030-01-01 0:00 UTC)),
            ),
            ("1970-01-01T00:00:00Z", Ok(EARLIEST)),
            (
                "1970-01-01T01:00:00+01:00",
                Ok(datetime!(1970-01-01 0:00 UTC)),
            ),
            (
                "8999-12-31T23:59:59.999999999Z",
                Ok(datetime!(8999-12-31 23:59:59.999_999_999 UTC)),
            ),
            ("9000-01-01T00:00:00Z", Err(TimestampError::OutOfRange)),
            ("8999-12-31T23:30:00-05:00", Err(TimestampError::OutOfRange)),
            // Valid as typed, but in the year 10000 in UTC: converting it used to panic.
            ("9999-12-31T23:30:00-05:00", Err(TimestampError::OutOfRange)),
            ("9999-12-31T23:30:00Z", Err(TimestampError::OutOfRange)),
            ("1969-12-31T23:59:59Z", Err(TimestampError::OutOfRange)),
            ("1970-01-01T00:30:00+01:00", Err(TimestampError::OutOfRange)),
            ("0000-01-01T00:00:00+23:59", Err(TimestampError::OutOfRange)),
            ("0000-01-01T00:00:00Z", Err(TimestampError::OutOfRange)),
            ("tomorrow", Err(TimestampError::Unparsable)),
            ("2030-01-01", Err(TimestampError::Unparsable)),
            ("2030-02-30T00:00:00Z", Err(TimestampError::Unparsable)),
            ("", Err(TimestampError::Unparsable)),
        ];
        for (input, expected) in cases {
            let got = parse(input);
            assert_eq!(&got, expected, "{input}");
            if let Ok(utc) = got {
                assert_eq!(utc.offset(), UtcOffset::UTC, "{input}");
            }
        }
    }

    #[test]
    fn serde_reads_bounded_and_writes_rfc3339() {
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        struct Body {
            #[serde(with = "rfc3339")]
            at: OffsetDateTime,
            #[serde(default, with = "rfc3339::option")]
            until: Option<OffsetDateTime>,
        }
        let body: Body = serde_json::from_str(r#"{"at":"2030-01-01T01:00:00+01:00","until":null}"#)
            .expect("valid");
        assert_eq!(body.at, datetime!(2030-01-01 0:00 UTC));
        assert_eq!(body.until, None);
        assert_eq!(
            serde_json::to_string(&body).expect("serialises"),
            r#"{"at":"2030-01-01T00:00:00Z","until":null}"#
        );
        for bad in [
            r#"{"at":"9999-12-31T23:30:00-05:00"}"#,
            r#"{"at":"2030-01-01T00:00:00Z","until":"9999-12-31T23:30:00-05:00"}"#,
        ] {
            let err = serde_json::from_str::<Body>(bad).expect_err(bad);
            assert!(err.to_string().contains("between 1970"), "{bad}: {err}");
        }
        let err = serde_json::from_str::<Body>(r#"{"at":1}"#).expect_err("a number");
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}
