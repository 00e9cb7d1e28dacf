//! The kurz origin: the links API, redirects for deployments without the edge, and the only
//! writer of PostgreSQL.
//!
//! [`app`] builds the router from a [`State`], so tests drive it without a socket; [`serve`]
//! runs it on a listener the caller bound until the caller's shutdown future completes.

mod abuse;
pub mod accounts;
mod analytics;
mod audit;
pub mod auth;
mod cache;
mod caller;
mod cli;
pub mod config;
mod dashboard;
pub mod db;
mod edge_api;
mod edge_client;
mod error;
mod extract;
mod first_start;
mod gateway;
mod health;
mod import_parse;
mod invalidation;
mod invitations;
mod keys;
mod links;
mod lookup;
mod members;
mod metrics;
mod openapi;
mod outbox;
mod places;
mod profile;
mod qr;
pub mod rate_limit;
mod redirect;
pub mod replay_clicks;
mod sign_in_limit;
mod streamed;
mod webhooks;
mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use crate::cache::CacheUsage;
use crate::cache::LinkCache;
pub use crate::cli::run_cli;
use crate::config::{Config, PublicUrl};
use crate::db::Migrated;
pub use crate::error::Error;

/// How long a shutdown waits for the clicks queued by the redirect route to be stored, after
/// the requests in flight are answered or `KURZ_SHUTDOWN_GRACE_SECS` passed. With the
/// default grace (10 s) a shutdown ends within 19 s at worst (10 s grace, this 5 s drain, 2 s
/// more for a store under way at its deadline, 1 s for the recorder's bookkeeping and 1 s to
/// close the database connections): inside Kubernetes' 30 s before SIGKILL; Docker's 10 s needs
/// `stop_grace_period` or a shorter grace.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// What every request handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct State {
    inner: Arc<Inner>,
}

/// The state, grouped by concern: what the redirects need, the clicks' path to the rollups,
/// the edge, the API's gate, and the rest each used by a few modules.
#[derive(Debug)]
struct Inner {
    db: PgPool,
    /// The reads that may lag: a replica's when one is configured (`db::Reads`).
    reads: db::Reads,
    /// Set once migrations are applied; `/ready` reports 503 until then.
    migrated: Migrated,
    public_url: PublicUrl,
    redirects: Redirects,
    clicks: Clicks,
    edge: Edge,
    gate: Gate,
    /// Audit entries older than this are deleted (`KURZ_AUDIT_RETENTION_DAYS`).
    audit_retention: time::Duration,
    /// The built dashboard, served at `/admin`.
    admin_dir: Option<std::path::PathBuf>,
    /// Sign-in attempt limits (counted in PostgreSQL) and this instance's password-hash cap.
    sign_in: sign_in_limit::SignInLimiter,
    /// The abuse reports' reporter keys and cap on reports stored at once.
    abuse: abuse::Abuse,
    /// Webhook delivery: its settings, the deliverer's wake, the workspaces that want clicks.
    webhooks: webhooks::Webhooks,
}

