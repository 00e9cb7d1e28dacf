//! Rate limits of the API, per caller, and of the origin's redirects, per client address.
//!
//! Each budget is a GCRA limiter (`governor`) of N requests per minute, in bursts of up to N,
//! kept in this instance's memory: in a bounded cache (moka) of limiters, so a flood of
//! distinct callers or addresses costs at most `KURZ_RATE_LIMIT_ENTRIES` of them, and one
//! forgotten (least used, or idle for a window) starts again with a full budget.
//!
//! The API's budgets are per caller (an API key, or a person's session user in its
//! workspace): `api` for every request, and on top of it `create` (link creation) or `stats`
//! (the stats and the CSV export). The API keys of a workspace also share each budget at
//! `KURZ_RATE_WORKSPACE_KEYS` times its figure (`workspace_api`, …), so that minting keys
//! does not multiply what the operator allows a workspace. People's sessions stay out of it:
//! keys flooding it never lock a person out of revoking them. A workspace may have its own figures, set by the
//! operator only (`origin set-rate-limits`, [`set_workspace_limits`]) and read through a
//! small cache, so a request adds no query. Every answer to a caller says where it stands
//! (IETF `RateLimit-Policy` and `RateLimit` headers); one over a budget is 429 with
//! `Retry-After`.
//!
//! Sign-in limits are elsewhere (`sign_in_limit.rs`): counted in PostgreSQL, they hold across
//! instances; these do not (README, "Rate limits").

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultDirectRateLimiter, Quota};
use moka::future::Cache;
use serde::Serialize;
use sqlx::PgPool;

use crate::caller::{Actor, Caller, WorkspaceId};
use crate::config::RateLimits;
use crate::error::Error;

/// The window every figure is counted in: budgets are per minute.
const WINDOW: Duration = Duration::from_secs(60);

/// How long a workspace's own figures are kept before they are read again: a change by the
/// operator is in force within this.
const OVERRIDES_TTL: Duration = Duration::from_secs(10);

/// Workspaces whose figures one instance keeps (a few bytes each).
const OVERRIDES_CAPACITY: u64 = 10_000;

const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const STANDING: HeaderName = HeaderName::from_static("ratelimit");

/// One of the budgets a request takes from; its name is the policy's in the headers, and
/// the `limit` label of `kurz_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Budget {
    Api,
    Create,
    Stats,
    Redirect,
}

impl Budget {
    fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Create => "create",
            Self::Stats => "stats",
            Self::Redirect => "redirect",
        }
    }

    /// The name of the budget a workspace's API keys share.
    fn shared_name(self) -> &'static str {
        match self {
            Self::Api => "workspace_api",
            Self::Create => "workspace_create",
            Self::Stats => "workspace_stats",
            // Per client address, never a workspace's.
            Self::Redirect => "redirect",
        }
    }

    /// The budget a request to the API takes from on top of `api`, by its method and path
    /// (inside `/api/v1`).
    ///
    /// A bulk create takes one unit of `create`, like a single one, not one per item: the
    /// layer runs before the body is read, so it cannot count the items, and a weight of up
    /// to 1,000 (`check_n`) could never pass a budget below that (governor refuses more than
    /// the burst outright), so the default 300/min would refuse every full request. Its bound
    /// is elsewhere: at most `MAX_BULK_LINKS` items and `AT_ONCE` requests per instance; one
    /// unit still keeps a caller from more than `create` bulk requests a minute.
    fn extra_of(method: &Method, path: &str) -> Option<Self> {
        let path = path.strip_prefix("/api/v1").unwrap_or(path);
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["links"] | ["links", "bulk"] if method == Method::POST => Some(Self::Create),
            ["stats"] | ["links", _, "stats" | "clicks.csv"] => Some(Self::Stats),
            _ => None,
        }
    }
}

/// A workspace's own figures (requests per minute per caller); `None`: the deployment's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceLimits {
    pub api: Option<u32>,
    pub create: Option<u32>,
    pub stats: Option<u32>,
}

/// One limiter: a GCRA state of one budget of one caller or address.
type Limiter = DefaultDirectRateLimiter<StateInformationMiddleware>;

