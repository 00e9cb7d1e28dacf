//! `cargo xtask bench --only analytics`: click ingest throughput through the real, signed
//! ingest route in 1,000-event batches, and the latency of the stats API for a link with
//! 10,000,000 clicks over 90 days.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shortlink::signature;
use time::OffsetDateTime;

use crate::bench::{Origin, build_release_origin, throwaway_database};
use crate::tools::{self, root};

const LINKS: i64 = 1_000;
const BATCH: usize = 1_000;
const BATCHES: usize = 200;
/// Batches posted at once (the edge's queue consumers run in parallel too).
const CONCURRENCY: usize = 4;
/// The big link of the query benchmark.
const BIG_CLICKS: i64 = 10_000_000;
const BIG_DAYS: i64 = 90;
/// Runs of each stats query: enough for a p99 that is not simply the slowest run (with 30,
/// it was: one pause of the shared machine decided the figure), at a few seconds a query.
const QUERY_ROUNDS: usize = 300;

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];
const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://t.co/abc",
    "https://news.ycombinator.com/item?id=1",
    "https://www.reddit.com/r/rust/",
    "https://mail.example/",
];
const COUNTRIES: &[&str] = &["DE", "US", "FR", "GB", "JP", "BR", "IN", "NL"];

pub(crate) fn run(work: &Path, shared_buffers_mib: u32) -> anyhow::Result<String> {
    build_release_origin(&[])?;
    let (_cluster, database_url) = throwaway_database(work, "analytics", shared_buffers_mib)?;
    let code_key = tools::random_hex(16);
    let secret = tools::random_hex(32);
    let origin = Origin::start_with(
        &database_url,
        &code_key,
        64,
        &[("KURZ_EDGE_SECRET", secret.as_str())],
    )?;
    let api_key = create_api_key(&database_url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base = format!("http://{}", origin.address);
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&database_url).await?;
        sqlx::query(
            "INSERT INTO links (code, destination)
             SELECT 'bench' || i, 'https://example.com/' || i FROM generate_series(1, $1) AS i",
        )
        .bind(LINKS)
        .execute(&pool)
        .await?;
        let live = ingest(&pool, &base, &secret, Workload::Live).await?;
        eprintln!("ingest, live workload: {live:.0} events/s");
        let spread = ingest(&pool, &base, &secret, Workload::Spread).await?;
        eprintln!("ingest, spread workload: {spread:.0} events/s");
        eprintln!(
            "seeding the rollups of a link with {BIG_CLICKS} clicks over {BIG_DAYS} days, and of a workspace of {WORKSPACE_LINKS} links..."
        );
        seed_big_link(&pool).await?;
        let queries = queries(&base, &api_key).await?;
        pool.close().await;
        report(live, spread, &queries)
    })
}

pub(crate) fn create_api_key(database_url: &str) -> anyhow::Result<String> {
    let output = Command::new(root().join("target/release/origin"))
        .args(["create-api-key", "--name", "bench"])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .context("cannot run origin create-api-key")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .find(|word| word.starts_with("kurz_"))
        .map(str::to_owned)
        .with_context(|| format!("origin create-api-key printed no key: {text}"))
}

/// How the clicks of the ingest benchmark are spread.
#[derive(Debug, Clone, Copy)]
enum Workload {
    /// As the edge delivers them: from the last minutes, links skewed as real traffic is
    /// (log-uniform: link k is about 1/k as popular as link 1).
    Live,
    /// The worst case for the rollups: every link equally likely, times over a whole day,
    /// so nearly every event has its own rollup rows.
    Spread,
}

