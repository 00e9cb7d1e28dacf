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
    DailySalt::new(secret, day).key(ip, user_agent)
}

/// One UTC day's salt. A process that makes many keys keeps it for the day, saving an HMAC
/// per key.
#[derive(Clone)]
pub struct DailySalt {
    day: Date,
    salt: [u8; 32],
}

/// Shows the day only: the salt is as secret as the secret it comes from.
impl std::fmt::Debug for DailySalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DailySalt")
            .field("day", &self.day)
            .finish_non_exhaustive()
    }
}

impl DailySalt {
    pub fn new(secret: &[u8], day: Date) -> Self {
        let mut mac = hmac(secret);
        mac.update(b"kurz visitor salt\n");
        mac.update(day.to_string().as_bytes());
        Self {
            day,
            salt: mac.finalize().into_bytes().into(),
        }
    }

    pub fn day(&self) -> Date {
        self.day
    }

    /// The visitor key of `ip` + `user_agent` on this salt's day.
    pub fn key(&self, ip: &str, user_agent: &str) -> String {
        let mut mac = hmac(&self.salt);
        mac.update(ip.as_bytes());
        mac.update(b"\n");
        mac.update(user_agent.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
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
    fn a_kept_salt_makes_the_same_keys() {
        let day = date!(2026 - 11 - 27);
        let salt = DailySalt::new(b"secret", day);
        assert_eq!(salt.day(), day);
        assert_eq!(
            salt.key("203.0.113.7", "Firefox"),
            visitor_key(b"secret", day, "203.0.113.7", "Firefox")
        );
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
