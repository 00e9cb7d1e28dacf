//! `cargo xtask bench`: the redirect route under load, as ratios against a bare axum server
//! answering a constant 302, all measured in the same run (absolute figures swing 2.5× on
//! shared machines; ratios do not).

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use devpg::{Cluster, Durability};
use shortlink::CodeScrambler;

use crate::edge;
use crate::tools::{self, cargo, create_database, ensure_postgres, exec, root};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Links seeded into PostgreSQL (the origin part's, and the dashboard part's big workspace).
    #[arg(long, default_value_t = 1_000_000)]
    links: u64,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Only this part (all parts by default).
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Links of the scale part (`--only scale`; not run by default).
    #[arg(long, default_value_t = 10_000_000)]
    scale_links: u64,
    /// Raw clicks of the scale part, over 90 days.
    #[arg(long, default_value_t = 100_000_000)]
    scale_clicks: u64,
    /// The buffer pool (`shared_buffers`, MiB) of each part's PostgreSQL. The default, 1 GiB,
    /// is a modest server's: a deployment sizes it to its machine (commonly a quarter of its
    /// memory). PostgreSQL's own default, 128 MiB, holds under a fifth of the origin part's
    /// million links and their indexes (721 MB): give 128 to see what reading most pages
    /// from the kernel's cache costs a cache-off redirect.
    #[arg(long, default_value_t = 1024)]
    pg_shared_buffers_mib: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// The origin's redirect route: cache hits and PostgreSQL against a bare axum 302.
    Origin,
    /// The edge worker in workerd: KV hits against a constant-302 worker, and its size.
    Edge,
    /// Click ingest throughput and stats query latency.
    Analytics,
    /// The dashboard's .wasm size alone (the dashboard part prints it too).
    Ui,
    /// The dashboard's links page in Chromium: time to its first screen, interactive, over
    /// `--links` links against 1,000; and the .wasm size.
    Dashboard,
    /// Links imported through the bulk API, against single creates, and the origin's memory.
    Import,
    /// 10 M links and 100 M clicks (`--scale-links`, `--scale-clicks`): redirect latency at a
    /// tenth of the links and all, the links and stats APIs, disk bytes per row. Only when
    /// named: it takes hours at full size.
    Scale,
}

/// Distinct codes in the cache-hit run, at most: a hot set, as real traffic has. With fewer
/// than twice as many links seeded, every other link is hot: the link after each hot one is
/// given rules ([`give_rules`]), and must not be hot itself.
const HOT_CODES: usize = 10_000;

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    if !tools::on_path("wrk") {
        tools::apt_install(&["wrk"])?;
    }
    let work = tempfile::Builder::new().prefix("kurz-bench-").tempdir()?;
    let mut report = String::new();
    let part = |p: Part| args.only.is_none_or(|only| only == p);
    if part(Part::Origin) {
        report.push_str(&origin(args, work.path())?);
    }
    if part(Part::Edge) {
        report.push_str(&edge(args, work.path())?);
    }
    if part(Part::Analytics) {
        report.push_str(&crate::bench_analytics::run(
            work.path(),
            args.pg_shared_buffers_mib,
        )?);
    }
    // All parts: the dashboard part prints the size.
    if part(Part::Ui) && !part(Part::Dashboard) {
        report.push_str(&ui_size_row(&crate::ui::build()?)?);
    }
    if part(Part::Dashboard) {
        report.push_str(&crate::bench_dashboard::run(
            args.links,
            work.path(),
            args.pg_shared_buffers_mib,
        )?);
    }
    if part(Part::Import) {
        report.push_str(&import(work.path(), args.pg_shared_buffers_mib)?);
    }
    if args.only == Some(Part::Scale) {
        report.push_str(&crate::bench_scale::run(
            args.scale_links,
            args.scale_clicks,
            work.path(),
            args.pg_shared_buffers_mib,
        )?);
    }
    println!("{report}");
    Ok(())
}

