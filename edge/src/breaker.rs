//! A circuit breaker for the origin: after a run of failures the edge stops asking the origin
//! for a while and answers 503 at once, so a dead origin costs visitors milliseconds rather
//! than a timeout each. One probe is let through when the pause ends.
//!
//! It holds no clock: callers pass the time in milliseconds.

/// Failures in a row that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
/// How long the circuit stays open before one probe request is let through.
const OPEN_FOR_MS: u64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Breaker {
    #[default]
    Closed,
    /// Counting failures in a row, not yet enough to open.
    Failing { failures: u32 },
    /// Refusing until `until_ms`.
    Open { until_ms: u64 },
    /// One probe is out; the others are refused until it answers, or until `until_ms` if it
    /// never does.
    Probing { until_ms: u64 },
}

impl Breaker {
    /// Whether a request may go to the origin now. `probe_for_ms` is how long a probe may
    /// stay unanswered before another is let through: longer than a resolve may take (its
    /// timeout, [`crate::resolve::Origin::give_up_after_ms`]). A probe whose visitor went away
    /// may never report (the runtime drops the request's work without ending it); without
    /// this the circuit would stay shut for the isolate's life.
    pub fn allow(&mut self, now_ms: u64, probe_for_ms: u64) -> bool {
        match *self {
            Self::Closed | Self::Failing { .. } => true,
            Self::Open { until_ms } | Self::Probing { until_ms } if now_ms >= until_ms => {
                *self = Self::Probing {
                    until_ms: now_ms + probe_for_ms,
                };
                true
            }
            Self::Open { .. } | Self::Probing { .. } => false,
        }
    }

    pub fn succeeded(&mut self) {
        *self = Self::Closed;
    }

    pub fn failed(&mut self, now_ms: u64) {
        let failures = match *self {
            Self::Failing { failures } => failures + 1,
            Self::Closed => 1,
            // A failed probe, or failures of requests let through before opening.
            Self::Probing { .. } | Self::Open { .. } => FAILURES_TO_OPEN,
        };
        *self = if failures >= FAILURES_TO_OPEN {
            Self::Open {
                until_ms: now_ms + OPEN_FOR_MS,
            }
        } else {
            Self::Failing { failures }
        };
    }

    /// Seconds a refused caller should wait (for `Retry-After`).
    pub fn retry_after_secs(&self, now_ms: u64) -> u64 {
        match *self {
            Self::Open { until_ms } => until_ms.saturating_sub(now_ms).div_ceil(1000).max(1),
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolve's timeout of 2 s and a margin.
    const PROBE_FOR_MS: u64 = 3_000;

    impl Breaker {
        fn allows(&mut self, now_ms: u64) -> bool {
            self.allow(now_ms, PROBE_FOR_MS)
        }
    }

    #[test]
    fn opens_after_failures_and_probes_after_the_pause() {
        let mut breaker = Breaker::default();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(breaker.allows(0));
            breaker.failed(0);
        }
        assert!(breaker.allows(0), "not open before the threshold");
        breaker.failed(1_000);
        assert!(!breaker.allows(1_000));
        assert!(!breaker.allows(1_000 + OPEN_FOR_MS - 1));
        assert_eq!(breaker.retry_after_secs(1_000), OPEN_FOR_MS / 1000);

        assert!(
            breaker.allows(1_000 + OPEN_FOR_MS),
            "one probe after the pause"
        );
        assert!(
            !breaker.allows(1_000 + OPEN_FOR_MS),
            "only one probe at a time"
        );
        breaker.failed(1_000 + OPEN_FOR_MS);
        assert!(
            !breaker.allows(1_000 + OPEN_FOR_MS + 1),
            "a failed probe reopens"
        );

        assert!(breaker.allows(1_000 + 2 * OPEN_FOR_MS));
        breaker.succeeded();
        assert!(breaker.allows(1_000 + 2 * OPEN_FOR_MS));
        assert_eq!(breaker, Breaker::Closed);
    }

    #[test]
    fn a_probe_that_never_answers_is_replaced() {
        let mut breaker = Breaker::Open { until_ms: 1_000 };
        assert!(breaker.allows(1_000), "the probe");
        // Its visitor went away: neither succeeded nor failed is ever called.
        assert!(
            !breaker.allows(1_000 + PROBE_FOR_MS - 1),
            "one probe at a time"
        );
        assert!(
            breaker.allows(1_000 + PROBE_FOR_MS),
            "another once the first is overdue"
        );
        assert!(!breaker.allows(1_000 + PROBE_FOR_MS));
        breaker.succeeded();
        assert_eq!(breaker, Breaker::Closed);
    }

    /// A probe may take as long as the resolve's timeout (up to 30 s by `RESOLVE_TIMEOUT_MS`):
    /// no second probe while the first may still be waiting for a hung origin.
    #[test]
    fn the_probe_waits_as_long_as_a_resolve_may() {
        let mut breaker = Breaker::Open { until_ms: 1_000 };
        assert!(breaker.allow(1_000, 31_000), "the probe");
        assert!(!breaker.allow(1_000 + 30_999, 31_000));
        assert!(breaker.allow(1_000 + 31_000, 31_000));
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut breaker = Breaker::default();
        breaker.failed(0);
        breaker.failed(0);
        breaker.succeeded();
        breaker.failed(0);
        breaker.failed(0);
        assert!(breaker.allows(0));
    }
}
