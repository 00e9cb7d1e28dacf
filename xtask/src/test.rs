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
    edge::build_worker()?;
    exec(
        Command::new("node")
            .current_dir(edge::edge_dir())
            .args(["--test", "--test-concurrency=1", "tests/"])
            .env("KURZ_ORIGIN_BIN", root().join("target/debug/origin"))
            .env("KURZ_TEST_DATABASE_URL", cluster.url("postgres")),
    )?;
    // The dashboard in headless Chromium against the same origin binary.
    ui::build()?;
    ui::run_browser_tests(
        &root().join("target/debug/origin"),
        &cluster.url("postgres"),
    )?;
    drop(cluster);
    Ok(())
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