fn origin(args: &Args, work: &Path) -> anyhow::Result<String> {
    build_release_origin(&["--example", "bare_redirect"])?;
    let (cluster, database_url) = throwaway_database(work, "bench", args.pg_shared_buffers_mib)?;
    let code_key = hex::encode(tools::random_key());

    // Migrations are the origin's: start one, wait until ready, then seed behind its back.
    let recording = Origin::start(&database_url, &code_key, 1024)?;
    eprintln!("seeding {} links...", args.links);
    let seeded = std::time::Instant::now();
    let codes = seed(&database_url, &code_key, args.links)?;
    eprintln!("seeded in {:.1?}", seeded.elapsed());
    // Click recording costs CPU (the origin's and PostgreSQL's): measured apart.
    let no_clicks = [("KURZ_RECORD_CLICKS", "false")];
    let cached = Origin::start_with(&database_url, &code_key, 1024, &no_clicks)?;
    let uncached = Origin::start_with(&database_url, &code_key, 0, &no_clicks)?;

    let hot: Vec<&str> = codes
        .iter()
        .step_by((codes.len() / HOT_CODES).max(2))
        .map(String::as_str)
        .collect();
    let hot_script = lua_script(work, "hot", &hot)?;
    // As many hot links again, each with five targeting rules that no request of the bench
    // matches (so all five are tried) and UTM parameters merged into its destination.
    let ruled = give_rules(&database_url, &codes, &hot)?;
    let ruled: Vec<&str> = ruled.iter().map(String::as_str).collect();
    let ruled_script = lua_script(work, "ruled", &ruled)?;
    let all: Vec<&str> = codes.iter().map(String::as_str).collect();
    let all_script = lua_script(work, "all", &all)?;

    let bare = |served_as_origin: bool| -> anyhow::Result<(BackgroundProcess, SocketAddr)> {
        let port = tools::free_port()?;
        let mut command = Command::new(root().join("target/release/examples/bare_redirect"));
        command.arg(format!("127.0.0.1:{port}"));
        if served_as_origin {
            command.arg("--served-as-origin");
        }
        let process = BackgroundProcess(command.spawn()?);
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        tools::wait_until_listening(address, 5)?;
        Ok((process, address))
    };
    let (baseline, baseline_address) = bare(false)?;
    // What the serving the origin needs costs, apart from the redirect (see `SERVED_AS_ORIGIN`).
    let (served_as_origin, served_as_origin_address) = bare(true)?;

    // Warm the cache: every hot code is visited many times over before measuring.
    wrk(cached.address, &hot_script, 3, args.connections)?;
    // The baselines and the two origins that record no clicks, in turn (a burst of the
    // machine's other load falls on all alike, not on the baseline alone), before any origin
    // has clicks to store in the background.
    let mut results = interleaved(
        &[
            (
                "bare axum, constant 302 (baseline)",
                baseline_address,
                &hot_script,
            ),
            (SERVED_AS_ORIGIN, served_as_origin_address, &hot_script),
            ("origin, cache hit", cached.address, &hot_script),
            (
                "origin, cache off (PostgreSQL)",
                uncached.address,
                &all_script,
            ),
        ],
        args,
    )?;
    // Rules against plain links on the same origin, in turn, so the machine's noise falls on
    // both alike; before the recording origin's run, whose clicks are still being counted
    // after it.
    wrk(cached.address, &ruled_script, 3, args.connections)?;
    let rules = interleaved(
        &[
            (
                "origin, cache hit, plain links",
                cached.address,
                &hot_script,
            ),
            (
                "origin, cache hit, 5 rules + UTM",
                cached.address,
                &ruled_script,
            ),
        ],
        args,
    )?;
    let listing = list_latencies(&database_url, cached.address, &codes)?;
    // Redirects of the origin that records clicks (its warm-up's too), last: the clicks it
    // stores go on loading the machine after its run.
    let recorded: u64;
    results.push(("origin, cache hit, clicks recorded", {
        let warm = wrk(recording.address, &hot_script, 3, args.connections)?;
        let measured = wrk(
            recording.address,
            &hot_script,
            args.seconds,
            args.connections,
        )?;
        recorded = [&warm, &measured]
            .iter()
            .map(|run| run.requests.saturating_sub(run.non_2xx_3xx))
            .sum();
        measured
    }));
    let counted = clicks_counted(
        "clicks of the recording origin (warm-up and run)",
        &database_url,
        recording.address,
        recorded,
        Tally::default(),
    )?;
    drop(baseline);
    drop(served_as_origin);
    drop(cached);
    drop(uncached);
    drop(recording);
    // The design's rate, after the full-load run has settled, on an origin of its own (its
    // `/health` counts only this run's clicks).
    let at_design_rate = design_rate(args, work, &database_url, &code_key, &hot)?;
    drop(cluster);

    let mut report = table(
        &format!(
            "origin redirect route, {} links, {} connections, 127.0.0.1; the first four rows \
             in turn, {ROUNDS} rounds of {} s (mean rate, the median of the rounds' latencies), \
             the last {} s",
            args.links,
            args.connections,
            round_seconds(args),
            args.seconds
        ),
        &results,
        &[None, None, Some(0.90), Some(0.35), Some(0.60)],
    )?;
    let rate_of = |name: &str| {
        results
            .iter()
            .find(|(row, _)| *row == name)
            .map(|(_, result)| result.requests_per_second)
    };
    if let (Some(served), Some(hit)) = (rate_of(SERVED_AS_ORIGIN), rate_of("origin, cache hit")) {
        writeln!(
            report,
            "origin, cache hit / {SERVED_AS_ORIGIN}: {:.2} (what the redirect itself costs)",
            hit / served
        )?;
    }
    report.push_str(&rules_ratio("origin", &rules)?);
    report.push_str(&listing);
    report.push_str(&counted);
    report.push_str(&at_design_rate);
    Ok(report)
}

/// The second baseline: bare axum's constant 302 served as `origin::serve` serves (TCP_NODELAY,
/// the client's address, a graceful shutdown), which the origin cannot do without. The cache
/// hit's ratio to it is what the redirect itself costs; to the first, the target's (#16).
const SERVED_AS_ORIGIN: &str = "bare axum, served as the origin is";

/// The redirects a second the design serves (`DESIGN.md`): at that rate an origin recording
/// clicks stores every one with its details (#16: nothing shed at the target rate).
const DESIGN_RATE: u32 = 10_000;

/// Connections of the paced run: each sends a request [`PACED_DELAY_MS`] after its last
/// answer, so the rate is at most 11,636 a second, less each answer's own time: over
/// [`DESIGN_RATE`] (12 ms sent 9,874 a second on this machine).
const PACED_CONNECTIONS: u32 = 128;
const PACED_DELAY_MS: u32 = 11;

