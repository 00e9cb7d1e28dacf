//! The PostgreSQL pool, migrations and the readiness check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseConfig;

/// The migrations in `origin/migrations`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// How long a request waits for a connection before answering 503. Short, so that a dead
/// database costs callers seconds at most, and the cache keeps serving what it holds.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A pool that connects on first use, so the origin starts (and answers `/health`, and
/// serves `/ready` as 503) while PostgreSQL is still down.
pub fn pool(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A ping before every checkout costs a round trip per query; a dead connection is
        // instead noticed by the query that uses it, which answers 503 and drops it.
        .test_before_acquire(false)
        .connect_lazy(&config.database_url)
}

/// Runs `chore` (a retention: it returns how many of `what` it deleted) at start and
/// every hour, for as long as the task lives. A run that failed (the database busy or away) is
/// tried again a minute later, then after twice as long each time up to the hour: a start
/// that met a busy pool would otherwise skip its first run, and a lasting failure (a missing
/// grant) is not logged every minute.
pub(crate) async fn hourly<F, Fut>(what: &'static str, mut chore: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    const HOUR: Duration = Duration::from_secs(3600);
    let mut retry = Duration::from_secs(60);
    loop {
        let next = match chore().await {
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(deleted, of = what, "applied a retention");
                }
                retry = Duration::from_secs(60);
                HOUR
            }
            Err(err) => {
                tracing::warn!(error = %err, of = what, ?retry, "cannot apply a retention: tried again later");
                let now = retry;
                retry = (retry * 2).min(HOUR);
                now
            }
        };
        tokio::time::sleep(next).await;
    }
}

/// How a one-off command (`create-admin`, `create-api-key`, `set-rate-limits`) takes the
/// database: at this release's schema. One that no release has migrated is migrated now
/// (nothing serves from it yet). One at another release's schema is refused, not migrated:
/// during an upgrade the old release's origins still serve from it (a newer schema is theirs
/// to refuse), and a newer one is a newer binary's.
pub async fn require_this_release(pool: &PgPool) -> anyhow::Result<()> {
    use sqlx::migrate::Migrate as _;
    let mut conn = pool.acquire().await?;
    // Under the lock every run of the migrations holds: a `serve` migrating a fresh database
    // meanwhile (an init job started beside it) is waited for, not taken for an older release.
    conn.lock().await?;
    let decided = this_release_on(&mut conn).await;
    conn.unlock().await?;
    decided
}

/// [`require_this_release`] on a connection holding the migrations' lock.
async fn this_release_on(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            // No such table (undefined_table): no release has migrated it.
            .or_else(|err| match &err {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                    Ok(Vec::new())
                }
                _ => Err(err),
            })?;
    if applied.is_empty() {
        // The lock is the session's: taking it again here is allowed.
        MIGRATOR.run_direct(conn).await?;
        return Ok(());
    }
    let ours: Vec<i64> = MIGRATOR
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
        .map(|migration| migration.version)
        .collect();
    if applied == ours {
        return Ok(());
    }
    let theirs = applied.iter().max().copied().unwrap_or_default();
    let this = ours.iter().max().copied().unwrap_or_default();
    if applied.iter().all(|version| ours.contains(version)) {
        anyhow::bail!(
            "the database's schema is at migration {theirs}, this release's at {this}: a one-off \
             command does not migrate a database that origins serve from. Start this release's \
             `origin serve` (it migrates), then run this again."
        )
    }
    anyhow::bail!(
        "the database's schema is at migration {theirs}, which this release does not know (its \
         last is {this}): run this command with the release that migrated the database."
    )
}

/// Whether this process has applied (or found applied) every migration it embeds.
#[derive(Debug, Clone, Default)]
pub struct Migrated(Arc<MigratedInner>);

#[derive(Debug, Default)]
pub struct MigratedInner {
    done: AtomicBool,
    changed: tokio::sync::Notify,
}

impl Migrated {
    pub fn get(&self) -> bool {
        self.0.done.load(Ordering::Acquire)
    }

    pub fn set(&self) {
        self.0.done.store(true, Ordering::Release);
        self.0.changed.notify_waiters();
    }

    /// Completes once the migrations are applied.
    pub async fn wait(&self) {
        loop {
            // Registered before the check, so a `set` in between is not missed.
            let changed = self.0.changed.notified();
            if self.get() {
                return;
            }
            changed.await;
        }
    }
}

