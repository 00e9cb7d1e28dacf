//! Creation dates as other shorteners write them, read as instants in kurz's range (UTC).
//!
//! RFC 3339 (Shlink, Kutt, kurz); ISO 8601 with a `+0000` offset (Bitly's API); MySQL's
//! `2024-01-31 10:00:00` without a zone (YOURLS: mysqldump writes `TIMESTAMP` columns in UTC,
//! and the other tools' exports are read the same way); a bare date; Unix seconds.

use time::format_description::FormatItem;
use time::macros::{format_description, offset};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::timestamp::{self, TimestampError};

/// `2019-08-21T19:18:03+0000`: ISO 8601's basic offset, which RFC 3339 does not allow.
const BASIC_OFFSET: &[FormatItem<'_>] = format_description!(
    "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][optional [:]][offset_minute]"
);

/// `2024-01-31 10:00:00` or `2024-01-31T10:00:00.000`: no zone, read as UTC.
const NO_ZONE: &[FormatItem<'_>] = format_description!(
    "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
);

const DATE_ONLY: &[FormatItem<'_>] = format_description!("[year]-[month]-[day]");

/// The instant `input` names, in UTC and within [`timestamp::EARLIEST`]..[`timestamp::END`].
pub(super) fn parse(input: &str) -> Result<OffsetDateTime, String> {
    let input = input.trim();
    match timestamp::parse(input) {
        Ok(instant) => return Ok(instant),
        Err(TimestampError::OutOfRange) => return Err(TimestampError::OutOfRange.to_string()),
        Err(TimestampError::Unparsable) => {}
    }
    let instant = OffsetDateTime::parse(input, BASIC_OFFSET)
        .ok()
        .or_else(|| {
            PrimitiveDateTime::parse(input, NO_ZONE)
                .ok()
                .map(|at| at.assume_offset(offset!(UTC)))
        })
        .or_else(|| {
            Date::parse(input, DATE_ONLY)
                .ok()
                .map(|day| day.midnight().assume_offset(offset!(UTC)))
        })
        .or_else(|| unix_seconds(input))
        .ok_or_else(|| {
            "must be a date such as 2024-01-31T10:00:00Z, 2024-01-31 10:00:00 (read as UTC), \
             2024-01-31 or Unix seconds"
                .to_owned()
        })?;
    timestamp::check(instant).map_err(|e| e.to_string())
}

fn unix_seconds(input: &str) -> Option<OffsetDateTime> {
    if input.is_empty() || input.len() > 12 || !input.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(input.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn dates_of_every_source() {
        let ok = [
            ("2024-01-31T10:00:00Z", datetime!(2024-01-31 10:00 UTC)),
            ("2024-01-31T11:00:00+01:00", datetime!(2024-01-31 10:00 UTC)),
            (
                "2024-01-31T10:00:00.123Z",
                datetime!(2024-01-31 10:00:00.123 UTC),
            ),
            ("2024-01-31T10:00:00+0000", datetime!(2024-01-31 10:00 UTC)),
            ("2024-01-31T12:00:00+0200", datetime!(2024-01-31 10:00 UTC)),
            ("2024-01-31 10:00:00", datetime!(2024-01-31 10:00 UTC)),
            ("2024-01-31T10:00:00", datetime!(2024-01-31 10:00 UTC)),
            (
                "2024-01-31 10:00:00.5",
                datetime!(2024-01-31 10:00:00.5 UTC),
            ),
            ("2024-01-31", datetime!(2024-01-31 0:00 UTC)),
            (" 1706695200 ", datetime!(2024-01-31 10:00 UTC)),
        ];
        for (input, expected) in ok {
            assert_eq!(parse(input), Ok(expected), "{input}");
        }
        let refused = [
            ("9999-12-31T23:30:00-05:00", "between 1970"),
            ("9000-01-01 00:00:00", "between 1970"),
            ("1969-12-31", "between 1970"),
            ("0000-00-00 00:00:00", "must be a date"),
            ("31/01/2024", "must be a date"),
            ("2024-02-30", "must be a date"),
            ("", "must be a date"),
            ("99999999999999999999", "must be a date"),
            ("Z", "must be a date"),
        ];
        for (input, mentions) in refused {
            let err = parse(input).expect_err(input);
            assert!(err.contains(mentions), "{input}: {err}");
        }
    }
}
