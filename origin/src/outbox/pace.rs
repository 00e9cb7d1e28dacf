//! How the deliverer goes on after each attempt: when to try again, how many codes to send,
//! and which codes the edge refused alone are set aside, sent again, or parked. No I/O, so it
//! is tested outcome by outcome.

use std::time::Duration;

use super::MAX_CODES;

/// Codes refused alone in a row, with no batch taken since, after which delivery backs off
/// (the edge may be refusing every change, say until its upgrade). They stay set aside through
/// the wait, so the batch after it leaves them out: were they dropped, it would start again at
/// the head of the outbox, halve its way down to the same codes and never reach the changes
/// behind them.
const MAX_SUSPECTS: usize = 8;
/// Most codes set aside at once: with this many refused alone and no batch taken, the edge is
/// taken to refuse every change (nothing is parked; delivery backs off and starts over).
const MAX_SET_ASIDE: usize = 8 * MAX_SUSPECTS;
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one delivery attempt did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Another origin is delivering.
    Busy,
    /// Nothing to deliver (but set-aside codes).
    Idle,
    /// The edge took the changes of this many outbox rows.
    Delivered(usize),
    /// The edge refused a batch of this many codes for good: fewer are sent next time.
    Refused { codes: usize },
    /// The edge refused one code's change sent alone, for good.
    RefusedAlone(Suspect),
    /// The edge did not answer a batch of this many codes in time (each is a read and a write
    /// of KV there): fewer are sent, after the backoff. Sent again whole, it would time out
    /// again for ever, each attempt maybe still running beside the next.
    TimedOut { codes: usize },
    /// Codes whose rows cannot make a record were parked.
    Parked,
    /// Live links were given new versions (see [`reversion`]): to be read and sent again.
    Reversioned,
}

/// A code the edge refused alone: sent alone again once the edge takes another batch, and
/// parked if refused again.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Suspect {
    pub(super) code: String,
    /// Its outbox rows that were sent.
    pub(super) ids: Vec<i64>,
    pub(super) refusal: String,
}

/// When the deliverer tries next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    Now,
    /// When woken by a link write, or after [`super::POLL`].
    Poll,
    After(Duration),
}

/// What the deliverer carries from one attempt to the next.
#[derive(Debug)]
pub(super) struct Pace {
    backoff: Duration,
    /// Codes in the next batch. Halved on every batch the edge refuses and grown by a quarter
    /// on every one it takes (doubling would send again the size just refused, every other
    /// time), until the outbox is empty.
    pub(super) max_codes: usize,
    /// Codes refused alone since the edge last took a batch, left out of the batches.
    suspects: Vec<Suspect>,
    /// Suspects to send alone once more, now that the edge took a batch: one refused again
    /// is parked, since the edge demonstrably takes other changes; one taken was refused only
    /// because the edge refused everything then (say, until its upgrade).
    pub(super) recheck: Vec<Suspect>,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            backoff: MIN_BACKOFF,
            max_codes: MAX_CODES,
            suspects: Vec::new(),
            recheck: Vec::new(),
        }
    }
}

impl Pace {
    pub(super) fn set_aside(&self) -> Vec<String> {
        self.suspects.iter().map(|s| s.code.clone()).collect()
    }

