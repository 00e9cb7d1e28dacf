//! Limits of dashboard sign-ins: every attempt is counted in PostgreSQL per (IP, username), per
//! IP and per username BEFORE its password is hashed, and this instance hashes only a few
//! passwords at once.
//!
//! Counting in the database makes the limits hold across every origin instance behind a load
//! balancer; counting before hashing, with a conditional upsert per scope in one transaction,
//! makes parallel guesses count (the row lock serialises them) instead of all being checked
//! against the same old count. The hash cap is per instance: it bounds that process's memory
//! (Argon2id takes 19 MiB per hash) whatever arrives.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::Block;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{CodeKey, SignInLimits};
use crate::error::Error;

/// What attempts are counted by. The order is the order rows are locked in, the same for
/// every transaction, so two sign-ins never wait for each other's rows in a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// One address and one username: strict. Only the one guessing from there is slowed.
    Pair,
    /// One address, any username: stops one address from trying many names.
    Ip,
    /// One username, any address: loose, and not applied where the user signed in lately, so
    /// strangers elsewhere cannot lock the real user out.
    User,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Self::Pair => "pair",
            Self::Ip => "ip",
            Self::User => "user",
        }
    }
}

/// The secret the counted keys are made with: HMAC-SHA256 under a subkey of the code key.
/// A plain hash would not hide anything: every IPv4 address hashes in seconds, and likely
/// usernames (or passwords typed as one) in little more. Without the secret, the rows of
/// `sign_in_attempts` and `sign_in_known_addresses` tell nothing about who tried or from where.
#[derive(Clone)]
pub(crate) struct Keys(Hmac<Sha256>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// The code key itself is never used as this key: a subkey under its own label, so the
    /// same secret never serves two purposes.
    pub(crate) fn new(code_key: &CodeKey) -> Self {
        let subkey: [u8; 32] = mac(code_key.bytes())
            .chain_update(b"kurz sign-in limit keys")
            .finalize()
            .into_bytes()
            .into();
        Self(mac(&subkey))
    }

    pub(crate) fn attempt(&self, ip: Option<IpAddr>, username: &str) -> Attempt {
        let address = address_text(ip);
        Attempt {
            pair: self.key(&[b"pair", address.as_bytes(), username.as_bytes()]),
            address: self.key(&[b"ip", address.as_bytes()]),
            user: self.user(username),
        }
    }

    /// The per-user key of `username` (an operator's password reset lifts its limit).
    pub(crate) fn user(&self, username: &str) -> [u8; 32] {
        self.key(&[b"user", username.as_bytes()])
    }

    /// Parts joined with a zero byte. Only the last part (a username) can hold one, so the
    /// split is never ambiguous.
    fn key(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }
}

/// HMAC-SHA256 under `key` (at most a block: a shorter key is zero-padded, as HMAC defines).
/// Built from the block so it cannot fail, unlike `new_from_slice`.
fn mac(key: &[u8]) -> Hmac<Sha256> {
    let mut block = [0u8; 64];
    let len = key.len().min(block.len());
    block[..len].copy_from_slice(&key[..len]);
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

/// The keys one sign-in attempt is counted under (see [`Keys`]), so neither the address nor
/// what strangers type as a username (sometimes a password) can be read back from them.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pair: [u8; 32],
    /// Also the key of the user's known addresses.
    pub(crate) address: [u8; 32],
    user: [u8; 32],
}

impl Attempt {
    fn key(&self, scope: Scope) -> &[u8; 32] {
        match scope {
            Scope::Pair => &self.pair,
            Scope::Ip => &self.address,
            Scope::User => &self.user,
        }
    }
}

/// An address as counted (`shortlink::password::network_text`: IPv6 by its /64). Without an
/// address (no connection information) every such request shares one count.
fn address_text(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), shortlink::password::network_text)
}

/// This instance's sign-in limits, and its password hashes at work.
#[derive(Debug)]
pub(crate) struct SignInLimiter {
    limits: SignInLimits,
    keys: Keys,
    /// Sign-ins at once in their first queries (the user's, the counts') and their wait for a
    /// hash: parallel guesses from one address or at one name queue on one count row, so a
    /// flood of them would otherwise hold every pooled connection other callers need.
    turns: Arc<Semaphore>,
    hashes: Arc<Semaphore>,
    /// Argon2's working memory (19 MiB each), kept and reused: at most one per permit is ever
    /// made. Allocating it afresh for every hash, on whichever blocking thread ran it, let the
    /// allocator keep freed copies in per-thread arenas: 800 MiB of resident memory after one
    /// burst with only two hashes at a time.
    memory: Arc<std::sync::Mutex<Vec<Vec<Block>>>>,
    gauge: Arc<HashGauge>,
}