/// What a redirect needs besides the database (`redirect.rs`); the links API shares the
/// code scrambler, the visitor keys' secret and the own hosts.
#[derive(Debug)]
struct Redirects {
    cache: LinkCache,
    /// The cache misses of redirects waiting to be looked up together (`lookup.rs`).
    lookups: lookup::Lookups,
    /// How long the cache's listening connection may be silent before it is pinged
    /// (`invalidation::PING_AFTER`; tests shorten it), in milliseconds.
    invalidation_ping_ms: std::sync::atomic::AtomicU64,
    scrambler: shortlink::CodeScrambler,
    client_ip: redirect::ClientIp,
    /// Derives the daily visitor salts: the edge secret when there is one (so the edge and
    /// the origin make the same keys), else the code key.
    visitor_secret: Vec<u8>,
    /// The day's salt of the visitor keys, made once a day rather than per click.
    visitor_salt: redirect::VisitorSalt,
    /// Signs and checks the cookies that unlock password-protected links: derived from
    /// `visitor_secret`, so with an edge a cookie from either is good at both.
    unlock_key: shortlink::password::UnlockKey,
    /// Wrong answers to links' password forms, per (link, client address), bounded
    /// ([`redirect::PASSWORD_ATTEMPTS`]); held only without an await.
    password_attempts: std::sync::Mutex<shortlink::password::Attempts>,
    /// Link passwords being hashed at once, at most [`redirect::PASSWORD_HASHES`]: a flood of
    /// answers from many addresses (each within its own limit) cannot take every core.
    password_hashes: tokio::sync::Semaphore,
    /// Limited links' clicks are taken one at a time per stripe ([`links::limit::STRIPES`]),
    /// so a flood on one limited link queues here rather than on its count row, where each
    /// waiter would hold a database connection.
    click_stripes: Vec<tokio::sync::Mutex<()>>,
    /// Clicks of limited links being taken at once: half the pool's connections, so that the
    /// stripes of many limited links (a mailing of single-use links) wait here, not for
    /// connections the look-ups and the API need.
    click_takers: tokio::sync::Semaphore,
    /// Hosts whose links would redirect to this deployment (see `Config::own_hosts`).
    own_hosts: Vec<shortlink::HostKey>,
}

/// A click's way from the redirect to the rollups (`analytics/`).
#[derive(Debug)]
struct Clicks {
    /// Whether the origin's own redirects record clicks (`KURZ_RECORD_CLICKS`).
    record: bool,
    recorder: Arc<analytics::recorder::Recorder>,
    /// Taken by the background task that stores what the recorder receives.
    recorded: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<shortlink::edge::ClickEvent>>>,
    /// Raw clicks older than this are refused and their months dropped.
    retention: time::Duration,
    partitions: analytics::store::Partitions,
    /// Wake the counters of pending clicks (one per part) when this origin stored some.
    rollup_wakes: [Arc<tokio::sync::Notify>; analytics::rollup::Part::ALL.len()],
}

/// The edge, when one is configured.
#[derive(Debug)]
struct Edge {
    /// Set when an edge is configured: link changes are then written to the outbox.
    sync: Option<Arc<outbox::EdgeSync>>,
    /// Signs the `/_edge/*` routes; without it they answer 404.
    secret: Option<String>,
}

/// What the API's requests pass before their handlers, and the caps on its costly work.
#[derive(Debug)]
struct Gate {
    /// Request timeout, API concurrency cap, body limit and CORS (see `gateway.rs`).
    gateway: config::Gateway,
    /// Whether `/metrics` is served (`KURZ_METRICS_BIND`): without it, no request is measured,
    /// so the redirects pay nothing for metrics nobody reads.
    measure_requests: bool,
    api_permits: Arc<tokio::sync::Semaphore>,
    cors: Option<tower_http::cors::CorsLayer>,
    /// The API's budgets per caller and the redirects' per client address (`rate_limit.rs`).
    rate_limits: rate_limit::RateLimiter,
    /// Bulk creates at once, at most [`links::bulk::AT_ONCE`] (half of them one workspace's):
    /// taken before the body is read, so their bodies (up to [`links::bulk::BODY_LIMIT`] each)
    /// bound this instance's memory.
    bulk_creates: places::Places,
    /// Import files parsed at once, at most [`import_parse::AT_ONCE`] (one workspace's one):
    /// taken before the body is read, like `bulk_creates`.
    import_parses: places::Places,
    /// One permit per CPU: QR images being encoded on the blocking pool (see `qr.rs`).
    qr_encoders: Arc<tokio::sync::Semaphore>,
    /// Link exports streaming at once, at most [`links::export::AT_ONCE`] (half of them one
    /// workspace's): each holds a page in memory while its answer streams, long after the
    /// handler returned.
    link_exports: places::Places,
    /// Click exports streaming at once, at most [`analytics::export::AT_ONCE`], as
    /// `link_exports`.
    click_exports: places::Places,
    /// How long a piece of an export waits for its client ([`streamed::STALL`]).
    export_stall_ms: std::sync::atomic::AtomicU64,
}

