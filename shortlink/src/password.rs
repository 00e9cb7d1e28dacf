//! Password-protected links: the stored hash, the cookie that lets a visitor through for an
//! hour after a right answer, and the limit on wrong answers.
//!
//! The hash is PBKDF2-HMAC-SHA256 with a random 16-byte salt: it needs only the SHA-256 and
//! HMAC the edge already carries (a few KiB of .wasm, where Argon2 would cost far more), and the
//! stored form names its iteration count, so it can be raised later without breaking stored
//! hashes. The password itself is never stored, logged, put in a URL or in click data.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Error;

/// PBKDF2 iterations of new hashes. Each check costs this many HMACs: about 10 ms on the
/// origin's CPU and a few times that in the edge's wasm. Wrong answers are limited
/// ([`Attempts`]), which bounds the CPU an attacker can spend.
pub const ITERATIONS: u32 = 20_000;
/// How long a right answer lets the visitor through: the cookie's lifetime.
pub const UNLOCK_SECS: i64 = 3600;
/// Most unlock cookies of one link checked in a request (see [`UnlockKey::is_unlocked`]).
pub const MAX_UNLOCK_COOKIES: usize = 4;
/// Shortest and longest password.
pub const MIN_LEN: usize = 4;
pub const MAX_LEN: usize = 200;

/// A password as a user sets it, before hashing. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LinkPassword(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    LinkPassword,
    crate::openapi::text(
        "The password visitors must enter (stored only as a hash).",
        (MIN_LEN, MAX_LEN),
        None,
    )
);

impl LinkPassword {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let len = input.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(Error::PasswordLength {
                min: MIN_LEN,
                max: MAX_LEN,
            });
        }
        // A password field drops line breaks, so no visitor could ever enter one.
        if input.chars().any(char::is_control) {
            return Err(Error::ControlCharacter { what: "password" });
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkPassword(..)")
    }
}

impl TryFrom<String> for LinkPassword {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl From<LinkPassword> for String {
    fn from(value: LinkPassword) -> Self {
        value.0
    }
}

/// A stored password hash: `pbkdf2-sha256$<iterations>$<salt, hex>$<hash, hex>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasswordHash {
    iterations: u32,
    salt: [u8; 16],
    hash: [u8; 32],
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    /// Hashes `password` with `salt` (16 random bytes, from the caller).
    pub fn new(password: &LinkPassword, salt: [u8; 16]) -> Self {
        Self {
            iterations: ITERATIONS,
            salt,
            hash: derive(password.as_str(), &salt, ITERATIONS),
        }
    }

    /// Whether `attempt` is the password (compared in constant time).
    pub fn verify(&self, attempt: &str) -> bool {
        if attempt.len() > 4 * MAX_LEN {
            return false;
        }
        let derived = derive(attempt, &self.salt, self.iterations);
        derived
            .iter()
            .zip(self.hash.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        let mut parts = input.split('$');
        let (Some("pbkdf2-sha256"), Some(iterations), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Error::PasswordHash);
        };
        let iterations: u32 = iterations.parse().map_err(|_| Error::PasswordHash)?;
        if !(1_000..=10_000_000).contains(&iterations) {
            return Err(Error::PasswordHash);
        }
        let mut salt_bytes = [0u8; 16];
        let mut hash_bytes = [0u8; 32];
        hex::decode_to_slice(salt, &mut salt_bytes).map_err(|_| Error::PasswordHash)?;
        hex::decode_to_slice(hash, &mut hash_bytes).map_err(|_| Error::PasswordHash)?;
        Ok(Self {
            iterations,
            salt: salt_bytes,
            hash: hash_bytes,
        })
    }
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pbkdf2-sha256${}${}${}",
            self.iterations,
            hex::encode(self.salt),
            hex::encode(self.hash)
        )
    }
}

impl TryFrom<String> for PasswordHash {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl From<PasswordHash> for String {
    fn from(value: PasswordHash) -> Self {
        value.to_string()
    }
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations)
}

