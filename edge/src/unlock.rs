//! `POST /{code}`: the answer to a link's password form. Wrong answers are limited per
//! (link, visitor address) in each isolate ([`Attempts`]), and a visitor over the limit is
//! refused before any hash is computed, so a flood costs the isolate refusals, not PBKDF2.
//! A right answer sets the unlock cookie the origin also accepts (one key from the shared
//! edge secret) and sends the visitor back to the link, whose GET then redirects.

use shortlink::pages::{self, PasswordProblem};
use shortlink::password::{Attempts, PasswordHash, UnlockKey};

use crate::reply::Reply;

/// The largest form body read: a password is at most 200 characters.
pub const MAX_BODY: usize = 4 * 1024;
/// Most (link, address) pairs whose wrong answers one isolate remembers.
pub const ATTEMPTS_CAPACITY: usize = 1_000;

/// The link's password, as the unlock needs it.
#[derive(Debug, Clone, Copy)]
pub struct Lock<'a> {
    pub link_id: i64,
    pub hash: &'a PasswordHash,
}

/// Whether `address` may try a password for the link now, counting the attempt (right or
/// wrong: parallel answers from one address cannot hash more often than the limit allows);
/// else the 429 to answer. Ask this before the body is read and before [`answer`] hashes.
pub fn admit(
    attempts: &mut Attempts,
    lock: Lock<'_>,
    address: &str,
    now_secs: i64,
) -> Result<(), Reply<'static>> {
    attempts
        .check(lock.link_id, address, now_secs)
        .map(|()| attempts.failed(lock.link_id, address, now_secs))
        .map_err(|retry_after_secs| {
            Reply::password_form(429, PasswordProblem::TooMany { retry_after_secs })
                .with("retry-after", retry_after_secs.to_string())
        })
}

/// The answer to a posted form (after [`admit`]): right, a `303` to `back` (the link's path
/// and query) with the cookie, and the attempt taken back (only wrong answers are limited);
/// wrong (or an empty or missing password field, not hashed), the form again with 401.
pub fn answer(
    key: &UnlockKey,
    lock: Lock<'_>,
    body: &[u8],
    back: String,
    now_secs: i64,
    forgive: impl FnOnce(),
) -> Reply<'static> {
    let right = pages::posted_password(body)
        .filter(|attempt| !attempt.is_empty())
        .is_some_and(|attempt| lock.hash.verify(&attempt));
    if right {
        forgive();
        Reply::unlocked(back, Some(key.cookie(lock.link_id, lock.hash, now_secs)))
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
        let back = || "/launch?ref=mail".to_owned();

        // Right answers are taken back: any number of them is never limited.
        for _ in 0..2 * WRONG_ANSWERS {
            assert_eq!(admit(&mut attempts, lock, "1.2.3.4", now), Ok(()));
            let right = answer(&key, lock, b"password=hunter22", back(), now, || {
                attempts.forgive(9, "1.2.3.4");
            });
            assert_eq!(right.status, 303);
        }
        assert_eq!(admit(&mut attempts, lock, "1.2.3.4", now), Ok(()));
        let right = answer(&key, lock, b"password=hunter22", back(), now, || {});
        assert_eq!(right.status, 303);
        assert_eq!(right.header("location"), Some("/launch?ref=mail"));
        let cookie = right.header("set-cookie").expect("a cookie");
        let pair = cookie.split(';').next().expect("name=value");
        assert!(key.is_unlocked(9, &hash, Some(pair), now + 1));
        assert!(!right.headers.iter().any(|(_, v)| v.contains("hunter22")));

        // Every attempt counts until its answer is known (the last right one above was not
        // taken back).
        for _ in 1..WRONG_ANSWERS {
            assert_eq!(admit(&mut attempts, lock, "1.2.3.4", now), Ok(()));
            let wrong = answer(&key, lock, b"password=hunter23", back(), now, || {});
            assert_eq!(wrong.status, 401);
            assert_eq!(
                wrong.html.as_deref(),
                Some(pages::password_form(PasswordProblem::Wrong).as_str())
            );
        }
        let refused = admit(&mut attempts, lock, "1.2.3.4", now + 10).expect_err("limited");
        assert_eq!(refused.status, 429);
        assert_eq!(refused.header("retry-after"), Some("290"));
        assert!(
            refused
                .html
                .as_deref()
                .is_some_and(|html| html.contains("Too many"))
        );
        // Another address, or the same one on another link, still may.
        assert_eq!(admit(&mut attempts, lock, "5.6.7.8", now), Ok(()));
        let other = Lock {
            link_id: 10,
            ..lock
        };
        assert_eq!(admit(&mut attempts, other, "1.2.3.4", now), Ok(()));
        // A form without the field is a wrong answer too.
        for body in [&b""[..], b"password=", b"other=hunter22"] {
            assert_eq!(answer(&key, other, body, back(), now, || {}).status, 401);
        }
    }

    #[test]
    fn a_burst_of_addresses_stays_within_the_bound() {
        let hash = PasswordHash::new(&LinkPassword::parse("hunter22").expect("valid"), [3; 16]);
        let lock = Lock {
            link_id: 9,
            hash: &hash,
        };
        let mut attempts = Attempts::new(ATTEMPTS_CAPACITY);
        let mut refused = 0;
        for i in 0..5_000 {
            let address = format!("10.0.{}.{}", i / 256, i % 256);
            // Counted without hashing.
            match admit(&mut attempts, lock, &address, 1_000) {
                Ok(()) => {}
                Err(reply) => {
                    assert_eq!(reply.status, 429);
                    refused += 1;
                }
            }
        }
        assert_eq!(attempts.len(), ATTEMPTS_CAPACITY);
        assert_eq!(refused, 5_000 - ATTEMPTS_CAPACITY);
    }
}
