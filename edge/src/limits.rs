//! Limits on what visitors may cost: per client address, with Cloudflare's Rate Limiting
//! bindings (counted across the data centre, configured in `wrangler.toml`), and per isolate,
//! a bound on the requests it sends to the origin to resolve codes ([`OriginGate`]).
//!
//! - `VISIT_LIMIT`: every visit (a redirect, a preview, a password answer) of one address.
//!   Over it: 429 with `Retry-After`, nothing looked up, no click.
//! - `ORIGIN_LIMIT`: the visits of one address that need the origin (a code neither the memo
//!   nor KV knows; the report form). Over it: 429 without asking the origin. A scan of
//!   random codes from one address thus costs the origin at most this many resolves per
//!   period, and KV nothing more than the reads.
//! - [`OriginGate`]: whatever the addresses, one isolate has at most
//!   [`MAX_RESOLVES_IN_FLIGHT`] resolves under way and starts at most
//!   [`MAX_RESOLVES_PER_SECOND`] a second. Beyond that a miss is answered 503 with
//!   `Retry-After: 1` ("try again shortly"), not 404: the code may be a link created a moment
//!   ago whose sync has not reached KV yet.
//!
//! A binding that is missing (a misconfigured deployment) lets everything through, logged
//! once per isolate (`lib.rs`): a limit must not take the redirects down.

use std::cell::RefCell;

use shortlink::password::visitor_of;

/// The binding that limits every visit of an address.
pub const VISIT_LIMIT: &str = "VISIT_LIMIT";
/// The binding that limits the visits of an address that go to the origin.
pub const ORIGIN_LIMIT: &str = "ORIGIN_LIMIT";
/// The bindings' period (`simple.period` in `wrangler.toml`, 10 or 60 s): how long a
/// refused visitor is told to wait at most.
pub const PERIOD_SECS: u64 = 10;

/// Resolves one isolate has under way at once.
pub const MAX_RESOLVES_IN_FLIGHT: u32 = 8;
/// Resolves one isolate starts in one second.
pub const MAX_RESOLVES_PER_SECOND: u32 = 20;

/// What the limits count a client by: its IPv4 address, or its IPv6 address's /64 (one
/// subscriber gets a whole /64), as the password limit counts it.
pub fn client_key(address: &str) -> String {
    visitor_of(address)
}

/// One isolate's resolves: those under way (when each began), and how many began in the
/// current second.
#[derive(Debug, Default)]
pub struct OriginGate {
    /// Per resolve under way: its number and when it began.
    in_flight: Vec<(u64, u64)>,
    /// The number of the next resolve let through.
    next: u64,
    window_start_ms: u64,
    started: u32,
}

impl OriginGate {
    /// Whether a resolve may start at `now_ms`; if so, its number, and it is counted until
    /// [`OriginGate::done`] or until `stale_after_ms` have passed. A resolve cannot take
    /// longer than its timeout, so one older than that was abandoned: the runtime drops a
    /// request whose visitor went away without running the rest of its work, and its
    /// [`Pass`] is never dropped. Without the expiry such resolves would fill the gate for the
    /// isolate's life, and every miss would be answered 503.
    pub fn admit(&mut self, now_ms: u64, stale_after_ms: u64) -> Option<u64> {
        // A clock that steps back starts a new window too, rather than none until it returns.
        if now_ms.abs_diff(self.window_start_ms) >= 1_000 {
            self.window_start_ms = now_ms;
            self.started = 0;
        }
        self.in_flight
            .retain(|&(_, began_ms)| now_ms.abs_diff(began_ms) < stale_after_ms);
        if self.in_flight.len() >= MAX_RESOLVES_IN_FLIGHT as usize
            || self.started >= MAX_RESOLVES_PER_SECOND
        {
            return None;
        }
        let number = self.next;
        self.next += 1;
        self.in_flight.push((number, now_ms));
        self.started += 1;
        Some(number)
    }

    /// The resolve numbered `number` has ended (answered, failed or dropped).
    pub fn done(&mut self, number: u64) {
        self.in_flight.retain(|&(n, _)| n != number);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// A resolve the gate let through; dropping it ends it, when its request ends (answered,
/// failed, or cancelled by a timeout).
#[derive(Debug)]
pub struct Pass<'a> {
    gate: &'a RefCell<OriginGate>,
    number: u64,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.borrow_mut().done(self.number);
    }
}