/// The key that signs unlock cookies, derived from the deployment's edge secret (which the
/// edge and the origin share, so a cookie from one is good at the other).
#[derive(Clone)]
pub struct UnlockKey([u8; 32]);

impl fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockKey(..)")
    }
}

impl UnlockKey {
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = mac(secret);
        mac.update(b"kurz link unlock cookie\n");
        Self(mac.finalize().into_bytes().into())
    }

    fn sign(&self, link_id: i64, hash: &PasswordHash, expires: i64) -> String {
        let mut mac = mac(&self.0);
        // The salt changes with the password, so a new password locks out old cookies.
        mac.update(format!("{link_id}\n{}\n{expires}", hex::encode(hash.salt)).as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..20])
    }

    /// The `Set-Cookie` header that lets this visitor through `link_id` until `now + UNLOCK_SECS`;
    /// `Secure` when the visitor came over HTTPS (`https`), so that it never travels in clear
    /// text there. Over plain HTTP (an intranet's origin) a `Secure` cookie is dropped by the
    /// browser, and the right password would bring the form back every time.
    pub fn cookie(&self, link_id: i64, hash: &PasswordHash, now: i64, https: bool) -> String {
        let expires = now.saturating_add(UNLOCK_SECS);
        let secure = if https { "; Secure" } else { "" };
        format!(
            "{}={expires}.{}; Max-Age={UNLOCK_SECS}; Path=/; HttpOnly{secure}; SameSite=Lax",
            cookie_name(link_id),
            self.sign(link_id, hash, expires)
        )
    }

    /// Whether the request's `Cookie` header holds a valid, unexpired unlock for `link_id` (in
    /// one of its first [`MAX_UNLOCK_COOKIES`] cookies of that name).
    pub fn is_unlocked(
        &self,
        link_id: i64,
        hash: &PasswordHash,
        cookie_header: Option<&str>,
        now: i64,
    ) -> bool {
        let Some(header) = cookie_header else {
            return false;
        };
        let name = cookie_name(link_id);
        header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(key, _)| *key == name)
            // A browser sends one per domain and path it was set for; a header packed with
            // thousands would cost an HMAC each.
            .take(MAX_UNLOCK_COOKIES)
            .any(|(_, value)| {
                let Some((expires, signature)) = value.split_once('.') else {
                    return false;
                };
                let Ok(expires) = expires.parse::<i64>() else {
                    return false;
                };
                expires > now
                    && expires <= now.saturating_add(UNLOCK_SECS)
                    && constant_eq(
                        signature.as_bytes(),
                        self.sign(link_id, hash, expires).as_bytes(),
                    )
            })
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The cookie that unlocks one link.
pub fn cookie_name(link_id: i64) -> String {
    format!("kurz_pw_{link_id}")
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

/// Wrong answers allowed per visitor and link in a window.
pub const WRONG_ANSWERS: u32 = 5;
/// Answers of any kind (right ones too) allowed per visitor and link in a window: people
/// behind one address (an office) each enter the right password once, while a loop of right
/// answers cannot keep the hashing busy.
pub const ANSWERS: u32 = 30;
/// The window of [`WRONG_ANSWERS`] and [`ANSWERS`], in seconds.
pub const WINDOW_SECS: i64 = 300;

/// The network one visitor controls: an IPv4 address, or an IPv6 address's /64 (one
/// subscriber gets a whole /64, so counting single IPv6 addresses would count nothing); an
/// IPv4-mapped IPv6 address is its IPv4 address. Every limit per client counts by this.
pub fn network_of(address: std::net::IpAddr) -> std::net::IpAddr {
    match address.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            std::net::IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into())
        }
        v4 => v4,
    }
}

