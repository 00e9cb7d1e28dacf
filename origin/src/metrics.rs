//! Metrics in Prometheus' text format, on a listener of their own (`KURZ_METRICS_BIND`), so the
//! public port never shows them (README, "Metrics").
//!
//! Counters and histograms are recorded where things happen, with the `metrics` macros; the
//! process's one recorder keeps them. The gauges of the database (pool, outbox, pending clicks)
//! are read when Prometheus scrapes, with cheap queries under a short timeout, so a slow
//! database delays a scrape by at most [`BACKLOG_TIMEOUT`] rather than hanging it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::MetricsToken;

const REQUESTS: &str = "kurz_http_requests_total";
const REQUEST_DURATION: &str = "kurz_http_request_duration_seconds";
/// The route label of a request no route matched: one value for every unknown path, so a
/// flood of random paths cannot grow the label set.
pub(crate) const UNMATCHED: &str = "unmatched";

/// The latency histogram's buckets, in seconds: a cached redirect takes tens of microseconds,
/// one read from PostgreSQL or an API call milliseconds, an export or a slow database seconds
/// (up to the timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];
/// How often histogram samples are folded into their buckets when nobody scrapes: until then
/// each sample is held on its own (8 bytes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// The longest a scrape waits for the database's gauges; past it they keep their last values.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(1);

/// The `limit` values of `kurz_rate_limited_total`, shown at zero from the start so that an
/// alert on them works before the first refusal.
const RATE_LIMITS: &[&str] = &[
    "api",
    "create",
    "stats",
    "workspace_api",
    "workspace_create",
    "workspace_stats",
    "redirect",
    "report",
    "sign_in",
];

/// The process's recorder, installed at most once (a process may serve several apps: tests).
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed by the first call. `None` when another recorder was
/// installed first (the metrics then go there, and this listener has nothing to show).
fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), LATENCY_BUCKETS);
    let recorder = match builder {
        Ok(builder) => builder.build_recorder(),
        Err(err) => {
            tracing::error!(error = %err, "cannot build the metrics recorder");
            return None;
        }
    };
    let handle = recorder.handle();
    // A thread, not a task: it must outlive any one runtime (tests run many).
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("kurz-metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(err) = spawned {
        // Without it, histogram samples would pile up between scrapes.
        tracing::error!(error = %err, "cannot start the metrics upkeep: metrics are off");
        return None;
    }
    if let Err(err) = metrics::set_global_recorder(recorder) {
        tracing::error!(error = %err, "another metrics recorder is installed: /metrics is empty");
        return None;
    }
    describe();
    Some(handle)
}

