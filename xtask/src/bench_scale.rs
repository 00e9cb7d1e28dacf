//! `cargo xtask bench --only scale`: kurz at 10,000,000 links and 100,000,000 raw clicks over
//! 90 days on one machine (`--scale-links`, `--scale-clicks` for smaller runs): redirect
//! latency on cache misses at a tenth of the links against all of them, the links API and
//! the stats API at full size, disk bytes per row of every table that grows with traffic,
//! load times and the database's size. Sizes and latencies are printed, not asserted.
//!
//! How the data goes in, and why: links by `INSERT … SELECT … FROM generate_series` with the
//! schema's triggers on (the bulk API's rate is `--only import`'s; 10 M links through it take
//! most of an hour). Clicks: a sample through the signed ingest route (`POST /_edge/ingest`,
//! enriched and counted by the origin: the real path, its rate printed), the rest by
//! `INSERT … SELECT` into `clicks` and `clicks_pending` exactly as ingest leaves them (with the
//! enrichment the origin gave the sample's user agents and referrers), then counted into the
//! rollups by the origin's own counter, the real rollup path.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::bench::{Origin, build_release_origin, throwaway_database};
use crate::bench_analytics::{create_api_key, latencies, post_signed};
use crate::tools;

/// Days the clicks are spread over.
const DAYS: i64 = 90;
/// Distinct codes of each redirect measurement (each asked once: every request misses).
const REDIRECTS: u64 = 20_000;
/// Clients asking for them at once.
const CLIENTS: usize = 4;
/// Runs of each API query: as many as fit in [`API_BUDGET`], at least the first and at most
/// the second. Of 300 runs the p99 is the third slowest; of 50 it would be the slowest, one
/// stall of this shared machine (a query of seconds at full size still gets its 50).
const API_ROUNDS: (usize, usize) = (50, 300);
/// The time the runs of one API query may take, once past their minimum.
const API_BUDGET: Duration = Duration::from_secs(20);
/// Links inserted per statement.
const LINK_CHUNK: u64 = 100_000;
/// Raw clicks inserted per statement.
const CLICK_CHUNK: u64 = 1_000_000;
/// Distinct visitors of the clicks.
const VISITORS: i64 = 5_000_000;
/// Bytes of disk the load may take per link and per raw click (with the rollups, the
/// pending queue it passes through, and WAL), to refuse a size the disk cannot hold. The
/// 10 M-link run of docs/scaling.md measured 803 B per link, and per raw click 395 B of
/// `clicks`, 243 B of the emptied `clicks_pending` and 1,588 B of rollups: clicks spread over
/// 90 days and millions of links open rollup rows of their own.
const DISK_PER_LINK: u64 = 1_000;
const DISK_PER_CLICK: u64 = 2_400;

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];
const REFERRERS: &[Option<&str>] = &[
    None,
    Some("https://www.google.com/"),
    Some("https://t.co/abc"),
    Some("https://news.ycombinator.com/item?id=1"),
    Some("https://www.reddit.com/r/rust/"),
    Some("https://mail.example/"),
];
const COUNTRIES: &[&str] = &[
    "DE", "US", "FR", "GB", "JP", "BR", "IN", "NL", "KR", "CA", "ES", "IT",
];

/// The code of link `id`: `id` times an odd constant modulo 2^32 (distinct for distinct ids
/// below 2^32), in hex; the SQL below makes the same.
fn code_of(id: u64) -> String {
    format!("{:08x}", (id * 2_654_435_761) % (1 << 32))
}

