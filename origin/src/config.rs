//! Configuration: one struct, read from flags or the environment (documented in README.md).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use axum::http::HeaderName;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use shortlink::workspace::Scope;
use shortlink::{CodeScrambler, HostKey};

#[derive(Debug, Parser)]
#[command(name = "origin", version, about = "The kurz origin server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line, or the process ends as clap ends it on a refusal: but a secret's
    /// refused value is not printed. clap quotes it (`invalid value '<the key>' for
    /// '--code-key'`), and standard error is the log under systemd or Docker: a key one
    /// character too long, or a 64-character secret, went to the log whole.
    pub fn parse_or_exit() -> Self {
        Self::try_parse().unwrap_or_else(|err| match secret_refused(&err) {
            Some(message) => {
                // As clap writes its own refusals: before any logging is set up.
                let _ = writeln!(std::io::stderr(), "{message}");
                std::process::exit(2)
            }
            None => err.exit(),
        })
    }
}

/// The message for `err` if it refused a secret's value: the argument and the reason only.
fn secret_refused(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg
        .split(' ')
        .next()
        .and_then(|flag| flag.strip_prefix("--"));
    flag.is_some_and(|flag| is_secret(&Cli::command(), flag))
        .then(|| {
            let reason = std::error::Error::source(err)
                .map(ToString::to_string)
                .unwrap_or_else(|| "not a valid value".to_owned());
            format!("error: invalid value for '{arg}' (not shown: it is a secret): {reason}")
        })
}