/// A fresh origin recording clicks, sent the hot links at the design's rate (wrk pacing each
/// connection) for three times `--seconds`, then what became of its clicks once settled.
fn design_rate(
    args: &Args,
    work: &Path,
    database_url: &str,
    code_key: &str,
    hot: &[&str],
) -> anyhow::Result<String> {
    let script = lua_script(work, "paced", hot)?;
    let mut paced = fs::read_to_string(&script)?;
    writeln!(paced, "function delay()\n  return {PACED_DELAY_MS}\nend")?;
    fs::write(&script, paced)?;
    let origin = Origin::start(database_url, code_key, 1024)?;
    let before = Tally::read(database_url)?;
    let seconds = args.seconds * 3;
    let run = wrk(origin.address, &script, seconds, PACED_CONNECTIONS)?;
    let redirects = run.requests.saturating_sub(run.non_2xx_3xx);
    clicks_counted(
        &format!(
            "clicks at the design's rate ({DESIGN_RATE}/s; sent {:.0}/s for {seconds} s, \
             {PACED_CONNECTIONS} connections each waiting {PACED_DELAY_MS} ms between \
             requests; target: every click stored raw, none counted without details)",
            run.requests_per_second
        ),
        database_url,
        origin.address,
        redirects,
        before,
    )
}

/// Clicks in the database: stored raw, and counted in the rollups.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    raw: u64,
    counted: u64,
}

impl Tally {
    fn read(database_url: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let pool = sqlx::PgPool::connect(database_url).await?;
            let tally = Self::of(&pool).await;
            pool.close().await;
            tally
        })
    }

    async fn of(pool: &sqlx::PgPool) -> anyhow::Result<Self> {
        let (raw, counted): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM clicks), \
             (SELECT coalesce(sum(clicks + qr_scans + bots), 0)::int8 FROM link_stats_hourly)",
        )
        .fetch_one(pool)
        .await?;
        Ok(Self {
            raw: raw.unsigned_abs(),
            counted: counted.unsigned_abs(),
        })
    }
}

/// How long the recording origins' clicks may take to be stored and counted after a run.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What became of the clicks of `redirects` redirects of the recording `origin` (`before`
/// was in the database when they began), once it settled: counted in the rollups (exact at
/// any load, #16), stored raw, counted without details (the queue was full), lost; and what
/// was left when they did not settle within [`SETTLE_WAIT`] (the figures are then partial).
fn clicks_counted(
    title: &str,
    database_url: &str,
    origin: SocketAddr,
    redirects: u64,
    before: Tally,
) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(database_url).await?;
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        // The clicks' state when they settled, or when the wait ran out: then what was left.
        let (health, unsettled) = loop {
            let health: serde_json::Value = serde_json::from_str(
                &client
                    .get(format!("http://{origin}/health"))
                    .send()
                    .await?
                    .text()
                    .await?,
            )?;
            let raw: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks")
                .fetch_one(&pool)
                .await?;
            let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM clicks_pending)")
                .fetch_one(&pool)
                .await?;
            let of = |field: &str| health[field].as_u64().unwrap_or(0);
            let accounted = raw.unsigned_abs().saturating_sub(before.raw)
                + of("clicks_details_shed")
                + of("clicks_shed")
                + of("clicks_parked")
                + of("clicks_in_doubt");
            let settled = of("clicks_overflow_waiting") == 0 && !pending;
            if settled && accounted >= redirects {
                break (health, None);
            }
            if started.elapsed() > SETTLE_WAIT {
                let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks_pending")
                    .fetch_one(&pool)
                    .await?;
                let left = format!(
                    " (NOT SETTLED after {} s: {pending} rows waiting to be counted, {} clicks \
                     waiting in the overflow, {} not yet accounted for)",
                    SETTLE_WAIT.as_secs(),
                    of("clicks_overflow_waiting"),
                    redirects.saturating_sub(accounted),
                );
                break (health, Some(left));
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        let after = Tally::of(&pool).await?;
        pool.close().await;
        let of = |field: &str| health[field].as_u64().unwrap_or(0);
        let percent = |n: u64| 100.0 * n as f64 / redirects.max(1) as f64;
        let counted = after.counted.saturating_sub(before.counted);
        let raw = after.raw.saturating_sub(before.raw);
        Ok(format!(
            "\n{title}: {redirects} redirects, {counted} counted in the rollups ({:.1} %), {raw} \
             stored raw ({:.1} %), {} counted without details, {} lost{}\n",
            percent(counted),
            percent(raw),
            of("clicks_details_shed"),
            of("clicks_shed"),
            unsettled.unwrap_or_default(),
        ))
    })
}