impl State {
    /// Builds the state; nothing connects yet (the pool is lazy).
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let (recorder, recorded) = analytics::recorder::Recorder::new(
            usize::try_from(config.click_queue).unwrap_or(usize::MAX),
        );
        let primary = db::pool(&config.database)?;
        let visitor_secret = config.edge_secret.as_ref().map_or_else(
            || config.code_key.bytes().to_vec(),
            |s| s.as_bytes().to_vec(),
        );
        let client_ip_header = config
            .client_ip_header
            .as_deref()
            .map(axum::http::HeaderName::try_from)
            .transpose()
            .map_err(|err| anyhow::anyhow!("KURZ_CLIENT_IP_HEADER is not a header name: {err}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                reads: db::Reads::new(
                    primary.clone(),
                    config.database_read_url.as_deref(),
                    config.database.db_max_connections,
                    Duration::from_secs(config.replica_max_lag_secs),
                )?,
                db: primary,
                migrated: Migrated::default(),
                public_url: config.public_url.clone(),
                redirects: Redirects {
                    cache: LinkCache::new(
                        config.cache_max_bytes(),
                        config.cache_ttl(),
                        config.negative_cache_ttl(),
                    ),
                    lookups: lookup::Lookups::default(),
                    invalidation_ping_ms: std::sync::atomic::AtomicU64::new(
                        invalidation::PING_AFTER
                            .as_millis()
                            .try_into()
                            .unwrap_or(u64::MAX),
                    ),
                    scrambler: config.code_key.scrambler(),
                    client_ip: redirect::ClientIp {
                        header: client_ip_header,
                        trusted_proxies: usize::from(config.trusted_proxies),
                    },
                    visitor_salt: redirect::VisitorSalt::default(),
                    unlock_key: shortlink::password::UnlockKey::new(&visitor_secret),
                    visitor_secret,
                    password_attempts: std::sync::Mutex::new(shortlink::password::Attempts::new(
                        redirect::PASSWORD_ATTEMPTS,
                    )),
                    password_hashes: tokio::sync::Semaphore::new(redirect::PASSWORD_HASHES),
                    click_stripes: (0..links::limit::STRIPES)
                        .map(|_| tokio::sync::Mutex::new(()))
                        .collect(),
                    click_takers: tokio::sync::Semaphore::new(
                        (config.database.db_max_connections as usize / 2).max(1),
                    ),
                    own_hosts: config.own_hosts()?,
                },
                clicks: Clicks {
                    record: config.record_clicks,
                    recorder,
                    recorded: std::sync::Mutex::new(Some(recorded)),
                    retention: config.click_retention(),
                    partitions: analytics::store::Partitions::default(),
                    rollup_wakes: std::array::from_fn(|_| Arc::default()),
                },
                edge: Edge {
                    sync: match (&config.edge_url, &config.edge_secret) {
                        (Some(url), Some(secret)) => Some(Arc::new(outbox::EdgeSync {
                            url: url.trim_end_matches('/').to_owned(),
                            secret: secret.clone(),
                            wake: tokio::sync::Notify::new(),
                        })),
                        _ => None,
                    },
                    secret: config.edge_secret.clone(),
                },
                gate: Gate {
                    gateway: config.gateway.clone(),
                    measure_requests: config.metrics.bind.is_some(),
                    api_permits: Arc::new(tokio::sync::Semaphore::new(
                        usize::try_from(config.gateway.api_concurrency).unwrap_or(usize::MAX),
                    )),
                    cors: gateway::cors(&config.gateway.cors_origins)?,
                    rate_limits: rate_limit::RateLimiter::new(&config.rate_limits),
                    bulk_creates: places::Places::new(links::bulk::AT_ONCE),
                    import_parses: places::Places::new(import_parse::AT_ONCE),
                    link_exports: places::Places::new(links::export::AT_ONCE),
                    click_exports: places::Places::new(analytics::export::AT_ONCE),
                    export_stall_ms: std::sync::atomic::AtomicU64::new(
                        streamed::STALL.as_millis().try_into().unwrap_or(u64::MAX),
                    ),
                    qr_encoders: Arc::new(tokio::sync::Semaphore::new(
                        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                    )),
                },
                audit_retention: config.audit_retention(),
                admin_dir: config.admin_dir.clone(),
                // A quarter of the pool's connections at most.
                sign_in: sign_in_limit::SignInLimiter::new(
                    &config.sign_in,
                    &config.code_key,
                    (config.database.db_max_connections as usize / 4).max(2),
                ),
                abuse: abuse::Abuse::new(&config.code_key),
                webhooks: webhooks::Webhooks::new(&config.webhooks),
            }),
        })
    }

    /// Stores click events (enriched, idempotent) and queues the new ones for counting into
    /// the rollups (by the background counter, or [`State::count_clicks`]); returns how many
    /// were new.
    pub async fn store_clicks(
        &self,
        events: &[shortlink::edge::ClickEvent],
    ) -> Result<u64, sqlx::Error> {
        let stored = analytics::store::store(
            &self.inner.db,
            &self.inner.clicks.partitions,
            events,
            self.inner.clicks.retention,
            time::OffsetDateTime::now_utc(),
            self.inner.edge.sync.is_some(),
            &webhooks::clicks::ClickHooks {
                clicked: self.inner.webhooks.clicked.get(&self.inner.db).await,
                public_url: &self.inner.public_url,
            },
        )
        .await?;
        links::limit::announce(self, &stored.exhausted).await;
        if stored.refused > 0 {
            ::metrics::counter!("kurz_clicks_refused_total").increment(stored.refused);
            tracing::warn!(
                refused = stored.refused,
                "clicks dated in the future or past the retention were refused"
            );
        }
        if stored.inserted > 0 {
            self.inner
                .clicks
                .rollup_wakes
                .iter()
                .for_each(|wake| wake.notify_one());
        }
        Ok(stored.inserted)
    }

    /// Turns the clicks waiting for `link.clicked` webhooks into messages now, whenever the
    /// last were made (a serving origin does it every 5 s); returns (messages, clicks, clicks
    /// an endpoint will not get, once per endpoint: see `KURZ_WEBHOOK_MAX_PENDING_CLICKS`).
    pub async fn batch_webhook_clicks(&self) -> Result<(u64, u64, u64), Error> {
        let max_pending = self.inner.webhooks.config.max_pending_clicks;
        let done = webhooks::clicks::batch_all(&self.inner.db, max_pending, Duration::ZERO).await?;
        self.inner.webhooks.wake.notify_one();
        Ok((done.messages, done.clicks, done.dropped))
    }

    /// Counts every stored click not yet counted into the rollups, now (after waiting for
    /// any counter at work), and moves the counts of links whose tags changed; returns how
    /// many clicks. A serving origin does this in the background within moments of each
    /// ingest or edit.
    pub async fn count_clicks(&self) -> Result<u64, sqlx::Error> {
        analytics::rollup::count_all_pending(&self.inner.db).await
    }

    /// Takes one step of moving the counts of links whose tags changed to their new tags, as
    /// a serving origin's links counter does before each batch (after waiting for any counter
    /// at work); returns how many links it moved. (`count_clicks` moves them all.)
    pub async fn move_tag_counts_step(&self) -> Result<u64, sqlx::Error> {
        Ok(
            analytics::tags::move_step(&self.inner.db, analytics::rollup::Busy::Wait)
                .await?
                .unwrap_or(0),
        )
    }

    /// Takes one step of summing the daily breakdowns of the UTC days before `today`, as a
    /// serving origin's counters do before each batch once a day is over; returns whether
    /// there is more to do. (`count_clicks` sums no day.)
    pub async fn sum_breakdown_days_step(&self, today: time::Date) -> Result<bool, sqlx::Error> {
        analytics::closed_days::sum_closed_days_step(&self.inner.db, today).await
    }

    /// Measures the read replica's lag now (a serving origin does it every second), which
    /// decides whether reads may go to it; `None` without a replica.
    pub async fn measure_replica_lag(&self) -> Option<Result<Duration, sqlx::Error>> {
        self.inner.reads.measure_lag().await
    }

    /// Drops raw clicks whose month is past the retention, as of `now`; returns the dropped
    /// partitions.
    pub async fn drop_expired_clicks(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<Vec<String>, sqlx::Error> {
        analytics::retention::drop_expired(
            &self.inner.db,
            &self.inner.clicks.partitions,
            self.inner.clicks.retention,
            now,
        )
        .await
    }

    /// Clicks of the origin's redirect route neither stored nor counted since start: the
    /// queue and the overflow's map were both full, or they were left unstored at the
    /// shutdown's deadline (or recorded after it). A click only counted is not among them
    /// ([`State::clicks_details_shed`]).
    pub fn clicks_shed(&self) -> u64 {
        self.inner.clicks.recorder.shed()
    }

    /// Clicks of the origin's redirect route counted into the rollups without their raw
    /// event since start: the queue was full (or closed by the shutdown), so only their
    /// details were shed (`analytics/overflow.rs`).
    pub fn clicks_details_shed(&self) -> u64 {
        self.inner.clicks.recorder.details_shed()
    }

    /// Clicks of the origin's redirect route counted in memory while the queue was full, not
    /// yet written into the rollups (within a second, or when PostgreSQL is back), and the
    /// (link, hour) buckets that hold them.
    pub fn clicks_overflow_waiting(&self) -> (u64, usize) {
        (
            self.inner.clicks.recorder.overflow_waiting(),
            self.inner.clicks.recorder.overflow_buckets(),
        )
    }

    /// Clicks of the origin's redirect route that PostgreSQL refused, parked in
    /// `clicks_parked` since start.
    pub fn clicks_parked(&self) -> u64 {
        self.inner.clicks.recorder.parked()
    }

    /// Clicks of the origin's redirect route whose store was still unanswered at the
    /// shutdown's deadline: PostgreSQL may or may not have committed them (so they are
    /// counted neither stored nor shed).
    pub fn clicks_in_doubt(&self) -> u64 {
        self.inner.clicks.recorder.in_doubt()
    }

    /// Hands a click to the recorder, as the redirect route does: never waits, and counts it
    /// without its details when the queue is full or the origin is shutting down.
    pub fn record_click(&self, event: shortlink::edge::ClickEvent) {
        self.inner.clicks.recorder.record(event);
    }

    /// Stops taking clicks and stores those queued, for at most `within`; what is still
    /// unstored then is counted as shed. Returns the clicks shed since start.
    pub async fn drain_clicks(&self, within: Duration) -> u64 {
        let unclaimed = self
            .inner
            .clicks
            .recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match unclaimed {
            // No task was ever started to store them.
            Some(mut receiver) => {
                receiver.close();
                let mut unstored = 0;
                while receiver.try_recv().is_ok() {
                    unstored += 1;
                }
                self.inner.clicks.recorder.add_shed(unstored);
                self.inner.clicks.recorder.shed_overflow();
            }
            None => self.inner.clicks.recorder.drain(within).await,
        }
        self.clicks_shed()
    }

    /// The most password hashes of sign-ins that ever ran at once in this instance.
    pub fn peak_sign_in_hashes(&self) -> usize {
        self.inner.sign_in.peak_hashes()
    }

    /// Deletes the sign-in counts of windows that have ended and known addresses past their
    /// time, now (a serving origin does it every minute).
    pub async fn forget_old_sign_in_attempts(&self) -> Result<(), sqlx::Error> {
        sign_in_limit::forget_old(&self.inner.db, self.inner.sign_in.limits()).await
    }

    /// How long the cache's listening connection may be silent before it is pinged, for the
    /// background started after this (tests shorten [`invalidation::PING_AFTER`]).
    pub fn set_invalidation_ping(&self, silence: Duration) {
        self.inner.redirects.invalidation_ping_ms.store(
            silence.as_millis().try_into().unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How long exports started after this wait for a client that stopped reading before they
    /// give up their place (tests shorten [`streamed::STALL`]).
    pub fn set_export_stall(&self, stall: Duration) {
        self.inner.gate.export_stall_ms.store(
            stall.as_millis().try_into().unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub(crate) fn export_stall(&self) -> Duration {
        Duration::from_millis(
            self.inner
                .gate
                .export_stall_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// How many (link, address) pairs the password forms' limiter holds now.
    pub fn password_attempts(&self) -> usize {
        self.lock_password_attempts().len()
    }

    /// Starts the password forms' limiter afresh with room for `capacity` pairs (tests: a
    /// burst that fills the real bound would hash 10,000 passwords).
    pub fn set_password_attempts_capacity(&self, capacity: usize) {
        *self.lock_password_attempts() = shortlink::password::Attempts::new(capacity);
    }

    /// Every permit to hash a link password, held until dropped, as a flood of answers holds
    /// them (tests: the answers that find none are told the origin is busy).
    pub async fn hold_password_hashes(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let all = u32::try_from(redirect::PASSWORD_HASHES).ok()?;
        self.inner
            .redirects
            .password_hashes
            .acquire_many(all)
            .await
            .ok()
    }

    fn lock_password_attempts(&self) -> std::sync::MutexGuard<'_, shortlink::password::Attempts> {
        self.inner
            .redirects
            .password_attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many rate limiters this instance holds: for the API's callers, and for the
    /// redirects' client addresses (each at most `KURZ_RATE_LIMIT_ENTRIES`).
    pub async fn rate_limit_entries(&self) -> (u64, u64) {
        self.inner.gate.rate_limits.entries().await
    }

    /// What the redirect cache holds now.
    pub async fn cache_usage(&self) -> CacheUsage {
        self.inner.redirects.cache.usage().await
    }

    /// Starts the background work of a serving origin: storing recorded clicks (until
    /// [`State::drain_clicks`]), dropping cached links that any instance changed, counting
    /// stored clicks into the rollups, delivering link changes to the edge, forgetting old
    /// request signatures, and the partitions of raw clicks (made ahead, dropped past the
    /// retention).
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
        let recorded = self
            .inner
            .clicks
            .recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        // Not behind the wait for migrations below: a shutdown before them must still find
        // it, to count the clicks it holds.
        let mut handles: Vec<_> = recorded
            .map(|recorded| {
                tokio::spawn(analytics::recorder::store_until_drained(
                    self.clone(),
                    recorded,
                    self.inner.migrated.clone(),
                ))
            })
            .into_iter()
            .collect();
        // With a read replica the changes are heard even with the cache off: they mark the
        // links changed lately, which are read from the primary rather than the replica.
        if self.inner.redirects.cache.is_on() || self.inner.reads.has_replica() {
            tasks.push(Box::pin(invalidation::listen_forever(
                self.inner.db.clone(),
                self.inner.redirects.cache.clone(),
                Duration::from_millis(
                    self.inner
                        .redirects
                        .invalidation_ping_ms
                        .load(std::sync::atomic::Ordering::Relaxed),
                ),
            )));
        }
        for (part, wake) in analytics::rollup::Part::ALL
            .into_iter()
            .zip(&self.inner.clicks.rollup_wakes)
        {
            tasks.push(Box::pin(analytics::rollup::count_forever(
                self.inner.db.clone(),
                part,
                wake.clone(),
            )));
        }
        if let Some(edge) = &self.inner.edge.sync {
            tasks.push(Box::pin(outbox::deliver_forever(
                self.clone(),
                edge.clone(),
            )));
        }
        if self.inner.edge.secret.is_some() {
            tasks.push(Box::pin(edge_api::forget_old_nonces(self.clone())));
        }
        tasks.push(Box::pin(analytics::retention::run_forever(self.clone())));
        if self.inner.reads.has_replica() {
            tasks.push(Box::pin(self.inner.reads.clone().measure_lag_forever()));
        }
        tasks.push(Box::pin(abuse::blocklist::sweep_forever(self.clone())));
        tasks.push(Box::pin(audit::forget_old_forever(
            self.inner.db.clone(),
            self.inner.audit_retention,
        )));
        tasks.push(Box::pin(abuse::reports::forget_resolved_forever(
            self.inner.db.clone(),
            self.inner.audit_retention,
        )));
        tasks.push(Box::pin(links::idempotency::forget_old_forever(
            self.inner.db.clone(),
        )));
        tasks.push(Box::pin(webhooks::deliver::deliver_forever(self.clone())));
        tasks.push(Box::pin(webhooks::clicks::batch_forever(self.clone())));
        tasks.push(Box::pin(webhooks::deliver::forget_old_forever(
            self.inner.db.clone(),
        )));
        tasks.push(Box::pin(sign_in_limit::forget_old_forever(
            self.inner.db.clone(),
            self.inner.sign_in.limits().clone(),
        )));
        // Each waits for the tables it works on.
        handles.extend(tasks.into_iter().map(|task| {
            let migrated = self.inner.migrated.clone();
            tokio::spawn(async move {
                migrated.wait().await;
                task.await;
            })
        }));
        handles
    }

    pub fn db(&self) -> &PgPool {
        &self.inner.db
    }

    /// Where the reads that may lag go (see [`db::Reads`]).
    pub(crate) fn reads(&self) -> &db::Reads {
        &self.inner.reads
    }

    /// Applies migrations now (tests), instead of in the background as [`serve`] does.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        db::MIGRATOR.run(&self.inner.db).await?;
        self.inner.migrated.set();
        Ok(())
    }
}

/// The whole HTTP surface of the origin.
pub fn app(state: State) -> Router {
    let admin_dir = state.inner.admin_dir.clone();
    let measure_requests = state.inner.gate.measure_requests;
    let api = Router::new()
        .merge(links::routes())
        .merge(import_parse::routes())
        .merge(qr::routes())
        .merge(analytics::stats::routes())
        .merge(workspaces::routes())
        .merge(members::routes())
        .merge(invitations::routes())
        .merge(keys::routes())
        .merge(audit::routes())
        .merge(abuse::routes())
        .merge(profile::routes())
        .merge(webhooks::api::routes())
        .route(
            "/session",
            get(accounts::current).delete(accounts::sign_out),
        )
        .fallback(|| async { Error::NotFound })
        // Inside the caller's check, whose `Caller` it counts by; every keyed request (an
        // unknown path too) takes from its caller's budget.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit_api,
        ))
        // After the fallback, so that unknown API paths also need a key: no probing for routes.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_caller,
        ))
        // Looking up or signing up through an invitation: no credentials (the token is one),
        // but inside the cap like every API call that queries the database.
        .merge(invitations::public_routes())
        // Outside the cap, signing in: it needs no credentials, so a flood of sign-ins would
        // otherwise take every permit from the callers with a key; it has its own bounds, the
        // cap on password hashes and the sign-in turns (`sign_in_limit.rs`).
        .layer(axum::middleware::from_fn_with_state(
            state.inner.gate.api_permits.clone(),
            gateway::concurrency_limit,
        ))
        .route("/session", axum::routing::post(accounts::sign_in))
        // The API's description is public, like the reference page that reads it.
        .route("/openapi.json", get(openapi::openapi_json));
    let api = with_gateway(api, &state);
    let edge = edge_api::routes(state.clone()).layer(DefaultBodyLimit::max(edge_api::BODY_LIMIT));
    let app = Router::new()
        .nest("/api/v1", api)
        .route("/api/docs", get(openapi::docs_page))
        .route("/api/docs/docs.js", get(openapi::docs_script))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(dashboard::routes(admin_dir))
        .merge(abuse::reports::public_routes())
        .fallback(redirect::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.inner.gate.gateway.request_timeout(),
            gateway::time_limit,
        ))
        // After the timeout layer: the redirect routes bound their own wait (`redirect.rs`),
        // without the layer's cost on the hot path.
        .route("/{code}", get(redirect::redirect).post(redirect::unlock))
        // After the timeout layer: the edge's ingest has a deadline of its own, and cutting it
        // short would only make the edge send the batch again.
        .nest(shortlink::edge::EDGE_PREFIX, edge);
    // Last, so it wraps every route (and the fallback) and sees which route matched.
    let app = match measure_requests {
        true => app.layer(axum::middleware::from_fn(metrics::track)),
        false => app,
    };
    app.with_state(state)
}