/// Events per second through `POST /_edge/ingest`, until every event is counted into the
/// rollups (the origin counts stored clicks in the background).
async fn ingest(
    pool: &sqlx::PgPool,
    base: &str,
    secret: &str,
    workload: Workload,
) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ workload as u64);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (window, skewed) = match workload {
        Workload::Live => (300, true),
        Workload::Spread => (86_400, false),
    };
    let bodies: Vec<Vec<u8>> = (0..BATCHES)
        .map(|b| {
            let events: Vec<serde_json::Value> = (0..BATCH)
                .map(|i| {
                    let at = OffsetDateTime::from_unix_timestamp(now - rng.below(window) as i64)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                    let link = if skewed {
                        let u = rng.below(1_000_000) as f64 / 1_000_000.0;
                        ((LINKS as f64).powf(u) as u64).clamp(1, LINKS as u64)
                    } else {
                        1 + rng.below(LINKS as u64)
                    };
                    serde_json::json!({
                        "id": format!("{workload:?}-{b}-{i}"),
                        "link_id": link,
                        "code": format!("bench{link}"),
                        "at": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                        "country": COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize],
                        "referrer": REFERRERS[rng.below(REFERRERS.len() as u64) as usize],
                        "user_agent": AGENTS[rng.below(AGENTS.len() as u64) as usize],
                        "qr": rng.below(10) == 0,
                        "head": false,
                        "source": "edge",
                        "visitor": format!("{:032x}", rng.below(50_000)),
                    })
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({ "events": events }))
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(CONCURRENCY);
    let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
    for _ in 0..CONCURRENCY {
        let (client, receiver, base, secret) = (
            client.clone(),
            receiver.clone(),
            base.to_owned(),
            secret.to_owned(),
        );
        workers.spawn(async move {
            loop {
                let Some(body) = receiver.lock().await.recv().await else {
                    return anyhow::Ok(());
                };
                post_signed(&client, &base, &secret, body).await?;
            }
        });
    }
    for body in bodies {
        sender.send(body).await?;
    }
    drop(sender);
    while let Some(result) = workers.join_next().await {
        result??;
    }
    let stored = started.elapsed();
    // Looked at every 100 ms (1 % of a run), cheaply, so that the looking costs the counter
    // little.
    loop {
        let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM clicks_pending)")
            .fetch_one(pool)
            .await?;
        if !pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counted = started.elapsed();
    eprintln!(
        "  {workload:?}: all stored after {:.2} s, all counted after {:.2} s",
        stored.as_secs_f64(),
        counted.as_secs_f64()
    );
    // The workspace's rollup counts every event of every workload so far, once.
    let total: i64 = sqlx::query_scalar(
        "SELECT sum(clicks + qr_scans + bots)::bigint FROM workspace_stats_hourly
         WHERE workspace_id = 1",
    )
    .fetch_one(pool)
    .await?;
    let expected = (BATCH * BATCHES) as i64 * (workload as i64 + 1);
    if total != expected {
        bail!("the rollups count {total} events, not {expected}");
    }
    Ok((BATCH * BATCHES) as f64 / counted.as_secs_f64())
}

pub(crate) async fn post_signed(
    client: &reqwest::Client,
    base: &str,
    secret: &str,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let path = "/_edge/ingest";
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = signature::sign(secret.as_bytes(), "POST", path, timestamp, &body);
    let response = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "ingest answered {}: {}",
            response.status(),
            response.text().await?
        );
    }
    Ok(())
}