/// Limiters by key, at most `capacity` of them; one idle for a window is dropped (it would
/// have refilled by then anyway).
struct Limiters<K> {
    cache: Cache<K, Arc<Limiter>>,
}

/// Where a budget stands after a request took from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    /// The budget's name (`api`, `workspace_api`, …).
    name: &'static str,
    per_min: u32,
    remaining: u32,
    /// Seconds until the budget is full again.
    full_in_secs: u64,
}

/// A request the budget refused: where it stands, and when one more request will do.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    standing: Standing,
    retry_after_secs: u64,
}

impl<K: Hash + Eq + Send + Sync + 'static> Limiters<K> {
    fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(WINDOW)
                .build(),
        }
    }

    /// Takes one request from `key`'s budget of `per_min`. Parallel first requests of a key
    /// share one limiter (moka runs one initialisation per key).
    async fn take(
        &self,
        key: K,
        name: &'static str,
        per_min: NonZeroU32,
    ) -> Result<Standing, Refusal> {
        let limiter = self
            .cache
            .get_with(key, async move {
                Arc::new(
                    governor::RateLimiter::direct(Quota::per_minute(per_min)).with_middleware(),
                )
            })
            .await;
        let interval = Quota::per_minute(per_min).replenish_interval();
        let per_min = per_min.get();
        // Used up cells refill one per interval: the budget is full after all of them did.
        let full_in = |used: u32| ceil_secs(interval * used);
        match limiter.check() {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Ok(Standing {
                    name,
                    per_min,
                    remaining,
                    full_in_secs: full_in(per_min.saturating_sub(remaining)),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                Err(Refusal {
                    standing: Standing {
                        name,
                        per_min,
                        remaining: 0,
                        full_in_secs: ceil_secs(wait + interval * per_min.saturating_sub(1)),
                    },
                    retry_after_secs: ceil_secs(wait).max(1),
                })
            }
        }
    }

    /// How many limiters are held, once the cache's pending evictions are done.
    async fn len(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// Whose API budgets a request takes from: a key's own, or a person's in the workspace their
/// session works in (one person in two workspaces has a budget in each); and the one all
/// API keys of a workspace share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Key(i64),
    User { id: i64, workspace: Option<i64> },
    Workspace(i64),
}

/// A budget of a caller, at a figure: a changed figure starts a new limiter (full).
type ApiKey = (Who, Budget, u32);

/// Every rate limit of this instance.
pub(crate) struct RateLimiter {
    defaults: RateLimits,
    api: Limiters<ApiKey>,
    /// Workspaces' own figures, as last read.
    overrides: Cache<i64, WorkspaceLimits>,
    /// Per client address (an IPv6 /64); `None`: redirects are not limited.
    redirect: Option<(NonZeroU32, Limiters<IpAddr>)>,
}

impl std::fmt::Debug for RateLimiter {
    // Not moka's: it would list every entry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub(crate) fn new(config: &RateLimits) -> Self {
        Self {
            defaults: config.clone(),
            api: Limiters::new(config.entries),
            overrides: Cache::builder()
                .max_capacity(OVERRIDES_CAPACITY)
                .time_to_live(OVERRIDES_TTL)
                .build(),
            redirect: config
                .redirect_per_min
                .and_then(NonZeroU32::new)
                .map(|per_min| (per_min, Limiters::new(config.entries))),
        }
    }

    /// Limiters held for the API's callers and for the redirects' addresses.
    pub(crate) async fn entries(&self) -> (u64, u64) {
        let redirect = match &self.redirect {
            Some((_, limiters)) => limiters.len().await,
            None => 0,
        };
        (self.api.len().await, redirect)
    }

    /// The figure of `budget` in `workspace`: its own, else the deployment's; `None`: off.
    async fn per_min(
        &self,
        db: &PgPool,
        workspace: Option<i64>,
        budget: Budget,
    ) -> Option<NonZeroU32> {
        let own = match workspace {
            Some(id) => self.overrides_of(db, id).await,
            None => WorkspaceLimits::default(),
        };
        let figure = match budget {
            Budget::Api => own.api.unwrap_or(self.defaults.api_per_min),
            Budget::Create => own.create.unwrap_or(self.defaults.create_per_min),
            Budget::Stats => own.stats.unwrap_or(self.defaults.stats_per_min),
            Budget::Redirect => self.defaults.redirect_per_min.unwrap_or(0),
        };
        // `api` is never off (the command and the table refuse 0); should a 0 come, the
        // smallest budget is safer than none.
        NonZeroU32::new(figure).or((budget == Budget::Api).then_some(NonZeroU32::MIN))
    }

    /// `workspace`'s own figures, read at most every [`OVERRIDES_TTL`]. Without the database
    /// the deployment's apply: a limit never fails a request.
    async fn overrides_of(&self, db: &PgPool, workspace: i64) -> WorkspaceLimits {
        let read = self
            .overrides
            .try_get_with(workspace, read_overrides(db, workspace))
            .await;
        read.unwrap_or_else(|err| {
            tracing::warn!(error = %err, workspace, "cannot read the workspace's rate limits");
            WorkspaceLimits::default()
        })
    }
}