/// How many hashes run now, and the most that ever ran at once (what the burst tests check).
#[derive(Debug, Default)]
struct HashGauge {
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// Attempts counted for a sign-in, to give back when it ends well (or never got to hashing).
#[derive(Debug)]
#[must_use]
pub(crate) struct Reservation {
    scopes: Vec<Scope>,
    /// The window the attempt was counted in: it is given back there, not in the window of
    /// the moment it is given back (a 503 waits up to 2 s, and the window may have ended).
    window_start: OffsetDateTime,
}

impl SignInLimiter {
    /// `at_once`: sign-ins checked at once (at least one).
    pub(crate) fn new(limits: &SignInLimits, code_key: &CodeKey, at_once: usize) -> Self {
        Self {
            keys: Keys::new(code_key),
            turns: Arc::new(Semaphore::new(at_once.max(1))),
            hashes: Arc::new(Semaphore::new(limits.concurrent_hashes())),
            limits: limits.clone(),
            memory: Arc::default(),
            gauge: Arc::default(),
        }
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn limits(&self) -> &SignInLimits {
        &self.limits
    }

    fn limit(&self, scope: Scope) -> u32 {
        match scope {
            Scope::Pair => self.limits.per_pair,
            Scope::Ip => self.limits.per_ip,
            Scope::User => self.limits.per_user,
        }
    }

    /// Counts an attempt in every scope, or in none: `TooManySignIns` when any scope's window is
    /// full. `per_user` is false from an address where the user signed in lately.
    pub(crate) async fn reserve(
        &self,
        db: &PgPool,
        attempt: &Attempt,
        per_user: bool,
    ) -> Result<Reservation, Error> {
        let scopes: Vec<Scope> = [Scope::Pair, Scope::Ip, Scope::User]
            .into_iter()
            .filter(|scope| per_user || *scope != Scope::User)
            .collect();
        let mut tx = db.begin().await?;
        // Every scope's window comes from the transaction's `now()`: one window for all.
        let mut window_start = None;
        for &scope in &scopes {
            // The update's row lock holds a parallel attempt until this transaction ends, and
            // the condition is checked on the row as locked: no two attempts see the same count.
            let counted: Option<OffsetDateTime> = sqlx::query_scalar(
                "INSERT INTO sign_in_attempts AS a (scope, key, window_start, attempts)
                 VALUES ($1, $2, date_bin(make_interval(secs => $3), now(), TIMESTAMPTZ 'epoch'), 1)
                 ON CONFLICT (scope, key, window_start)
                 DO UPDATE SET attempts = a.attempts + 1 WHERE a.attempts < $4
                 RETURNING window_start",
            )
            .bind(scope.name())
            .bind(attempt.key(scope).as_slice())
            .bind(self.window_secs())
            .bind(i64::from(self.limit(scope)))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(counted) = counted else {
                // A refused attempt is not counted anywhere: retrying at a 429 does not push
                // the wait further out.
                tx.rollback().await?;
                metrics::counter!("kurz_rate_limited_total", "limit" => "sign_in").increment(1);
                return Err(Error::TooManySignIns {
                    seconds: self.seconds_left_in_window(db).await?,
                });
            };
            window_start = Some(counted);
        }
        tx.commit().await?;
        // The pair scope is always counted, so there is a window.
        let window_start =
            window_start.ok_or_else(|| Error::Internal(anyhow::anyhow!("no scope counted")))?;
        Ok(Reservation {
            scopes,
            window_start,
        })
    }

    /// Gives the attempt back in every scope it was counted in: it never reached a hash.
    pub(crate) async fn cancel(&self, db: &PgPool, attempt: &Attempt, reservation: Reservation) {
        for scope in reservation.scopes {
            self.give_back(db, scope, attempt, reservation.window_start)
                .await;
        }
    }

    /// After a right password: the pair's failures are forgotten, the attempt is given back in
    /// the other scopes (successes do not use up an office's or a user's budget), and the
    /// address becomes one the user is known at.
    pub(crate) async fn succeeded(
        &self,
        db: &PgPool,
        attempt: &Attempt,
        reservation: Reservation,
        user_id: i64,
    ) -> Result<(), Error> {
        sqlx::query("DELETE FROM sign_in_attempts WHERE scope = $1 AND key = $2")
            .bind(Scope::Pair.name())
            .bind(attempt.pair.as_slice())
            .execute(db)
            .await?;
        for scope in reservation.scopes {
            if scope != Scope::Pair {
                self.give_back(db, scope, attempt, reservation.window_start)
                    .await;
            }
        }
        sqlx::query(
            "INSERT INTO sign_in_known_addresses (user_id, address, last_success_at)
             VALUES ($1, $2, now())
             ON CONFLICT (user_id, address) DO UPDATE SET last_success_at = now()",
        )
        .bind(user_id)
        .bind(attempt.address.as_slice())
        .execute(db)
        .await?;
        Ok(())
    }

    /// Best effort: if it fails, the attempt stays counted, which errs on the safe side.
    async fn give_back(
        &self,
        db: &PgPool,
        scope: Scope,
        attempt: &Attempt,
        window_start: OffsetDateTime,
    ) {
        // A row back at zero is deleted, so attempts that never hashed leave no rows behind.
        let given_back = sqlx::query(
            "WITH emptied AS (
                 DELETE FROM sign_in_attempts
                 WHERE scope = $1 AND key = $2 AND window_start = $3 AND attempts <= 1
             )
             UPDATE sign_in_attempts SET attempts = attempts - 1
             WHERE scope = $1 AND key = $2 AND window_start = $3 AND attempts > 1",
        )
        .bind(scope.name())
        .bind(attempt.key(scope).as_slice())
        .bind(window_start)
        .execute(db)
        .await;
        if let Err(err) = given_back {
            tracing::warn!(error = %err, "cannot give a sign-in attempt back");
        }
    }