/// Prepares the database, retrying with backoff until it is reachable: runs the migrations
/// (several instances may do so at once: sqlx serialises them with an advisory lock), and on
/// a deployment's first start creates its first API key and dashboard user, their secrets
/// written to the first-start file. Only then is the instance ready, so whoever waits for
/// `/ready` finds them there.
pub(crate) async fn prepare_until_done(
    pool: PgPool,
    migrated: Migrated,
    first_start: crate::first_start::FirstStart,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match prepare(&pool, &first_start).await {
            Ok(()) => {
                migrated.set();
                tracing::info!("database migrations applied");
                return;
            }
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), retry_in = ?delay, "preparing the database failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn prepare(
    pool: &PgPool,
    first_start: &crate::first_start::FirstStart,
) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    first_start.run(pool).await
}

/// Ready means: migrated, and PostgreSQL answers within a second. The reason given when not
/// is one of a few fixed phrases: `/ready` answers anyone, so the database's own error (its
/// host, user or database names) goes only to the log.
pub async fn check_ready(pool: &PgPool, migrated: &Migrated) -> Result<(), &'static str> {
    if !migrated.get() {
        return Err("database migrations have not been applied yet");
    }
    let ping = sqlx::query("SELECT 1").execute(pool);
    match tokio::time::timeout(Duration::from_secs(1), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "not ready: the database did not answer");
            Err("database unreachable")
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within 1 s");
            Err("database did not answer within 1 s")
        }
    }
}

/// Rows one retention statement deletes at most: each batch is its own short transaction.
const RETENTION_BATCH: i64 = 10_000;

/// Runs `delete` (a `DELETE` whose `$1` is `cutoff` and `$2` the batch size, choosing rows
/// `FOR UPDATE SKIP LOCKED` so instances deleting at once skip rather than wait) until a batch
/// comes back short; returns how many rows went.
pub(crate) async fn delete_in_batches(
    db: &PgPool,
    delete: &'static str,
    cutoff: time::OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let batch = sqlx::query(delete)
            .bind(cutoff)
            .bind(RETENTION_BATCH)
            .execute(db)
            .await?
            .rows_affected();
        deleted += batch;
        if batch < RETENTION_BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// How long a read waits for a replica connection before the primary answers it instead:
/// short, so a replica that is down (whose connection attempts sqlx retries until this
/// deadline) costs the one read that finds it down little.
const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a replica that failed is left alone: reads go to the primary meanwhile, then one
/// read tries the replica again (the others keep to the primary until it answered).
pub(crate) const REPLICA_REST: Duration = Duration::from_secs(5);

/// How often a serving origin measures the replica's lag ([`Reads::measure_lag`]).
pub(crate) const LAG_EVERY: Duration = Duration::from_secs(1);

/// [`Replica::down_until`] while the replica is taken for up.
const UP: u64 = 0;

/// The replica's lag while it is not known: never measured, or behind with nothing replayed
/// since it started. Taken as too far behind.
const LAG_UNKNOWN: u64 = u64::MAX;

/// Where the reads that may lag go (`KURZ_DATABASE_READ_URL`): the redirects' look-ups on a
/// cache miss, the edge's resolve, stats and link lists. Everything else — writes,
/// transactions, and reads that must see the caller's own writes (a link's GET, conditional
/// requests, sign-in, sessions, API keys, idempotency, rate limits) — uses the primary pool,
/// [`crate::State::db`], as before.
///
/// A read goes to the replica while it answers; a read it fails with a lost connection (or
/// whose connection it does not give within [`REPLICA_ACQUIRE_TIMEOUT`]) is run again on the
/// primary, and the replica rests for [`REPLICA_REST`] before one read tries it again. So a
/// dead replica costs one read's timeout per rest, not every read's.
#[derive(Debug, Clone)]
pub(crate) struct Reads {
    primary: PgPool,
    replica: Option<Arc<Replica>>,
}

#[derive(Debug)]
struct Replica {
    pool: PgPool,
    /// [`UP`] (0) while the replica is taken for up; else until when (ms after `epoch`, at
    /// least 1) reads skip it. While one read tries it again this is pushed on, so only that
    /// read waits.
    down_until: AtomicU64,
    epoch: std::time::Instant,
    /// Reads the primary answered instead, since start (also in `/metrics`).
    fallbacks: AtomicU64,
    /// Reads (and lag measurements) the replica failed with a lost connection, since start:
    /// each starts a rest.
    failures: AtomicU64,
    /// How far behind the primary the replica was at the last measurement, in ms
    /// ([`Reads::measure_lag`]); [`LAG_UNKNOWN`] until measured. 0 while no measurement ran
    /// yet would hide a replica that lags from the start, so it starts unknown, and reads go
    /// to the replica only once a measurement found it close.
    lag_ms: AtomicU64,
    /// Reads leave the replica while its lag is above this (`KURZ_REPLICA_MAX_LAG_SECS`).
    max_lag_ms: u64,
}

/// The replica as `/health` shows it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct ReplicaHealth {
    /// `up` (taken for answering: the last read or lag measurement it got succeeded, or none
    /// failed yet) or `down` (lost, and not answered since: reads go to the primary).
    pub(crate) state: &'static str,
    /// Reads the primary answered instead of the replica since start.
    pub(crate) fallbacks: u64,
    /// Reads and lag measurements the replica failed (it lost the connection or gave none in
    /// time) since start: after each it rests, so while it is down this grows once per rest
    /// at most, not per read.
    pub(crate) failures: u64,
    /// Seconds the replica was behind the primary at the last measurement (once a second):
    /// `null` while not known (not measured yet, or unreachable since the last measurement).
    pub(crate) lag_seconds: Option<f64>,
    /// Whether reads go to the primary because the replica lags more than
    /// `KURZ_REPLICA_MAX_LAG_SECS` (or its lag is not known).
    pub(crate) behind: bool,
}