async fn read_overrides(db: &PgPool, workspace: i64) -> Result<WorkspaceLimits, sqlx::Error> {
    let row: Option<(Option<i32>, Option<i32>, Option<i32>)> = sqlx::query_as(
        "SELECT rate_api_per_min, rate_create_per_min, rate_stats_per_min
         FROM workspaces WHERE id = $1",
    )
    .bind(workspace)
    .fetch_optional(db)
    .await?;
    let figure = |value: Option<i32>| value.and_then(|v| u32::try_from(v).ok());
    Ok(
        row.map_or_else(WorkspaceLimits::default, |(api, create, stats)| {
            WorkspaceLimits {
                api: figure(api),
                create: figure(create),
                stats: figure(stats),
            }
        }),
    )
}

/// The layer on the keyed API routes, inside `auth::require_caller` (it needs the
/// [`Caller`]): takes the request from the caller's `api` budget and, for a key, the one its
/// workspace's keys share, then from `create` or `stats` (the caller's, the keys') if it is
/// one of those, and tells the caller where it stands. Each is taken only once those before
/// it allowed the request, so a refused request still counted in the budgets before the
/// one that refused it (a caller over its own budget takes nothing from the shared one).
pub(crate) async fn limit_api(
    State(state): State<crate::State>,
    request: Request,
    next: Next,
) -> Response {
    let Some(caller) = request.extensions().get::<Caller>() else {
        return next.run(request).await;
    };
    let workspace = caller.workspace_id();
    let who = match &caller.actor {
        Actor::Key { id, .. } => Who::Key(*id),
        Actor::User { id, .. } => Who::User { id: *id, workspace },
    };
    let limits = &state.inner.gate.rate_limits;
    let db = state.db();
    let extra = Budget::extra_of(request.method(), request.uri().path());
    let keys = limits.defaults.workspace_keys;
    let mut standings = Vec::with_capacity(4);
    for budget in std::iter::once(Budget::Api).chain(extra) {
        let Some(per_min) = limits.per_min(db, workspace, budget).await else {
            continue;
        };
        let shared = match (who, workspace) {
            (Who::Key(_), Some(id)) => {
                let keys = NonZeroU32::new(keys).unwrap_or(NonZeroU32::MIN);
                Some((
                    Who::Workspace(id),
                    budget.shared_name(),
                    per_min.saturating_mul(keys),
                ))
            }
            _ => None,
        };
        for (who, name, per_min) in std::iter::once((who, budget.name(), per_min)).chain(shared) {
            match limits
                .api
                .take((who, budget, per_min.get()), name, per_min)
                .await
            {
                Ok(standing) => standings.push(standing),
                Err(refusal) => {
                    standings.push(refusal.standing);
                    let mut response = Error::RateLimited {
                        limit: name,
                        retry_after_secs: refusal.retry_after_secs,
                    }
                    .into_response();
                    tell(&mut response, &standings);
                    return response;
                }
            }
        }
    }
    let mut response = next.run(request).await;
    tell(&mut response, &standings);
    response
}