/// The dashboard's links table on the seeded links: pages deep into the list cost what the
/// first costs (keyset pages), and searches use the trigram indexes.
fn list_latencies(
    database_url: &str,
    origin: SocketAddr,
    codes: &[String],
) -> anyhow::Result<String> {
    const ROUNDS: usize = 100;
    let api_key = crate::bench_analytics::create_api_key(database_url)?;
    let middle_id = codes.len() / 2;
    let mut sorted: Vec<&String> = codes.iter().collect();
    sorted.sort_unstable();
    let middle_code = sorted
        .get(sorted.len() / 2)
        .map_or("", |code| code.as_str());
    let cases = [
        ("newest first, first page", "limit=50".to_owned()),
        (
            "newest first, page at the middle",
            format!("limit=50&cursor={middle_id}"),
        ),
        (
            "by code, page at the middle",
            format!("limit=50&sort=code_asc&cursor={middle_code}"),
        ),
        (
            "search a destination part",
            format!("limit=50&q=page/{}", middle_id / 10),
        ),
        (
            "search with no match",
            "limit=50&q=nothing-like-this".to_owned(),
        ),
        (
            "search matching every link",
            "limit=50&q=example.com".to_owned(),
        ),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let mut report = format!(
        "\nlinks table (GET /api/v1/links, 50 per page) over {} links, {ROUNDS} runs each\n\n{:<36} {:>9} {:>9}\n",
        codes.len(),
        "",
        "p50",
        "p99"
    );
    for (name, query) in cases {
        let url = format!("http://{origin}/api/v1/links?{query}");
        let (p50, p99) = runtime.block_on(crate::bench_analytics::latencies(
            &client, &url, &api_key, ROUNDS,
        ))?;
        writeln!(
            report,
            "{name:<36} {:>9} {:>9}",
            format!("{p50:.1?}"),
            format!("{p99:.1?}")
        )?;
    }
    Ok(report)
}

/// Builds the release origin (and `extra` cargo targets) that the bench parts start.
pub(crate) fn build_release_origin(extra: &[&str]) -> anyhow::Result<()> {
    exec(
        cargo()
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "origin",
                "--bin",
                "origin",
            ])
            .args(extra),
    )
}

/// A PostgreSQL cluster of its own under `work` (gone with it), with a buffer pool of
/// `shared_buffers_mib` (`--pg-shared-buffers-mib`) and a database `name`; its URL.
pub(crate) fn throwaway_database(
    work: &Path,
    name: &str,
    shared_buffers_mib: u32,
) -> anyhow::Result<(Cluster, String)> {
    ensure_postgres()?;
    let cluster = Cluster::start_with_buffers(
        &work.join(format!("pg-{name}")),
        Durability::Throwaway,
        Some(shared_buffers_mib),
    )?;
    create_database(&cluster.url("postgres"), name)?;
    let url = cluster.url(name);
    Ok((cluster, url))
}

/// The results as a table of ratios to the first row (the baseline).
fn table(
    title: &str,
    results: &[(&str, WrkResult)],
    targets: &[Option<f64>],
) -> anyhow::Result<String> {
    let baseline_rps = results[0].1.requests_per_second;
    let mut report = format!(
        "\n{title}\n\n{:<38} {:>10} {:>9} {:>9} {:>7} {:>8}\n",
        "", "req/s", "p50", "p99", "ratio", "target"
    );
    for ((name, result), target) in results.iter().zip(targets.iter().copied()) {
        let ratio = result.requests_per_second / baseline_rps;
        let verdict = match target {
            None => String::new(),
            Some(t) if ratio >= t => format!("≥{t:.2} ok"),
            Some(t) => format!("≥{t:.2} LOW"),
        };
        writeln!(
            report,
            "{name:<38} {:>10.0} {:>9} {:>9} {ratio:>7.2} {verdict:>8}",
            result.requests_per_second, result.p50, result.p99
        )?;
        if result.non_2xx_3xx > 0 {
            writeln!(
                report,
                "  ! {} responses were not redirects",
                result.non_2xx_3xx
            )?;
        }
    }
    Ok(report)
}

/// Codes seeded into KV for the edge run.
const EDGE_CODES: u64 = 10_000;