/// The API's layers, outermost first: CORS (so that refusals below carry its headers and a
/// preflight needs no key), then the body limit; the concurrency cap is on the keyed routes
/// (see [`app`]). Redirects are outside the cap: they are the hot path, served from the
/// cache, and must not wait behind API calls.
fn with_gateway(api: Router<State>, state: &State) -> Router<State> {
    let limit = usize::try_from(state.inner.gate.gateway.api_body_limit).unwrap_or(usize::MAX);
    let api = api
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            limit,
            gateway::body_limit,
        ));
    match &state.inner.gate.cors {
        Some(cors) => api
            .layer(cors.clone())
            .layer(axum::middleware::from_fn(gateway::preflight_no_content)),
        None => api,
    }
}

/// Serves until `shutdown` completes, then finishes the requests in flight (for at most
/// `KURZ_SHUTDOWN_GRACE_SECS`) and stores the clicks they queued (for at most
/// [`SHUTDOWN_DRAIN`]).
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(State::new(config)?, config, listener, shutdown).await
}

/// [`serve`] with a state the caller made, and can read after the shutdown.
pub async fn serve_with(
    state: State,
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Before anything is spawned: a metrics address that cannot be had stops the start.
    let metrics_listener =
        match config.metrics.bind {
            Some(bind) => Some(TcpListener::bind(bind).await.map_err(|err| {
                anyhow::anyhow!("KURZ_METRICS_BIND: cannot listen on {bind}: {err}")
            })?),
            None => None,
        };
    serve_listening(state, config, listener, metrics_listener, shutdown).await
}

