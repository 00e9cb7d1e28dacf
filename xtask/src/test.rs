//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::process::Command;

use anyhow::Context;
use devpg::{Cluster, Durability};

use crate::tools::{
    cargo, create_database, ensure_postgres, ensure_schemathesis, ensure_wasm_target, exec,
    free_port, free_space, random_hex, root, wait_for_http,
};
use crate::{edge, ui};

pub(crate) fn run_all() -> anyhow::Result<()> {
    ensure_wasm_target()?;
    ensure_postgres()?;
    edge::ensure_tools()?;

    exec(cargo().args(["fmt", "--all", "--check"]))?;
    exec(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "admin-ui",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The edge and the dashboard only ever run as wasm32: lint them as such, in one go so
    // their shared dependencies are checked once. This also keeps `shortlink` (which both
    // use) building for wasm32.
    exec(cargo().args([
        "clippy",
        "--locked",
        "-p",
        "edge",
        "-p",
        "admin-ui",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ]))?;

    // One cluster for the whole run; each integration test makes its own database in it.
    let dir = tempfile::Builder::new()
        .prefix("kurz-test-pg-")
        .tempdir()
        .context("cannot make a folder for the test database")?;
    warn_if_short_of_disk(&[&root(), dir.path()]);
    let cluster = Cluster::start(dir.path(), Durability::Throwaway)?;
    eprintln!("test PostgreSQL on port {}", cluster.port());
    let result = on_the_test_cluster(&cluster);
    if result.is_err() {
        report_on(&cluster);
    }
    drop(cluster);
    result
}

/// The steps that share the run's cluster: the Rust tests, the API fuzzer, the worker's tests,
/// the fault suite (its own cluster) and the dashboard's.
fn on_the_test_cluster(cluster: &Cluster) -> anyhow::Result<()> {
    exec(
        cargo()
            .args(["test", "--workspace", "--exclude", "admin-ui", "--locked"])
            .env("KURZ_TEST_DATABASE_URL", cluster.url("postgres")),
    )?;
    // The API against its OpenAPI document, on the origin binary `cargo test` built.
    schemathesis(&cluster.url("postgres"))?;
    // The worker in the real workerd runtime, against the origin binary `cargo test` built.
    edge_tests(&cluster.url("postgres"), None)?;
    // The fault suite: its own PostgreSQL (it kills it), the same origin binary and worker.
    chaos(&[])?;
    // The dashboard in headless Chromium against the same origin binary.
    ui::build()?;
    ui::run_browser_tests(
        &root().join("target/debug/origin"),
        &cluster.url("postgres"),
        None,
    )
}

/// What a full run writes at its peak, measured: the build (`target/`, 6.7 GB from a fresh
/// clone) and the test cluster's databases and WAL (4.1 GB).
const DISK_A_RUN_NEEDS: u64 = 12 << 30;

/// Says so up front when a folder the run writes to has less free space than it needs: a
/// cluster that runs out stops, and the tests then only see refused connections.
fn warn_if_short_of_disk(folders: &[&std::path::Path]) {
    for folder in folders {
        if let Some(free) = free_space(folder).filter(|free| *free < DISK_A_RUN_NEEDS) {
            eprintln!(
                "warning: {} has {:.1} GiB free; a full run writes about {} GiB (the build and \
                 the test databases). PostgreSQL stops when its disk fills up.",
                folder.display(),
                free as f64 / f64::from(1 << 30),
                DISK_A_RUN_NEEDS >> 30,
            );
        }
    }
}

/// After a failed step: whether the test cluster is still up, the space left where it writes
/// and the end of its log, so that a cluster that stopped (a full disk, a crash) says why
/// rather than leaving only the tests' refused connections to go on.
fn report_on(cluster: &Cluster) {
    let state = if cluster.is_running() {
        "is up"
    } else {
        "is NOT running"
    };
    let free = free_space(cluster.dir()).map_or_else(
        || "unknown".to_owned(),
        |free| format!("{:.1} GiB", free as f64 / f64::from(1 << 30)),
    );
    eprintln!(
        "\nthe test PostgreSQL (port {}) {state}; free space in {}: {free}; the end of its log:\n{}",
        cluster.port(),
        cluster.dir().display(),
        cluster.log_tail(30),
    );
}

/// Builds the worker and runs its node tests in workerd against `target/debug/origin`.
fn edge_tests(database_url: &str, pattern: Option<&str>) -> anyhow::Result<()> {
    edge::build_worker()?;
    let mut node = Command::new("node");
    node.current_dir(edge::edge_dir())
        .args(["--test", "--test-concurrency=1"]);
    if let Some(pattern) = pattern {
        node.arg(format!("--test-name-pattern={pattern}"));
    }
    exec(
        node.arg("tests/")
            .env("KURZ_ORIGIN_BIN", root().join("target/debug/origin"))
            .env("KURZ_TEST_DATABASE_URL", database_url),
    )
}

/// `cargo xtask test-edge [pattern]`: the origin and the worker built, then only the edge's
/// tests, on `KURZ_TEST_DATABASE_URL` or a throwaway cluster.
pub(crate) fn run_edge_only(pattern: Option<&str>) -> anyhow::Result<()> {
    ensure_postgres()?;
    edge::ensure_tools()?;
    exec(cargo().args(["build", "--locked", "-p", "origin"]))?;
    if let Ok(url) = std::env::var("KURZ_TEST_DATABASE_URL") {
        return edge_tests(&url, pattern);
    }
    let dir = tempfile::Builder::new()
        .prefix("kurz-test-pg-")
        .tempdir()
        .context("cannot make a folder for the test database")?;
    let cluster = Cluster::start(dir.path(), Durability::Throwaway)?;
    edge_tests(&cluster.url("postgres"), pattern)
}

/// Runs the fault suite (`edge/chaos/`) against `target/debug/origin` and the built worker.
fn chaos(scenarios: &[String]) -> anyhow::Result<()> {
    exec(
        Command::new("node")
            .current_dir(edge::edge_dir())
            .arg("chaos/chaos.mjs")
            .args(scenarios)
            .env("KURZ_ORIGIN_BIN", root().join("target/debug/origin")),
    )
}

/// `cargo xtask chaos [scenario ...]`: the origin and the worker built, then the fault suite.
pub(crate) fn run_chaos_only(scenarios: &[String]) -> anyhow::Result<()> {
    ensure_postgres()?;
    edge::ensure_tools()?;
    exec(cargo().args(["build", "--locked", "-p", "origin"]))?;
    edge::build_worker()?;
    chaos(scenarios)
}

pub(crate) fn run() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let result = run_all();
    match &result {
        Ok(()) => eprintln!("\nall checks passed in {:.0?}", started.elapsed()),
        Err(err) => eprintln!("\nchecks FAILED after {:.0?}: {err:#}", started.elapsed()),
    }
    result
}