pub(crate) fn run(
    links: u64,
    clicks: u64,
    work: &Path,
    shared_buffers_mib: u32,
) -> anyhow::Result<String> {
    if !(10..=1_000_000_000).contains(&links) {
        bail!("--scale-links must be between 10 and 1,000,000,000");
    }
    let needed = links * DISK_PER_LINK + clicks * DISK_PER_CLICK;
    let free = free_bytes(work)?;
    if needed + 5_000_000_000 > free {
        bail!(
            "{links} links and {clicks} clicks need about {:.1} GB of disk and 5 GB to spare; \
             {:.1} GB are free under {}",
            gb(needed),
            gb(free),
            work.display()
        );
    }
    build_release_origin(&[])?;
    let (_cluster, database_url) = throwaway_database(work, "scale", shared_buffers_mib)?;
    let secret = tools::random_hex(32);
    let code_key = tools::random_hex(16);
    // Ingest, counting, the API: the origin as deployed.
    let origin = Origin::start_with(
        &database_url,
        &code_key,
        64,
        &[("KURZ_EDGE_SECRET", secret.as_str())],
    )?;
    // Redirects on cache misses: no cache, and no clicks recorded (their cost is measured
    // apart by `--only origin`).
    let uncached = Origin::start_with(
        &database_url,
        &code_key,
        0,
        &[("KURZ_RECORD_CLICKS", "false")],
    )?;
    let api_key = create_api_key(&database_url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base = format!("http://{}", origin.address);
    let redirect_base = format!("http://{}", uncached.address);
    let report = runtime.block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&database_url).await?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pageinspect")
            .execute(&mut db)
            .await
            .ok();
        let tenth = (links / 10).max(1);
        let mut load = Vec::new();
        let loading = Instant::now();

        let started = Instant::now();
        insert_links(&mut db, 1, tenth, links).await?;
        load.push((format!("{} links", thousands(tenth)), started.elapsed()));
        let small = measure(&mut db, &redirect_base, &base, &api_key, tenth, links).await?;

        let started = Instant::now();
        insert_links(&mut db, tenth + 1, links, links).await?;
        load.push((
            format!("{} more links", thousands(links - tenth)),
            started.elapsed(),
        ));
        let big = measure(&mut db, &redirect_base, &base, &api_key, links, links).await?;

        let clicked = load_clicks(&mut db, &base, &secret, links, clicks).await?;
        load.extend(clicked.load.iter().cloned());
        let started = Instant::now();
        sqlx::query("VACUUM ANALYZE").execute(&mut db).await?;
        load.push((
            "VACUUM ANALYZE after the load".to_owned(),
            started.elapsed(),
        ));
        // The measurements between the loads are part of it: a few seconds.
        let load_total = loading.elapsed();
        let stats = stats_latencies(&base, &api_key).await?;
        let disk = disk(&mut db).await?;
        let database: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&mut db)
            .await?;
        db.close().await?;
        report(&Report {
            links,
            clicks,
            sample: clicked.sample,
            sample_rate: clicked.sample_rate,
            load: &load,
            load_total,
            small: &small,
            big: &big,
            stats: &stats,
            disk: &disk,
            database,
        })
    })?;
    drop(uncached);
    drop(origin);
    Ok(report)
}

/// Inserts links `first..=last` of `total` into workspace 1, [`LINK_CHUNK`] a statement:
/// a title on a third, tags on a fifth, one made every 3 s up to now. Then VACUUM ANALYZE, as
/// autovacuum would after such a load (the trigram indexes' pending lists otherwise hold the
/// new rows).
async fn insert_links(
    db: &mut sqlx::PgConnection,
    first: u64,
    last: u64,
    total: u64,
) -> anyhow::Result<()> {
    let mut from = first;
    while from <= last {
        let to = (from + LINK_CHUNK - 1).min(last);
        sqlx::query(
            "INSERT INTO links (id, workspace_id, code, destination, title, tags, created_at,
                                updated_at)
             SELECT i, 1, lpad(to_hex((i * 2654435761) % 4294967296), 8, '0'),
                    'https://example.com/articles/' || i || '?ref=scale',
                    CASE WHEN i % 3 = 0 THEN 'Article number ' || i END,
                    CASE WHEN i % 5 = 0 THEN ARRAY['scale', 'batch ' || i / 1000]
                         ELSE '{}' END,
                    now() - make_interval(secs => ($3 - i) * 3),
                    now() - make_interval(secs => ($3 - i) * 3)
             FROM generate_series($1::bigint, $2::bigint) AS i",
        )
        .bind(from as i64)
        .bind(to as i64)
        .bind(total as i64)
        .execute(&mut *db)
        .await?;
        if (to / LINK_CHUNK).is_multiple_of(10) {
            eprintln!("  {} links", thousands(to));
        }
        from = to + 1;
    }
    sqlx::query("SELECT setval(pg_get_serial_sequence('links', 'id'), $1)")
        .bind(last as i64)
        .execute(&mut *db)
        .await?;
    sqlx::query("VACUUM ANALYZE links")
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// What [`measure`] found at one number of links.
struct AtSize {
    links: u64,
    redirect_p50: Duration,
    redirect_p99: Duration,
    /// B-tree levels above the leaves of the index the redirect reads, from `bt_metap`.
    levels: Option<i32>,
    index_bytes: i64,
    first_page: (Duration, Duration),
    search: (Duration, Duration),
    search_none: (Duration, Duration),
}