/// [`network_of`] as text: `192.0.2.1`, `2001:db8:1:2::/64`.
pub fn network_text(address: std::net::IpAddr) -> String {
    match network_of(address) {
        std::net::IpAddr::V6(network) => format!("{network}/64"),
        v4 => v4.to_string(),
    }
}

/// Who a limit counts ([`network_text`] of the address); anything that is not an address is
/// taken as it is.
pub fn visitor_of(address: &str) -> String {
    address
        .parse()
        .map_or_else(|_| address.to_owned(), network_text)
}

/// One visitor's answers to one link in the current window.
#[derive(Debug, Clone, Copy)]
struct Tally {
    start: i64,
    wrong: u32,
    answers: u32,
}

/// Password answers per (link, visitor — see [`visitor_of`]), in one process's memory: at
/// most `capacity` entries. An answer is counted (as wrong) before it is hashed, so parallel
/// answers cannot hash past the limit, and [`Attempts::forgive`] takes a right one back.
/// When every entry is in use within its window, new visitors are turned away until one
/// ends: a flood of addresses costs memory up to the bound and then only refusals, never a
/// hash. Once the map is half full, one visitor holds at most [`LINKS_PER_VISITOR`] entries,
/// so that one address answering many links cannot fill it and turn everybody else away.
#[derive(Debug)]
pub struct Attempts {
    entries: HashMap<(i64, String), Tally>,
    /// How many entries each visitor holds.
    held: HashMap<String, usize>,
    capacity: usize,
}

/// The links one visitor may be answering at once (within [`WINDOW_SECS`] of their first
/// answer to each).
pub const LINKS_PER_VISITOR: usize = 32;