/// [`serve_with`] with the metrics listener bound by the caller (`config.metrics.bind` is
/// not read here, only whether it is set). Tests bind port 0 and keep the socket: a port
/// chosen free and bound later may be taken in between by any connection of the machine.
pub async fn serve_listening(
    state: State,
    config: &Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let exporter = match metrics_listener {
        Some(listener) => Some(metrics::serve(
            state.clone(),
            listener,
            config.metrics.token.as_ref(),
        )?),
        None => None,
    };
    let preparation = tokio::spawn(db::prepare_until_done(
        state.inner.db.clone(),
        state.inner.migrated.clone(),
        first_start::FirstStart {
            admin_password: config.admin_password.clone(),
            file: config.first_start_file.clone(),
        },
    ));
    let mut background = vec![preparation];
    background.extend(state.spawn_background());
    background.extend(exporter.map(tokio::spawn));
    tracing::info!(address = %listener.local_addr()?, public_url = %config.public_url, "origin listening");
    let service = app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Without TCP_NODELAY a response written in pieces (headers, then a larger body) waits
    // for the client's delayed ACK: tens of milliseconds per API call.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    // The requests in flight get the grace, not forever: one that never ends (a slow client,
    // a long export) must not push the click drain past the orchestrator's SIGKILL, which
    // would lose the queued clicks uncounted.
    let (began, shutdown_began) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        began.send(()).ok();
    };
    let server = std::future::IntoFuture::into_future(
        axum::serve(listener, service).with_graceful_shutdown(shutdown),
    );
    let grace = config.shutdown_grace();
    tokio::select! {
        served = server => served?,
        () = async {
            match shutdown_began.await {
                Ok(()) => tokio::time::sleep(grace).await,
                // The server ended by itself: its own arm answers.
                Err(_) => std::future::pending().await,
            }
        } => {
            // Dropping the server stops accepting; a click of a request still running is
            // shed and counted once the drain closed the queue.
            tracing::warn!(?grace, "requests still in flight at the end of the shutdown grace are cut off");
        }
    }
    // No click comes after this but is shed (and counted).
    let clicks_shed = state.drain_clicks(SHUTDOWN_DRAIN).await;
    background.iter().for_each(tokio::task::JoinHandle::abort);
    // A request cut off above may still hold a connection, which closing waits for.
    if tokio::time::timeout(Duration::from_secs(1), state.inner.db.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still in use at exit");
    }
    tracing::info!(
        clicks_shed,
        clicks_parked = state.clicks_parked(),
        clicks_in_doubt = state.clicks_in_doubt(),
        "origin stopped"
    );
    Ok(())
}