async fn measure(
    db: &mut sqlx::PgConnection,
    redirect_base: &str,
    base: &str,
    api_key: &str,
    links: u64,
    total: u64,
) -> anyhow::Result<AtSize> {
    eprintln!("measuring at {} links...", thousands(links));
    let (redirect_p50, redirect_p99) = redirects(redirect_base, links).await?;
    let levels: Option<i32> =
        sqlx::query_scalar("SELECT level::int FROM bt_metap('link_codes_pkey')")
            .fetch_one(&mut *db)
            .await
            .ok();
    let index_bytes: i64 = sqlx::query_scalar("SELECT pg_relation_size('link_codes_pkey')")
        .fetch_one(&mut *db)
        .await?;
    let client = reqwest::Client::new();
    let list = |query: String| format!("{base}/api/v1/links?limit=50{query}");
    // A destination part that both sizes hold (about a dozen links match it).
    let part = (total / 20).max(1);
    let first_page = api_latencies(&client, &list(String::new()), api_key).await?;
    let search = api_latencies(&client, &list(format!("&q=articles/{part}")), api_key).await?;
    let search_none =
        api_latencies(&client, &list("&q=nothing-like-this".to_owned()), api_key).await?;
    Ok(AtSize {
        links,
        redirect_p50,
        redirect_p99,
        levels,
        index_bytes,
        first_page,
        search,
        search_none,
    })
}

/// p50 and p99 of redirects of [`REDIRECTS`] distinct links spread over ids `1..=links`, each
/// asked once, [`CLIENTS`] at a time; the first twentieth unmeasured (connections, plans).
async fn redirects(base: &str, links: u64) -> anyhow::Result<(Duration, Duration)> {
    let count = REDIRECTS.min(links);
    let stride = links / count;
    let mut rng = Rng(0x5ca1_ab1e);
    let ids: Vec<u64> = (0..count)
        .map(|j| 1 + j * stride + rng.below(stride))
        .collect();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut tasks = tokio::task::JoinSet::new();
    for part in ids.chunks(ids.len().div_ceil(CLIENTS)) {
        let (client, base, part) = (client.clone(), base.to_owned(), part.to_vec());
        tasks.spawn(async move {
            let mut times = Vec::with_capacity(part.len());
            for (n, id) in part.iter().enumerate() {
                let started = Instant::now();
                let response = client
                    .get(format!("{base}/{}", code_of(*id)))
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
                if !status.is_redirection() {
                    bail!("/{} (link {id}) answered {status}", code_of(*id));
                }
                if n >= part.len() / 20 {
                    times.push(started.elapsed());
                }
            }
            anyhow::Ok(times)
        });
    }
    let mut times = Vec::new();
    while let Some(done) = tasks.join_next().await {
        times.extend(done??);
    }
    percentiles(times)
}

fn percentiles(mut times: Vec<Duration>) -> anyhow::Result<(Duration, Duration)> {
    if times.is_empty() {
        bail!("nothing measured");
    }
    times.sort_unstable();
    Ok((
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)],
    ))
}

/// How the clicks went in.
struct Clicked {
    sample: u64,
    sample_rate: f64,
    load: Vec<(String, Duration)>,
}