/// Examples schemathesis makes per operation and phase: enough to reach past each route's
/// validation with valid and invalid values, few enough that the ~40 operations take about
/// two minutes on a CI machine.
const SCHEMATHESIS_EXAMPLES: &str = "50";

/// The API against its OpenAPI document: an origin (`target/debug/origin`, already built) on a
/// new database of the server at `admin_url`, called by schemathesis with the first start's
/// API key on every operation. Fails on any 5xx and on any answer the document does not
/// describe.
fn schemathesis(admin_url: &str) -> anyhow::Result<()> {
    let st = ensure_schemathesis()?;
    let database = format!("schemathesis_{}", random_hex(6));
    create_database(admin_url, &database)?;
    let database_url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => anyhow::bail!("{admin_url} names no database"),
    };
    let dir = tempfile::Builder::new()
        .prefix("kurz-schemathesis-")
        .tempdir()
        .context("cannot make a folder for the run")?;
    let first_start = dir.path().join("first-start.txt");
    let port = free_port()?;
    let origin_url = format!("http://127.0.0.1:{port}");
    let mut origin = Command::new(root().join("target/debug/origin"))
        .arg("serve")
        .env("DATABASE_URL", &database_url)
        .env("KURZ_BIND", format!("127.0.0.1:{port}"))
        .env("KURZ_PUBLIC_URL", &origin_url)
        .env("KURZ_CODE_KEY", random_hex(16))
        .env("KURZ_ADMIN_PASSWORD", random_hex(16))
        .env("KURZ_FIRST_START_FILE", &first_start)
        // The fuzzer is one caller sending thousands of requests a minute: the API's budgets
        // would answer most of them 429 and hide the routes behind.
        .env("KURZ_RATE_API_PER_MIN", "1000000")
        .env("KURZ_RATE_CREATE_PER_MIN", "1000000")
        .env("KURZ_RATE_STATS_PER_MIN", "1000000")
        .env("RUST_LOG", "warn")
        .spawn()
        .context("cannot start the origin")?;
    let result = (|| {
        wait_for_http(([127, 0, 0, 1], port).into(), "/ready", 60)?;
        let key = first_start_key(&first_start)?;
        create_example_link(&origin_url, &key)?;
        exec(
            Command::new(&st)
                .current_dir(dir.path())
                .arg("run")
                .arg(format!("{origin_url}/api/v1/openapi.json"))
                .args(["--url", &origin_url])
                .args(["--checks", "not_a_server_error,response_schema_conformance"])
                .args(["--phases", "examples,coverage,fuzzing"])
                .args(["--max-examples", SCHEMATHESIS_EXAMPLES])
                // One worker: with two, hypothesis describes its strategies from two threads,
                // and CPython 3.11 (this machine's python3) can fail `ast.parse` when two
                // threads parse at once ("AST constructor recursion depth mismatch", CPython
                // gh-106905): a CI run failed on that, not on the API. On two cores one worker
                // is no slower (33 s against 39 s with two).
                .args(["--workers", "1"])
                .args(["--seed", "14"])
                .args(["--generation-database", "none"])
                .args(["--generation-with-security-parameters", "false"])
                .args(["--request-timeout", "30"])
                .args(["--no-color", "--continue-on-failure"])
                .args(["--header", &format!("Authorization: Bearer {key}")]),
        )
    })();
    origin.kill().ok();
    origin.wait().ok();
    result
}

