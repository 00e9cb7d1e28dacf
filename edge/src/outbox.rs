//! Click events leave an isolate in batches: the first click of a quiet moment schedules a
//! flush [`FLUSH_AFTER_MS`] later (kept alive by that request's `waitUntil`), and the clicks
//! that arrive meanwhile ride along in one `sendBatch`. A full batch is sent at once. Under
//! load this is one queue call per batch instead of one per visit, for a few milliseconds of
//! delay on the click, never on the response.
//!
//! This is the bookkeeping only; `lib.rs` does the sending.

/// How long a click may wait for others to share its queue call.
pub const FLUSH_AFTER_MS: u64 = 20;
/// Most events in one batch. A queue batch may hold 100 messages and 256 KB; a bounded event
/// is at most ~3.5 KB as the runtime serialises it (1.6 KB of capped text, two bytes per
/// character at worst), so 50 always fit.
pub const MAX_BATCH: usize = 50;

/// What the caller must do after adding an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Added<T> {
    /// Nothing: a flush is already scheduled and will take it.
    Queued,
    /// Schedule a flush in [`FLUSH_AFTER_MS`] that sends what [`Outbox::take`] returns then.
    ScheduleFlush,
    /// Send this full batch now.
    Send(Vec<T>),
}

#[derive(Debug)]
pub struct Outbox<T> {
    events: Vec<T>,
    flush_scheduled: bool,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            flush_scheduled: false,
        }
    }
}

impl<T> Outbox<T> {
    pub fn add(&mut self, event: T) -> Added<T> {
        self.events.push(event);
        if self.events.len() >= MAX_BATCH {
            // The scheduled flush, if any, stays scheduled and takes whatever comes next.
            return Added::Send(std::mem::take(&mut self.events));
        }
        if self.flush_scheduled {
            Added::Queued
        } else {
            self.flush_scheduled = true;
            Added::ScheduleFlush
        }
    }

    /// What the scheduled flush sends; the next event schedules a new flush.
    pub fn take(&mut self) -> Vec<T> {
        self.flush_scheduled = false;
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_schedules_one_flush_that_takes_the_rest() {
        let mut outbox = Outbox::default();
        assert_eq!(outbox.add(1), Added::ScheduleFlush);
        assert_eq!(outbox.add(2), Added::Queued);
        assert_eq!(outbox.add(3), Added::Queued);
        assert_eq!(outbox.take(), vec![1, 2, 3]);
        assert_eq!(outbox.take(), Vec::<i32>::new());
        assert_eq!(outbox.add(4), Added::ScheduleFlush);
    }

    #[test]
    fn a_full_batch_is_sent_at_once_and_every_event_leaves_exactly_once() {
        let mut outbox = Outbox::default();
        let mut sent = Vec::new();
        let mut flushes = 0;
        for event in 0..(3 * MAX_BATCH + 7) {
            match outbox.add(event) {
                Added::Send(batch) => {
                    assert_eq!(batch.len(), MAX_BATCH);
                    sent.extend(batch);
                }
                Added::ScheduleFlush => flushes += 1,
                Added::Queued => {}
            }
        }
        assert_eq!(flushes, 1, "one flush stays scheduled through full batches");
        sent.extend(outbox.take());
        assert_eq!(sent, (0..(3 * MAX_BATCH + 7)).collect::<Vec<_>>());
    }
}