/// Loads `clicks` clicks over the last [`DAYS`] days on `links` links, skewed as real
/// traffic is (log-uniform: link k about 1/k as popular as link 1): a sample through the
/// ingest route, the rest straight into `clicks` and `clicks_pending`; waits until the
/// origin has counted them all into the rollups.
async fn load_clicks(
    db: &mut sqlx::PgConnection,
    base: &str,
    secret: &str,
    links: u64,
    clicks: u64,
) -> anyhow::Result<Clicked> {
    let mut load = Vec::new();
    let sample = (clicks / 100).clamp(clicks.min(10_000), 200_000);
    eprintln!("{} clicks through POST /_edge/ingest...", thousands(sample));
    let started = Instant::now();
    ingest_sample(base, secret, links, sample).await?;
    wait_counted(db, started).await?;
    let taken = started.elapsed();
    let sample_rate = sample as f64 / taken.as_secs_f64();
    load.push((
        format!(
            "{} clicks through the ingest route, counted ({sample_rate:.0}/s)",
            thousands(sample)
        ),
        taken,
    ));

    // The enrichment the origin gave the sample, for the rest.
    sqlx::query(
        "CREATE TEMP TABLE scale_agents AS
         SELECT row_number() OVER (ORDER BY user_agent) - 1 AS n, *
         FROM (SELECT DISTINCT user_agent, device, browser, os, bot FROM clicks) a",
    )
    .execute(&mut *db)
    .await?;
    sqlx::query(
        "CREATE TEMP TABLE scale_referrers AS
         SELECT row_number() OVER (ORDER BY referrer) - 1 AS n, *
         FROM (SELECT DISTINCT referrer, referrer_host FROM clicks WHERE NOT bot) r",
    )
    .execute(&mut *db)
    .await?;
    let rest = clicks - sample;
    eprintln!(
        "{} clicks by INSERT … SELECT into clicks and clicks_pending...",
        thousands(rest)
    );
    let now = OffsetDateTime::now_utc();
    let started = Instant::now();
    let mut from = 1;
    while from <= rest {
        let to = (from + CLICK_CHUNK - 1).min(rest);
        sqlx::query(
            "WITH g AS (
                 SELECT i, h, h2,
                        least($3::bigint, greatest(1, floor(exp(((h >> 24) % 1000000)
                              / 1000000.0 * ln($3::float8)))))::bigint AS l
                 FROM (SELECT i, hashint8extended(i, 7) & 9223372036854775807 AS h,
                              hashint8extended(i, 11) & 9223372036854775807 AS h2
                       FROM generate_series($1::bigint, $2::bigint) AS i) s
             ), new AS (
                 INSERT INTO clicks (id, at, link_id, code, source, country, referrer,
                                     referrer_host, user_agent, device, browser, os, bot, qr,
                                     head, visitor)
                 SELECT 'scale-' || g.i, $4::timestamptz - make_interval(secs => (g.h2 % $5)::float8),
                        g.l, lpad(to_hex((g.l * 2654435761) % 4294967296), 8, '0'), 'edge',
                        ($6::text[])[(1 + g.h % cardinality($6::text[]))::int],
                        r.referrer, r.referrer_host, a.user_agent, a.device, a.browser, a.os,
                        a.bot, g.h % 10 = 0, false, md5(((g.h >> 32) % $7)::text)
                 FROM g
                 JOIN scale_agents a
                   ON a.n = (g.h >> 8) % (SELECT count(*) FROM scale_agents)
                 JOIN scale_referrers r
                   ON r.n = (g.h >> 16) % (SELECT count(*) FROM scale_referrers)
                 RETURNING link_id, at, country, referrer_host, device, browser, os, bot, qr,
                           visitor
             )
             INSERT INTO clicks_pending (link_id, workspace_id, link_workspace_id, at, country,
                                         referrer_host, device, browser, os, bot, qr, visitor)
             SELECT link_id, half.workspace_id, 1, at, country, referrer_host, device,
                    browser, os, bot, qr, visitor
             FROM new, (VALUES (NULL::bigint), (1::bigint)) AS half (workspace_id)",
        )
        .bind(from as i64)
        .bind(to as i64)
        .bind(links as i64)
        .bind(now)
        .bind(DAYS * 86_400)
        .bind(COUNTRIES)
        .bind(VISITORS)
        .execute(&mut *db)
        .await?;
        eprintln!(
            "  {} inserted after {:.0?}",
            thousands(to),
            started.elapsed()
        );
        from = to + 1;
    }
    let inserted = started.elapsed();
    load.push((
        format!(
            "{} raw clicks by INSERT … SELECT ({:.0}/s), counting beside",
            thousands(rest),
            rest as f64 / inserted.as_secs_f64().max(0.001)
        ),
        inserted,
    ));
    wait_counted(db, started).await?;
    let counted = started.elapsed();
    load.push((
        format!(
            "  … all counted into the rollups by the origin ({:.0} clicks/s)",
            rest as f64 / counted.as_secs_f64().max(0.001)
        ),
        counted,
    ));
    sqlx::query("DROP TABLE scale_agents, scale_referrers")
        .execute(&mut *db)
        .await?;
    Ok(Clicked {
        sample,
        sample_rate,
        load,
    })
}