/// Whether `--{flag}` is a secret in `command` or one of its subcommands: an argument whose
/// value is hidden (`hide_env_values`), so that no list of secrets is kept by hand.
fn is_secret(command: &clap::Command, flag: &str) -> bool {
    command
        .get_arguments()
        .any(|arg| arg.is_hide_env_values_set() && arg.get_long() == Some(flag))
        || command
            .get_subcommands()
            .any(|command| is_secret(command, flag))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: migrations, links API, redirects.
    Serve(Box<Config>),
    /// Create an API key and print it (it is shown only this once).
    CreateApiKey {
        #[command(flatten)]
        database: DatabaseConfig,
        /// What the key is for, e.g. "deploy script".
        #[arg(long)]
        name: String,
        /// The id of the workspace the key belongs to (1: the default workspace).
        #[arg(long, default_value_t = 1)]
        workspace: i64,
        /// A scope of the key, repeated for several: links:read, links:write, stats:read,
        /// workspace:admin. Unset: every scope.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<Scope>,
    },
    /// Create a dashboard user (or with --reset, set a new password and sign it out
    /// everywhere). The password is read from KURZ_ADMIN_PASSWORD, else generated and printed.
    CreateAdmin {
        #[command(flatten)]
        database: DatabaseConfig,
        /// The server's code key: the sign-in limits' keys are made with it, so a reset can
        /// lift the user's limit.
        #[arg(long, env = "KURZ_CODE_KEY", hide_env_values = true)]
        code_key: CodeKey,
        #[arg(long, default_value = crate::accounts::FIRST_ADMIN)]
        username: String,
        /// Set a new password for an existing user.
        #[arg(long)]
        reset: bool,
        #[arg(long, env = "KURZ_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Set a workspace's own API rate limits, in requests per minute of each caller (key or
    /// person); with --clear, go back to the deployment's (KURZ_RATE_*_PER_MIN) first. Only
    /// the operator can: no API route changes them. Serving instances apply it within 10 s.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["api", "create", "stats", "clear"])))]
    SetRateLimits {
        #[command(flatten)]
        database: DatabaseConfig,
        /// The id of the workspace.
        #[arg(long)]
        workspace: i64,
        /// Every API request (never off).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        api: Option<u32>,
        /// Link creations, on top of `api` (0: only `api`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        create: Option<u32>,
        /// Stats and CSV exports, on top of `api` (0: only `api`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        stats: Option<u32>,
        /// Drop the workspace's own figures (then set those given).
        #[arg(long)]
        clear: bool,
    },
    /// Move the clicks the edge parked in KV (its dead-letter queue could not deliver them to
    /// the origin) back onto its click queue, until none remain. Run it once the origin is up.
    ReplayParkedClicks {
        /// Base URL of the edge worker, e.g. https://go.example.
        #[arg(long, env = "KURZ_EDGE_URL", value_parser = parse_edge_url)]
        edge_url: String,
        /// The secret shared with the edge, as for `serve`.
        #[arg(long, env = "KURZ_EDGE_SECRET", hide_env_values = true, value_parser = parse_edge_secret)]
        edge_secret: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Most connections this instance opens; several instances share the server's limit.
    #[arg(long, env = "KURZ_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub db_max_connections: u32,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// A read-only (streaming replica) PostgreSQL URL for the reads that may lag: redirect
    /// look-ups on a cache miss, the edge's resolve, stats and link lists. Writes and reads of
    /// one's own writes stay on DATABASE_URL, which also answers when the replica does not.
    #[arg(long, env = "KURZ_DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,
    /// Seconds the read replica may lag behind the primary (measured every second) before
    /// its reads go to the primary, until it catches up. At most 25: a link changed in the
    /// last 30 s is read from the primary anyway, so a replica within this bound never serves
    /// a changed link as it was.
    #[arg(long, env = "KURZ_REPLICA_MAX_LAG_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=25))]
    pub replica_max_lag_secs: u64,
    /// Address to listen on.
    #[arg(long, env = "KURZ_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// The public base URL of short links, e.g. https://kurz.example (no trailing path).
    #[arg(long, env = "KURZ_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: PublicUrl,
    /// Secret of the short-code scramble: 32 hex characters. Keep it stable for a deployment.
    #[arg(long, env = "KURZ_CODE_KEY", hide_env_values = true)]
    pub code_key: CodeKey,
    /// Memory of the in-process redirect cache, in MiB (its entries' estimated bytes: a
    /// destination may be 4 KiB); 0 turns it off.
    #[arg(long, env = "KURZ_CACHE_MIB", default_value_t = 256)]
    pub cache_mib: u64,
    /// Seconds a cached link is served before it is read again. Only a safety net: every
    /// instance drops a changed link from its cache within moments (LISTEN/NOTIFY).
    #[arg(long, env = "KURZ_CACHE_TTL_SECS", default_value_t = 60)]
    pub cache_ttl_secs: u64,
    /// Seconds an unknown code is remembered as unknown, so floods of random codes do not
    /// reach PostgreSQL.
    #[arg(long, env = "KURZ_NEGATIVE_CACHE_TTL_SECS", default_value_t = 5)]
    pub negative_cache_ttl_secs: u64,
    /// Base URL of the edge worker, e.g. https://go.example. Link changes are delivered to
    /// its `/_edge/sync` route. Unset: no edge (the origin serves redirects alone).
    #[arg(long, env = "KURZ_EDGE_URL", requires = "edge_secret", value_parser = parse_edge_url)]
    pub edge_url: Option<String>,
    /// Shared secret that signs requests between the edge and the origin (at least 32
    /// characters). Also enables the origin's `/_edge/*` routes.
    #[arg(long, env = "KURZ_EDGE_SECRET", hide_env_values = true, value_parser = parse_edge_secret)]
    pub edge_secret: Option<String>,
    /// Days raw clicks are kept (for CSV export), at most 100 years. Older months are dropped
    /// whole (never within 7 days); the rollups that dashboards read are kept. Clicks that
    /// arrive late (the edge's queue holds them up to 4 days through an origin outage) are
    /// counted for 7 days whatever this is (`analytics::store::LATE_CLICKS`).
    #[arg(long, env = "KURZ_CLICK_RETENTION_DAYS", default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub click_retention_days: u32,
    /// Days audit log entries are kept; older ones are deleted every hour.
    #[arg(long, env = "KURZ_AUDIT_RETENTION_DAYS", default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub audit_retention_days: u32,
    /// Record clicks of the origin's own redirects (`false`: redirects only, e.g. when the
    /// edge serves the traffic and the origin's redirects are a fallback).
    #[arg(long, env = "KURZ_RECORD_CLICKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub record_clicks: bool,
    /// Clicks of the origin's redirects queued for storing at most. Beyond it a click's raw
    /// event is shed but the click is still counted into the rollups (a map of per-link,
    /// per-hour counters of up to twice as many entries, `analytics/overflow.rs`).
    #[arg(long, env = "KURZ_CLICK_QUEUE", default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub click_queue: u32,
    /// Request header holding the visitor's IP address when the origin is behind a proxy
    /// (e.g. `cf-connecting-ip`, `x-real-ip`, `x-forwarded-for`); unset: the connection's
    /// address. Used for the day's visitor key and the sign-in limits; never stored in clear.
    #[arg(long, env = "KURZ_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// How many proxies in front of the origin append to a list in `KURZ_CLIENT_IP_HEADER`
    /// (`X-Forwarded-For`): the visitor's address is this many entries from the right. The
    /// entries left of it are whatever the client sent, so never trusted.
    #[arg(long, env = "KURZ_TRUSTED_PROXIES", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    pub trusted_proxies: u8,
    /// Other hosts this deployment answers on, comma-separated (names, IP addresses or URLs):
    /// the origin's own when `KURZ_PUBLIC_URL` is the edge, aliases. Destinations on them are
    /// refused, like those on the public URL's and the edge's host (redirect loops).
    #[arg(long, env = "KURZ_OWN_HOSTS", value_delimiter = ',', value_parser = parse_host)]
    pub own_hosts: Vec<HostKey>,
    /// Password of the first dashboard user, `admin`, made on a deployment's first start.
    /// Unset: one is generated and written to `KURZ_FIRST_START_FILE`. Ignored once a user
    /// exists.
    #[arg(long, env = "KURZ_ADMIN_PASSWORD", hide_env_values = true, value_parser = parse_admin_password)]
    pub admin_password: Option<String>,
    /// Where a deployment's first start writes the first API key (and the generated admin
    /// password): a file only its owner may read (mode 0600), never the log.
    #[arg(
        long,
        env = "KURZ_FIRST_START_FILE",
        default_value = "kurz-first-start.txt"
    )]
    pub first_start_file: PathBuf,
    /// Folder of the built dashboard (`cargo xtask dev` builds it into target/admin-ui),
    /// served at /admin. Unset: /admin explains how to build it.
    #[arg(long, env = "KURZ_ADMIN_DIR")]
    pub admin_dir: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, env = "KURZ_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Seconds a shutdown waits for the requests in flight (a long CSV export, a slow
    /// client) before it closes them and stores the queued clicks (5 s more): the whole
    /// shutdown must end before the orchestrator's SIGKILL.
    #[arg(long, env = "KURZ_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    #[command(flatten)]
    pub sign_in: SignInLimits,
    #[command(flatten)]
    pub gateway: Gateway,
    #[command(flatten)]
    pub metrics: MetricsConfig,
    #[command(flatten)]
    pub rate_limits: RateLimits,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
}