/// The link whose code the document gives as the example of `{code}`: without it, every
/// operation on one link would stop at its 404 before any of its own code ran.
fn create_example_link(origin_url: &str, key: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{origin_url}/api/v1/links"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(
                serde_json::json!({
                    "destination": "https://example.com/launch",
                    "code": shortlink::EXAMPLE_CODE,
                })
                .to_string(),
            )
            .send()
            .await
            .map(|response| response.status())
    })?;
    anyhow::ensure!(
        status.as_u16() == 201,
        "creating the example link: HTTP {status}"
    );
    Ok(())
}

/// The API key the origin's first start wrote to `file` (it appears once migrations ran).
fn first_start_key(file: &std::path::Path) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let key = std::fs::read_to_string(file).ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("KURZ_API_KEY="))
                .map(str::to_owned)
        });
        if let Some(key) = key {
            return Ok(key);
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the origin wrote no API key to {}", file.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `cargo xtask schemathesis`: the origin built, then only the schemathesis run, on
/// `KURZ_TEST_DATABASE_URL` or a throwaway cluster.
pub(crate) fn run_schemathesis_only() -> anyhow::Result<()> {
    ensure_postgres()?;
    exec(cargo().args(["build", "--locked", "-p", "origin"]))?;
    if let Ok(url) = std::env::var("KURZ_TEST_DATABASE_URL") {
        return schemathesis(&url);
    }
    let dir = tempfile::Builder::new()
        .prefix("kurz-test-pg-")
        .tempdir()
        .context("cannot make a folder for the test database")?;
    let cluster = Cluster::start(dir.path(), Durability::Throwaway)?;
    schemathesis(&cluster.url("postgres"))
}