/// The HELP line of every metric, and the counters that exist before they first move.
fn describe() {
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by route (the router's pattern, `unmatched` when none), method \
         and status."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time until a request's answer began, by route and method."
    );
    describe_counter!(
        "kurz_redirect_cache_total",
        "Redirect cache look-ups: hit (a link), negative_hit (a code known not to exist), miss \
         (read from PostgreSQL)."
    );
    describe_counter!(
        "kurz_rate_limited_total",
        "Requests refused by a rate limit (429), by limit."
    );
    describe_counter!(
        "kurz_clicks_shed_total",
        "Clicks of the origin's redirects neither stored nor counted: the queue and the overflow \
         map were both full, or the shutdown's deadline passed."
    );
    describe_counter!(
        "kurz_clicks_details_shed_total",
        "Clicks of the origin's redirects counted into the rollups without their raw event: the \
         queue was full, so only their details (breakdowns, uniques, export, webhook) were shed."
    );
    describe_gauge!(
        "kurz_clicks_overflow_waiting",
        "Clicks of the origin's redirects counted in memory while the queue was full, not yet \
         written into the rollups."
    );
    describe_gauge!(
        "kurz_clicks_overflow_buckets",
        "(Link, hour) buckets in the overflow map: at most twice KURZ_CLICK_QUEUE, and up to \
         twice that while failed writes' buckets are given back."
    );
    describe_counter!(
        "kurz_clicks_parked_total",
        "Clicks PostgreSQL refused, set aside in clicks_parked: of the origin's redirects and \
         of the edge's ingest (a click the edge sends again is parked and counted once)."
    );
    describe_counter!(
        "kurz_clicks_refused_total",
        "Clicks refused for their time, counted nowhere: dated over an hour ahead, or older \
         than KURZ_CLICK_RETENTION_DAYS (and 7 days) when they arrived. Counted per delivery: \
         a batch the edge sends again counts its refused clicks again."
    );
    describe_gauge!(
        "kurz_outbox_rows",
        "Link changes waiting in the outbox for delivery to the edge."
    );
    describe_gauge!(
        "kurz_outbox_lag_seconds",
        Unit::Seconds,
        "Age of the oldest link change not yet delivered to the edge (0: none)."
    );
    describe_gauge!(
        "kurz_clicks_pending",
        "Rows of clicks_pending: stored clicks not yet counted into the rollups (each click \
         waits once for its link and once for its workspace)."
    );
    describe_gauge!(
        "kurz_db_pool_connections",
        "This instance's database connections, by state (idle, busy)."
    );
    describe_gauge!(
        "kurz_db_pool_max_connections",
        "The most database connections this instance opens (KURZ_DB_MAX_CONNECTIONS)."
    );
    describe_counter!(
        "kurz_replica_fallbacks_total",
        "Reads for the read replica (KURZ_DATABASE_READ_URL) that the primary answered, by \
         reason: failed (the replica lost the connection or gave none in time; it then rests), \
         resting (within the rest after a failure), conflict (a recovery conflict cancelled it), \
         behind (it lagged more than KURZ_REPLICA_MAX_LAG_SECS)."
    );
    describe_gauge!(
        "kurz_replica_up",
        "1 while the read replica is taken for up, 0 while it rests after a failure; absent \
         without one."
    );
    describe_gauge!(
        "kurz_replica_lag_seconds",
        "How far the read replica was behind the primary at the last measurement (once a \
         second); NaN while not known. Above KURZ_REPLICA_MAX_LAG_SECS, reads go to the primary."
    );
    describe_counter!(
        "kurz_metrics_backlog_failures_total",
        "Scrapes whose database gauges could not be read in time (they kept their last values)."
    );
    for limit in RATE_LIMITS {
        counter!("kurz_rate_limited_total", "limit" => *limit).increment(0);
    }
    for result in ["hit", "miss", "negative_hit"] {
        counter!("kurz_redirect_cache_total", "result" => result).increment(0);
    }
    counter!("kurz_clicks_shed_total").increment(0);
    counter!("kurz_clicks_details_shed_total").increment(0);
    counter!("kurz_clicks_parked_total").increment(0);
    counter!("kurz_clicks_refused_total").increment(0);
    counter!("kurz_metrics_backlog_failures_total").increment(0);
}

/// Counts every request and times it until its answer begins, by route. The outermost layer
/// of the whole router, added only when metrics are served; axum has matched the route by
/// then, and the label is the router's pattern (`/{code}` for every redirect), never the path
/// a client sent.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16().to_string();
    counter!(REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(REQUEST_DURATION, "route" => route, "method" => method).record(elapsed);
    response
}

/// A method as a label: anything but the standard ones is `other` (a client may send any
/// token as a method, and each would be a series of its own).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// What the metrics listener needs.
struct Exporter {
    state: crate::State,
    handle: &'static PrometheusHandle,
    /// SHA-256 of the bearer token a scrape must send, if one is configured: compared by
    /// digest, so the comparison's time tells nothing about the token.
    token: Option<[u8; 32]>,
    /// One scrape at a time reads the database; the others show the values it last read.
    reading: tokio::sync::Mutex<()>,
}