/// What every request to the API meets before its handler (README, "Configuration"): a time
/// limit, a cap on API requests at once, a body limit, and the origins allowed cross-origin;
/// and what the proxy in front of the origin tells about a visitor (the country).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Gateway {
    /// Seconds a request may take until its answer begins (a CSV export's body may stream
    /// longer); past it the answer is 503 `timeout`. Redirects and the API; not the edge's
    /// routes, which have their own deadline.
    #[arg(long, env = "KURZ_REQUEST_TIMEOUT_SECS", default_value_t = Gateway::DEFAULT.request_timeout_secs, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,
    /// API requests this instance handles at once; more are answered 503 `busy` with
    /// `Retry-After` at once rather than queued. Redirects and sign-ins are not counted.
    #[arg(long, env = "KURZ_API_CONCURRENCY", default_value_t = Gateway::DEFAULT.api_concurrency, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_concurrency: u32,
    /// Largest API request body, in bytes; larger is answered 413.
    #[arg(long, env = "KURZ_API_BODY_LIMIT", default_value_t = Gateway::DEFAULT.api_body_limit, value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub api_body_limit: u32,
    /// Origins (exact, e.g. `https://app.example`) whose pages may call the API from a
    /// browser, comma-separated. Unset: none, no CORS headers.
    #[arg(long, env = "KURZ_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Request header with the visitor's country (ISO 3166 alpha-2), for links' country
    /// targeting and the analytics: Cloudflare's `cf-ipcountry` by default; a proxy of your
    /// own may set another. A client can send it too, so only trust it behind a proxy that
    /// sets it (a forged one only picks a target, it unlocks nothing).
    #[arg(long, env = "KURZ_COUNTRY_HEADER", default_value = "cf-ipcountry", value_parser = parse_header_name)]
    pub country_header: HeaderName,
}