/// The rollups of link 1 as 10,000,000 clicks over 90 days would leave them: every hour,
/// 20 referrers, 50 countries, 4 devices, 8 browsers and 6 operating systems. The stats API
/// reads only these tables, so raw rows would change nothing it measures (and would take
/// minutes to ingest).
async fn seed_big_link(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let hours = BIG_DAYS * 24;
    let per_hour = BIG_CLICKS / hours;
    sqlx::query(
        "INSERT INTO link_stats_hourly (workspace_id, link_id, hour, clicks, qr_scans, bots,
                                        uniques)
         SELECT 1, 1, date_trunc('hour', now()) - make_interval(hours => h::int),
                $1 * 8 / 10, $1 / 10, $1 / 10, $1 / 3
         FROM generate_series(0, $2 - 1) AS h
         ON CONFLICT (workspace_id, link_id, hour) DO UPDATE SET clicks = EXCLUDED.clicks",
    )
    .bind(per_hour)
    .bind(hours)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO link_breakdown_hourly (workspace_id, link_id, dimension, hour, value, hits,
                                            bots)
         SELECT 1, 1, d.dimension, date_trunc('hour', now()) - make_interval(hours => h::int),
                d.dimension || '-' || v, greatest(1, $1 / d.n / 2 * 2 / (v + 1)), 1
         FROM generate_series(0, $2 - 1) AS h,
              (VALUES ('referrer', 20), ('country', 50), ('device', 4), ('browser', 8), ('os', 6))
                  AS d(dimension, n),
              LATERAL generate_series(0, d.n - 1) AS v
         ON CONFLICT DO NOTHING",
    )
    .bind(per_hour)
    .bind(hours)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO link_breakdown_daily (workspace_id, link_id, dimension, day, value, hits,
                                           bots)
         SELECT workspace_id, link_id, dimension, (hour AT TIME ZONE 'UTC')::date, value,
                sum(hits), sum(bots)
         FROM link_breakdown_hourly WHERE workspace_id = 1 AND link_id = 1
         GROUP BY 1, 2, 3, 4, 5
         ON CONFLICT (workspace_id, link_id, dimension, day, value) DO UPDATE
             SET hits = EXCLUDED.hits, bots = EXCLUDED.bots",
    )
    .execute(pool)
    .await?;
    seed_workspace(pool).await?;
    // VACUUM too, as a table written over months has been: otherwise autovacuum takes the
    // freshly loaded rollups during the queries measured below (it did, and their p99 was
    // its pauses, not theirs), and the loaded rows have no visibility map for index-only
    // scans.
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

/// Links of the workspace whose 30 days the account query reads.
const WORKSPACE_LINKS: i64 = 10_000;
/// Clicks of links 2 to [`WORKSPACE_LINKS`] over [`BIG_DAYS`], link k about 1/k as popular
/// as link 1 would be at this total (log-uniform); link 1 keeps its own seed.
const WORKSPACE_CLICKS: i64 = 10_000_000;