/// A pass through `gate` at `now_ms` (counted for at most `stale_after_ms`, see
/// [`OriginGate::admit`]), or `None` when the isolate is at its bound.
pub fn enter(gate: &RefCell<OriginGate>, now_ms: u64, stale_after_ms: u64) -> Option<Pass<'_>> {
    let number = gate.borrow_mut().admit(now_ms, stale_after_ms)?;
    Some(Pass { gate, number })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolve's timeout of 2 s and a margin.
    const STALE: u64 = 3_000;

    #[test]
    fn the_gate_bounds_resolves_in_flight_and_per_second() {
        let gate = RefCell::new(OriginGate::default());
        let passes: Vec<_> = (0..MAX_RESOLVES_IN_FLIGHT)
            .map(|_| enter(&gate, 5_000, STALE).expect("within the bound"))
            .collect();
        assert!(enter(&gate, 5_000, STALE).is_none(), "all in flight");
        drop(passes);
        assert_eq!(gate.borrow().in_flight(), 0);
        // Quick answers: the per-second bound holds, then the next second starts afresh.
        let mut admitted = MAX_RESOLVES_IN_FLIGHT;
        for _ in 0..100 {
            if enter(&gate, 5_500, STALE).is_some() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, MAX_RESOLVES_PER_SECOND);
        assert!(enter(&gate, 5_999, STALE).is_none());
        assert!(enter(&gate, 6_000, STALE).is_some());
        // A clock that steps back does not shut the gate until it returns.
        assert!(enter(&gate, 1_000, STALE).is_some());
    }

    /// Resolves whose request the runtime dropped without ending it (their passes are never
    /// dropped) hold the gate only until no resolve could still be running.
    #[test]
    fn abandoned_resolves_leave_the_gate_after_their_timeout() {
        let gate = RefCell::new(OriginGate::default());
        for at in 0..u64::from(MAX_RESOLVES_IN_FLIGHT) {
            std::mem::forget(enter(&gate, 10_000 + at, STALE).expect("within the bound"));
        }
        assert!(enter(&gate, 12_000, STALE).is_none(), "all in flight");
        assert!(enter(&gate, 10_000 + STALE - 1, STALE).is_none());
        let pass = enter(&gate, 10_000 + STALE, STALE).expect("the oldest has expired");
        assert_eq!(gate.borrow().in_flight(), MAX_RESOLVES_IN_FLIGHT as usize);
        drop(pass);
        assert_eq!(
            gate.borrow().in_flight(),
            MAX_RESOLVES_IN_FLIGHT as usize - 1
        );
        let _kept = enter(&gate, 20_000, STALE).expect("room again");
        assert_eq!(
            gate.borrow().in_flight(),
            1,
            "every abandoned one has expired"
        );
    }

    /// A pass that ends after its resolve expired frees no other resolve's place.
    #[test]
    fn a_late_pass_ends_only_itself() {
        let gate = RefCell::new(OriginGate::default());
        let late = enter(&gate, 0, STALE).expect("admitted");
        let fresh = enter(&gate, STALE, STALE).expect("admitted");
        assert_eq!(gate.borrow().in_flight(), 1, "the late one has expired");
        drop(late);
        assert_eq!(gate.borrow().in_flight(), 1, "the fresh one still counts");
        drop(fresh);
        assert_eq!(gate.borrow().in_flight(), 0);
    }

    #[test]
    fn clients_are_keyed_by_address_or_ipv6_network() {
        assert_eq!(client_key("198.51.100.7"), "198.51.100.7");
        assert_eq!(
            client_key("2001:db8:1:2:aaaa::1"),
            client_key("2001:db8:1:2:bbbb::2")
        );
        assert_ne!(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:3::1"));
        assert_eq!(client_key("::ffff:198.51.100.7"), "198.51.100.7");
    }

    /// The period a refused visitor is told to wait is the bindings' period.
    #[test]
    fn wrangler_toml_binds_both_limits_with_this_period() {
        let text = include_str!("../../wrangler.toml");
        for name in [VISIT_LIMIT, ORIGIN_LIMIT] {
            let table = text
                .split("[[ratelimits]]")
                .skip(1)
                .find(|table| table.contains(&format!("name = \"{name}\"")))
                .unwrap_or_else(|| panic!("wrangler.toml binds no {name}"));
            let simple = table
                .lines()
                .find(|line| line.trim_start().starts_with("simple"))
                .expect("a simple limit");
            assert!(
                simple.contains(&format!("period = {PERIOD_SECS}")),
                "{name}: {simple}"
            );
        }
    }
}