/// Sends `count` clicks in batches of 1,000, four at a time, through the signed ingest route.
async fn ingest_sample(base: &str, secret: &str, links: u64, count: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut bodies = Vec::new();
    let mut n = 0;
    while n < count {
        let events: Vec<serde_json::Value> = (n..(n + 1_000).min(count))
            .map(|i| {
                let u = rng.below(1_000_000) as f64 / 1_000_000.0;
                let link = ((links as f64).powf(u) as u64).clamp(1, links);
                let at = OffsetDateTime::from_unix_timestamp(
                    now - rng.below(DAYS as u64 * 86_400) as i64,
                )
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                serde_json::json!({
                    "id": format!("sample-{i}"),
                    "link_id": link,
                    "code": code_of(link),
                    "at": at.format(&Rfc3339).unwrap_or_default(),
                    "country": COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize],
                    "referrer": REFERRERS[rng.below(REFERRERS.len() as u64) as usize],
                    "user_agent": AGENTS[rng.below(AGENTS.len() as u64) as usize],
                    "qr": rng.below(10) == 0,
                    "head": false,
                    "source": "edge",
                    "visitor": format!("{:032x}", rng.below(VISITORS as u64)),
                })
            })
            .collect();
        bodies.push(serde_json::to_vec(
            &serde_json::json!({ "events": events }),
        )?);
        n += 1_000;
    }
    let mut bodies = bodies.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < 4 {
            let Some(body) = bodies.next() else { break };
            let (client, base, secret) = (client.clone(), base.to_owned(), secret.to_owned());
            running.spawn(async move { post_signed(&client, &base, &secret, body).await });
        }
        match running.join_next().await {
            Some(done) => done??,
            None => return Ok(()),
        }
    }
}