/// Our worker answering from KV against a worker answering a constant 302, all served by one
/// workerd (miniflare) so that they share the runtime and the machine's load. Beside them: a
/// Rust worker answering the same constant (what being a workers-rs worker costs), and JS
/// workers doing one simulated KV read or queue send each (what the simulators cost).
fn edge(args: &Args, work: &Path) -> anyhow::Result<String> {
    let worker = edge::build_worker()?;
    edge::build_floor_worker()?;
    let scrambler = CodeScrambler::new(tools::random_key());
    let codes: Vec<String> = (1..=EDGE_CODES)
        .map(|id| scrambler.encode(id).map(String::from))
        .collect::<Result<_, _>>()?;
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let script = lua_script(work, "edge", &codes)?;

    let mut server = Command::new("node")
        .current_dir(edge::edge_dir())
        .arg("bench/workerd.mjs")
        .arg(work.join("edge.codes"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start workerd through miniflare")?;
    let mut line = String::new();
    if let Some(stdout) = server.stdout.take() {
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    }
    let server = BackgroundProcess(server);
    let urls: serde_json::Value = serde_json::from_str(&line)
        .with_context(|| format!("the workerd script printed {line:?}, not its URLs"))?;
    let address = |name: &str| -> anyhow::Result<SocketAddr> {
        let url = urls[name].as_str().context("no URL")?;
        Ok(url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?)
    };
    let (kurz, baseline, rust_floor) = (
        address("kurz")?,
        address("baseline")?,
        address("rust_floor")?,
    );
    let (js_kv, js_kv_only, js_queue_only) = (
        address("js_kv")?,
        address("js_kv_only")?,
        address("js_queue_only")?,
    );
    // One link visited again and again: after its first read, kurz serves it from the
    // isolate's memo (one KV read per second), as it would a link going viral.
    let hot_script = lua_script(work, "edge-hot", &codes[..1])?;
    // The same, for a link with five targeting rules and UTM (`bench/workerd.mjs` puts it in KV).
    let ruled_script = lua_script(work, "edge-ruled", &["ruled"])?;
    // Warm all: the first requests compile and instantiate the modules.
    for worker in [kurz, baseline, rust_floor, js_kv, js_kv_only, js_queue_only] {
        wrk(worker, &script, 2, args.connections)?;
    }
    let results = interleaved(
        &[
            ("constant-302 worker (baseline)", baseline, &script),
            ("Rust worker, constant 302", rust_floor, &script),
            ("JS worker, KV read only", js_kv_only, &script),
            ("JS worker, queue send only", js_queue_only, &script),
            ("JS worker, KV read + queue send", js_kv, &script),
            ("kurz worker, one hot link", kurz, &hot_script),
            ("kurz worker, 10,000 links spread", kurz, &script),
            (
                "kurz worker, one hot link, 5 rules + UTM",
                kurz,
                &ruled_script,
            ),
        ],
        args,
    )?;
    drop(server);

    let mut report = table(
        &format!(
            "edge redirect in workerd (miniflare), {EDGE_CODES} links in KV, {} connections, \
             {ROUNDS} interleaved rounds of {} s each",
            args.connections,
            round_seconds(args)
        ),
        &results,
        // The table's ratios are to the JS worker; #16's target is to the Rust one, below.
        &[None; 8],
    )?;
    let rps = |row: usize| results[row].1.requests_per_second;
    let p99_ms = |row: usize| latency_ms(&results[row].1.p99);
    let tail = match (p99_ms(5), p99_ms(0)) {
        (Some(kurz), Some(constant)) if constant > 0.0 => format!("{:.1}", kurz / constant),
        _ => "?".to_owned(),
    };
    let hot = rps(5) / rps(1);
    writeln!(
        report,
        "kurz hot link / Rust worker answering a constant 302: {hot:.2} (kurz's own cost per \
         redirect, click included; target ≥ 0.90: {})\n\
         kurz hot link p99 / constant-302 worker p99: {tail}× (target within 2×; each the median \
         of its rounds' p99s: the machine's stalls of a second fall on any row)\n\
         kurz spread (mostly first visits within the memo's second, so each reads the simulated \
         KV) / JS worker doing the same KV read and queue send: {:.2}; / JS worker doing only the \
         KV read: {:.2}",
        if hot >= 0.90 { "ok" } else { "LOW" },
        rps(6) / rps(4),
        rps(6) / rps(2),
    )?;
    report.push_str(&rules_ratio(
        "edge",
        &[results[5].clone(), results[7].clone()],
    )?);
    let (raw, gzip) = edge::sizes(&worker.wasm)?;
    let verdict = if gzip <= 150 * 1024 { "ok" } else { "OVER" };
    writeln!(
        report,
        "\nedge worker .wasm: {:.1} KiB raw, {:.1} KiB gzip (target ≤ 150 KiB gzip: {verdict})",
        raw as f64 / 1024.0,
        gzip as f64 / 1024.0
    )?;
    Ok(report)
}

/// The dashboard's main .wasm (what a page load fetches, both languages in it) may be this
/// big gzipped (#17). The pages few people open are chunks fetched on first use, listed beside.
const UI_BUDGET_KIB: usize = 250;

/// The dashboard's download: its main .wasm, raw and gzip, and its chunks (the other assets
/// are a few KB).
pub(crate) fn ui_size_row(built: &crate::ui::Built) -> anyhow::Result<String> {
    let (raw, gzip) = edge::sizes(&built.wasm)?;
    let verdict = if gzip <= UI_BUDGET_KIB * 1024 {
        "ok"
    } else {
        "OVER"
    };
    let kib = |bytes: usize| bytes as f64 / 1024.0;
    let mut chunks_gzip = 0;
    for chunk in &built.chunks {
        chunks_gzip += edge::sizes(chunk)?.1;
    }
    // What the first showing of each page fetches: the main module and the page's chunks.
    let mut pages = Vec::new();
    for (split, files) in &built.splits {
        let mut total = gzip;
        for file in files {
            total += edge::sizes(file)?.1;
        }
        pages.push(format!("{split} {:.1}", kib(total)));
    }
    Ok(format!(
        "\ndashboard main .wasm (shell, links list, API calls, both languages): {:.1} KiB raw, \
         {:.1} KiB gzip (target ≤ {UI_BUDGET_KIB} KiB gzip: {verdict})\n\
         dashboard pages, main .wasm + the chunks their first showing fetches, KiB gzip: {}\n\
         dashboard chunks: {} fetched on first use, {:.1} KiB gzip in all\n",
        kib(raw),
        kib(gzip),
        pages.join(", "),
        built.chunks.len(),
        kib(chunks_gzip),
    ))
}

/// Inserts `count` links with generated codes straight into PostgreSQL (the API would measure
/// itself, not the redirect route) and returns their codes.
fn seed(database_url: &str, code_key: &str, count: u64) -> anyhow::Result<Vec<String>> {
    let mut key = [0u8; 16];
    hex::decode_to_slice(code_key, &mut key)?;
    let scrambler = CodeScrambler::new(key);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(database_url).await?;
        let mut codes = Vec::with_capacity(count as usize);
        let mut id = 1u64;
        while id <= count {
            let end = (id + 50_000).min(count + 1);
            let ids: Vec<i64> = (id..end).map(|i| i as i64).collect();
            let batch: Vec<String> = (id..end)
                .map(|i| scrambler.encode(i).map(String::from))
                .collect::<Result<_, _>>()?;
            let destinations: Vec<String> = (id..end)
                .map(|i| format!("https://example.com/page/{i}"))
                .collect();
            sqlx::query(
                "INSERT INTO links (id, code, destination)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[])",
            )
            .bind(&ids)
            .bind(&batch)
            .bind(&destinations)
            .execute(&pool)
            .await?;
            codes.extend(batch);
            id = end;
        }
        sqlx::query("SELECT setval(pg_get_serial_sequence('links', 'id'), $1)")
            .bind(count as i64)
            .execute(&pool)
            .await?;
        // VACUUM too: the trigram indexes' pending lists (GIN's fast update) would otherwise
        // hold the million new rows until an autovacuum happens to run, and searches measured
        // before it scan those lists (10 ms rather than 0.2 ms).
        sqlx::query("VACUUM ANALYZE links").execute(&pool).await?;
        pool.close().await;
        anyhow::Ok(codes)
    })
}

