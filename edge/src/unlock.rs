//! `POST /{code}`: the answer to a link's password form. Answers are limited per (link,
//! visitor: an IPv4 address or an IPv6 /64) in each isolate ([`Attempts`]): an answer is
//! counted before it is hashed and taken back if right, and a visitor over the limit is
//! refused before any hash, so a flood costs the isolate refusals, not PBKDF2. An empty
//! answer is wrong without a hash and not counted. A right answer sets the unlock cookie the
//! origin also accepts (one key from the shared edge secret) and sends the visitor back to
//! the link, whose GET then redirects.

use shortlink::pages::{self, PasswordProblem};
use shortlink::password::{Attempts, PasswordHash, UnlockKey, visitor_of};

use crate::reply::Reply;

/// The largest form body read: a password is at most 200 characters.
pub const MAX_BODY: usize = 4 * 1024;
/// Most (link, visitor) pairs whose answers one isolate remembers.
pub const ATTEMPTS_CAPACITY: usize = 1_000;

/// The link's password, as the unlock needs it.
#[derive(Debug, Clone, Copy)]
pub struct Lock<'a> {
    pub link_id: i64,
    pub hash: &'a PasswordHash,
}

/// Where a right answer sends the visitor: back to the link.
#[derive(Debug, Clone)]
pub struct Back {
    /// The link's path and query.
    pub path: String,
    /// Whether the form came over HTTPS: the cookie is `Secure` then.
    pub https: bool,
}

/// The answer to a posted form from `address`: right, a `303` to `back` with the cookie; wrong (or an empty or missing password field, not hashed), the
/// form again with 401; over the limit, 429 without a hash.
pub fn answer(
    key: &UnlockKey,
    attempts: &mut Attempts,
    lock: Lock<'_>,
    body: &[u8],
    address: &str,
    back: Back,
    now_secs: i64,
) -> Reply<'static> {
    let Some(attempt) = pages::posted_password(body).filter(|attempt| !attempt.is_empty()) else {
        return Reply::password_form(401, PasswordProblem::Wrong);
    };
    let visitor = visitor_of(address);
    if let Err(retry_after_secs) = attempts.admit(lock.link_id, &visitor, now_secs) {
        return Reply::password_form(429, PasswordProblem::TooMany { retry_after_secs })
            .with("retry-after", retry_after_secs.to_string());
    }
    if lock.hash.verify(&attempt) {
        attempts.forgive(lock.link_id, &visitor);
        let cookie = key.cookie(lock.link_id, lock.hash, now_secs, back.https);
        Reply::unlocked(back.path, Some(cookie))
    } else {
        Reply::password_form(401, PasswordProblem::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use shortlink::password::{LinkPassword, WRONG_ANSWERS};

    use super::*;

    #[test]
    fn a_right_answer_unlocks_and_wrong_ones_are_limited() {
        let hash = PasswordHash::new(&LinkPassword::parse("hunter22").expect("valid"), [3; 16]);
        let lock = Lock {
            link_id: 9,
            hash: &hash,
        };
        let key = UnlockKey::new(b"the edge secret");
        let mut attempts = Attempts::new(ATTEMPTS_CAPACITY);
        let now = 1_800_000_000;
        let mut post = |lock: Lock<'_>, body: &[u8], address: &str, now: i64| {
            answer(
                &key,
                &mut attempts,
                lock,
                body,
                address,
                Back {
                    path: "/launch?ref=mail".to_owned(),
                    https: true,
                },
                now,
            )
        };

        // Right answers are taken back: people behind one address are not turned away.
        for _ in 0..2 * WRONG_ANSWERS {
            let right = post(lock, b"password=hunter22", "1.2.3.4", now);
            assert_eq!(right.status, 303);
            assert_eq!(right.header("location"), Some("/launch?ref=mail"));
            let cookie = right.header("set-cookie").expect("a cookie");
            assert!(cookie.contains("; Secure"), "{cookie}");
            let pair = cookie.split(';').next().expect("name=value");
            assert!(key.is_unlocked(9, &hash, Some(pair), now + 1));
            assert!(!right.headers.iter().any(|(_, v)| v.contains("hunter22")));
        }
        // Empty answers are wrong without counting.
        for body in [&b""[..], b"password=", b"other=hunter22"] {
            assert_eq!(post(lock, body, "1.2.3.4", now).status, 401);
        }
        for _ in 0..WRONG_ANSWERS {
            let wrong = post(lock, b"password=hunter23", "1.2.3.4", now);
            assert_eq!(wrong.status, 401);
            assert_eq!(
                wrong.html.as_deref(),
                Some(pages::password_form(PasswordProblem::Wrong).as_str())
            );
        }
        let refused = post(lock, b"password=hunter22", "1.2.3.4", now + 10);
        assert_eq!(refused.status, 429);
        assert_eq!(refused.header("retry-after"), Some("290"));
        assert!(
            refused
                .html
                .as_deref()
                .is_some_and(|html| html.contains("Too many"))
        );
        // Another address, or the same one on another link, still may.
        assert_eq!(post(lock, b"password=hunter22", "5.6.7.8", now).status, 303);
        let other = Lock {
            link_id: 10,
            ..lock
        };
        assert_eq!(
            post(other, b"password=hunter22", "1.2.3.4", now).status,
            303
        );
        // IPv6 addresses of one /64 are one visitor.
        for i in 0..WRONG_ANSWERS {
            let address = format!("2001:db8:0:1::{i:x}");
            assert_eq!(post(lock, b"password=x", &address, now).status, 401);
        }
        assert_eq!(
            post(lock, b"password=hunter22", "2001:db8:0:1::ff", now).status,
            429
        );
    }

    #[test]
    fn a_burst_of_addresses_stays_within_the_bound() {
        let hash = PasswordHash::new(&LinkPassword::parse("hunter22").expect("valid"), [3; 16]);
        let lock = Lock {
            link_id: 9,
            hash: &hash,
        };
        let mut attempts = Attempts::new(ATTEMPTS_CAPACITY);
        for i in 0..5_000 {
            let address = format!("10.0.{}.{}", i / 256, i % 256);
            let _ = attempts.admit(lock.link_id, &visitor_of(&address), 1_000);
        }
        assert_eq!(attempts.len(), ATTEMPTS_CAPACITY);
        // Full: a new visitor is refused (and nothing hashed).
        let key = UnlockKey::new(b"the edge secret");
        let refused = answer(
            &key,
            &mut attempts,
            lock,
            b"password=hunter22",
            "10.9.9.9",
            Back {
                path: "/x".to_owned(),
                https: false,
            },
            1_000,
        );
        assert_eq!(refused.status, 429);
    }
}
