//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::process::Command;

use anyhow::Context;
use devpg::{Cluster, Durability};

use crate::tools::{cargo, ensure_postgres, ensure_wasm_target, exec, root};
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
    let cluster = Cluster::start(dir.path(), Durability::Throwaway)?;
    eprintln!("test PostgreSQL on port {}", cluster.port());
    exec(
        cargo()
            .args(["test", "--workspace", "--exclude", "admin-ui", "--locked"])
            .env("KURZ_TEST_DATABASE_URL", cluster.url("postgres")),
    )?;
    // The worker in the real workerd runtime, against the origin binary `cargo test` built.
    edge_tests(&cluster.url("postgres"), None)?;
    // The fault suite: its own PostgreSQL (it kills it), the same origin binary and worker.
    chaos(&[])?;
    // The dashboard in headless Chromium against the same origin binary.
    ui::build()?;
    ui::run_browser_tests(
        &root().join("target/debug/origin"),
        &cluster.url("postgres"),
    )?;
    drop(cluster);
    Ok(())
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
