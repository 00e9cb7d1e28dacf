//! The query of the stats routes and the range it asks for, checked without the database: whole
//! hours, at most 400 days, at most 2,000 points.
//!
//! Kept apart from the handlers so that every query, however odd, can be thrown at it in a
//! property test: it answers an error for what it refuses and never panics.

use shortlink::stats::Interval;
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use crate::error::Error;

/// The longest range a query may ask for.
const MAX_RANGE: Duration = Duration::days(400);
/// The most points a series may have.
const MAX_POINTS: i64 = 2_000;
const DEFAULT_TOP: i64 = 10;
const MAX_TOP: i64 = 100;
/// Longer than any IANA zone name (the longest are about 30 characters); a longer `tz` is
/// refused before it costs a round trip to PostgreSQL.
const MAX_TZ_LEN: usize = 64;

pub(crate) use shortlink::query::StatsQuery;

/// A checked query: the range in whole UTC hours, `[from, to)`. The time zone is checked
/// against PostgreSQL's list by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) from: OffsetDateTime,
    pub(crate) to: OffsetDateTime,
    pub(crate) interval: Interval,
    pub(crate) tz: String,
    pub(crate) bots: bool,
    pub(crate) top: i64,
}

impl Range {
    /// Checks `query` as asked at `now`.
    pub(crate) fn new(query: StatsQuery, now: OffsetDateTime) -> Result<Self, Error> {
        // The parser bounds every timestamp to 1970–9000, so the arithmetic below cannot leave
        // `time`'s years; it is checked anyway, as the last line of defence against a panic.
        let out_of_range = |field: &str| {
            Error::invalid(
                field,
                shortlink::timestamp::TimestampError::OutOfRange.to_string(),
            )
        };
        // Before the rounding, which would make one hour of two times within it, either way.
        if query
            .from
            .is_some_and(|from| from >= query.to.unwrap_or(now))
        {
            return Err(Error::invalid("from", "from must be before to"));
        }
        // Whole hours: the rollups' grain. `to` rounds up, so the current hour is included.
        let to = query.to.unwrap_or(now);
        let to_floor = floor_hour(to).ok_or_else(|| out_of_range("to"))?;
        let to = if to_floor == to {
            to_floor
        } else {
            to_floor
                .checked_add(Duration::HOUR)
                .ok_or_else(|| out_of_range("to"))?
        };
        let from = match query.from {
            Some(from) => floor_hour(from).ok_or_else(|| out_of_range("from"))?,
            None => to
                .checked_sub(Duration::days(7))
                .and_then(floor_hour)
                .ok_or_else(|| out_of_range("to"))?,
        };
        if from >= to {
            return Err(Error::invalid("from", "from must be before to"));
        }
        let span = to - from;
        // The span asked for, not its whole hours (up to two more): 400 days from now was
        // refused but at the turn of an hour (`kurz stats --days 400`).
        let asked = query.to.unwrap_or(now) - query.from.unwrap_or(from);
        if asked > MAX_RANGE {
            return Err(Error::invalid(
                "from",
                "the range may span at most 400 days",
            ));
        }
        let points = span.whole_hours() / query.interval.hours();
        if points > MAX_POINTS {
            return Err(Error::invalid(
                "interval",
                format!(
                    "{points} points are too many (at most {MAX_POINTS}): choose a longer interval or a shorter range"
                ),
            ));
        }
        let top = query.top.unwrap_or(DEFAULT_TOP);
        if !(1..=MAX_TOP).contains(&top) {
            return Err(Error::invalid(
                "top",
                format!("top must be between 1 and {MAX_TOP}"),
            ));
        }
        let tz = query.tz.unwrap_or_else(|| "UTC".to_owned());
        // No zone's name holds one, and PostgreSQL's text refuses NUL (a 500, not the 422
        // of a zone it does not know).
        if tz.len() > MAX_TZ_LEN || tz.chars().any(char::is_control) {
            return Err(Error::invalid(
                "tz",
                format!(
                    "tz must be an IANA time zone such as Europe/Berlin (at most {MAX_TZ_LEN} characters)"
                ),
            ));
        }
        Ok(Self {
            from,
            to,
            interval: query.interval,
            tz,
            bots: query.bots,
            top,
        })
    }
}