/// Gives the link after each hot one (not hot itself) five targeting rules and UTM parameters,
/// straight in PostgreSQL, and returns their codes.
fn give_rules(database_url: &str, codes: &[String], hot: &[&str]) -> anyhow::Result<Vec<String>> {
    let hot: std::collections::HashSet<&str> = hot.iter().copied().collect();
    let ruled: Vec<String> = codes
        .iter()
        .zip(codes.iter().skip(1))
        .filter(|(code, _)| hot.contains(code.as_str()))
        .map(|(_, next)| next.clone())
        .collect();
    // Else the cache-hit rows would measure links with rules too.
    if ruled.iter().any(|code| hot.contains(code.as_str())) {
        bail!("a hot link would be given rules: seed more links per hot one");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(database_url).await?;
        sqlx::query(
            r#"UPDATE links SET
                 targets = '[
                   {"when":{"country":["DE","AT","CH"]},"destination":"https://example.com/dach"},
                   {"when":{"device":["mobile","tablet"]},"destination":"https://example.com/m"},
                   {"when":{"os":["ios","android"]},"destination":"https://example.com/app"},
                   {"when":{"language":["de","fr"]},"destination":"https://example.com/lang"},
                   {"when":{"query":{"param":"ref","value":"mail"}},"destination":"https://example.com/q"}
                 ]'::jsonb,
                 utm = '{"source":"bench","medium":"load test","campaign":"rules"}'::jsonb
               WHERE code = ANY($1)"#,
        )
        .bind(&ruled)
        .execute(&pool)
        .await?;
        pool.close().await;
        anyhow::Ok(ruled)
    })
}

/// The line comparing links with rules to plain ones: `rows` are (plain, ruled).
fn rules_ratio(place: &str, rows: &[(&str, WrkResult)]) -> anyhow::Result<String> {
    let [(plain_name, plain), (ruled_name, ruled)] = rows else {
        bail!("two rows expected");
    };
    let ratio = ruled.requests_per_second / plain.requests_per_second;
    let verdict = if ratio >= 0.90 { "ok" } else { "LOW" };
    Ok(format!(
        "{place}: {plain_name} {:.0} req/s (p99 {}), {ruled_name} {:.0} req/s (p99 {}): \
         ratio {ratio:.2} (target ≥ 0.90: {verdict}), {ROUNDS} interleaved rounds\n",
        plain.requests_per_second, plain.p99, ruled.requests_per_second, ruled.p99
    ))
}

/// Links the import row creates, in bulk requests of [`IMPORT_BATCH`], [`IMPORT_PARALLEL`]
/// at a time: one workspace's share of an instance's bulk creates (`origin/src/places.rs`;
/// `kurz import` sends one at a time).
const IMPORT_LINKS: usize = 100_000;
const IMPORT_BATCH: usize = 1_000;
const IMPORT_PARALLEL: usize = 2;
/// Links the baseline creates one request each, as many at a time.
const SINGLE_CREATES: usize = 2_000;
/// Links per second the import must reach on the 2-core machine (issue #15).
const IMPORT_TARGET: f64 = 5_000.0;

