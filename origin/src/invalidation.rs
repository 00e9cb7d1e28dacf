//! Keeps this instance's redirect cache in step with every other instance: LISTENs for the
//! notification that migration 0009's trigger sends on every change of a link, and drops
//! that code's entry. The same notification marks the link changed lately, so that with a
//! read replica (cache on or off) it is read from the primary until the replica caught up.
//!
//! Notifications sent while the listening connection is down are lost, so after every
//! (re)connection the whole cache is dropped: what was cached meanwhile may be stale. While
//! it is down the cache keeps serving (a database outage must not turn cached redirects into
//! errors), bounded by the TTL.
//!
//! A connection can also die without a word (a NAT or firewall forgot it, the server's host
//! vanished): nothing arrives, and waiting for a notification would wait forever while
//! changes go unseen. So a connection silent for [`PING_AFTER`] is pinged through, and one
//! that does not answer within [`PING_TIMEOUT`] is given up like a lost one.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};

use crate::cache::LinkCache;

/// The channel of migration 0009's trigger; the payload is a code, or `*` for every code.
pub(crate) const CHANNEL: &str = "kurz_links";
/// How the listening connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "kurz-origin cache invalidation";
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the listening connection may be silent before it is pinged. Well under the idle
/// timeouts of NATs and firewalls (minutes), so the ping also keeps it from being forgotten.
pub const PING_AFTER: Duration = Duration::from_secs(30);
/// How long a ping may take before the connection is taken for dead.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens until the task is dropped, reconnecting with backoff; pings the connection after
/// `ping_after` of silence.
pub(crate) async fn listen_forever(db: PgPool, cache: LinkCache, ping_after: Duration) {
    let options = (*db.connect_options())
        .clone()
        .application_name(APPLICATION_NAME);
    let mut backoff = Duration::from_millis(100);
    loop {
        // A pool of its own, so the listening connection never takes one of the requests';
        // a new one per connection: a dropped listener hands its connection back only after
        // an UNLISTEN, which on a dead connection hangs until TCP gives up (many minutes),
        // and that must not keep the next connection waiting for a slot.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.clone());
        match listen(&pool, &cache, ping_after).await {
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
async fn listen(pool: &PgPool, cache: &LinkCache, ping_after: Duration) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is replaced by a new listener here, after which the cache is dropped.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    // Changes made before LISTEN took effect were not notified to this connection.
    cache.invalidate_all();
    tracing::info!("listening for link changes");
    loop {
        let Ok(received) = tokio::time::timeout(ping_after, listener.try_recv()).await else {
            let ping = sqlx::query("SELECT 1").execute(&mut listener);
            if !matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_))) {
                tracing::warn!(
                    "the connection that listens for link changes does not answer: reconnecting"
                );
                return Ok(());
            }
            continue;
        };
        match received? {
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
