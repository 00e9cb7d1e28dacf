//! Unique visitors without storing IP addresses.
//!
//! A visitor key is an HMAC of the IP address and user agent under a salt that changes every
//! UTC day. The same person on the same day gets the same key, so unique visitors per link
//! per day are counted exactly; across days keys are unrelated, so nobody can follow a visitor
//! from one day to the next, and the IP address is never stored or sent anywhere.
//!
//! The daily salt is derived from a deployment secret (the edge secret, which both the edge
//! and the origin hold), so every process computes the same key without sharing state.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::Date;

/// The visitor key of `ip` + `user_agent` on `day` (UTC): 32 hex characters.
pub fn visitor_key(secret: &[u8], day: Date, ip: &str, user_agent: &str) -> String {
    let salt = daily_salt(secret, day);
    let mut mac = hmac(&salt);
    mac.update(ip.as_bytes());
    mac.update(b"\n");
    mac.update(user_agent.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

fn daily_salt(secret: &[u8], day: Date) -> [u8; 32] {
    let mut mac = hmac(secret);
    mac.update(b"kurz visitor salt\n");
    mac.update(day.to_string().as_bytes());
    mac.finalize().into_bytes().into()
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn same_visitor_same_day_same_key() {
        let day = date!(2026 - 11 - 27);
        let a = visitor_key(b"secret", day, "203.0.113.7", "Firefox");
        assert_eq!(a, visitor_key(b"secret", day, "203.0.113.7", "Firefox"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn keys_differ_by_day_ip_agent_and_secret() {
        let day = date!(2026 - 11 - 27);
        let a = visitor_key(b"secret", day, "203.0.113.7", "Firefox");
        for other in [
            visitor_key(b"secret", date!(2026 - 11 - 28), "203.0.113.7", "Firefox"),
            visitor_key(b"secret", day, "203.0.113.8", "Firefox"),
            visitor_key(b"secret", day, "203.0.113.7", "Chrome"),
            visitor_key(b"other", day, "203.0.113.7", "Firefox"),
            // The separator keeps "a\nb" + "c" apart from "a" + "b\nc".
            visitor_key(b"secret", day, "203.0.113.7\nFire", "fox"),
        ] {
            assert_ne!(a, other);
        }
    }
}
