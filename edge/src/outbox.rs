//! Click events leave an isolate gathered into queue messages. The first click of a quiet
//! moment schedules a flush [`FLUSH_AFTER_MS`] later (kept alive by that request's
//! `waitUntil`); the clicks that arrive meanwhile join the same message, a JSON array of
//! events. A message that would outgrow [`MAX_MESSAGE_BYTES`] is sent at once.
//!
//! Under load this is one queue operation per couple of hundred visits instead of one per
//! visit: the queue bills per operation (per 64 KB of message), and each send costs the
//! isolate more than a couple of hundred events' JSON. The delay falls on the click, never on
//! the response.
//!
//! The consumer posts a batch's messages to the origin in requests of at most
//! [`INGEST_BYTES`] of events ([`posts`]).
//!
//! This is the bookkeeping and the message format only; `lib.rs` sends, and the consumers
//! read messages back with [`events_of`]: each event as the worker that made it wrote it,
//! unread. The origin reads them, so a worker of another release never drops an event it
//! cannot read, nor the message around it.

use serde_json::value::RawValue;

/// How long a click may wait for others to share its message. A second: an isolate seeing 30
/// redirects a second sends one message of 30 clicks, not 30 of one or two (the queue bills
/// per operation and takes at most 5,000 messages a second; docs/scaling.md), and the stats
/// do not need a click sooner.
pub const FLUSH_AFTER_MS: u64 = 1_000;
/// Largest message gathered: within the 64 KB a queue operation is billed by (Cloudflare
/// allows 128 KB). A bounded event's JSON is under 10 KiB even when every character needs
/// escaping, so any event fits.
pub const MAX_MESSAGE_BYTES: usize = 63 * 1024;
/// Most bytes of messages the consumer posts in one ingest request: the origin takes at most
/// 2 MiB, and events are posted as they came, so a quarter of it is left for the request's
/// own.
pub const INGEST_BYTES: usize = 1536 * 1024;

/// What the caller must do after adding an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Nothing: a flush is already scheduled and will take it.
    Queued,
    /// Schedule a flush in [`FLUSH_AFTER_MS`] that sends what [`Outbox::take`] returns then.
    ScheduleFlush,
    /// Send this full message now (the new event waits for the scheduled flush).
    Send(String),
}

/// The message being gathered. Invariant: while it holds an event, a flush is scheduled.
#[derive(Debug, Default)]
pub struct Outbox {
    /// `[` and the events so far, comma-separated; empty when nothing waits.
    message: String,
    flush_scheduled: bool,
}

impl Outbox {
    /// Adds one event, given as its JSON.
    pub fn add(&mut self, event_json: &str) -> Added {
        let full = (!self.message.is_empty()
            && self.message.len() + event_json.len() + 2 > MAX_MESSAGE_BYTES)
            .then(|| self.close());
        self.message
            .push(if self.message.is_empty() { '[' } else { ',' });
        self.message.push_str(event_json);
        if let Some(full) = full {
            return Added::Send(full);
        }
        if self.flush_scheduled {
            Added::Queued
        } else {
            self.flush_scheduled = true;
            Added::ScheduleFlush
        }
    }

    /// What the scheduled flush sends, if anything waits; the next event schedules a new flush.
    pub fn take(&mut self) -> Option<String> {
        self.flush_scheduled = false;
        (!self.message.is_empty()).then(|| self.close())
    }

    fn close(&mut self) -> String {
        let mut message = std::mem::take(&mut self.message);
        message.push(']');
        message
    }
}

/// Splits messages of these sizes, in their order, into runs of at most `budget` bytes each
/// (a message larger than `budget` alone): the ingest requests of a consumer's batch.
pub fn posts(sizes: &[usize], budget: usize) -> Vec<std::ops::Range<usize>> {
    let mut posts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && bytes + size > budget {
            posts.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        posts.push(start..sizes.len());
    }
    posts
}

/// Which of a request's messages (of `sizes` events each, in the order they were posted) hold
/// one of the events at the indices `unread` (of the request's events, the origin's answer):
/// those are retried, the others acknowledged. An index past the events is ignored.
pub fn holding(sizes: &[usize], unread: &[usize]) -> Vec<bool> {
    let mut holding = vec![false; sizes.len()];
    let mut ends = Vec::with_capacity(sizes.len());
    let mut end = 0;
    for size in sizes {
        end += size;
        ends.push(end);
    }
    for &index in unread {
        // The first message whose events end past the index.
        let message = ends.partition_point(|&end| end <= index);
        if let Some(holds) = holding.get_mut(message) {
            *holds = true;
        }
    }
    holding
}