/// 100,000 links through `POST /api/v1/links/bulk` (each with its own code, a title, tags, a
/// creation date and imported clicks, as an import brings them), against single creates
/// through `POST /api/v1/links` measured on the same origin, and the origin's memory before
/// and after: the bulk route holds at most a few requests' bodies, whatever the total.
fn import(work: &Path, shared_buffers_mib: u32) -> anyhow::Result<String> {
    build_release_origin(&[])?;
    let (_cluster, database_url) = throwaway_database(work, "import", shared_buffers_mib)?;
    let origin = Origin::start(&database_url, &tools::random_hex(16), 64)?;
    let api_key = crate::bench_analytics::create_api_key(&database_url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base = format!("http://{}/api/v1/links", origin.address);
    let client = reqwest::Client::new();
    let started = rss_kib(origin.pid())?;
    let single = runtime.block_on(single_creates(&client, &base, &api_key))?;
    let before = rss_kib(origin.pid())?;
    eprintln!("single creates: {single:.0} links/s; importing {IMPORT_LINKS} links...");
    // The first tenth, then the rest: memory that held the first tenth's requests is what
    // the rest may use, or the import's memory grows with its size.
    let warm_batches = IMPORT_LINKS / IMPORT_BATCH / 10;
    let batches = IMPORT_LINKS / IMPORT_BATCH;
    let first = runtime.block_on(bulk_creates(&client, &base, &api_key, 0..warm_batches))?;
    let warm = rss_kib(origin.pid())?;
    let rest = runtime.block_on(bulk_creates(
        &client,
        &base,
        &api_key,
        warm_batches..batches,
    ))?;
    let bulk = IMPORT_LINKS as f64 / (first + rest).as_secs_f64();
    let after = rss_kib(origin.pid())?;
    let peak = peak_rss_kib(origin.pid())?;
    let verdict = if bulk >= IMPORT_TARGET { "ok" } else { "LOW" };
    Ok(format!(
        "\nimport: {IMPORT_LINKS} links through POST /api/v1/links/bulk, {IMPORT_BATCH} a \
         request, {IMPORT_PARALLEL} requests at a time, 127.0.0.1\n\n\
         {:<38} {:>10} {:>7} {:>8}\n\
         {:<38} {single:>10.0} {:>7.2}\n\
         {:<38} {bulk:>10.0} {:>7.2} {:>8}\n\
         origin RSS: {:.1} MiB at start, {:.1} MiB before the import, {:.1} MiB after its \
         first {} links, {:.1} MiB after all (all / first tenth {:.2}: target ≤ 1.25 {}), \
         peak {:.1} MiB\n",
        "",
        "links/s",
        "ratio",
        "target",
        format!("single creates ({IMPORT_PARALLEL} at a time, baseline)"),
        1.0,
        "bulk creates (import)",
        bulk / single,
        format!("≥{IMPORT_TARGET:.0} {verdict}"),
        started as f64 / 1024.0,
        before as f64 / 1024.0,
        warm as f64 / 1024.0,
        warm_batches * IMPORT_BATCH,
        after as f64 / 1024.0,
        after as f64 / warm as f64,
        if after as f64 <= warm as f64 * 1.25 {
            "ok"
        } else {
            "GROWS"
        },
        peak as f64 / 1024.0,
    ))
}

/// Links per second made by [`SINGLE_CREATES`] requests to `POST /api/v1/links`,
/// [`IMPORT_PARALLEL`] at a time.
async fn single_creates(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
) -> anyhow::Result<f64> {
    let bodies: Vec<String> = (0..SINGLE_CREATES)
        .map(|i| imported_link(&format!("one-{i}"), i).to_string())
        .collect();
    let started = std::time::Instant::now();
    in_parallel(bodies, |body| {
        let request = client
            .post(base)
            .bearer_auth(api_key)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await?;
            let status = response.status();
            if status != reqwest::StatusCode::CREATED {
                bail!("a create answered {status}: {}", response.text().await?);
            }
            Ok(())
        }
    })
    .await?;
    Ok(SINGLE_CREATES as f64 / started.elapsed().as_secs_f64())
}

/// How long the bulk requests of `batches` (of [`IMPORT_BATCH`] links each) took; each
/// request's body is made just before it is sent, as a streaming importer makes them.
async fn bulk_creates(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    batches: std::ops::Range<usize>,
) -> anyhow::Result<std::time::Duration> {
    let url = format!("{base}/bulk");
    let started = std::time::Instant::now();
    in_parallel(batches.collect(), |batch| {
        let links: Vec<serde_json::Value> = (batch * IMPORT_BATCH..(batch + 1) * IMPORT_BATCH)
            .take_while(|&i| i < IMPORT_LINKS)
            .map(|i| imported_link(&format!("imp-{i}"), i))
            .collect();
        let expected = links.len();
        let request = client
            .post(&url)
            .bearer_auth(api_key)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "links": links }).to_string());
        async move {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            let answer: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("bulk create answered {status}: {text}"))?;
            if answer["created"].as_u64() != Some(expected as u64) {
                bail!("bulk create answered {status}: {:.500}", text);
            }
            Ok(())
        }
    })
    .await?;
    Ok(started.elapsed())
}

/// A link as an import brings it.
fn imported_link(code: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "destination": format!("https://example.com/articles/{i}?ref=import"),
        "code": code,
        "title": format!("Article number {i} of the old shortener"),
        "tags": ["imported", format!("batch {}", i / IMPORT_BATCH)],
        "created_at": "2021-06-01T12:00:00Z",
        "imported_clicks": i % 1000,
    })
}

/// Runs `send` for every item, [`IMPORT_PARALLEL`] at a time; the first error stops it.
async fn in_parallel<T, F, Fut>(items: Vec<T>, send: F) -> anyhow::Result<()>
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut items = items.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < IMPORT_PARALLEL {
            let Some(item) = items.next() else { break };
            running.spawn(send(item));
        }
        match running.join_next().await {
            Some(done) => done??,
            None => return Ok(()),
        }
    }
}

/// A process's resident memory (`VmRSS`), in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A process's highest resident memory so far (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmHWM:")
}

fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// A release origin on a free port, stopped when dropped.
pub(crate) struct Origin {
    pub(crate) address: SocketAddr,
    _process: BackgroundProcess,
    first_start_file: PathBuf,
}

impl Drop for Origin {
    fn drop(&mut self) {
        // Gone already is fine: nothing else is to be done about it.
        let _ = std::fs::remove_file(&self.first_start_file);
    }
}

impl Origin {
    /// `cache_mib`: the redirect cache's memory (1 GiB holds a million links); 0 turns it off.
    fn start(database_url: &str, code_key: &str, cache_mib: u64) -> anyhow::Result<Self> {
        Self::start_with(database_url, code_key, cache_mib, &[])
    }