impl Gateway {
    pub const DEFAULT: Self = Self {
        request_timeout_secs: 30,
        api_concurrency: 256,
        api_body_limit: crate::error::BODY_LIMIT as u32,
        cors_origins: Vec::new(),
        country_header: HeaderName::from_static("cf-ipcountry"),
    };

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

impl Default for Gateway {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Rate limits of the API, per caller, and of the origin's redirects, per client address
/// (README, "Rate limits"). Counted in this instance's memory (GCRA): behind a load balancer
/// each of N instances allows the figure, so set it per instance.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RateLimits {
    /// API requests per minute of one caller (an API key, or a person's session user in its
    /// workspace), in bursts up to the same figure; every `/api/v1` request with credentials
    /// takes from it. Never off. A workspace may get its own (`origin set-rate-limits`).
    #[arg(long = "rate-api-per-min", env = "KURZ_RATE_API_PER_MIN", default_value_t = RateLimits::DEFAULT.api_per_min, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub api_per_min: u32,
    /// Link creations per minute of one caller (`POST /api/v1/links`, and
    /// `POST /api/v1/links/bulk` as one each), on top of the API budget. 0: only the API
    /// budget applies.
    #[arg(long = "rate-create-per-min", env = "KURZ_RATE_CREATE_PER_MIN", default_value_t = RateLimits::DEFAULT.create_per_min, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub create_per_min: u32,
    /// Stats and CSV export requests per minute of one caller, on top of the API budget. 0:
    /// only the API budget applies.
    #[arg(long = "rate-stats-per-min", env = "KURZ_RATE_STATS_PER_MIN", default_value_t = RateLimits::DEFAULT.stats_per_min, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub stats_per_min: u32,
    /// How many keys' worth of each API budget the API keys of one workspace share: its keys'
    /// requests a minute are at most this times each figure, however many keys it makes.
    /// People's sessions keep their own budgets only.
    #[arg(long = "rate-workspace-keys", env = "KURZ_RATE_WORKSPACE_KEYS", default_value_t = RateLimits::DEFAULT.workspace_keys, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub workspace_keys: u32,
    /// Redirects and password answers (`GET`/`POST /{code}`) per minute of one client
    /// address (an IPv6 /64). Unset: off (the edge limits its own redirects).
    #[arg(long = "rate-redirect-per-min", env = "KURZ_RATE_REDIRECT_PER_MIN", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub redirect_per_min: Option<u32>,
    /// Budgets one instance remembers, for the API's callers and, apart, for the redirects'
    /// addresses (about 430 bytes each); past it the least used are forgotten, and start
    /// again with a full budget.
    #[arg(long = "rate-limit-entries", env = "KURZ_RATE_LIMIT_ENTRIES", default_value_t = RateLimits::DEFAULT.entries, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub entries: u64,
}

impl RateLimits {
    pub const DEFAULT: Self = Self {
        api_per_min: 1200,
        create_per_min: 300,
        stats_per_min: 300,
        workspace_keys: 10,
        redirect_per_min: None,
        entries: 100_000,
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How webhooks are delivered (README, "Webhooks").
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct WebhookConfig {
    /// Deliver webhooks to loopback, private, link-local and unique-local addresses too (a
    /// receiver on this machine or network, as in development). Off, such a target is refused
    /// whatever name resolves to it, so an endpoint cannot make kurz probe its own network.
    #[arg(long = "webhook-allow-private", env = "KURZ_WEBHOOK_ALLOW_PRIVATE", default_value_t = WebhookConfig::DEFAULT.allow_private, action = clap::ArgAction::Set)]
    pub allow_private: bool,
    /// Milliseconds a receiver has to answer a delivery; past it the attempt failed.
    #[arg(long = "webhook-timeout-ms", env = "KURZ_WEBHOOK_TIMEOUT_MS", default_value_t = WebhookConfig::DEFAULT.timeout_ms, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub timeout_ms: u64,
    /// Deliveries this instance sends at once.
    #[arg(long = "webhook-concurrency", env = "KURZ_WEBHOOK_CONCURRENCY", default_value_t = WebhookConfig::DEFAULT.concurrency, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Clicks of one workspace batched into `link.clicked` messages at once (every 5 s), and
    /// what one endpoint may have unsent (in messages of 1,000, rounded up: a receiver down,
    /// or slower than the clicks); past it that endpoint misses the new batches' clicks, the
    /// others still get them. A workspace with more waiting than a batch takes keeps this many
    /// more; past it the oldest are dropped. Both logged and counted in
    /// `kurz_webhook_clicks_dropped_total`.
    #[arg(long = "webhook-max-pending-clicks", env = "KURZ_WEBHOOK_MAX_PENDING_CLICKS", default_value_t = WebhookConfig::DEFAULT.max_pending_clicks, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_pending_clicks: u32,
}

impl WebhookConfig {
    pub const DEFAULT: Self = Self {
        allow_private: false,
        timeout_ms: 10_000,
        concurrency: 16,
        max_pending_clicks: 100_000,
    };

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where Prometheus scrapes the origin's metrics (README, "Metrics"): a listener of its own, so
/// the public port never shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct MetricsConfig {
    /// Address of the listener serving `GET /metrics` (Prometheus text format), e.g.
    /// `127.0.0.1:9090`. Unset: no metrics.
    #[arg(id = "metrics_bind", long = "metrics-bind", env = "KURZ_METRICS_BIND")]
    pub bind: Option<SocketAddr>,
    /// A token scrapes must send as `Authorization: Bearer <token>` (for a metrics address
    /// others can reach). Unset: the address alone guards the metrics.
    #[arg(
        id = "metrics_token",
        long = "metrics-token",
        env = "KURZ_METRICS_TOKEN",
        hide_env_values = true,
        requires = "metrics_bind"
    )]
    pub token: Option<MetricsToken>,
}

/// The metrics' bearer token: kept out of `Debug`, hence out of any log.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

impl FromStr for MetricsToken {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, String> {
        let token = input.trim();
        if token.len() < 16 {
            return Err("the metrics token must be at least 16 characters".to_owned());
        }
        Ok(Self(token.to_owned()))
    }
}

/// Limits of dashboard sign-ins (README, "Sign-in limits"). The counts are kept in PostgreSQL,
/// so they hold across instances; the hash cap is per instance.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SignInLimits {
    /// Length of the windows sign-in attempts are counted in, in seconds.
    #[arg(long = "sign-in-window-secs", env = "KURZ_SIGN_IN_WINDOW_SECS", default_value_t = SignInLimits::DEFAULT.window_secs, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub window_secs: u32,
    /// Attempts per window for one username from one IP address (an IPv6 /64). A success
    /// clears it.
    #[arg(long = "sign-in-per-pair", env = "KURZ_SIGN_IN_PER_PAIR", default_value_t = SignInLimits::DEFAULT.per_pair, value_parser = clap::value_parser!(u32).range(1..))]
    pub per_pair: u32,
    /// Attempts per window from one IP address, any usernames.
    #[arg(long = "sign-in-per-ip", env = "KURZ_SIGN_IN_PER_IP", default_value_t = SignInLimits::DEFAULT.per_ip, value_parser = clap::value_parser!(u32).range(1..))]
    pub per_ip: u32,
    /// Attempts per window for one username, from addresses where it has not signed in
    /// within `KURZ_SIGN_IN_KNOWN_ADDRESS_DAYS`.
    #[arg(long = "sign-in-per-user", env = "KURZ_SIGN_IN_PER_USER", default_value_t = SignInLimits::DEFAULT.per_user, value_parser = clap::value_parser!(u32).range(1..))]
    pub per_user: u32,
    /// Days an address where a user signed in stays exempt from the per-user limit.
    #[arg(long = "sign-in-known-address-days", env = "KURZ_SIGN_IN_KNOWN_ADDRESS_DAYS", default_value_t = SignInLimits::DEFAULT.known_address_days, value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub known_address_days: u32,
    /// Passwords this instance hashes at once (each takes 19 MiB and a CPU for tens of ms).
    /// Unset: two per CPU.
    #[arg(long = "sign-in-hashes", env = "KURZ_SIGN_IN_HASHES", value_parser = clap::value_parser!(u16).range(1..))]
    pub hashes: Option<u16>,
    /// Milliseconds a sign-in waits for a free hash before it is answered 503.
    #[arg(long = "sign-in-hash-wait-ms", env = "KURZ_SIGN_IN_HASH_WAIT_MS", default_value_t = SignInLimits::DEFAULT.hash_wait_ms)]
    pub hash_wait_ms: u64,
}