/// What a failed read says about the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A bad query or value: the primary would fail it too.
    Query,
    /// The replica is unreachable, shutting down, starting, or gave no connection in time.
    Lost,
    /// The replica cancelled the query to replay a conflicting change: this read goes to the
    /// primary, but the replica is fine.
    Conflict,
}

/// Errors of the queries handed to [`Reads`], sorted into [`Failure`]s.
pub(crate) trait ReadError: std::fmt::Display {
    fn failure(&self) -> Failure;
}

impl ReadError for sqlx::Error {
    fn failure(&self) -> Failure {
        match self {
            Self::Io(_)
            | Self::Tls(_)
            | Self::Protocol(_)
            | Self::PoolTimedOut
            | Self::PoolClosed
            | Self::WorkerCrashed => Failure::Lost,
            Self::Database(db) => match db.code().as_deref() {
                // serialization_failure: on a standby, a query cancelled by a recovery conflict.
                Some("40001") => Failure::Conflict,
                // connection_exception, and admin/crash shutdown, cannot_connect_now.
                Some(code) if code.starts_with("08") || code.starts_with("57P") => Failure::Lost,
                _ => Failure::Query,
            },
            _ => Failure::Query,
        }
    }
}

impl ReadError for crate::Error {
    fn failure(&self) -> Failure {
        match self {
            Self::Unavailable(err) => err.failure(),
            Self::Internal(err) => err
                .downcast_ref::<sqlx::Error>()
                .map_or(Failure::Query, ReadError::failure),
            _ => Failure::Query,
        }
    }
}

impl Reads {
    /// Reads on `primary` alone, or also on a lazily connected replica at `replica_url`.
    pub(crate) fn new(
        primary: PgPool,
        replica_url: Option<&str>,
        max_connections: u32,
        max_lag: Duration,
    ) -> Result<Self, sqlx::Error> {
        let replica = replica_url
            .map(|url| {
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(REPLICA_ACQUIRE_TIMEOUT)
                    .test_before_acquire(false)
                    .connect_lazy(url)?;
                Ok::<_, sqlx::Error>(Arc::new(Replica {
                    pool,
                    down_until: AtomicU64::new(0),
                    epoch: std::time::Instant::now(),
                    fallbacks: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    lag_ms: AtomicU64::new(LAG_UNKNOWN),
                    max_lag_ms: u64::try_from(max_lag.as_millis()).unwrap_or(u64::MAX),
                }))
            })
            .transpose()?;
        Ok(Self { primary, replica })
    }