/// The workspace's side of the account query: links 2 to 10,000 with ~9 M clicks spread
/// log-uniformly over 90 days (a link with under a click an hour has a row every few hours),
/// tags on every link (50 tags, a fifth of the links with two), and the workspace's own
/// rollups made from its links' (hourly stats, breakdowns as link 1's), plus the per-day
/// rollup of each link the workspace's top links and tags read, where it exists.
async fn seed_workspace(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let hours = BIG_DAYS * 24;
    // The harmonic number of the links: link k's share is 1 / (k H).
    let harmonic: f64 = (1..=WORKSPACE_LINKS).map(|k| 1.0 / k as f64).sum();
    let link1_per_hour = WORKSPACE_CLICKS as f64 / harmonic / hours as f64;
    sqlx::query(
        "INSERT INTO links (code, destination)
         SELECT 'bench' || i, 'https://example.com/' || i FROM generate_series($1 + 1, $2) AS i",
    )
    .bind(LINKS)
    .bind(WORKSPACE_LINKS)
    .execute(pool)
    .await?;
    sqlx::query(
        "UPDATE links SET tags = CASE WHEN id % 5 = 0 THEN ARRAY['tag' || id % 50, 'all-fifth']
                                     ELSE ARRAY['tag' || id % 50] END
         WHERE workspace_id = 1",
    )
    .execute(pool)
    .await?;
    // Link k: rate r = link1_per_hour / k clicks an hour; at r >= 1 a row every hour of
    // round(r) clicks, below it a row of 1 click every round(1 / r) hours.
    sqlx::query(
        "INSERT INTO link_stats_hourly (workspace_id, link_id, hour, clicks, qr_scans, bots,
                                        uniques)
         SELECT l.workspace_id, l.id, date_trunc('hour', now()) - make_interval(hours => h::int),
                greatest(1, round(r.rate * 8 / 10)), round(r.rate / 10), round(r.rate / 10),
                greatest(1, round(r.rate / 3))
         FROM links l,
              LATERAL (SELECT $1::float8 / l.id AS rate) AS r,
              LATERAL (SELECT greatest(1, round(1 / r.rate))::int AS step) AS s,
              LATERAL generate_series(l.id::int % s.step, $2 - 1, s.step) AS h
         WHERE l.workspace_id = 1 AND l.id BETWEEN 2 AND $3
         ON CONFLICT (workspace_id, link_id, hour) DO UPDATE
             SET clicks = EXCLUDED.clicks, qr_scans = EXCLUDED.qr_scans, bots = EXCLUDED.bots",
    )
    .bind(link1_per_hour)
    .bind(hours)
    .bind(WORKSPACE_LINKS)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO workspace_stats_hourly (workspace_id, hour, clicks, qr_scans, bots, uniques)
         SELECT 1, hour, sum(clicks), sum(qr_scans), sum(bots), sum(uniques)
         FROM link_stats_hourly GROUP BY hour
         ON CONFLICT (workspace_id, hour) DO UPDATE
             SET clicks = EXCLUDED.clicks, qr_scans = EXCLUDED.qr_scans, bots = EXCLUDED.bots,
                 uniques = EXCLUDED.uniques",
    )
    .execute(pool)
    .await?;
    for (table, time) in [("breakdown_hourly", "hour"), ("breakdown_daily", "day")] {
        sqlx::query(&format!(
            "INSERT INTO workspace_{table} (workspace_id, dimension, {time}, value, hits, bots)
             SELECT 1, dimension, {time}, value, hits, bots FROM link_{table} WHERE link_id = 1
             ON CONFLICT (workspace_id, {time}, dimension, value) DO UPDATE
                 SET hits = EXCLUDED.hits, bots = EXCLUDED.bots"
        ))
        .execute(pool)
        .await?;
    }
    let daily: bool = sqlx::query_scalar("SELECT to_regclass('workspace_link_daily') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if daily {
        sqlx::query("DELETE FROM workspace_link_daily WHERE workspace_id = 1")
            .execute(pool)
            .await?;
        sqlx::query(
            "INSERT INTO workspace_link_daily (workspace_id, day, link_id, hits, bots)
             SELECT l.workspace_id, (s.hour AT TIME ZONE 'UTC')::date, s.link_id,
                    sum(s.clicks + s.qr_scans), sum(s.bots)
             FROM link_stats_hourly s JOIN links l ON l.id = s.link_id
             WHERE l.workspace_id = 1
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .execute(pool)
        .await?;
    }
    // The tags' rollups (0035), where they exist: each tag's visits per hour and day.
    let tagged: bool = sqlx::query_scalar("SELECT to_regclass('workspace_tag_daily') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if tagged {
        for (table, time) in [
            ("workspace_tag_hourly", "s.hour"),
            ("workspace_tag_daily", "(s.hour AT TIME ZONE 'UTC')::date"),
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = 1"))
                .execute(pool)
                .await?;
            sqlx::query(&format!(
                "INSERT INTO {table}
                 SELECT l.workspace_id, {time}, t.tag, sum(s.clicks + s.qr_scans), sum(s.bots)
                 FROM link_stats_hourly s JOIN links l ON l.id = s.link_id, unnest(l.tags) AS t (tag)
                 WHERE l.workspace_id = 1
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ))
            .execute(pool)
            .await?;
        }
    }
    let (links, clicks): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT link_id), sum(clicks + qr_scans + bots)::int8 FROM link_stats_hourly",
    )
    .fetch_one(pool)
    .await?;
    eprintln!(
        "  workspace: {links} links with clicks, {clicks} clicks in the rollups (link 1's included)"
    );
    Ok(())
}