/// A range cut at UTC midnights, as the rollups kept per UTC day read it (the workspace's top
/// links and tags): the whole UTC days inside it, and the hours before the first of them and
/// after the last (each `[start, end)`, either of them empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UtcDays {
    /// The whole days, `[first, end)`.
    pub(crate) whole: (Date, Date),
    pub(crate) head: (OffsetDateTime, OffsetDateTime),
    pub(crate) tail: (OffsetDateTime, OffsetDateTime),
}

impl UtcDays {
    pub(crate) fn whole_days(&self) -> Vec<Date> {
        let (mut day, end) = self.whole;
        let mut days = Vec::new();
        while day < end {
            days.push(day);
            day = day.next_day().unwrap_or(end);
        }
        days
    }

    /// The days the hours before and after the whole days are in (none, one or two).
    pub(crate) fn partial_days(&self) -> Vec<Date> {
        [self.head, self.tail]
            .into_iter()
            .filter(|(start, end)| start < end)
            .map(|(start, _)| start.date())
            .collect()
    }
}

impl Range {
    /// The range cut at UTC midnights ([`UtcDays`]).
    pub(crate) fn utc_days(&self) -> UtcDays {
        let midnight = |t: OffsetDateTime| t.to_offset(UtcOffset::UTC).replace_time(Time::MIDNIGHT);
        let from = self.from.to_offset(UtcOffset::UTC);
        let to = self.to.to_offset(UtcOffset::UTC);
        let first = if midnight(from) == from {
            from
        } else {
            midnight(from).saturating_add(Duration::DAY)
        };
        let last = first.max(midnight(to));
        UtcDays {
            whole: (first.date(), last.date()),
            head: (from, to.min(first)),
            tail: if last < to { (last, to) } else { (to, to) },
        }
    }
}