/// Serves `GET /metrics` on `listener` until the task is aborted; installs the recorder if
/// this is the first.
pub(crate) fn serve(
    state: crate::State,
    listener: TcpListener,
    token: Option<&MetricsToken>,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let Some(handle) = recorder() else {
        anyhow::bail!("KURZ_METRICS_BIND: another metrics recorder is installed in this process");
    };
    let exporter = Arc::new(Exporter {
        state,
        handle,
        token: token.map(|token| Sha256::digest(token.as_str().as_bytes()).into()),
        reading: tokio::sync::Mutex::new(()),
    });
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(exporter);
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    Ok(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(error = %err, "the metrics listener stopped");
        }
    })
}

async fn scrape(State(exporter): State<Arc<Exporter>>, headers: HeaderMap) -> Response {
    if let Some(expected) = &exporter.token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| <[u8; 32]>::from(Sha256::digest(token.trim().as_bytes())));
        if sent.as_ref() != Some(expected) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            )
                .into_response();
        }
    }
    pool_gauges(exporter.state.db());
    if let Some(replica) = exporter.state.reads().replica_health() {
        gauge!("kurz_replica_up").set(if replica.state == "up" { 1.0 } else { 0.0 });
        for reason in ["failed", "resting", "conflict", "behind"] {
            counter!("kurz_replica_fallbacks_total", "reason" => reason).increment(0);
        }
    }
    let (waiting, buckets) = exporter.state.clicks_overflow_waiting();
    gauge!("kurz_clicks_overflow_waiting").set(waiting as f64);
    gauge!("kurz_clicks_overflow_buckets").set(buckets as f64);
    if let Ok(_reading) = exporter.reading.try_lock() {
        backlog_gauges(&exporter.state).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        exporter.handle.render(),
    )
        .into_response()
}

fn pool_gauges(db: &PgPool) {
    let open = db.size();
    let idle = u32::try_from(db.num_idle()).unwrap_or(u32::MAX).min(open);
    gauge!("kurz_db_pool_connections", "state" => "idle").set(f64::from(idle));
    gauge!("kurz_db_pool_connections", "state" => "busy").set(f64::from(open - idle));
    gauge!("kurz_db_pool_max_connections").set(f64::from(db.options().get_max_connections()));
}

/// The outbox and the pending clicks, as PostgreSQL has them now. Bounded twice: the
/// statement timeout ends the queries on the server, the timeout here the wait for a
/// connection too.
async fn backlog_gauges(state: &crate::State) {
    if !state.inner.migrated.get() {
        return;
    }
    match tokio::time::timeout(BACKLOG_TIMEOUT, backlog(state.db())).await {
        Ok(Ok((outbox_rows, outbox_lag, clicks_pending))) => {
            gauge!("kurz_outbox_rows").set(outbox_rows as f64);
            gauge!("kurz_outbox_lag_seconds").set(outbox_lag);
            gauge!("kurz_clicks_pending").set(clicks_pending as f64);
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "metrics: cannot read the outbox and pending clicks");
            counter!("kurz_metrics_backlog_failures_total").increment(1);
        }
        Err(_) => {
            tracing::warn!(timeout = ?BACKLOG_TIMEOUT, "metrics: the outbox and pending clicks took too long to read");
            counter!("kurz_metrics_backlog_failures_total").increment(1);
        }
    }
}

async fn backlog(db: &PgPool) -> Result<(i64, f64, i64), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 1000")
        .execute(&mut *tx)
        .await?;
    // Both tables are small while things work (rows leave them within moments); when they
    // are not, the count is what the gauge is for, and the timeout bounds its cost.
    let backlog = sqlx::query_as(
        "SELECT (SELECT count(*) FROM edge_outbox),
                (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
                 FROM edge_outbox),
                (SELECT count(*) FROM clicks_pending)",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_a_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let odd = Method::from_bytes(b"FROBNICATE").expect("a token");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
    }
}