    /// Runs `query` on the replica, or on the primary when there is none, it rests, or it
    /// lost the connection (or cancelled the query in a recovery conflict).
    pub(crate) async fn read<'a, T, E, F, Fut>(&'a self, query: F) -> Result<T, E>
    where
        F: Fn(&'a PgPool) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: ReadError,
    {
        self.read_saying(query).await.0
    }

    /// Whether reads may lag: a replica is configured.
    pub(crate) fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// The primary pool, for reads that must not lag (e.g. a link changed moments ago).
    pub(crate) fn primary(&self) -> &PgPool {
        &self.primary
    }

    /// Like [`Reads::read`], and says whether the replica answered (else the primary did).
    pub(crate) async fn read_saying<'a, T, E, F, Fut>(&'a self, query: F) -> (Result<T, E>, bool)
    where
        F: Fn(&'a PgPool) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: ReadError,
    {
        let Some(replica) = &self.replica else {
            return (query(&self.primary).await, false);
        };
        let Some(turn) = replica.take_turn() else {
            replica.fell_back("resting");
            return (query(&self.primary).await, false);
        };
        if replica.behind() {
            replica.fell_back("behind");
            return (query(&self.primary).await, false);
        }
        let answer = query(&replica.pool).await;
        let failure = answer.as_ref().err().map(ReadError::failure);
        match failure {
            Some(Failure::Lost) => {
                if let Err(err) = &answer {
                    tracing::warn!(error = %err, rest = ?REPLICA_REST, "the read replica failed: reading the primary");
                }
                replica.rest(turn);
                replica.fell_back("failed");
                (query(&self.primary).await, false)
            }
            Some(Failure::Conflict) => {
                replica.fell_back("conflict");
                (query(&self.primary).await, false)
            }
            Some(Failure::Query) | None => {
                replica.answered();
                (answer, true)
            }
        }
    }

    /// `None` without a replica.
    pub(crate) fn replica_health(&self) -> Option<ReplicaHealth> {
        let replica = self.replica.as_ref()?;
        Some(ReplicaHealth {
            state: if replica.down_until.load(Ordering::Acquire) == UP {
                "up"
            } else {
                "down"
            },
            fallbacks: replica.fallbacks.load(Ordering::Relaxed),
            failures: replica.failures.load(Ordering::Relaxed),
            lag_seconds: match replica.lag_ms.load(Ordering::Relaxed) {
                LAG_UNKNOWN => None,
                ms => Some(ms as f64 / 1000.0),
            },
            behind: replica.behind(),
        })
    }

    /// Measures how far the replica is behind the primary, and so whether reads may go to it
    /// (a serving origin does this every [`LAG_EVERY`]); `None` without a replica.
    ///
    /// The primary's WAL position is read first, then the replica's replay position: a
    /// replica that has replayed that far lags by nothing. One that has not lags by the
    /// time since the primary committed the last transaction it replayed (read from the
    /// primary's clock, so the hosts' clocks need not agree). After a long idle spell this
    /// overstates the lag of the first moments of new writes, which only sends reads to the
    /// primary until the next measurement. A replica that cannot be asked keeps no lag
    /// ([`LAG_UNKNOWN`]) until it answers again, and rests as after a failed read: `/health`
    /// says `down` even while no read tried it.
    pub(crate) async fn measure_lag(&self) -> Option<Result<Duration, sqlx::Error>> {
        let replica = self.replica.as_ref()?;
        let measured = async {
            let (written, now): (i64, time::OffsetDateTime) = sqlx::query_as(
                "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8, clock_timestamp()",
            )
            .fetch_one(&self.primary)
            .await?;
            // NULL replay position: not a standby (nothing to lag behind by WAL).
            let replay: Result<(Option<i64>, Option<time::OffsetDateTime>), _> = sqlx::query_as(
                "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8,
                            pg_last_xact_replay_timestamp()",
            )
            .fetch_one(&replica.pool)
            .await;
            // The measurement is a read of the replica like any other: lost, the replica
            // rests (if it was up: a resting replica's failed measurements start no new
            // rest); answered, it is up again without waiting for a read to try it.
            match &replay {
                Err(err) if err.failure() == Failure::Lost => replica.rest(UP),
                Err(_) => {}
                Ok(_) => replica.answered(),
            }
            let (replayed, replayed_commit) = replay?;
            Ok::<_, sqlx::Error>(match (replayed, replayed_commit) {
                (None, _) => Some(Duration::ZERO),
                (Some(replayed), _) if replayed >= written => Some(Duration::ZERO),
                (Some(_), Some(commit)) => {
                    Some((now - commit).try_into().unwrap_or(Duration::ZERO))
                }
                (Some(_), None) => None,
            })
        }
        .await;
        let lag_ms = match &measured {
            Ok(Some(lag)) => u64::try_from(lag.as_millis()).unwrap_or(LAG_UNKNOWN - 1),
            Ok(None) | Err(_) => LAG_UNKNOWN,
        };
        replica.lag_ms.store(lag_ms, Ordering::Relaxed);
        metrics::gauge!("kurz_replica_lag_seconds").set(match lag_ms {
            LAG_UNKNOWN => f64::NAN,
            ms => ms as f64 / 1000.0,
        });
        Some(measured.map(|lag| lag.unwrap_or(Duration::MAX)))
    }

    /// Measures the replica's lag every [`LAG_EVERY`], for ever (without a replica, returns).
    pub(crate) async fn measure_lag_forever(self) {
        let mut every = tokio::time::interval(LAG_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            every.tick().await;
            match self.measure_lag().await {
                None => return,
                Some(Ok(_)) => failing = false,
                Some(Err(err)) => {
                    if !failing {
                        tracing::warn!(error = %err, "cannot measure the read replica's lag: reads go to the primary until it answers");
                    }
                    failing = true;
                }
            }
        }
    }
}