impl SignInLimits {
    pub const DEFAULT: Self = Self {
        window_secs: 15 * 60,
        per_pair: 5,
        per_ip: 30,
        per_user: 100,
        known_address_days: 30,
        hashes: None,
        hash_wait_ms: 2_000,
    };

    /// The hash cap: as configured, else two per CPU.
    pub fn concurrent_hashes(&self) -> usize {
        self.hashes.map_or_else(
            || 2 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            usize::from,
        )
    }
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Config {
    pub fn cache_max_bytes(&self) -> u64 {
        self.cache_mib.saturating_mul(1024 * 1024)
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    pub fn negative_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.negative_cache_ttl_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn click_retention(&self) -> time::Duration {
        time::Duration::days(i64::from(self.click_retention_days))
    }

    pub fn audit_retention(&self) -> time::Duration {
        time::Duration::days(i64::from(self.audit_retention_days))
    }

    /// Every host this deployment answers on, as far as its configuration tells: the public
    /// URL's, the edge's, `KURZ_OWN_HOSTS`, and the address it listens on unless that is
    /// every address. A link to any of them would redirect to itself.
    pub fn own_hosts(&self) -> anyhow::Result<Vec<HostKey>> {
        let mut hosts = vec![self.public_url.host().clone()];
        if let Some(edge_url) = &self.edge_url {
            hosts.push(
                HostKey::parse(edge_url)
                    .map_err(|err| anyhow::anyhow!("KURZ_EDGE_URL is not a URL: {err}"))?,
            );
        }
        hosts.extend(self.own_hosts.iter().cloned());
        if !self.bind.ip().is_unspecified() {
            hosts.push(HostKey::parse(&self.bind.to_string())?);
        }
        hosts.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        hosts.dedup();
        Ok(hosts)
    }
}

fn parse_host(input: &str) -> Result<HostKey, String> {
    HostKey::parse(input).map_err(|err| format!("{input:?} is not a host: {err}"))
}

fn parse_header_name(input: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(input.trim()).map_err(|_| format!("{input:?} is not a header name"))
}

fn parse_scope(input: &str) -> Result<Scope, String> {
    Scope::parse(input).ok_or_else(|| {
        let known: Vec<&str> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
        format!("unknown scope {input:?}: use {}", known.join(", "))
    })
}

/// The first admin's password, held to the rules of every other (an empty variable, as a
/// compose file gives for one the host never set, is refused, not an empty password).
fn parse_admin_password(input: &str) -> Result<String, String> {
    crate::accounts::check_new_password("KURZ_ADMIN_PASSWORD", input)
        .map_err(|err| err.to_string())?;
    Ok(input.to_owned())
}

/// The worker's URL: http(s), a host, and no path (the edge's routes are at its root, and
/// their signatures cover their paths). A bare host or a path was taken, and every sync
/// failed after the start, with only a warning in the log.
fn parse_edge_url(input: &str) -> Result<String, String> {
    let url = url::Url::parse(input).map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(
            "the edge's URL must be http or https with a host, e.g. https://go.example".to_owned(),
        );
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("the edge's URL must be the worker's root, without a path or query".to_owned());
    }
    Ok(input.trim_end_matches('/').to_owned())
}

fn parse_edge_secret(input: &str) -> Result<String, String> {
    if input.len() < 32 {
        return Err("the edge secret must be at least 32 characters".to_owned());
    }
    Ok(input.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The public base URL, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    base: String,
    host: HostKey,
}

impl PublicUrl {
    /// The full short URL of `code`.
    pub fn short_url(&self, code: &str) -> String {
        format!("{}/{code}", self.base)
    }

    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }

    /// The host, so links back to the shortener itself (redirect loops) can be refused.
    pub fn host(&self) -> &HostKey {
        &self.host
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

impl FromStr for PublicUrl {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, String> {
        let destination = shortlink::Destination::parse(input).map_err(|e| e.to_string())?;
        let base = destination.as_str().trim_end_matches('/').to_owned();
        if base.contains(['?', '#']) {
            return Err("the public URL must not have a query or fragment".to_owned());
        }
        Ok(Self {
            host: destination.host_key(),
            base,
        })
    }
}

/// The 128-bit scramble key, given as 32 hex characters.
#[derive(Clone)]
pub struct CodeKey([u8; 16]);

impl CodeKey {
    pub fn scrambler(&self) -> CodeScrambler {
        CodeScrambler::new(self.0)
    }

    /// The key's bytes, for deriving other secrets from it (HMAC with a distinct label).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(..)")
    }
}

impl FromStr for CodeKey {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, String> {
        let mut key = [0; 16];
        hex::decode_to_slice(input.trim(), &mut key)
            .map_err(|_| "the code key must be exactly 32 hex characters (128 bits)".to_owned())?;
        Ok(Self(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused secret is named in the message, its value is not; other values are quoted
    /// as clap quotes them.
    #[test]
    fn a_refused_secret_is_not_printed() {
        let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let refused = [
            (
                Cli::try_parse_from([
                    "origin",
                    "serve",
                    "--database-url",
                    "postgres://db.example/kurz",
                    "--code-key",
                    secret,
                ])
                .map(|_| ()),
                secret,
            ),
            (
                serve(&[
                    "--edge-url",
                    "https://go.example",
                    "--edge-secret",
                    "a short secret value",
                ])
                .map(|_| ()),
                "a short secret value",
            ),
            (
                serve(&["--metrics-token", "tiny token"]).map(|_| ()),
                "tiny token",
            ),
            (
                Cli::try_parse_from([
                    "origin",
                    "create-admin",
                    "--database-url",
                    "postgres://db.example/kurz",
                    "--code-key",
                    "the operator's key, mistyped",
                ])
                .map(|_| ()),
                "the operator's key, mistyped",
            ),
        ];
        for (result, value) in refused {
            let err = result.expect_err(value);
            assert!(err.to_string().contains(value), "clap quotes it: {err}");
            let message = secret_refused(&err).expect("a secret");
            assert!(!message.contains(value), "{message}");
            assert!(message.contains("--"), "{message}");
        }
        let bind = serve(&["--bind", "nowhere"]).expect_err("bind");
        assert_eq!(secret_refused(&bind), None);
    }

    #[test]
    fn the_edge_url_is_a_workers_root() {
        for good in [
            "https://go.example",
            "https://go.example/",
            "http://127.0.0.1:8787",
        ] {
            let config =
                serve(&["--edge-url", good, "--edge-secret", &"s".repeat(32)]).expect(good);
            assert_eq!(config.edge_url.as_deref(), Some(good.trim_end_matches('/')));
        }
        for bad in [
            "go.example",
            "ftp://go.example",
            "https://go.example/edge",
            "https://go.example/?a=1",
        ] {
            let refused = serve(&["--edge-url", bad, "--edge-secret", &"s".repeat(32)]);
            assert!(refused.is_err(), "{bad}");
        }
    }

    /// `origin serve` with the two required settings and `extra`, as the binary parses it.
    fn serve(extra: &[&str]) -> Result<Config, clap::Error> {
        let args = [
            "origin",
            "serve",
            "--database-url",
            "postgres://db.example/kurz",
            "--code-key",
            "00112233445566778899aabbccddeeff",
        ];
        Cli::try_parse_from(args.iter().chain(extra)).map(|cli| match cli.command {
            Command::Serve(config) => *config,
            other => panic!("{extra:?}: {other:?}"),
        })
    }

    #[test]
    fn public_url() {
        let url: PublicUrl = "https://Kurz.Example/".parse().expect("valid");
        assert_eq!(url.short_url("abc"), "https://kurz.example/abc");
        assert_eq!(url.host().as_str(), "kurz.example");
        let with_path: PublicUrl = "https://kurz.example/go".parse().expect("valid");
        assert_eq!(with_path.short_url("abc"), "https://kurz.example/go/abc");
        assert!("kurz.example".parse::<PublicUrl>().is_err());
        assert!("https://kurz.example/?a=1".parse::<PublicUrl>().is_err());
    }

    #[test]
    fn own_hosts_are_every_configured_host() {
        let serve = |extra: &[&str]| {
            let with_public_url = [&["--public-url", "https://Go.Example./"], extra].concat();
            serve(&with_public_url).unwrap_or_else(|err| panic!("{extra:?}: {err}"))
        };
        let hosts = |config: &Config| -> Vec<String> {
            let hosts = config.own_hosts().expect("valid hosts");
            hosts.iter().map(ToString::to_string).collect()
        };
        assert_eq!(hosts(&serve(&[])), ["127.0.0.1", "go.example"]);
        let config = serve(&[
            "--bind",
            "0.0.0.0:8080",
            "--edge-url",
            "https://Edge.example:8443",
            "--edge-secret",
            "an edge secret of at least 32 characters",
            "--own-hosts",
            "origin.example., 0x0a.0.0.5,[::ffff:192.0.2.1],go.example",
        ]);
        assert_eq!(
            hosts(&config),
            [
                "10.0.0.5",
                "192.0.2.1",
                "edge.example",
                "go.example",
                "origin.example"
            ]
        );
        let refused = Cli::try_parse_from([
            "origin",
            "serve",
            "--database-url",
            "postgres://db.example/kurz",
            "--code-key",
            "00112233445566778899aabbccddeeff",
            "--own-hosts",
            "a b",
        ]);
        assert!(refused.is_err());
    }

    #[test]
    fn the_first_admins_password_and_the_pool_are_checked() {
        let good = "ten chars!";
        let set = serve(&["--admin-password", good, "--db-max-connections", "1"]).expect("valid");
        assert_eq!(set.admin_password.as_deref(), Some(good));
        let long = "x".repeat(1025);
        for refused in [
            ["--admin-password", ""],
            ["--admin-password", "nine char"],
            ["--admin-password", long.as_str()],
            ["--db-max-connections", "0"],
        ] {
            assert!(serve(&refused).is_err(), "{:.40?}", refused);
        }
    }

    #[test]
    fn sign_in_limits() {
        let serve = |extra: &[&str]| serve(extra).map(|config| config.sign_in);
        assert_eq!(serve(&[]).expect("defaults"), SignInLimits::DEFAULT);
        let set = serve(&["--sign-in-per-pair", "3", "--sign-in-hashes", "8"]).expect("valid");
        assert_eq!((set.per_pair, set.concurrent_hashes()), (3, 8));
        assert!(SignInLimits::DEFAULT.concurrent_hashes() >= 2);
        for refused in [
            ["--sign-in-per-pair", "0"],
            ["--sign-in-per-ip", "0"],
            ["--sign-in-per-user", "0"],
            ["--sign-in-hashes", "0"],
            ["--sign-in-window-secs", "0"],
            ["--sign-in-window-secs", "86401"],
        ] {
            assert!(serve(&refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn gateway() {
        let serve = |extra: &[&str]| serve(extra).map(|config| config.gateway);
        assert_eq!(serve(&[]).expect("defaults"), Gateway::DEFAULT);
        let set = serve(&[
            "--cors-origins",
            "https://a.example,http://localhost:3000",
            "--api-concurrency",
            "8",
            "--country-header",
            "X-Country",
        ])
        .expect("valid");
        assert_eq!(set.country_header, "x-country");
        assert_eq!(Gateway::DEFAULT.country_header, "cf-ipcountry");
        assert_eq!(
            set.cors_origins,
            ["https://a.example", "http://localhost:3000"]
        );
        assert_eq!(set.api_concurrency, 8);
        for refused in [
            ["--request-timeout-secs", "0"],
            ["--api-concurrency", "0"],
            ["--api-body-limit", "100"],
            ["--country-header", "not a header"],
        ] {
            assert!(serve(&refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn rate_limits() {
        let serve = |extra: &[&str]| serve(extra).map(|config| config.rate_limits);
        assert_eq!(serve(&[]).expect("defaults"), RateLimits::DEFAULT);
        let set = serve(&[
            "--rate-create-per-min",
            "0",
            "--rate-redirect-per-min",
            "600",
        ])
        .expect("valid");
        assert_eq!((set.create_per_min, set.redirect_per_min), (0, Some(600)));
        for refused in [
            ["--rate-api-per-min", "0"],
            ["--rate-redirect-per-min", "0"],
            ["--rate-stats-per-min", "1000001"],
            ["--rate-limit-entries", "0"],
        ] {
            assert!(serve(&refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn set_rate_limits() {
        let parse = |extra: &[&str]| {
            let args = [
                "origin",
                "set-rate-limits",
                "--database-url",
                "postgres://db/kurz",
                "--workspace",
                "7",
            ];
            Cli::try_parse_from(args.iter().chain(extra)).map(|cli| match cli.command {
                Command::SetRateLimits {
                    api,
                    create,
                    stats,
                    clear,
                    ..
                } => (api, create, stats, clear),
                other => panic!("{extra:?}: {other:?}"),
            })
        };
        assert_eq!(
            parse(&["--api", "60", "--create", "0"]).expect("valid"),
            (Some(60), Some(0), None, false)
        );
        assert_eq!(
            parse(&["--clear"]).expect("valid"),
            (None, None, None, true)
        );
        assert!(parse(&[]).is_err(), "something to change is needed");
        assert!(parse(&["--api", "0"]).is_err(), "api is never off");
    }

    #[test]
    fn retention() {
        let days = |extra: &[&str]| {
            serve(extra).map(|config| (config.click_retention_days, config.audit_retention_days))
        };
        assert_eq!(days(&[]).expect("defaults"), (400, 400));
        let set = serve(&[
            "--audit-retention-days",
            "36500",
            "--click-retention-days",
            "36500",
        ])
        .expect("valid");
        assert_eq!(set.audit_retention(), time::Duration::days(36_500));
        assert_eq!(set.click_retention_days, 36_500);
        assert_eq!(
            days(&["--click-retention-days", "1", "--audit-retention-days", "1"]).expect("valid"),
            (1, 1)
        );
        for refused in [
            ["--click-retention-days", "0"],
            ["--audit-retention-days", "0"],
            ["--audit-retention-days", "36501"],
            // Millions of days before now is before any date the clock can name: every
            // store of clicks would fail on it.
            ["--click-retention-days", "36501"],
            ["--click-retention-days", "4294967295"],
        ] {
            assert!(days(&refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn create_api_key() {
        let parse = |extra: &[&str]| {
            let args = [
                "origin",
                "create-api-key",
                "--database-url",
                "postgres://db/kurz",
            ];
            Cli::try_parse_from(args.iter().chain(extra)).map(|cli| match cli.command {
                Command::CreateApiKey {
                    name,
                    workspace,
                    scopes,
                    ..
                } => (name, workspace, scopes),
                other => panic!("{extra:?}: {other:?}"),
            })
        };
        assert_eq!(
            parse(&["--name", "deploy"]).expect("valid"),
            ("deploy".to_owned(), 1, vec![])
        );
        assert_eq!(
            parse(&[
                "--name",
                "ci",
                "--workspace",
                "7",
                "--scope",
                "links:read",
                "--scope",
                "stats:read"
            ])
            .expect("valid"),
            ("ci".to_owned(), 7, vec![Scope::LinksRead, Scope::StatsRead])
        );
        let unknown = parse(&["--name", "x", "--scope", "links:*"]).expect_err("unknown scope");
        assert!(
            unknown.to_string().contains("links:read, links:write"),
            "{unknown}"
        );
        assert!(parse(&[]).is_err(), "a name is needed");
    }

    #[test]
    fn code_key() {
        assert!(
            "00112233445566778899aabbccddeeff"
                .parse::<CodeKey>()
                .is_ok()
        );
        assert!("0011".parse::<CodeKey>().is_err());
        assert!(
            "zz112233445566778899aabbccddeeff"
                .parse::<CodeKey>()
                .is_err()
        );
        assert_eq!(
            format!(
                "{:?}",
                "00112233445566778899aabbccddeeff"
                    .parse::<CodeKey>()
                    .expect("valid")
            ),
            "CodeKey(..)"
        );
    }

    #[test]
    fn metrics_are_off_unless_bound_and_the_token_needs_the_address() {
        let off = serve(&[]).expect("valid");
        assert_eq!(off.metrics, MetricsConfig::default());
        let on = serve(&["--metrics-bind", "127.0.0.1:9090"]).expect("valid");
        let address: SocketAddr = "127.0.0.1:9090".parse().expect("address");
        assert_eq!(on.metrics.bind, Some(address));
        assert_eq!(on.bind, "127.0.0.1:8080".parse().expect("address"));
        let token = "a-token-of-20-chars!";
        assert!(serve(&["--metrics-token", token]).is_err());
        let bound = ["--metrics-bind", "127.0.0.1:9090", "--metrics-token"];
        let guarded = serve(&[&bound[..], &[token]].concat()).expect("valid");
        let shown = format!("{guarded:?}");
        assert!(!shown.contains(token), "{shown}");
        assert_eq!(guarded.metrics.token.expect("token").as_str(), token);
        assert!(serve(&[&bound[..], &["short"]].concat()).is_err());
    }
}