    fn pid(&self) -> u32 {
        self._process.0.id()
    }

    pub(crate) fn start_with(
        database_url: &str,
        code_key: &str,
        cache_mib: u64,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = tools::free_port()?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let first_start_file =
            std::env::temp_dir().join(format!("kurz-bench-first-start-{port}.txt"));
        let process = Command::new(root().join("target/release/origin"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("KURZ_BIND", address.to_string())
            .env("KURZ_PUBLIC_URL", format!("http://{address}"))
            .env("KURZ_CODE_KEY", code_key)
            .env("KURZ_CACHE_MIB", cache_mib.to_string())
            // One key makes every measured call: the deployment's budgets are not measured.
            .env("KURZ_RATE_API_PER_MIN", "1000000")
            .env("KURZ_RATE_CREATE_PER_MIN", "1000000")
            .env("KURZ_RATE_STATS_PER_MIN", "1000000")
            .env("RUST_LOG", "warn")
            // The first API key, unused (the benches make their own): out of the working tree,
            // and removed when the origin stops.
            .env("KURZ_FIRST_START_FILE", &first_start_file)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the origin")?;
        let process = BackgroundProcess(process);
        tools::wait_for_http(address, "/ready", 60)?;
        Ok(Self {
            address,
            _process: process,
            first_start_file,
        })
    }
}

struct BackgroundProcess(Child);

impl Drop for BackgroundProcess {
    fn drop(&mut self) {
        crate::dev::stop(&mut self.0);
    }
}

/// A wrk script that requests a random code of `codes` each time.
fn lua_script(dir: &Path, name: &str, codes: &[&str]) -> anyhow::Result<PathBuf> {
    let codes_path = dir.join(format!("{name}.codes"));
    fs::write(&codes_path, codes.join("\n"))?;
    let script_path = dir.join(format!("{name}.lua"));
    fs::write(
        &script_path,
        format!(
            r#"local codes = {{}}
for line in io.lines("{}") do codes[#codes + 1] = "/" .. line end
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
function init(args)
  math.randomseed(os.time() + (seed or 0) * 7919)
end
function request()
  return wrk.format("GET", codes[math.random(#codes)])
end
"#,
            codes_path.display()
        ),
    )?;
    Ok(script_path)
}

/// Rounds of [`interleaved`]: every row is measured this many times, in turn with the others.
const ROUNDS: u32 = 3;

fn round_seconds(args: &Args) -> u32 {
    args.seconds.div_ceil(ROUNDS).max(2)
}

/// Measures each row [`ROUNDS`] times, taking the rows in turn each round, so that a burst of
/// load from the machine's other tenants falls on every row alike instead of on one. Reports
/// the mean rate, and the latencies of the round with the median rate.
fn interleaved<'a>(
    rows: &[(&'a str, SocketAddr, &Path)],
    args: &Args,
) -> anyhow::Result<Vec<(&'a str, WrkResult)>> {
    let mut rounds: Vec<Vec<WrkResult>> = rows.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for ((_, address, script), measured) in rows.iter().zip(&mut rounds) {
            measured.push(wrk(
                *address,
                script,
                round_seconds(args),
                args.connections,
            )?);
        }
    }
    Ok(rows
        .iter()
        .zip(rounds)
        .map(|((name, _, _), measured)| {
            // Each latency is the median of the rounds' own: a stall of the shared machine
            // lasting a second lands on whichever row runs then, and decided a row's p99 when
            // one round's was taken (the edge's constant-302 worker's swung 0.14 → 1.6 s).
            let median = |of: fn(&WrkResult) -> &str| {
                let mut texts: Vec<&str> = measured.iter().map(of).collect();
                let ms = |text: &str| latency_ms(text).unwrap_or(f64::INFINITY);
                texts.sort_by(|a, b| ms(a).total_cmp(&ms(b)));
                texts[texts.len() / 2].to_owned()
            };
            let result = WrkResult {
                requests_per_second: measured.iter().map(|m| m.requests_per_second).sum::<f64>()
                    / measured.len() as f64,
                requests: measured.iter().map(|m| m.requests).sum(),
                p50: median(|m| &m.p50),
                p99: median(|m| &m.p99),
                non_2xx_3xx: measured.iter().map(|m| m.non_2xx_3xx).sum(),
            };
            (*name, result)
        })
        .collect())
}

/// A latency as wrk prints it ("950.00us", "98.12ms", "1.03s"), in milliseconds.
fn latency_ms(text: &str) -> Option<f64> {
    [("us", 0.001), ("ms", 1.0), ("s", 1000.0)]
        .iter()
        .find_map(|(unit, ms)| Some(text.strip_suffix(unit)?.parse::<f64>().ok()? * ms))
}

#[derive(Clone)]
struct WrkResult {
    requests_per_second: f64,
    /// Requests answered in all.
    requests: u64,
    p50: String,
    p99: String,
    non_2xx_3xx: u64,
}

fn wrk(
    address: SocketAddr,
    script: &Path,
    seconds: u32,
    connections: u32,
) -> anyhow::Result<WrkResult> {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://{address}"))
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix).map(|rest| rest.trim().to_owned()))
    };
    Ok(WrkResult {
        requests_per_second: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))?,
        requests: text
            .lines()
            .find(|line| line.contains(" requests in "))
            .and_then(|line| line.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        non_2xx_3xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}