/// Adds the IETF headers (draft-ietf-httpapi-ratelimit-headers): every budget the request
/// took from in `RateLimit-Policy`, and the one with the least left in `RateLimit`.
fn tell(response: &mut Response, standings: &[Standing]) {
    let policies: Vec<String> = standings
        .iter()
        .map(|s| format!("\"{}\";q={};w={}", s.name, s.per_min, WINDOW.as_secs()))
        .collect();
    // The last one taken wins a tie: on a refusal it is the one refused.
    let Some(tightest) = standings.iter().rev().min_by_key(|s| s.remaining) else {
        return;
    };
    let standing = format!(
        "\"{}\";r={};t={}",
        tightest.name, tightest.remaining, tightest.full_in_secs
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::try_from(policies.join(", ")) {
        headers.insert(POLICY, value);
    }
    if let Ok(value) = HeaderValue::try_from(standing) {
        headers.insert(STANDING, value);
    }
}

/// The check at the top of `GET|POST /{code}`: `Err` is the answer when the client's address
/// (an IPv6 /64) is over `KURZ_RATE_REDIRECT_PER_MIN`, before any lookup, so nothing is
/// recorded. Off by default; a request without an address is not limited.
pub(crate) async fn check_redirect(state: &crate::State, request: &Parts) -> Result<(), Response> {
    let Some((per_min, limiters)) = &state.inner.gate.rate_limits.redirect else {
        return Ok(());
    };
    let Some(address) = state.inner.redirects.client_ip.of_request(request) else {
        return Ok(());
    };
    // Boxed: the limiters' future is large, and would otherwise be part of every visit's
    // (moved with it per request) where the limit is off.
    let Err(refusal) = Box::pin(limiters.take(
        shortlink::password::network_of(address),
        Budget::Redirect.name(),
        *per_min,
    ))
    .await
    else {
        return Ok(());
    };
    metrics::counter!("kurz_rate_limited_total", "limit" => Budget::Redirect.name()).increment(1);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Html(shortlink::pages::RATE_LIMITED),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(refusal.retry_after_secs),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Err(response)
}

/// Sets `workspace`'s own API figures (`origin set-rate-limits`): with `clear`, every one
/// goes back to the deployment's first, then those in `set` are set (the others are kept).
/// Recorded in the workspace's audit log as the operator's; no API route calls this, so no
/// member can raise their own limits. Serving instances see it within [`OVERRIDES_TTL`].
/// Returns the workspace's figures now.
pub async fn set_workspace_limits(
    db: &PgPool,
    workspace: i64,
    set: WorkspaceLimits,
    clear: bool,
) -> anyhow::Result<WorkspaceLimits> {
    let figure = |name: &str, value: Option<u32>, least: u32| -> anyhow::Result<Option<i32>> {
        value
            .map(|v| {
                i32::try_from(v)
                    .ok()
                    .filter(|v| (i64::from(least)..=1_000_000).contains(&i64::from(*v)))
                    .ok_or_else(|| anyhow::anyhow!("--{name}: {v} is not within {least}..=1000000"))
            })
            .transpose()
    };
    let (api, create, stats) = (
        figure("api", set.api, 1)?,
        figure("create", set.create, 0)?,
        figure("stats", set.stats, 0)?,
    );
    let mut tx = db.begin().await?;
    let before: Option<(Option<i32>, Option<i32>, Option<i32>)> = sqlx::query_as(
        "SELECT rate_api_per_min, rate_create_per_min, rate_stats_per_min
         FROM workspaces WHERE id = $1 FOR NO KEY UPDATE",
    )
    .bind(workspace)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(before) = before else {
        anyhow::bail!("--workspace: no workspace has the id {workspace}");
    };
    let after: (Option<i32>, Option<i32>, Option<i32>) = sqlx::query_as(
        "UPDATE workspaces SET
             rate_api_per_min = COALESCE($2, CASE WHEN $5 THEN NULL ELSE rate_api_per_min END),
             rate_create_per_min = COALESCE($3, CASE WHEN $5 THEN NULL ELSE rate_create_per_min END),
             rate_stats_per_min = COALESCE($4, CASE WHEN $5 THEN NULL ELSE rate_stats_per_min END)
         WHERE id = $1
         RETURNING rate_api_per_min, rate_create_per_min, rate_stats_per_min",
    )
    .bind(workspace)
    .bind(api)
    .bind(create)
    .bind(stats)
    .bind(clear)
    .fetch_one(&mut *tx)
    .await?;
    let limits = |(api, create, stats): (Option<i32>, Option<i32>, Option<i32>)| {
        let figure = |value: Option<i32>| value.and_then(|v| u32::try_from(v).ok());
        WorkspaceLimits {
            api: figure(api),
            create: figure(create),
            stats: figure(stats),
        }
    };
    let (before, after) = (limits(before), limits(after));
    let change = crate::audit::Change {
        action: "workspace.rate_limits_changed",
        target: ("workspace", workspace),
        before: Some(crate::audit::fields(&before)?),
        after: Some(crate::audit::fields(&after)?),
    };
    crate::audit::record(
        &mut tx,
        WorkspaceId::trusted(workspace),
        crate::audit::ActorRef::operator(),
        change,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_budgets_by_route() {
        let cases: &[(Method, &str, Option<Budget>)] = &[
            (Method::POST, "/links", Some(Budget::Create)),
            (Method::POST, "/api/v1/links", Some(Budget::Create)),
            (Method::POST, "/api/v1/links/bulk", Some(Budget::Create)),
            (Method::GET, "/links/bulk", None),
            (Method::GET, "/links", None),
            (Method::GET, "/links/abc", None),
            (Method::PATCH, "/links/abc", None),
            (Method::GET, "/stats", Some(Budget::Stats)),
            (Method::GET, "/links/abc/stats", Some(Budget::Stats)),
            (Method::GET, "/links/abc/clicks.csv", Some(Budget::Stats)),
            (
                Method::GET,
                "/api/v1/links/abc/clicks.csv",
                Some(Budget::Stats),
            ),
            (Method::GET, "/links/abc/qr.svg", None),
            (Method::GET, "/keys", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(Budget::extra_of(method, path), *expected, "{method} {path}");
        }
    }

    #[test]
    fn networks() {
        let cases = [
            ("192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2::ffff", "2001:db8:1:2::"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
        ];
        for (address, network) in cases {
            let address: IpAddr = address.parse().expect("address");
            assert_eq!(
                shortlink::password::network_of(address).to_string(),
                network,
                "{address}"
            );
        }
    }

    #[tokio::test]
    async fn a_budget_takes_its_figure_then_refuses() {
        let limiters = Limiters::new(10);
        let per_min = NonZeroU32::new(3).expect("non-zero");
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let standing = limiters
                .take(1, "api", per_min)
                .await
                .expect("within the budget");
            assert!(standing.full_in_secs <= 60, "{standing:?}");
            remaining.push(standing.remaining);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refusal = limiters
            .take(1, "api", per_min)
            .await
            .expect_err("over the budget");
        // One cell refills in 20 s.
        assert!((1..=20).contains(&refusal.retry_after_secs), "{refusal:?}");
        assert!(refusal.standing.full_in_secs <= 60, "{refusal:?}");
        // Another key has its own.
        assert!(limiters.take(2, "api", per_min).await.is_ok());
    }

    #[tokio::test]
    async fn limiters_are_bounded() {
        let limiters = Limiters::new(50);
        let per_min = NonZeroU32::new(10).expect("non-zero");
        for key in 0..5_000u32 {
            limiters.take(key, "redirect", per_min).await.ok();
        }
        assert!(limiters.len().await <= 50);
    }

    #[test]
    fn headers_name_the_tightest_budget() {
        let mut response = StatusCode::OK.into_response();
        let api = Standing {
            name: "api",
            per_min: 1200,
            remaining: 1187,
            full_in_secs: 1,
        };
        let create = Standing {
            name: "create",
            per_min: 300,
            remaining: 12,
            full_in_secs: 58,
        };
        tell(&mut response, &[api, create]);
        let header = |name| response.headers()[name].to_str().expect("ASCII").to_owned();
        assert_eq!(header(POLICY), "\"api\";q=1200;w=60, \"create\";q=300;w=60");
        assert_eq!(header(STANDING), "\"create\";r=12;t=58");
    }
}
