//! How long a click message the origin did not take waits before its next delivery:
//! exponential back-off on the message's delivery attempts, capped, so that the queue's
//! retries span more than a day before it gives the message to the dead-letter queue.
//!
//! With the production schedule (1 min doubling to 20 min) and 100 retries, a message is
//! delivered again after 1, 2, 4, 8 and 16 minutes and then every 20 minutes, for 32 hours
//! in all: an origin outage of a day loses nothing and needs nobody, and the clicks of a
//! returning origin arrive within 20 minutes. The span stays well under the queue's message
//! retention (4 days by default), so a message always reaches the dead-letter queue, whose
//! consumer parks it in KV, before the queue would drop it.

/// Retries the click queue allows a message (`max_retries` in `wrangler.toml`), Cloudflare's
/// largest.
pub const MAX_RETRIES: u32 = 100;
/// The span the retries of a message must cover: an origin outage this long loses nothing
/// without an operator.
pub const MUST_COVER_SECS: u64 = 24 * 3600;
/// Cloudflare's default message retention: a message older than this is deleted, retried or
/// not, so the retries must end well before it.
pub const QUEUE_RETENTION_SECS: u64 = 4 * 24 * 3600;
/// Cloudflare's largest delay of a retry (12 hours).
pub const MAX_DELAY_SECS: u32 = 43_200;

/// A retry schedule: `first_secs` after the first failed delivery, doubling with every
/// further one, never more than `max_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first_secs: u32,
    max_secs: u32,
}

impl Backoff {
    /// The production schedule (the one `wrangler.toml` sets too).
    pub const DEFAULT: Self = Self {
        first_secs: 60,
        max_secs: 1_200,
    };

    /// A schedule from the worker's `CLICK_RETRY_DELAY_SECS` and `CLICK_RETRY_MAX_DELAY_SECS`
    /// variables (tests compress time with them); an unset one takes the default. Refused: a
    /// first delay of 0 (every retry would come at once), a cap below it or above
    /// Cloudflare's largest delay.
    pub fn from_vars(first: Option<&str>, max: Option<&str>) -> Result<Self, String> {
        let parse = |name: &str, value: Option<&str>, default: u32| match value {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u32>()
                .map_err(|err| format!("{name} = {text:?}: {err}")),
        };
        let first_secs = parse("CLICK_RETRY_DELAY_SECS", first, Self::DEFAULT.first_secs)?;
        let max_secs = parse("CLICK_RETRY_MAX_DELAY_SECS", max, Self::DEFAULT.max_secs)?;
        if first_secs == 0 {
            return Err("CLICK_RETRY_DELAY_SECS must be at least 1".to_owned());
        }
        if !(first_secs..=MAX_DELAY_SECS).contains(&max_secs) {
            return Err(format!(
                "CLICK_RETRY_MAX_DELAY_SECS must be from {first_secs} to {MAX_DELAY_SECS}, not {max_secs}"
            ));
        }
        Ok(Self {
            first_secs,
            max_secs,
        })
    }

    /// Seconds to wait after the `attempts`-th delivery of a message failed (the queue counts
    /// attempts from 1).
    pub fn delay_secs(self, attempts: u32) -> u32 {
        // 2^16 times the smallest first delay (1 s) already passes the largest cap; more
        // doublings could only overflow.
        let doublings = attempts.saturating_sub(1).min(16);
        self.first_secs
            .saturating_mul(1 << doublings)
            .min(self.max_secs)
    }