impl Attempts {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            held: HashMap::new(),
            capacity,
        }
    }

    /// Counts an answer of `visitor` for `link_id` about to be hashed: `Ok` if it may be,
    /// else the seconds to wait (and nothing is counted).
    pub fn admit(&mut self, link_id: i64, visitor: &str, now: i64) -> Result<(), u64> {
        let key = (link_id, visitor.to_owned());
        if self
            .entries
            .get(&key)
            .is_some_and(|tally| now >= tally.start + WINDOW_SECS)
        {
            self.entries.remove(&key);
            release(&mut self.held, visitor);
        }
        if !self.entries.contains_key(&key) {
            // A visitor's share counts once the map is half full: till then, people behind one
            // address (an office's) answer as many links as they like.
            let crowded = |attempts: &Self| {
                attempts.entries.len() >= attempts.capacity / 2
                    && attempts.held.get(visitor).copied().unwrap_or(0) >= LINKS_PER_VISITOR
            };
            if crowded(self) || self.entries.len() >= self.capacity {
                self.forget_ended(now);
            }
            if crowded(self) {
                // Until the first of its windows ends.
                let first = self
                    .entries
                    .iter()
                    .filter(|((_, who), _)| who == visitor)
                    .map(|(_, tally)| tally.start)
                    .min()
                    .unwrap_or(now);
                return Err(u64::try_from(first + WINDOW_SECS - now).unwrap_or(1).max(1));
            }
            if self.entries.len() >= self.capacity {
                return Err(1);
            }
            *self.held.entry(visitor.to_owned()).or_default() += 1;
        }
        let tally = self.entries.entry(key).or_insert(Tally {
            start: now,
            wrong: 0,
            answers: 0,
        });
        if tally.wrong >= WRONG_ANSWERS || tally.answers >= ANSWERS {
            return Err(u64::try_from(tally.start + WINDOW_SECS - now)
                .unwrap_or(1)
                .max(1));
        }
        tally.wrong += 1;
        tally.answers += 1;
        Ok(())
    }

    /// Takes back the "wrong" of an admitted answer that was right (it still counts as an
    /// answer).
    pub fn forgive(&mut self, link_id: i64, visitor: &str) {
        if let Some(tally) = self.entries.get_mut(&(link_id, visitor.to_owned())) {
            tally.wrong = tally.wrong.saturating_sub(1);
        }
    }

    /// Drops the entries whose window ended.
    fn forget_ended(&mut self, now: i64) {
        let held = &mut self.held;
        self.entries.retain(|(_, visitor), tally| {
            let live = now < tally.start + WINDOW_SECS;
            if !live {
                release(held, visitor);
            }
            live
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One entry of `visitor` is gone from [`Attempts::held`].
fn release(held: &mut HashMap<String, usize>, visitor: &str) {
    if let Some(count) = held.get_mut(visitor) {
        *count -= 1;
        if *count == 0 {
            held.remove(visitor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> LinkPassword {
        LinkPassword::parse(text).expect("valid")
    }

    #[test]
    fn hashes_verify_and_round_trip() {
        let hash = PasswordHash::new(&password("hunter22"), [7; 16]);
        assert!(hash.verify("hunter22"));
        assert!(!hash.verify("hunter23"));
        assert!(!hash.verify(""));
        let text = hash.to_string();
        assert!(text.starts_with("pbkdf2-sha256$20000$0707"), "{text}");
        assert!(!text.contains("hunter22"));
        assert_eq!(PasswordHash::parse(&text).expect("parses"), hash);
        assert!(!format!("{hash:?}{:?}", password("hunter22")).contains("hunter"));
        for bad in [
            "",
            "argon2$1$00$00",
            "pbkdf2-sha256$12$07070707070707070707070707070707$00",
            "pbkdf2-sha256$20000$0707$00",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
        assert!(LinkPassword::parse("abc").is_err());
        assert!(LinkPassword::parse(&"x".repeat(201)).is_err());
        // What a visitor's password field cannot send: a secret read from a file with its
        // line break would lock its link for good.
        for typed_never in ["hunter22\n", "hun\rter22", "tab\there", "nul\0byte"] {
            assert_eq!(
                LinkPassword::parse(typed_never).map(|_| ()),
                Err(Error::ControlCharacter { what: "password" }),
                "{typed_never:?}"
            );
        }
        assert!(LinkPassword::parse("日本語のパスワード 🔑").is_ok());
    }

    #[test]
    fn cookies_unlock_one_link_for_an_hour() {
        let key = UnlockKey::new(b"a secret of thirty-two characters!");
        let hash = PasswordHash::new(&password("hunter22"), [7; 16]);
        let now = 1_800_000_000;
        let set = key.cookie(5, &hash, now, true);
        let value = set.split(';').next().expect("pair");
        assert!(value.starts_with("kurz_pw_5="), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("Max-Age=3600"));
        assert!(set.contains("; Secure"), "{set}");
        let plain = key.cookie(5, &hash, now, false);
        assert!(!plain.contains("Secure"), "{plain}");
        assert_eq!(plain.split(';').next(), Some(value), "the same cookie");
        let header = format!("other=1; {value}");
        assert!(key.is_unlocked(5, &hash, Some(&header), now));
        assert!(key.is_unlocked(5, &hash, Some(&header), now + UNLOCK_SECS - 1));
        assert!(!key.is_unlocked(5, &hash, Some(&header), now + UNLOCK_SECS));
        // Another link, another password, another key, a forged expiry: locked.
        assert!(!key.is_unlocked(6, &hash, Some(&header.replace("_5=", "_6=")), now));
        let other = PasswordHash::new(&password("hunter22"), [8; 16]);
        assert!(!key.is_unlocked(5, &other, Some(&header), now));
        let other_key = UnlockKey::new(b"another secret of thirty-two chars");
        assert!(!other_key.is_unlocked(5, &hash, Some(&header), now));
        let later = value.replacen(
            &format!("={}", now + UNLOCK_SECS),
            &format!("={}", now + 9999),
            1,
        );
        assert!(!key.is_unlocked(5, &hash, Some(&later), now));
        assert!(!key.is_unlocked(5, &hash, None, now));
        // Behind a few forged ones it is found; behind a flood of them it is not looked for
        // (each would be an HMAC).
        let forged = |n: usize| vec![later.as_str(); n].join("; ");
        let behind = |n: usize| format!("{}; {value}", forged(n));
        assert!(key.is_unlocked(5, &hash, Some(&behind(MAX_UNLOCK_COOKIES - 1)), now));
        assert!(!key.is_unlocked(5, &hash, Some(&behind(5_000)), now));
    }

    #[test]
    fn wrong_answers_are_limited_and_the_map_is_bounded() {
        let mut attempts = Attempts::new(100);
        let now = 1_000;
        for _ in 0..WRONG_ANSWERS {
            assert_eq!(attempts.admit(1, "a", now), Ok(()));
        }
        assert_eq!(attempts.admit(1, "a", now + 10), Err(290));
        assert_eq!(attempts.admit(2, "a", now), Ok(()), "another link");
        assert_eq!(attempts.admit(1, "b", now), Ok(()), "another visitor");
        assert_eq!(
            attempts.admit(1, "a", now + WINDOW_SECS),
            Ok(()),
            "window over"
        );
        // Right answers are taken back, up to the limit of answers of any kind.
        let mut right = Attempts::new(10);
        for _ in 0..ANSWERS {
            assert_eq!(right.admit(3, "c", now), Ok(()));
            right.forgive(3, "c");
        }
        assert!(right.admit(3, "c", now).is_err());
        // A burst of addresses fills the map to its bound and no further.
        let mut burst = Attempts::new(100);
        for i in 0..10_000 {
            let _ = burst.admit(1, &i.to_string(), now);
        }
        assert_eq!(burst.len(), 100);
        assert_eq!(burst.admit(1, "new", now), Err(1));
        assert_eq!(burst.admit(1, "new", now + WINDOW_SECS), Ok(()));
    }

    /// One visitor answering many links holds at most its share of the map: before, one
    /// address answering 10,000 links filled it and every other visitor of every link was
    /// turned away.
    #[test]
    fn one_visitor_answering_many_links_leaves_room_for_the_others() {
        // Half full already: the share counts.
        let mut attempts = Attempts::new(100);
        let now = 1_000;
        for visitor in 0..50 {
            assert_eq!(attempts.admit(1, &format!("early{visitor}"), now), Ok(()));
        }
        for link in 0..1_000 {
            let admitted = attempts.admit(link, "flood", now + link / 100);
            assert_eq!(admitted.is_ok(), link < LINKS_PER_VISITOR as i64, "{link}");
        }
        assert_eq!(attempts.len(), 50 + LINKS_PER_VISITOR);
        // Until the first of its windows ends; a link it answers already still counts.
        assert_eq!(attempts.admit(5_000, "flood", now + 10), Err(290));
        assert_eq!(attempts.admit(0, "flood", now + 10), Ok(()));
        for visitor in 0..(50 - LINKS_PER_VISITOR) {
            assert_eq!(attempts.admit(1, &visitor.to_string(), now), Ok(()));
        }
        assert_eq!(
            attempts.admit(1, "one more", now),
            Err(1),
            "the map is full"
        );
        // Its windows over, the visitor may answer others again, and the map has room.
        assert_eq!(attempts.admit(5_000, "flood", now + WINDOW_SECS), Ok(()));
        assert_eq!(attempts.admit(1, "one more", now + WINDOW_SECS), Ok(()));

        // Under half full, one address (an office behind one) answers as many links as it has.
        let mut quiet = Attempts::new(100);
        for link in 0..49 {
            assert_eq!(quiet.admit(link, "office", now), Ok(()), "{link}");
        }
    }

    #[test]
    fn an_ipv6_visitor_is_their_64() {
        let cases = [
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("192.0.2.1", "192.0.2.1"),
            ("unknown", "unknown"),
        ];
        for (address, visitor) in cases {
            assert_eq!(visitor_of(address), visitor, "{address}");
        }
    }
}