/// The start of the UTC hour `t` is in; `None` when `t` is not representable in UTC.
fn floor_hour(t: OffsetDateTime) -> Option<OffsetDateTime> {
    let t = t.checked_to_offset(UtcOffset::UTC)?;
    Some(t.replace_time(Time::from_hms(t.hour(), 0, 0).ok()?))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;
    use crate::extract::parse_query;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:34:56 UTC);

    fn field_of(result: Result<Range, Error>) -> Option<String> {
        match result {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn ranges() {
        let cases: &[(&str, OffsetDateTime, OffsetDateTime)] = &[
            (
                "",
                datetime!(2026-05-25 13:00 UTC),
                datetime!(2026-06-01 13:00 UTC),
            ),
            (
                "from=2026-01-01T00:30:00%2B01:00&to=2026-01-02T00:00:00Z",
                datetime!(2025-12-31 23:00 UTC),
                datetime!(2026-01-02 0:00 UTC),
            ),
            (
                "to=2026-01-02T00:00:01Z",
                datetime!(2025-12-26 1:00 UTC),
                datetime!(2026-01-02 1:00 UTC),
            ),
            // 400 days to now, as `kurz stats --days 400` asks: 400 days and an hour, rounded.
            (
                "from=2025-04-27T12:34:56Z",
                datetime!(2025-04-27 12:00 UTC),
                datetime!(2026-06-01 13:00 UTC),
            ),
            // The last hours a timestamp may name.
            (
                "from=8999-12-31T00:00:00Z&to=8999-12-31T23:59:59Z",
                datetime!(8999-12-31 0:00 UTC),
                datetime!(9000-01-01 0:00 UTC),
            ),
            (
                "from=1970-01-01T00:00:00Z&to=1970-01-01T00:00:01Z",
                datetime!(1970-01-01 0:00 UTC),
                datetime!(1970-01-01 1:00 UTC),
            ),
        ];
        for (query, from, to) in cases {
            let parsed: StatsQuery = parse_query(query).expect(query);
            let range = Range::new(parsed, NOW).expect(query);
            assert_eq!((range.from, range.to), (*from, *to), "{query}");
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            // The two that panicked: the year 10000 in UTC, and an hour added past 9999.
            ("to=9999-12-31T23:30:00-05:00", "to"),
            ("to=9999-12-31T23:30:00Z", "to"),
            ("from=9999-12-31T23:30:00Z", "from"),
            ("from=0000-01-01T00:00:00%2B23:59", "from"),
            ("to=1969-12-31T00:00:00Z", "to"),
            ("to=soon", "to"),
            ("from=1970-01-01T00:00:00Z&to=1970-01-01T00:00:00Z", "from"),
            ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
            // Within one hour: reversed, equal, or a start later this hour and no end. The
            // rounding to whole hours made each of them that hour.
            ("from=2026-01-01T10:45:00Z&to=2026-01-01T10:15:00Z", "from"),
            ("from=2026-01-01T10:30:00Z&to=2026-01-01T10:30:00Z", "from"),
            ("from=2026-06-01T12:50:00Z", "from"),
            ("from=2020-01-01T00:00:00Z&to=2022-01-01T00:00:00Z", "from"),
            (
                "interval=hour&from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z",
                "interval",
            ),
            ("interval=month", "interval"),
            ("top=0", "top"),
            ("top=101", "top"),
            ("top=-9223372036854775808", "top"),
            ("top=99999999999999999999", "top"),
            ("bots=maybe", "bots"),
            ("colour=red", "colour"),
        ];
        for (query, field) in cases {
            let result = parse_query::<StatsQuery>(query).and_then(|q| Range::new(q, NOW));
            assert_eq!(field_of(result).as_deref(), Some(field), "{query}");
        }
        let long_tz = StatsQuery {
            tz: Some("Europe/".repeat(20)),
            ..StatsQuery::default()
        };
        assert_eq!(field_of(Range::new(long_tz, NOW)).as_deref(), Some("tz"));
    }

    #[test]
    fn utc_days() {
        use time::macros::date;
        // (from, to, whole days, head, tail)
        let cases = [
            // Mid-day to mid-day: two ragged ends around two whole days.
            (
                datetime!(2026-05-01 13:00 UTC),
                datetime!(2026-05-04 07:00 UTC),
                (date!(2026 - 05 - 02), date!(2026 - 05 - 04)),
                (
                    datetime!(2026-05-01 13:00 UTC),
                    datetime!(2026-05-02 00:00 UTC),
                ),
                (
                    datetime!(2026-05-04 00:00 UTC),
                    datetime!(2026-05-04 07:00 UTC),
                ),
            ),
            // Midnight to midnight: whole days only.
            (
                datetime!(2026-05-01 00:00 UTC),
                datetime!(2026-05-03 00:00 UTC),
                (date!(2026 - 05 - 01), date!(2026 - 05 - 03)),
                (
                    datetime!(2026-05-01 00:00 UTC),
                    datetime!(2026-05-01 00:00 UTC),
                ),
                (
                    datetime!(2026-05-03 00:00 UTC),
                    datetime!(2026-05-03 00:00 UTC),
                ),
            ),
            // Inside one day.
            (
                datetime!(2026-05-01 05:00 UTC),
                datetime!(2026-05-01 06:00 UTC),
                (date!(2026 - 05 - 02), date!(2026 - 05 - 02)),
                (
                    datetime!(2026-05-01 05:00 UTC),
                    datetime!(2026-05-01 06:00 UTC),
                ),
                (
                    datetime!(2026-05-01 06:00 UTC),
                    datetime!(2026-05-01 06:00 UTC),
                ),
            ),
            // From a midnight into the same day.
            (
                datetime!(2026-05-01 00:00 UTC),
                datetime!(2026-05-01 06:00 UTC),
                (date!(2026 - 05 - 01), date!(2026 - 05 - 01)),
                (
                    datetime!(2026-05-01 00:00 UTC),
                    datetime!(2026-05-01 00:00 UTC),
                ),
                (
                    datetime!(2026-05-01 00:00 UTC),
                    datetime!(2026-05-01 06:00 UTC),
                ),
            ),
            // Across one midnight, ending at the next.
            (
                datetime!(2026-05-01 23:00 UTC),
                datetime!(2026-05-02 00:00 UTC),
                (date!(2026 - 05 - 02), date!(2026 - 05 - 02)),
                (
                    datetime!(2026-05-01 23:00 UTC),
                    datetime!(2026-05-02 00:00 UTC),
                ),
                (
                    datetime!(2026-05-02 00:00 UTC),
                    datetime!(2026-05-02 00:00 UTC),
                ),
            ),
        ];
        for (from, to, whole, head, tail) in cases {
            let range = Range {
                from,
                to,
                interval: Interval::Hour,
                tz: "UTC".to_owned(),
                bots: false,
                top: 10,
            };
            let days = range.utc_days();
            assert_eq!(days, UtcDays { whole, head, tail }, "{from}..{to}");
            let partial = days.partial_days();
            // Every hour of the range is in exactly one part.
            let mut t = from;
            while t < to {
                let parts = [head, tail]
                    .iter()
                    .filter(|(s, e)| *s <= t && t < *e)
                    .count()
                    + usize::from(days.whole_days().contains(&t.date()));
                assert_eq!(parts, 1, "{t} of {from}..{to}");
                assert!(
                    days.whole_days().contains(&t.date()) || partial.contains(&t.date()),
                    "{t}"
                );
                t += Duration::HOUR;
            }
        }
    }

    /// Any instant `time` can hold, in any offset it can hold; often within a day or so of
    /// the ends of its years and of ours, where arithmetic overflows.
    fn any_instant() -> impl Strategy<Value = OffsetDateTime> {
        let first = OffsetDateTime::new_utc(time::Date::MIN, Time::MIDNIGHT).unix_timestamp();
        let last =
            OffsetDateTime::new_utc(time::Date::MAX, Time::MIDNIGHT).unix_timestamp() + 86_399;
        let near = |anchor: i64| (-100_000i64..100_000).prop_map(move |d| anchor + d);
        let seconds = prop_oneof![
            first..=last,
            (0i64..100_000).prop_map(move |d| last - d),
            (0i64..100_000).prop_map(move |d| first + d),
            near(shortlink::timestamp::EARLIEST.unix_timestamp()),
            near(shortlink::timestamp::END.unix_timestamp()),
        ];
        let offset = prop_oneof![-93_599i32..=93_599, Just(0), Just(-18_000), Just(93_599)];
        (seconds, 0u32..1_000_000_000, offset).prop_filter_map(
            "representable in that offset",
            |(seconds, nanos, offset)| {
                let utc = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
                let utc = utc.replace_nanosecond(nanos).ok()?;
                utc.checked_to_offset(UtcOffset::from_whole_seconds(offset).ok()?)
            },
        )
    }

    fn any_query_text() -> impl Strategy<Value = String> {
        let timestamp = prop_oneof![
            any_instant().prop_map(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            }),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})",
            any::<String>(),
        ];
        let value = prop_oneof![
            timestamp,
            any::<i64>().prop_map(|n| n.to_string()),
            Just("hour".to_owned()),
            Just("week".to_owned()),
            any::<String>(),
        ];
        let key = prop_oneof![
            Just("from"),
            Just("to"),
            Just("interval"),
            Just("tz"),
            Just("bots"),
            Just("top"),
        ];
        proptest::collection::vec((key, value), 0..6).prop_map(|pairs| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        })
    }

    proptest! {
        // Both are cheap, and the instants that overflow are a small corner of the space.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whatever the query string and the clock say, the answer is a range or a refusal
        /// naming a field, never a panic; an accepted range is whole hours inside the bounds.
        #[test]
        fn no_query_panics(query in any_query_text(), now in any_instant()) {
            match parse_query::<StatsQuery>(&query).and_then(|q| Range::new(q, now)) {
                Ok(range) => {
                    prop_assert!(range.from < range.to);
                    // The span asked for is at most MAX_RANGE; its whole hours up to two more.
                    prop_assert!(range.to - range.from <= MAX_RANGE + Duration::hours(2));
                    prop_assert_eq!(range.from.offset(), UtcOffset::UTC);
                    for bound in [range.from, range.to] {
                        prop_assert_eq!((bound.minute(), bound.second(), bound.nanosecond()), (0, 0, 0));
                    }
                }
                Err(err) => prop_assert!(
                    matches!(err, Error::InvalidInput { field: Some(_), .. }),
                    "not a refusal naming a field: {err:?}"
                ),
            }
        }

        /// The range computation alone, on any instants `time` can hold.
        #[test]
        fn no_range_panics(
            from in proptest::option::of(any_instant()),
            to in proptest::option::of(any_instant()),
            now in any_instant(),
            top in proptest::option::of(any::<i64>()),
        ) {
            let query = StatsQuery { from, to, top, ..StatsQuery::default() };
            let _ = Range::new(query, now);
        }
    }
}
