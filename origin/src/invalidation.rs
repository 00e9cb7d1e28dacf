//! Keeps this instance's redirect cache in step with every other instance: LISTENs for the
//! notification that migration 0009's trigger sends on every change of a link, and drops
//! that code's entry.
//!
//! Notifications sent while the listening connection is down are lost, so after every
//! (re)connection the whole cache is dropped: what was cached meanwhile may be stale. While
//! it is down the cache keeps serving (a database outage must not turn cached redirects into
//! errors), bounded by the TTL.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};

use crate::cache::LinkCache;

/// The channel of migration 0009's trigger; the payload is a code, or `*` for every code.
pub(crate) const CHANNEL: &str = "kurz_links";
/// How the listening connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "kurz-origin cache invalidation";
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens until the task is dropped, reconnecting with backoff.
pub(crate) async fn listen_forever(db: PgPool, cache: LinkCache) {
    // A pool of its own, so the listening connection never takes one of the requests'. Two
    // connections: a dropped listener hands its connection back only after an UNLISTEN, which
    // a half-dead connection may take long to fail.
    let options = (*db.connect_options())
        .clone()
        .application_name(APPLICATION_NAME);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen(&pool, &cache).await {
            // Listened, then lost the connection: reconnect at once.
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "cannot listen for link changes; cached links are kept until their TTL");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One connection's life: LISTEN, drop the whole cache, then drop what each notification
/// names. Returns when the connection is lost.
async fn listen(pool: &PgPool, cache: &LinkCache) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is replaced by a new listener here, after which the cache is dropped.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    // Changes made before LISTEN took effect were not notified to this connection.
    cache.invalidate_all();
    tracing::info!("listening for link changes");
    loop {
        match listener.try_recv().await? {
            Some(notification) => match notification.payload() {
                "*" => cache.invalidate_all(),
                code => cache.invalidate(code).await,
            },
            None => {
                tracing::warn!("lost the connection that listens for link changes");
                return Ok(());
            }
        }
    }
}