    /// Takes in what an attempt did: when to try next, and the codes to park now.
    pub(super) fn settle(&mut self, outcome: anyhow::Result<Outcome>) -> (Next, Vec<Suspect>) {
        if !self.recheck.is_empty() {
            return self.settle_recheck(outcome);
        }
        let next = match outcome {
            Ok(Outcome::Busy) => {
                // The other deliverer finds the refused codes by itself.
                self.suspects.clear();
                self.max_codes = MAX_CODES;
                Next::Poll
            }
            Ok(Outcome::Idle) if self.suspects.is_empty() => {
                self.backoff = MIN_BACKOFF;
                self.max_codes = MAX_CODES;
                Next::Poll
            }
            Ok(Outcome::Idle) => {
                // Nothing else to send that could show that the edge takes other changes.
                tracing::error!(
                    codes = ?self.set_aside(),
                    refusal = %self.suspects[0].refusal,
                    retry_in = ?self.backoff,
                    "the edge refuses these codes' changes and took nothing since: kept in the outbox, not parked"
                );
                // Sent again after the wait: the edge may have refused them only because it
                // refused everything then.
                self.suspects.clear();
                self.back_off()
            }
            Ok(Outcome::Delivered(rows)) => {
                tracing::debug!(rows, "link changes delivered to the edge");
                self.backoff = MIN_BACKOFF;
                self.max_codes = (self.max_codes + self.max_codes.div_ceil(4)).min(MAX_CODES);
                // The edge takes other changes: whether it still refuses these is worth a
                // request each.
                self.recheck = std::mem::take(&mut self.suspects);
                Next::Now
            }
            Ok(Outcome::Refused { codes }) => {
                self.max_codes = (codes / 2).max(1);
                Next::Now
            }
            Ok(Outcome::RefusedAlone(suspect)) => {
                tracing::warn!(
                    code = suspect.code,
                    refusal = %suspect.refusal,
                    "the edge refused this code's change: set aside until it takes another"
                );
                self.suspects.push(suspect);
                if self.suspects.len() >= MAX_SET_ASIDE {
                    tracing::error!(
                        codes = self.suspects.len(),
                        refusal = %self.suspects[0].refusal,
                        retry_in = ?self.backoff,
                        "the edge refuses every change it is sent (a worker older than this origin?): nothing parked"
                    );
                    self.suspects.clear();
                    self.back_off()
                } else if self.suspects.len().is_multiple_of(MAX_SUSPECTS) {
                    tracing::error!(
                        codes = self.suspects.len(),
                        refusal = %self.suspects[0].refusal,
                        retry_in = ?self.backoff,
                        "the edge refused these codes' changes one by one and took nothing since: kept aside, the changes behind them are tried after the backoff"
                    );
                    self.back_off()
                } else {
                    Next::Now
                }
            }
            Ok(Outcome::Parked | Outcome::Reversioned) => Next::Now,
            Ok(Outcome::TimedOut { codes }) => {
                self.max_codes = (codes / 2).max(1);
                self.wait()
            }
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), retry_in = ?self.backoff, "edge sync failed");
                self.wait()
            }
        };
        (next, Vec::new())
    }

    /// Takes in what sending the first of [`Self::recheck`] alone did.
    fn settle_recheck(&mut self, outcome: anyhow::Result<Outcome>) -> (Next, Vec<Suspect>) {
        match outcome {
            Ok(Outcome::RefusedAlone(suspect)) => {
                self.recheck.remove(0);
                (Next::Now, vec![suspect])
            }
            // Taken, gone, or (one code) not to be refused in halves.
            Ok(
                Outcome::Delivered(_) | Outcome::Idle | Outcome::Parked | Outcome::Refused { .. },
            ) => {
                self.recheck.remove(0);
                (Next::Now, Vec::new())
            }
            Ok(Outcome::Reversioned) => (Next::Now, Vec::new()),
            Ok(Outcome::Busy) => {
                self.recheck.clear();
                (Next::Poll, Vec::new())
            }
            // One code, not answered in time: as any failure, after the backoff.
            Ok(Outcome::TimedOut { .. }) => (self.wait(), Vec::new()),
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), retry_in = ?self.backoff, "edge sync failed");
                (self.wait(), Vec::new())
            }
        }
    }

    /// Keeps every row (and the codes set aside) and sends a full batch after the backoff.
    fn back_off(&mut self) -> Next {
        self.max_codes = MAX_CODES;
        self.wait()
    }

    /// The next attempt after the backoff, which doubles for the one after.
    fn wait(&mut self) -> Next {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Next::After(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> anyhow::Result<Outcome> {
        Ok(Outcome::RefusedAlone(Suspect {
            code: code.to_owned(),
            ids: vec![1],
            refusal: "edge answered 400".to_owned(),
        }))
    }

    #[test]
    fn a_batch_the_edge_did_not_take_in_time_is_sent_smaller_after_the_backoff() {
        let mut pace = Pace::default();
        let (next, _) = pace.settle(Ok(Outcome::TimedOut { codes: MAX_CODES }));
        assert_eq!(next, Next::After(MIN_BACKOFF));
        assert_eq!(pace.max_codes, MAX_CODES / 2);
        let (next, _) = pace.settle(Ok(Outcome::TimedOut {
            codes: MAX_CODES / 2,
        }));
        assert_eq!(next, Next::After(MIN_BACKOFF * 2));
        assert_eq!(pace.max_codes, MAX_CODES / 4);
        // Taken: the backoff ends, and the batches grow again.
        pace.settle(Ok(Outcome::Delivered(MAX_CODES / 4)));
        assert_eq!(pace.backoff, MIN_BACKOFF);
        assert!(pace.max_codes > MAX_CODES / 4);
    }

    #[test]
    fn a_code_refused_alone_is_parked_only_once_the_edge_takes_another_batch() {
        let mut pace = Pace::default();
        assert_eq!(pace.settle(Ok(Outcome::Refused { codes: 2 })).0, Next::Now);
        assert_eq!(pace.max_codes, 1);
        let (next, parked) = pace.settle(refused("poison"));
        assert_eq!((next, parked), (Next::Now, Vec::new()));
        assert_eq!(pace.set_aside(), ["poison"]);
        let (next, parked) = pace.settle(Ok(Outcome::Delivered(3)));
        assert_eq!((next, parked), (Next::Now, Vec::new()));
        assert!(pace.set_aside().is_empty());
        // Sent alone once more, now that the edge took a batch: refused again, so parked.
        assert_eq!(pace.recheck.len(), 1);
        let (next, parked) = pace.settle(refused("poison"));
        assert_eq!(next, Next::Now);
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].code, "poison");
        assert!(pace.recheck.is_empty());
    }

    #[test]
    fn codes_refused_while_the_edge_refused_everything_are_sent_again_once_it_takes_some() {
        let mut pace = Pace::default();
        pace.settle(refused("a"));
        pace.settle(refused("b"));
        // The worker was upgraded: the next batch is taken, and so are a and b.
        pace.settle(Ok(Outcome::Delivered(1)));
        for _ in 0..2 {
            let (next, parked) = pace.settle(Ok(Outcome::Delivered(1)));
            assert_eq!((next, parked), (Next::Now, Vec::new()));
        }
        assert!(pace.recheck.is_empty());
    }

    #[test]
    fn codes_refused_in_a_row_stay_aside_through_the_backoff_so_the_changes_behind_them_go() {
        let mut pace = Pace::default();
        let poison: Vec<String> = (1..=MAX_SUSPECTS).map(|i| format!("p{i}")).collect();
        assert_eq!(
            pace.settle(Ok(Outcome::Refused { codes: 200 })).0,
            Next::Now
        );
        for (i, code) in poison.iter().enumerate() {
            let (next, parked) = pace.settle(refused(code));
            assert!(parked.is_empty());
            if i + 1 < MAX_SUSPECTS {
                assert_eq!(next, Next::Now);
            } else {
                assert_eq!(next, Next::After(MIN_BACKOFF));
            }
        }
        // The probe after the wait is a full batch that leaves them out.
        assert_eq!(pace.set_aside(), poison);
        assert_eq!(pace.max_codes, MAX_CODES);
        // The edge takes it: each is sent alone again, and parked when refused again.
        assert_eq!(pace.settle(Ok(Outcome::Delivered(5))).0, Next::Now);
        assert!(pace.set_aside().is_empty());
        let mut all_parked = Vec::new();
        for code in &poison {
            assert_eq!(
                pace.recheck.first().map(|s| s.code.as_str()),
                Some(code.as_str())
            );
            let (next, parked) = pace.settle(refused(code));
            assert_eq!(next, Next::Now);
            all_parked.extend(parked.into_iter().map(|s| s.code));
        }
        assert_eq!(all_parked, poison);
        assert!(pace.recheck.is_empty());
    }

    #[test]
    fn an_edge_that_refuses_everything_gets_nothing_parked() {
        let mut pace = Pace::default();
        let mut waits = Vec::new();
        for round in 0..2 {
            for i in 0..MAX_SET_ASIDE {
                let (next, parked) = pace.settle(refused(&format!("c{round}-{i}")));
                assert!(parked.is_empty());
                assert!(pace.set_aside().len() <= MAX_SET_ASIDE);
                if let Next::After(wait) = next {
                    waits.push(wait);
                }
            }
            assert!(
                pace.set_aside().is_empty(),
                "starts over once the bound is reached"
            );
        }
        let per_round = MAX_SET_ASIDE / MAX_SUSPECTS;
        assert_eq!(waits.len(), 2 * per_round);
        assert_eq!(waits[0], MIN_BACKOFF);
        assert_eq!(waits[1], MIN_BACKOFF * 2);
        assert_eq!(waits.last(), Some(&MAX_BACKOFF));

        // Refused alone, then nothing else to send: kept, not parked.
        let (next, parked) = pace.settle(refused("lonely"));
        assert_eq!(next, Next::Now);
        assert!(parked.is_empty());
        let (next, parked) = pace.settle(Ok(Outcome::Idle));
        assert!(matches!(next, Next::After(_)), "{next:?}");
        assert!(parked.is_empty());
        assert!(pace.set_aside().is_empty());
    }
}
