//! Clicks the click queue gave up on: which queue is the dead-letter queue, and where its
//! consumer parks what the origin still did not take, for an operator to replay.
//!
//! Parked messages live in the `LINKS` KV namespace under [`PREFIX`], not in a namespace of
//! their own. The dead-letter consumer is the last line of defence: a second binding that a
//! deployment forgot to create would make it fail, and what it fails on for its retries is
//! dropped. The prefix keeps them apart from link entries (`link:`) and sync nonces
//! (`nonce:`). A parked entry has no expiry: it stays until a replay takes it.

/// The KV key prefix of parked click messages.
pub const PREFIX: &str = "parked:";
/// Most parked messages one replay request moves back onto the click queue: each costs a
/// KV read, a queue send and a KV delete, well within a request's limits.
pub const REPLAY_MOST: usize = 25;
/// Most listed keys one replay request reads. A key listed but gone (KV's listing lags its
/// deletes by up to a minute) is skipped, so a replay run right after another makes progress.
pub const REPLAY_READ_MOST: usize = 2 * REPLAY_MOST;
/// Keys one replay request lists (KV's largest page): how it counts what remains.
pub const REPLAY_LIST_LIMIT: u64 = 1_000;

/// Most pages of keys one replay request lists looking for keys past its `after`: KV's
/// listing may still show thousands it deleted (a fast replay behind a minute's lag).
pub const REPLAY_LIST_PAGES: usize = 8;

/// The keys of a listed page that a replay request started after `after` reads: those past
/// it (keys sort by their time, then the message), in order.
pub fn past<'a>(listed: &'a [String], after: Option<&'a str>) -> &'a [String] {
    let skipped = after.map_or(0, |after| {
        listed.partition_point(|name| name.as_str() <= after)
    });
    &listed[skipped..]
}

/// What a replay request reports as remaining after reading `read` of the `listed` keys of
/// one listing page: a lower bound, never 0 while the listing has more pages. (KV may answer
/// a page with fewer keys than asked for, even none, and more to come.)
pub fn remaining(listed: usize, read: usize, list_complete: bool) -> usize {
    let unread = listed.saturating_sub(read);
    if list_complete { unread } else { unread.max(1) }
}

/// Which of the worker's two consumers a batch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// The click queue: deliver to the origin, retry on the back-off schedule.
    Clicks,
    /// Its dead-letter queue: deliver once more, else park in KV.
    DeadLetter,
}

/// The consumer for a batch from `queue`. Dead-letter queues are named `…-dlq` (a test holds
/// `wrangler.toml` to it), so a deployment that renames its queues keeps the rule; a batch of
/// the dead-letter queue taken for the click queue would be dropped after its retries.
pub fn consumer_for(queue: &str) -> Consumer {
    if queue.ends_with("-dlq") {
        Consumer::DeadLetter
    } else {
        Consumer::Clicks
    }
}

/// The KV key of a parked message: its send time (Unix milliseconds, zero-padded so that keys,
/// and so a replay, go oldest first), then the queue's message id. The id is the same on
/// every delivery of the message, so parking it twice writes one entry. Cloudflare's ids are
/// hex digits; anything else is replaced, so a key stays a short plain string.
pub fn key(sent_at_ms: u64, message_id: &str) -> String {
    let id: String = message_id
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{PREFIX}{sent_at_ms:015}:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_reads_only_the_keys_past_where_the_last_request_stopped() {
        let listed: Vec<String> = [
            "parked:001:a",
            "parked:002:b",
            "parked:002:c",
            "parked:003:a",
        ]
        .map(str::to_owned)
        .into();
        // (after, the first key read, how many)
        let cases = [
            (None, Some("parked:001:a"), 4),
            (Some("parked:002:b"), Some("parked:002:c"), 2),
            (Some("parked:000:z"), Some("parked:001:a"), 4),
            (Some("parked:003:a"), None, 0),
            (Some("parked:009:a"), None, 0),
        ];
        for (after, first, count) in cases {
            let read = past(&listed, after);
            assert_eq!(
                (read.first().map(String::as_str), read.len()),
                (first, count),
                "{after:?}"
            );
        }
    }

    #[test]
    fn remaining_is_never_0_while_the_listing_has_more_pages() {
        // (listed, read, list complete, remaining)
        let cases = [
            (0, 0, true, 0),
            (30, 30, true, 0),
            (30, 25, true, 5),
            (1_000, 50, true, 950),
            (1_000, 50, false, 950),
            // A short page, all of it read, more pages behind it.
            (30, 30, false, 1),
            (0, 0, false, 1),
        ];
        for (listed, read, complete, expected) in cases {
            assert_eq!(
                remaining(listed, read, complete),
                expected,
                "{listed} {read} {complete}"
            );
        }
    }

    #[test]
    fn keys_name_the_time_and_the_message() {
        let cases = [
            (1_800_000_000_123, "0f3a9c", "parked:001800000000123:0f3a9c"),
            (0, "abc-DEF_9", "parked:000000000000000:abc-DEF_9"),
            (5, "a/b c:d\u{e9}", "parked:000000000000005:a_b_c_d_"),
            (5, "", "parked:000000000000005:"),
        ];
        for (at, id, expected) in cases {
            assert_eq!(key(at, id), expected);
        }
        let long = key(1, &"f".repeat(10_000));
        assert_eq!(long.len(), PREFIX.len() + 15 + 1 + 128);
    }

    #[test]
    fn keys_sort_by_time_then_message() {
        let times = [
            0,
            9,
            10,
            999,
            1_700_000_000_000,
            1_800_000_000_000,
            99_999_999_999_999,
        ];
        let keys: Vec<String> = times.iter().map(|&at| key(at, "id")).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert!(key(5, "a") < key(5, "b"));
        assert!(key(5, "zzz") < key(6, "a"));
    }

    #[test]
    fn the_dead_letter_queue_is_told_by_its_name() {
        let cases = [
            ("kurz-clicks", Consumer::Clicks),
            ("kurz-clicks-dlq", Consumer::DeadLetter),
            ("staging-clicks-dlq", Consumer::DeadLetter),
            ("dlq-clicks", Consumer::Clicks),
            ("", Consumer::Clicks),
        ];
        for (queue, expected) in cases {
            assert_eq!(consumer_for(queue), expected, "{queue}");
        }
    }
}