struct QueryTimes {
    name: &'static str,
    p50: Duration,
    p99: Duration,
}

/// End-to-end latency of the stats API (HTTP included), each query run many times.
async fn queries(base: &str, api_key: &str) -> anyhow::Result<Vec<QueryTimes>> {
    let client = reqwest::Client::new();
    let cases: [(&'static str, String); 6] = [
        (
            "link, 24 h by hour",
            "/api/v1/links/bench1/stats?interval=hour&from=-1".to_owned(),
        ),
        (
            "link, 7 d by hour",
            "/api/v1/links/bench1/stats?interval=hour".to_owned(),
        ),
        (
            "link, 30 d by day, Europe/Berlin",
            "/api/v1/links/bench1/stats?interval=day&tz=Europe/Berlin&from=-30".to_owned(),
        ),
        (
            "link, 90 d by day, bots",
            "/api/v1/links/bench1/stats?interval=day&bots=true&from=-90".to_owned(),
        ),
        (
            "link, 90 d by week",
            "/api/v1/links/bench1/stats?interval=week&from=-90".to_owned(),
        ),
        (
            "account, 30 d by day",
            "/api/v1/stats?interval=day&from=-30".to_owned(),
        ),
    ];
    let now = OffsetDateTime::now_utc();
    let mut results = Vec::new();
    for (name, path) in cases {
        // `from=-N`: N days ago.
        let path = match path.split_once("from=-") {
            Some((head, days)) => {
                let days: i64 = days.parse()?;
                let from = (now - time::Duration::days(days))
                    .format(&time::format_description::well_known::Rfc3339)?
                    .replace('+', "%2B");
                format!("{head}from={from}")
            }
            None => path,
        };
        let (p50, p99) =
            latencies(&client, &format!("{base}{path}"), api_key, QUERY_ROUNDS).await?;
        results.push(QueryTimes { name, p50, p99 });
    }
    Ok(results)
}

/// p50 and p99 of `rounds` GETs of `url` with an API key, one at a time (HTTP included); a
/// first, uncounted round warms caches.
pub(crate) async fn latencies(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
    rounds: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let mut times = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        let started = Instant::now();
        let response = client.get(url).bearer_auth(api_key).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if round > 0 {
            times.push(started.elapsed());
        }
    }
    times.sort_unstable();
    Ok((
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)],
    ))
}

fn report(live: f64, spread: f64, queries: &[QueryTimes]) -> anyhow::Result<String> {
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    let mut report = format!(
        "\nanalytics\n\ningest through POST /_edge/ingest, {BATCHES} batches of {BATCH}, {CONCURRENCY} at a time, 1000 links:\n  live (last 5 min, skewed links):   {live:>7.0} events/s (target ≥ 50000, #16: {})\n  spread (24 h, uniform links):      {spread:>7.0} events/s (target ≥ 30000, #16: {})\n\nstats API, link 1 with {BIG_CLICKS} clicks over {BIG_DAYS} days; account: {WORKSPACE_LINKS} links, the rest ~{WORKSPACE_CLICKS} clicks log-uniform; {QUERY_ROUNDS} runs each (HTTP included)\n\n{:<36} {:>9} {:>9}\n",
        verdict(live >= 50_000.0),
        verdict(spread >= 30_000.0),
        "",
        "p50",
        "p99"
    );
    for query in queries {
        writeln!(
            report,
            "{:<36} {:>9.1?} {:>9.1?}",
            query.name, query.p50, query.p99
        )?;
    }
    let worst = queries.iter().map(|q| q.p99).max().unwrap_or_default();
    writeln!(
        report,
        "worst p99 {worst:.1?} (target < 10 ms: {})",
        verdict(worst < Duration::from_millis(10))
    )?;
    Ok(report)
}

/// xorshift64: the workload is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