    /// Seconds until the current window ends (at least 1), by the database's clock like the
    /// windows themselves: the same answer for every scope, known and unknown names alike.
    async fn seconds_left_in_window(&self, db: &PgPool) -> Result<i64, Error> {
        let seconds: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM date_bin(make_interval(secs => $1), now(), TIMESTAMPTZ 'epoch')
                 + make_interval(secs => $1) - now())::float8",
        )
        .bind(self.window_secs())
        .fetch_one(db)
        .await?;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "at most one window, a u32 of seconds"
        )]
        Ok((seconds.ceil() as i64).max(1))
    }

    fn window_secs(&self) -> f64 {
        f64::from(self.limits.window_secs)
    }

    /// A sign-in's turn to be checked, if one comes free within the configured wait (that of
    /// a hash); `None`: the instance is busy (the caller answers 503 before any query).
    pub(crate) async fn turn(&self) -> Option<OwnedSemaphorePermit> {
        self.permit_of(&self.turns).await
    }

    /// A permit to hash one password, if one comes free within the configured wait; `None`:
    /// the instance is busy (the caller answers 503 without hashing).
    pub(crate) async fn hash_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permit_of(&self.hashes).await
    }

    /// A permit of `semaphore` within the configured wait.
    async fn permit_of(&self, semaphore: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        let wait = Duration::from_millis(self.limits.hash_wait_ms);
        tokio::time::timeout(wait, semaphore.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Runs `work` (a password hash, given working memory to reuse) on the blocking pool under
    /// `permit`. The permit moves into the task: a sign-in whose client goes away still holds it
    /// until the hash is done, so dropped requests cannot pile up hashes beyond the cap.
    pub(crate) async fn hash<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let gauge = self.gauge.clone();
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let running = gauge.running.fetch_add(1, Ordering::SeqCst) + 1;
            gauge.peak.fetch_max(running, Ordering::SeqCst);
            let lock = || {
                pool.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            // The permit bounds how many are taken at once, so the pool never holds more
            // than there are permits.
            let mut memory = lock().pop().unwrap_or_default();
            let result = work(&mut memory);
            lock().push(memory);
            gauge.running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            result
        })
        .await
        .map_err(|err| Error::Internal(err.into()))
    }

    /// The most password hashes that ever ran at once in this instance.
    pub(crate) fn peak_hashes(&self) -> usize {
        self.gauge.peak.load(Ordering::SeqCst)
    }
}

/// Deletes the counts of windows that ended more than a window ago and known addresses past
/// their time, every minute: the tables hold two windows' attempts at most (and only attempts
/// that were let through).
pub(crate) async fn forget_old_forever(db: PgPool, limits: SignInLimits) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(err) = forget_old(&db, &limits).await {
            tracing::warn!(error = %err, "cannot delete old sign-in attempts");
        }
    }
}

