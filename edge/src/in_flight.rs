//! Click limits at the edge: the clicks this isolate let through on each limited link that the
//! record it serves does not count yet ([`shortlink::redirect::Visit::clicks_in_flight`]).
//!
//! Only the origin counts a link's clicks exactly (`link_click_counts`, from ingest). The
//! record in KV says how many were counted when it was read (`rules.clicks`) and is replaced
//! when the link changes, and the origin changes it when the last click is counted (the link
//! is then `exhausted`). Between the two, each isolate adds the clicks it let through itself:
//! counted per (link, record version), so a newer record (which counts them) starts again
//! at zero.
//!
//! # How far a limit can be overshot
//!
//! - **Per isolate**: at most `max_clicks` clicks in all: each isolate lets through at most
//!   `max_clicks - rules.clicks` on the record it serves (while it remembers the link; see
//!   below).
//! - **Globally**: every isolate that serves the link does so on its own, until the origin's
//!   exhaustion reaches it: the clicks counted, queued (up to a second in an isolate's outbox,
//!   then the click queue's batch of up to 2 s), ingested (which counts them and exhausts
//!   the link), the outbox row delivered by sync to KV, and KV's propagation plus the
//!   memo's second. Clicks served meanwhile by other isolates, up to `max_clicks - clicks`
//!   each, go over the limit. While ingest fails (the origin down), that window lasts as long
//!   as the outage.
//!
//! The map is bounded ([`CAPACITY`] links, the least recently counted forgotten first): a
//! forgotten link starts again at zero, which can only let through more clicks, never fewer.

use std::collections::HashMap;

use shortlink::agent::Agent;
use shortlink::redirect::{Decision, LinkRecord};

/// Most links whose clicks one isolate tracks.
pub const CAPACITY: usize = 1_000;

/// Whether this answer uses up one of the link's limited clicks, as the origin counts them: a
/// redirect to the link's own destinations ([`Decision::takes_a_click`]), of a `GET` (not a
/// `HEAD`), by a person (not a bot), on a link with a click limit.
pub fn uses_a_click(
    record: &LinkRecord,
    decision: &Decision<'_>,
    head: bool,
    agent: &Agent,
) -> bool {
    record.rules().max_clicks.is_some() && decision.takes_a_click() && !head && !agent.bot
}

#[derive(Debug, Default)]
pub struct InFlight {
    /// link id → the record's version and counted clicks when counting began, the clicks let
    /// through since, and when last counted.
    links: HashMap<i64, Slot>,
    /// Counts calls of [`InFlight::counted`]: the order in which links were last counted.
    tick: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    version: u64,
    /// `rules.clicks` of the record when this slot began.
    base: u64,
    clicks: u64,
    touched: u64,
}

impl InFlight {
    /// Clicks let through on the record's link that the record does not count yet: those
    /// counted here on its version, less what the origin counted since this slot began (a
    /// record read again at the same version, after KV's expiry, carries the clicks the origin
    /// has meanwhile ingested, this isolate's among them).
    pub fn clicks(&self, link_id: i64, version: u64, record_clicks: u64) -> u64 {
        self.links
            .get(&link_id)
            .filter(|slot| slot.version == version)
            .map_or(0, |slot| {
                slot.clicks
                    .saturating_sub(record_clicks.saturating_sub(slot.base))
            })
    }

