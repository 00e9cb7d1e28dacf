//! The PostgreSQL pool, migrations and the readiness check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