/// A queue message's body, as JSON text.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// A message of this format: a JSON array of events, sent as text.
    Events(&'a str),
    /// A message of a worker older than this format, while its messages drain: one event,
    /// sent as a JSON object (here as its JSON text).
    Event(&'a str),
}

/// The events in a queue message, each one's JSON as it was written (the origin reads them:
/// see `shortlink::edge::IngestBatch`). Refused: a message that is no JSON array (for
/// [`Body::Events`]) or no JSON object (for [`Body::Event`]), which holds no events to pass on.
pub fn events_of(body: Body<'_>) -> Result<Vec<Box<RawValue>>, serde_json::Error> {
    match body {
        Body::Events(text) => serde_json::from_str(text),
        Body::Event(text) => {
            let event: Box<RawValue> = serde_json::from_str(text)?;
            if !event.get().starts_with('{') {
                return Err(serde::de::Error::custom("an event is a JSON object"));
            }
            Ok(vec![event])
        }
    }
}

#[cfg(test)]
mod tests {
    use shortlink::ShortCode;
    use shortlink::edge::{ClickEvent, ClickSource};
    use time::macros::datetime;

    use super::*;

    fn event(n: usize, referrer_len: usize) -> ClickEvent {
        ClickEvent {
            id: format!("event-{n}"),
            link_id: 7,
            code: ShortCode::parse("abc").expect("valid"),
            at: datetime!(2026-11-27 12:00 UTC),
            country: Some("DE".into()),
            referrer: Some("r".repeat(referrer_len)),
            user_agent: Some("agent".into()),
            qr: false,
            head: false,
            source: ClickSource::Edge,
            visitor: None,
            variant: None,
        }
    }

    fn json(event: &ClickEvent) -> String {
        serde_json::to_string(event).expect("serialises")
    }

    /// A message's events, read as the origin reads them.
    fn read(message: &str) -> Vec<ClickEvent> {
        let events = events_of(Body::Events(message)).expect("a JSON array");
        events
            .iter()
            .map(|event| serde_json::from_str(event.get()).expect("a click event"))
            .collect()
    }

    #[test]
    fn the_first_event_schedules_one_flush_that_takes_the_rest() {
        let mut outbox = Outbox::default();
        assert_eq!(outbox.take(), None);
        assert_eq!(outbox.add(&json(&event(1, 0))), Added::ScheduleFlush);
        assert_eq!(outbox.add(&json(&event(2, 0))), Added::Queued);
        let message = outbox.take().expect("two events wait");
        assert_eq!(read(&message), vec![event(1, 0), event(2, 0)]);
        assert_eq!(outbox.take(), None);
        assert_eq!(outbox.add(&json(&event(3, 0))), Added::ScheduleFlush);
    }

    #[test]
    fn messages_stay_small_and_every_event_leaves_once_in_order() {
        // Events of many sizes (the escaped worst case is the next test's).
        let sent: Vec<ClickEvent> = (0..2_000).map(|n| event(n, (n * 37) % 1024)).collect();
        let mut outbox = Outbox::default();
        let mut messages = Vec::new();
        let mut flushes = 0;
        for event in &sent {
            match outbox.add(&json(event)) {
                Added::Send(message) => messages.push(message),
                Added::ScheduleFlush => flushes += 1,
                Added::Queued => {}
            }
        }
        assert_eq!(
            flushes, 1,
            "one flush stays scheduled through full messages"
        );
        messages.extend(outbox.take());
        assert!(messages.len() > 10);
        let mut received = Vec::new();
        for message in messages {
            assert!(
                message.len() <= MAX_MESSAGE_BYTES,
                "{} bytes",
                message.len()
            );
            received.extend(read(&message));
        }
        assert_eq!(received, sent);
    }

    #[test]
    fn the_largest_bounded_event_fits_a_message_with_room_to_spare() {
        let mut worst = event(1, 0);
        worst.id = "\"".repeat(200);
        worst.user_agent = Some("\"".repeat(2_000));
        worst.referrer = Some("\u{1}".repeat(4_000));
        let worst = json(&worst.bounded());
        assert!(worst.len() < 10 * 1024, "{} bytes", worst.len());
        let mut outbox = Outbox::default();
        let mut messages = Vec::new();
        for _ in 0..10 {
            if let Added::Send(message) = outbox.add(&worst) {
                messages.push(message);
            }
        }
        messages.extend(outbox.take());
        let mut received = 0;
        for message in messages {
            assert!(
                message.len() <= MAX_MESSAGE_BYTES,
                "{} bytes",
                message.len()
            );
            received += events_of(Body::Events(&message)).expect("valid").len();
        }
        assert_eq!(received, 10);
    }

    #[test]
    fn a_full_batch_of_full_messages_is_posted_in_requests_the_origin_takes() {
        // The consumer's largest batch: 100 messages of the largest size.
        let sizes = vec![MAX_MESSAGE_BYTES; 100];
        let full = posts(&sizes, INGEST_BYTES);
        assert!(full.len() > 1);
        let mut next = 0;
        for post in &full {
            assert_eq!(post.start, next, "in order, none skipped");
            assert!(!post.is_empty());
            let bytes: usize = sizes[post.clone()].iter().sum();
            assert!(bytes <= INGEST_BYTES && INGEST_BYTES < 2 * 1024 * 1024);
            next = post.end;
        }
        assert_eq!(next, sizes.len());
        // Small batches stay one request; a message over the budget goes alone.
        assert_eq!(posts(&[10, 20, 30], 100), vec![0..3]);
        assert_eq!(posts(&[60, 50, 200, 10], 100), vec![0..1, 1..2, 2..3, 3..4]);
        assert_eq!(posts(&[50, 50, 50], 100), vec![0..2, 2..3]);
        assert!(posts(&[], 100).is_empty());
    }

    /// Events are passed on as they were written, unread: a click on a code a later release
    /// reserved (as 0024 reserved `report`), or an event of a newer worker with a value this
    /// one does not know, goes to the origin with the others of its message. Before, the
    /// whole message was dropped as not click events.
    #[test]
    fn events_go_on_as_written_whatever_this_release_reads() {
        let reserved = json(&event(1, 3)).replacen("\"code\":\"abc\"", "\"code\":\"Report\"", 1);
        let newer =
            json(&event(2, 3)).replacen("\"source\":\"edge\"", "\"source\":\"satellite\"", 1);
        let garbled = r#"{"id":1}"#;
        let message = format!("[{reserved}, {newer},{garbled}]");
        let events = events_of(Body::Events(&message)).expect("three events");
        let texts: Vec<&str> = events.iter().map(|event| event.get()).collect();
        assert_eq!(texts, [reserved.as_str(), newer.as_str(), garbled]);
        let single = events_of(Body::Event(&newer)).expect("an event");
        assert_eq!(single[0].get(), newer);
    }

    #[test]
    fn messages_holding_unread_events_are_the_ones_retried() {
        let cases: [(&[usize], &[usize], &[bool]); 7] = [
            (&[2, 3, 1], &[], &[false, false, false]),
            (&[2, 3, 1], &[0], &[true, false, false]),
            (&[2, 3, 1], &[1, 2], &[true, true, false]),
            (&[2, 3, 1], &[4], &[false, true, false]),
            (&[2, 3, 1], &[5], &[false, false, true]),
            (&[2, 0, 3], &[2], &[false, false, true]),
            (&[2, 3, 1], &[6, 99], &[false, false, false]),
        ];
        for (sizes, unread, holding) in cases {
            assert_eq!(
                super::holding(sizes, unread),
                holding,
                "{sizes:?} {unread:?}"
            );
        }
    }

    #[test]
    fn reads_single_events_from_older_workers_and_refuses_garbage() {
        let single = serde_json::to_string(&event(1, 3)).expect("serialises");
        let events = events_of(Body::Event(&single)).expect("an event");
        assert_eq!(
            serde_json::from_str::<ClickEvent>(events[0].get()).expect("read"),
            event(1, 3)
        );
        for bad in [
            Body::Events("not json"),
            Body::Events("{}"),
            Body::Events(&single),
            Body::Events("[1,"),
            Body::Event("null"),
            Body::Event("[]"),
            Body::Event("\"text\""),
        ] {
            assert!(events_of(bad).is_err(), "{bad:?}");
        }
    }
}