/// Waits until `clicks_pending` is empty, saying how far it is every 30 s.
async fn wait_counted(db: &mut sqlx::PgConnection, started: Instant) -> anyhow::Result<()> {
    let mut said = Instant::now();
    loop {
        let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM clicks_pending)")
            .fetch_one(&mut *db)
            .await?;
        if !pending {
            return Ok(());
        }
        if said.elapsed() > Duration::from_secs(30) {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks_pending")
                .fetch_one(&mut *db)
                .await?;
            eprintln!(
                "  {:.0?}: {} pending rows (two a click) left to count",
                started.elapsed(),
                thousands(left as u64)
            );
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct StatsTimes {
    name: &'static str,
    p50: Duration,
    p99: Duration,
}

/// The stats API over the loaded clicks: the workspace's 30 days (every click of every link:
/// the worst), and the hottest link's.
async fn stats_latencies(base: &str, api_key: &str) -> anyhow::Result<Vec<StatsTimes>> {
    let client = reqwest::Client::new();
    let now = OffsetDateTime::now_utc();
    let from = |days: i64| -> anyhow::Result<String> {
        Ok((now - time::Duration::days(days))
            .format(&Rfc3339)?
            .replace('+', "%2B"))
    };
    let hot = code_of(1);
    let cases = [
        (
            "workspace, 30 d by day",
            format!("/api/v1/stats?interval=day&from={}", from(30)?),
        ),
        (
            "workspace, 90 d by week",
            format!("/api/v1/stats?interval=week&from={}", from(90)?),
        ),
        (
            "hottest link, 30 d by day",
            format!("/api/v1/links/{hot}/stats?interval=day&from={}", from(30)?),
        ),
        (
            "hottest link, 7 d by hour",
            format!("/api/v1/links/{hot}/stats?interval=hour"),
        ),
    ];
    let mut results = Vec::new();
    for (name, path) in cases {
        let (p50, p99) = api_latencies(&client, &format!("{base}{path}"), api_key).await?;
        results.push(StatsTimes { name, p50, p99 });
    }
    Ok(results)
}

/// p50 and p99 of an API query over as many runs as [`API_ROUNDS`] and [`API_BUDGET`] allow,
/// sized by a first two (one to warm, one timed).
async fn api_latencies(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let (min, max) = API_ROUNDS;
    let (one, _) = latencies(client, url, api_key, 1).await?;
    let fit = API_BUDGET.as_nanos() / one.as_nanos().max(1);
    let rounds = usize::try_from(fit).unwrap_or(max).clamp(min, max);
    latencies(client, url, api_key, rounds).await
}

/// One table's rows and bytes on disk.
struct Disk {
    table: &'static str,
    rows: i64,
    total: i64,
    indexes: i64,
}

/// Every table that grows with links or clicks.
const TABLES: &[&str] = &[
    "links",
    "link_codes",
    "link_click_totals",
    "clicks",
    "clicks_pending",
    "link_stats_hourly",
    "link_breakdown_hourly",
    "link_breakdown_daily",
    "workspace_link_daily",
    "workspace_tag_hourly",
    "workspace_tag_daily",
    "visitors_daily",
    "workspace_stats_hourly",
    "workspace_breakdown_hourly",
    "workspace_breakdown_daily",
    "workspace_visitors_daily",
];

async fn disk(db: &mut sqlx::PgConnection) -> anyhow::Result<Vec<Disk>> {
    let mut rows = Vec::new();
    for &table in TABLES {
        // The names are this file's constants.
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *db)
            .await?;
        let (total, indexes): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint,
                    coalesce(sum(pg_indexes_size(relid)), 0)::bigint
             FROM (SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf
                   UNION SELECT $1::regclass) AS t",
        )
        .bind(table)
        .fetch_one(&mut *db)
        .await?;
        rows.push(Disk {
            table,
            rows: count,
            total,
            indexes,
        });
    }
    Ok(rows)
}

struct Report<'a> {
    links: u64,
    clicks: u64,
    sample: u64,
    sample_rate: f64,
    load: &'a [(String, Duration)],
    load_total: Duration,
    small: &'a AtSize,
    big: &'a AtSize,
    stats: &'a [StatsTimes],
    disk: &'a [Disk],
    database: i64,
}