    /// Seconds from a message's first failed delivery to the queue giving up on it after
    /// `max_retries` retries.
    pub fn total_secs(self, max_retries: u32) -> u64 {
        (1..=max_retries)
            .map(|attempts| u64::from(self.delay_secs(attempts)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_a_minute_to_twenty() {
        let cases = [
            (0, 60),
            (1, 60),
            (2, 120),
            (3, 240),
            (4, 480),
            (5, 960),
            (6, 1_200),
            (7, 1_200),
            (100, 1_200),
            (u32::MAX, 1_200),
        ];
        for (attempts, delay) in cases {
            assert_eq!(Backoff::DEFAULT.delay_secs(attempts), delay, "{attempts}");
        }
    }

    #[test]
    fn the_retries_cover_a_day_and_end_before_the_queue_drops_the_message() {
        let total = Backoff::DEFAULT.total_secs(MAX_RETRIES);
        assert_eq!(total, 60 + 120 + 240 + 480 + 960 + 95 * 1_200);
        assert!(total >= MUST_COVER_SECS, "{total} s");
        // A day of margin for the dead-letter consumer and for messages that waited in a
        // backlog before their first delivery.
        assert!(
            total + 24 * 3600 <= QUEUE_RETENTION_SECS,
            "{total} s of retries leave too little of the queue's retention"
        );
    }

    #[test]
    fn delays_grow_until_the_cap_and_stay_within_cloudflares_limit() {
        for backoff in [
            Backoff::DEFAULT,
            Backoff::from_vars(Some("1"), Some("4")).expect("valid"),
            Backoff::from_vars(Some("7"), Some("43200")).expect("valid"),
        ] {
            let delays: Vec<u32> = (1..=MAX_RETRIES + 1)
                .map(|attempts| backoff.delay_secs(attempts))
                .collect();
            assert!(
                delays.windows(2).all(|pair| pair[0] <= pair[1]),
                "{delays:?}"
            );
            assert!(
                delays
                    .iter()
                    .all(|&delay| (1..=MAX_DELAY_SECS).contains(&delay))
            );
            assert_eq!(delays.last(), Some(&backoff.max_secs));
        }
    }

    #[test]
    fn schedules_from_variables() {
        let schedule = |first, max| Backoff {
            first_secs: first,
            max_secs: max,
        };
        let cases = [
            (None, None, Some(Backoff::DEFAULT)),
            (Some("1"), Some("4"), Some(schedule(1, 4))),
            (Some(" 10 "), None, Some(schedule(10, 1_200))),
            (Some("1"), Some("1"), Some(schedule(1, 1))),
            (Some("0"), Some("4"), None),
            (Some("5"), Some("4"), None),
            (Some("1"), Some("43201"), None),
            (Some("-1"), None, None),
            (Some("ten"), None, None),
        ];
        for (first, max, expected) in cases {
            assert_eq!(
                Backoff::from_vars(first, max).ok(),
                expected,
                "{first:?} {max:?}"
            );
        }
    }

    /// The schedule that counts is the deployed one: `wrangler.toml`'s retries and delays.
    #[test]
    fn wrangler_toml_retries_clicks_for_more_than_a_day_then_dead_letters_them() {
        let config = Wrangler::read();
        let clicks = config.consumer("kurz-clicks");
        assert_eq!(clicks.get("max_retries"), Some("100"));
        let backoff = Backoff::from_vars(
            config.var("CLICK_RETRY_DELAY_SECS"),
            config.var("CLICK_RETRY_MAX_DELAY_SECS"),
        )
        .expect("valid retry variables");
        assert_eq!(backoff, Backoff::DEFAULT);
        assert!(backoff.total_secs(MAX_RETRIES) >= MUST_COVER_SECS);

        let dead_letter = clicks
            .get("dead_letter_queue")
            .expect("the click queue has a dead-letter queue");
        assert_eq!(
            crate::parked::consumer_for(dead_letter),
            crate::parked::Consumer::DeadLetter
        );
        assert_eq!(
            crate::parked::consumer_for("kurz-clicks"),
            crate::parked::Consumer::Clicks
        );
        // The worker consumes its dead-letter queue too, retrying as long, with nowhere
        // further to send what still fails.
        let parking = config.consumer(dead_letter);
        assert_eq!(parking.get("max_retries"), Some("100"));
        assert_eq!(parking.get("dead_letter_queue"), None);
    }

    /// Just enough of TOML for `wrangler.toml`'s flat tables of `key = value` lines.
    struct Wrangler {
        /// Each table's header (`[vars]`, `[[queues.consumers]]`) and its keys and values.
        tables: Vec<(String, Vec<(String, String)>)>,
    }

    impl Wrangler {
        fn read() -> Self {
            let text = include_str!("../../wrangler.toml");
            let mut tables = vec![(String::new(), Vec::new())];
            for line in text.lines().map(str::trim) {
                if line.starts_with('[') {
                    tables.push((line.to_owned(), Vec::new()));
                } else if let Some((key, value)) = line.split_once('=')
                    && !line.starts_with('#')
                {
                    let value = value.trim().trim_matches('"').to_owned();
                    let table = tables.last_mut().expect("one table at least");
                    table.1.push((key.trim().to_owned(), value));
                }
            }
            Self { tables }
        }

        fn var(&self, name: &str) -> Option<&str> {
            self.table("[vars]", |_| true)
                .expect("wrangler.toml has [vars]")
                .get(name)
        }

        fn consumer(&self, queue: &str) -> Table<'_> {
            self.table("[[queues.consumers]]", |table| {
                table.get("queue") == Some(queue)
            })
            .unwrap_or_else(|| panic!("wrangler.toml has no consumer of {queue}"))
        }

        fn table(&self, header: &str, matches: impl Fn(&Table<'_>) -> bool) -> Option<Table<'_>> {
            self.tables
                .iter()
                .filter(|(name, _)| name == header)
                .map(|(_, pairs)| Table(pairs))
                .find(|table| matches(table))
        }
    }

    struct Table<'a>(&'a [(String, String)]);

    impl<'a> Table<'a> {
        fn get(&self, key: &str) -> Option<&'a str> {
            self.0
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.as_str())
        }
    }
}