pub(crate) async fn forget_old(db: &PgPool, limits: &SignInLimits) -> Result<(), sqlx::Error> {
    // Only windows that ended a whole window ago: a sign-in whose transaction began just before
    // a boundary still counts into (and a late give-back still returns to) the window that just
    // ended. Deleting those rows under it would race its row locks (taken in another order
    // than the bulk delete's: a deadlock) or lose its count.
    sqlx::query(
        "DELETE FROM sign_in_attempts
         WHERE window_start <= now() - 2 * make_interval(secs => $1)",
    )
    .bind(f64::from(limits.window_secs))
    .execute(db)
    .await?;
    sqlx::query(
        "DELETE FROM sign_in_known_addresses
         WHERE last_success_at <= now() - make_interval(days => $1)",
    )
    .bind(i32::try_from(limits.known_address_days).unwrap_or(i32::MAX))
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_counted() {
        let cases = [
            (Some("192.0.2.1"), "192.0.2.1"),
            (Some("::ffff:192.0.2.1"), "192.0.2.1"),
            (Some("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64"),
            (Some("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64"),
            (Some("::1"), "::/64"),
            (None, "unknown"),
        ];
        for (ip, expected) in cases {
            let ip = ip.map(|ip| ip.parse().expect("address"));
            assert_eq!(address_text(ip), expected, "{ip:?}");
        }
    }

    fn keys(code_key: &str) -> Keys {
        Keys::new(&code_key.parse().expect("code key"))
    }

    #[test]
    fn keys_keep_scopes_and_parts_apart() {
        let keys = keys("000102030405060708090a0b0c0d0e0f");
        let a = keys.attempt(Some("192.0.2.1".parse().expect("ip")), "admin");
        let b = keys.attempt(Some("192.0.2.2".parse().expect("ip")), "admin");
        assert_ne!(a.pair, b.pair);
        assert_ne!(a.address, b.address);
        assert_eq!(a.user, b.user);
        assert_eq!(a.user, keys.user("admin"));
        // The same bytes in another scope, or split differently, are another key.
        assert_ne!(keys.key(&[b"ip", b"admin"]), keys.key(&[b"user", b"admin"]));
        assert_ne!(keys.key(&[b"ab", b"c"]), keys.key(&[b"a", b"bc"]));
    }

    #[test]
    fn keys_are_secret_without_the_code_key() {
        use sha2::Digest;
        let ip = Some("192.0.2.1".parse().expect("ip"));
        let one = keys("000102030405060708090a0b0c0d0e0f").attempt(ip, "admin");
        let other = keys("0f0e0d0c0b0a09080706050403020100").attempt(ip, "admin");
        // Not a plain hash of what was counted (anyone could hash every IPv4 address)...
        let plain = |parts: &[&[u8]]| -> [u8; 32] {
            let mut hasher = Sha256::new();
            for part in parts {
                hasher.update(part);
                hasher.update([0]);
            }
            hasher.finalize().into()
        };
        assert_ne!(one.address, plain(&[b"ip", b"192.0.2.1"]));
        assert_ne!(one.user, plain(&[b"user", b"admin"]));
        assert_ne!(one.pair, plain(&[b"pair", b"192.0.2.1", b"admin"]));
        // ...and another deployment's secret makes other keys; the same secret the same ones.
        assert_ne!(one.address, other.address);
        assert_ne!(one.user, other.user);
        assert_ne!(one.pair, other.pair);
        let again = keys("000102030405060708090a0b0c0d0e0f").attempt(ip, "admin");
        assert_eq!(one.address, again.address);
        // HMAC-SHA256 under HMAC(code key, label), never under the code key itself.
        let code_key = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let subkey = <Hmac<Sha256> as Mac>::new_from_slice(&code_key)
            .expect("key")
            .chain_update(b"kurz sign-in limit keys")
            .finalize()
            .into_bytes();
        let expected: [u8; 32] = <Hmac<Sha256> as Mac>::new_from_slice(&subkey)
            .expect("key")
            .chain_update(b"ip\x00192.0.2.1\x00")
            .finalize()
            .into_bytes()
            .into();
        assert_eq!(one.address, expected);
        let raw: [u8; 32] = <Hmac<Sha256> as Mac>::new_from_slice(&code_key)
            .expect("key")
            .chain_update(b"ip\x00192.0.2.1\x00")
            .finalize()
            .into_bytes()
            .into();
        assert_ne!(one.address, raw);
    }
}