    /// One more click let through on `link_id` at `version` (whose record counted
    /// `record_clicks`). A newer version counts from zero; a click on an older one (a request
    /// that read the record before an update) is counted against the newer, erring towards
    /// fewer clicks.
    pub fn counted(&mut self, link_id: i64, version: u64, record_clicks: u64) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.links.get_mut(&link_id) {
            if version > slot.version {
                *slot = Slot {
                    version,
                    base: record_clicks,
                    clicks: 0,
                    touched: tick,
                };
            }
            slot.clicks = slot.clicks.saturating_add(1);
            slot.touched = tick;
            return;
        }
        if self.links.len() >= CAPACITY {
            let oldest = self
                .links
                .iter()
                .min_by_key(|(_, slot)| slot.touched)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.links.remove(&oldest);
            }
        }
        self.links.insert(
            link_id,
            Slot {
                version,
                base: record_clicks,
                clicks: 1,
                touched: tick,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use shortlink::agent::classify;
    use shortlink::redirect::{Decision, LinkRecord, Rules, Visit, decide};
    use shortlink::rules::ClickLimit;
    use shortlink::{Destination, RedirectStatus};
    use time::macros::datetime;

    use super::*;

    #[test]
    fn clicks_the_origin_counted_meanwhile_are_not_counted_twice() {
        let mut in_flight = InFlight::default();
        // The record said 2 counted; this isolate lets 5 through.
        for _ in 0..5 {
            in_flight.counted(1, 7, 2);
        }
        assert_eq!(in_flight.clicks(1, 7, 2), 5);
        // Read again at the same version after the origin ingested 3 of them.
        assert_eq!(in_flight.clicks(1, 7, 5), 2);
        assert_eq!(in_flight.clicks(1, 7, 9), 0);
    }

    #[test]
    fn counts_per_link_and_version() {
        let mut in_flight = InFlight::default();
        assert_eq!(in_flight.clicks(1, 5, 0), 0);
        in_flight.counted(1, 5, 0);
        in_flight.counted(1, 5, 0);
        in_flight.counted(2, 9, 0);
        assert_eq!(in_flight.clicks(1, 5, 0), 2);
        assert_eq!(in_flight.clicks(2, 9, 0), 1);
        // A newer record counts the clicks it was read after: this isolate's start again.
        assert_eq!(in_flight.clicks(1, 6, 0), 0);
        in_flight.counted(1, 6, 0);
        assert_eq!(in_flight.clicks(1, 6, 0), 1);
        assert_eq!(in_flight.clicks(1, 5, 0), 0);
        // A late click on the older record counts against the newer one.
        in_flight.counted(1, 5, 0);
        assert_eq!(in_flight.clicks(1, 6, 0), 2);
    }

    #[test]
    fn stays_bounded_and_forgets_the_least_recently_counted() {
        let mut in_flight = InFlight::default();
        in_flight.counted(0, 1, 0);
        for id in 1..10_000 {
            in_flight.counted(id, 1, 0);
            // The hot link is counted all along and is never the oldest.
            in_flight.counted(0, 1, 0);
            assert!(in_flight.len() <= CAPACITY);
        }
        assert_eq!(in_flight.len(), CAPACITY);
        assert_eq!(in_flight.clicks(0, 1, 0), 10_000);
        assert_eq!(in_flight.clicks(9_999, 1, 0), 1);
        assert_eq!(in_flight.clicks(1, 1, 0), 0, "forgotten");
    }

    #[test]
    fn only_a_persons_get_of_a_limited_link_uses_a_click() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let limited = |max: u64| {
            LinkRecord::new(
                3,
                7,
                Destination::parse("https://example.com/").expect("valid"),
                RedirectStatus::Found,
                None,
            )
            .with_rules(Rules {
                max_clicks: ClickLimit::new(max).ok(),
                fallback: Destination::parse("https://sold-out.example/").ok(),
                ..Rules::default()
            })
        };
        let person = classify(Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"));
        let bot = classify(Some("Slackbot-LinkExpanding 1.0"));
        let visit = |clicks_in_flight| Visit {
            now,
            country: None,
            agent: person,
            accept_language: None,
            query: None,
            visitor: None,
            unlocked: false,
            clicks_in_flight,
        };
        let open = limited(5);
        let redirect = decide(&open, &visit(0));
        assert!(uses_a_click(&open, &redirect, false, &person));
        assert!(!uses_a_click(&open, &redirect, true, &person), "HEAD");
        assert!(!uses_a_click(&open, &redirect, false, &bot), "a bot");
        let fallback = decide(&open, &visit(5));
        assert!(matches!(fallback, Decision::Fallback { .. }));
        assert!(
            !uses_a_click(&open, &fallback, false, &person),
            "the fallback"
        );
        let unlimited = LinkRecord {
            rules: None,
            ..open.clone()
        };
        assert!(
            !uses_a_click(&unlimited, &redirect, false, &person),
            "no limit"
        );
    }

    /// What the edge does with a record of `max` clicks of which `counted` were counted: an
    /// isolate lets through exactly the rest, then answers 410.
    #[test]
    fn an_isolate_lets_through_at_most_the_clicks_left() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let record = LinkRecord::new(
            3,
            7,
            Destination::parse("https://example.com/").expect("valid"),
            RedirectStatus::Found,
            None,
        )
        .with_rules(Rules {
            max_clicks: Some(ClickLimit::new(5).expect("valid")),
            clicks: 2,
            ..Rules::default()
        });
        let mut in_flight = InFlight::default();
        let mut redirects = 0;
        for _ in 0..10 {
            let visit = Visit {
                now,
                country: None,
                agent: classify(Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0")),
                accept_language: None,
                query: None,
                visitor: None,
                unlocked: false,
                clicks_in_flight: in_flight.clicks(record.link_id, record.version, 0),
            };
            let decision = decide(&record, &visit);
            if decision.takes_a_click() {
                redirects += 1;
                in_flight.counted(record.link_id, record.version, 0);
            } else {
                assert_eq!(decision, Decision::Expired);
            }
        }
        assert_eq!(redirects, 3);
    }
}