fn report(r: &Report<'_>) -> anyhow::Result<String> {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1_000.0);
    let runs = format!(
        "{}–{} runs each, as many as fit in {} s",
        API_ROUNDS.0,
        API_ROUNDS.1,
        API_BUDGET.as_secs()
    );
    let mut out = format!(
        "\nscale: {} links and {} raw clicks over {DAYS} days in one workspace, 127.0.0.1\n\
         links by INSERT … SELECT (triggers on); clicks: {} through POST /_edge/ingest (the real \
         path, {:.0} events/s counted), the rest by INSERT … SELECT into clicks + clicks_pending \
         as ingest leaves them, counted by the origin's own rollup counter\n\nload\n",
        thousands(r.links),
        thousands(r.clicks),
        thousands(r.sample),
        r.sample_rate,
    );
    for (name, taken) in r.load {
        writeln!(out, "  {name:<72} {:>8.1} s", taken.as_secs_f64())?;
    }
    writeln!(
        out,
        "  {:<72} {:>8.1} s",
        "all of it, measurements between the loads included",
        r.load_total.as_secs_f64()
    )?;
    writeln!(
        out,
        "\nredirect on a cache miss (origin cache off, clicks not recorded), {} distinct codes \
         each asked once, {CLIENTS} at a time; ms\n\n{:<24} {:>8} {:>8} {:>10} {:>14} {:>16}",
        thousands(REDIRECTS),
        "",
        "p50",
        "p99",
        "p99 ratio",
        "B-tree levels",
        "index size",
    )?;
    for (name, at) in [
        (
            format!("{} links (baseline)", thousands(r.small.links)),
            r.small,
        ),
        (format!("{} links", thousands(r.big.links)), r.big),
    ] {
        writeln!(
            out,
            "{name:<24} {:>8} {:>8} {:>10.2} {:>14} {:>13.1} MB",
            ms(at.redirect_p50),
            ms(at.redirect_p99),
            at.redirect_p99.as_secs_f64() / r.small.redirect_p99.as_secs_f64(),
            at.levels
                .map_or("n/a".to_owned(), |l| format!("{} + leaf", l)),
            at.index_bytes as f64 / 1e6,
        )?;
    }
    writeln!(
        out,
        "(levels: bt_metap of link_codes_pkey, the (domain_id, code) key the redirect reads \
         first)\n\nlinks API (GET /api/v1/links, 50 a page), {runs}; ms p50 / p99\n\n\
         {:<36} {:>18} {:>18} {:>10}",
        "",
        format!("{} links", thousands(r.small.links)),
        format!("{} links", thousands(r.big.links)),
        "p50 ratio",
    )?;
    for (name, small, big) in [
        ("first page", r.small.first_page, r.big.first_page),
        (
            "search a destination part (q)",
            r.small.search,
            r.big.search,
        ),
        (
            "search with no match (q)",
            r.small.search_none,
            r.big.search_none,
        ),
    ] {
        writeln!(
            out,
            "{name:<36} {:>18} {:>18} {:>10.2}",
            format!("{} / {}", ms(small.0), ms(small.1)),
            format!("{} / {}", ms(big.0), ms(big.1)),
            big.0.as_secs_f64() / small.0.as_secs_f64(),
        )?;
    }
    writeln!(
        out,
        "\nstats API over {} clicks, {runs} (HTTP included); ms\n\n{:<36} {:>8} {:>8}",
        thousands(r.clicks),
        "",
        "p50",
        "p99"
    )?;
    for s in r.stats {
        writeln!(out, "{:<36} {:>8} {:>8}", s.name, ms(s.p50), ms(s.p99))?;
    }
    writeln!(
        out,
        "\ndisk after VACUUM ANALYZE (pg_total_relation_size: heap, TOAST and indexes)\n\n\
         {:<28} {:>14} {:>12} {:>12} {:>11} {:>14}",
        "", "rows", "MB", "indexes MB", "bytes/row", "bytes/click",
    )?;
    let clicks = r.clicks.max(1) as f64;
    let mut rollups = 0;
    for d in r.disk {
        if d.table.contains("_hourly") || d.table.contains("_daily") {
            rollups += d.total;
        }
        writeln!(
            out,
            "{:<28} {:>14} {:>12.1} {:>12.1} {:>11} {:>14.1}",
            d.table,
            thousands(d.rows.max(0) as u64),
            d.total as f64 / 1e6,
            d.indexes as f64 / 1e6,
            if d.rows > 0 {
                format!("{:.0}", d.total as f64 / d.rows as f64)
            } else {
                "-".to_owned()
            },
            d.total as f64 / clicks,
        )?;
    }
    let links_bytes: i64 = r
        .disk
        .iter()
        .filter(|d| d.table.starts_with("link") && !d.table.contains("_hourly"))
        .filter(|d| !d.table.contains("_daily"))
        .map(|d| d.total)
        .sum();
    let raw = r
        .disk
        .iter()
        .find(|d| d.table == "clicks")
        .map_or(0, |d| d.total);
    writeln!(
        out,
        "per link (links + link_codes + link_click_totals): {:.0} bytes; per raw click: {:.0} bytes; rollups \
         per raw click: {:.0} bytes\ndatabase size: {:.2} GB",
        links_bytes as f64 / r.links as f64,
        raw as f64 / clicks,
        rollups as f64 / clicks,
        r.database as f64 / 1e9,
    )?;
    Ok(out)
}

/// Bytes free on the file system holding `path`.
fn free_bytes(path: &Path) -> anyhow::Result<u64> {
    let output = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .context("cannot run df")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .context("df printed no free space")
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// 1000000 as 1,000,000.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// xorshift64: the same workload on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