impl Replica {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Whether the replica lags more than it may, or by what is not known.
    fn behind(&self) -> bool {
        self.lag_ms.load(Ordering::Relaxed) > self.max_lag_ms
    }

    fn rest_ms() -> u64 {
        u64::try_from(REPLICA_REST.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this read may go to the replica: it is up, or its rest is over and this read
    /// is the one to try it again. Says the `down_until` the read saw (its turn), for
    /// [`Replica::rest`].
    fn take_turn(&self) -> Option<u64> {
        let until = self.down_until.load(Ordering::Acquire);
        if until == UP {
            return Some(UP);
        }
        let now = self.now_ms();
        let turn = now.saturating_add(Self::rest_ms());
        (now >= until
            && self
                .down_until
                .compare_exchange(until, turn, Ordering::AcqRel, Ordering::Acquire)
                .is_ok())
        .then_some(turn)
    }

    /// Starts a rest after a failure on `turn` (the `down_until` seen when the replica was
    /// tried), unless another failure started one since: reads failing together count once.
    fn rest(&self, turn: u64) {
        let until = self.now_ms().saturating_add(Self::rest_ms());
        if self
            .down_until
            .compare_exchange(turn, until, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn answered(&self) {
        // A load first: the store would make every read write the same cache line.
        if self.down_until.load(Ordering::Relaxed) != UP {
            self.down_until.store(UP, Ordering::Release);
        }
    }

    fn fell_back(&self, reason: &'static str) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kurz_replica_fallbacks_total", "reason" => reason).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::{Failure, ReadError, Reads, UP};

    #[tokio::test]
    async fn failures_seen_together_start_one_rest() {
        let primary = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("lazy pool");
        let reads = Reads::new(
            primary,
            Some("postgres://nobody@127.0.0.1:1/none"),
            1,
            std::time::Duration::from_secs(10),
        )
        .expect("reads");
        let replica = reads.replica.as_ref().expect("a replica");
        // Two reads tried it while up, and both failed: one rest, one failure.
        let (first, second) = (replica.take_turn(), replica.take_turn());
        assert_eq!((first, second), (Some(UP), Some(UP)));
        replica.rest(UP);
        replica.rest(UP);
        assert_eq!(
            reads.replica_health().map(|h| (h.state, h.failures)),
            Some(("down", 1))
        );
        // Resting: no read gets a turn, and a measurement that fails starts no new rest.
        assert_eq!(replica.take_turn(), None);
        replica.rest(UP);
        assert_eq!(reads.replica_health().map(|h| h.failures), Some(1));
        // Answered (a read or a measurement): up again.
        replica.answered();
        assert_eq!(replica.take_turn(), Some(UP));
        assert_eq!(reads.replica_health().map(|h| h.state), Some("up"));
    }

    #[test]
    fn what_a_failed_read_says_about_the_replica() {
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases: Vec<(crate::Error, Failure)> = vec![
            (sqlx::Error::Io(refused()).into(), Failure::Lost),
            (sqlx::Error::PoolTimedOut.into(), Failure::Lost),
            (sqlx::Error::PoolClosed.into(), Failure::Lost),
            (
                sqlx::Error::Protocol("unexpected message".into()).into(),
                Failure::Lost,
            ),
            (sqlx::Error::RowNotFound.into(), Failure::Query),
            (
                sqlx::Error::ColumnNotFound("x".into()).into(),
                Failure::Query,
            ),
            (crate::Error::LinkNotFound("abc".into()), Failure::Query),
        ];
        for (err, expected) in cases {
            assert_eq!(err.failure(), expected, "{err:?}");
        }
        assert_eq!(sqlx::Error::Io(refused()).failure(), Failure::Lost);
        assert_eq!(sqlx::Error::RowNotFound.failure(), Failure::Query);
    }
}
