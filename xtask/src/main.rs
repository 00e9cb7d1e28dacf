//! `cargo xtask dev|test|bench`: the one place that installs, builds, starts and tests kurz.

// A command-line tool talks to its user on stderr.
#![allow(clippy::print_stderr)]

mod bench;
mod bench_analytics;
mod bench_dashboard;
mod bench_scale;
mod dev;
mod edge;
mod test;
mod tools;
mod ui;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Build, run, test and benchmark kurz")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system locally (PostgreSQL, origin, edge worker); Ctrl-C stops everything.
    Dev(dev::Args),
    /// Format and lint checks, the wasm32 build, and every test against real services.
    Test,
    /// Only the edge's tests in workerd (the origin and the worker built first); a pattern
    /// runs the tests whose names match it. Uses KURZ_TEST_DATABASE_URL when set.
    TestEdge {
        /// A regular expression over test names (node's `--test-name-pattern`).
        pattern: Option<String>,
    },
    /// The fault suite: real PostgreSQL, origins and workerd, with faults injected (also part
    /// of `test`); names choose scenarios (pg-restart, origin-kill, change-storm, long-outage,
    /// sigterm).
    Chaos {
        /// Scenarios to run; all when none is named.
        scenarios: Vec<String>,
    },
    /// Only the API against its OpenAPI document with schemathesis (also part of `test`): no
    /// 5xx and no answer the document does not describe, on every operation. Uses
    /// KURZ_TEST_DATABASE_URL when set.
    Schemathesis,
    /// Build the dashboard into target/admin-ui (what KURZ_ADMIN_DIR points at).
    BuildUi,
    /// Only the dashboard's browser tests (the origin and the dashboard built first). Uses
    /// KURZ_TEST_DATABASE_URL when set; a pattern runs the tests whose names match it.
    TestUi {
        /// A regular expression over test names (node's `--test-name-pattern`).
        pattern: Option<String>,
    },
    /// Measure kurz (redirects, the edge, analytics, imports, the dashboard) and print figures
    /// as ratios against a baseline of the same run.
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Dev(args) => dev::run(&args),
        Command::Test => test::run(),
        Command::TestEdge { pattern } => test::run_edge_only(pattern.as_deref()),
        Command::Chaos { scenarios } => test::run_chaos_only(&scenarios),
        Command::Schemathesis => test::run_schemathesis_only(),
        Command::Bench(args) => bench::run(&args),
        Command::TestUi { pattern } => ui::run_only(pattern.as_deref()),
        Command::BuildUi => {
            let built = ui::build()?;
            eprint!(
                "dashboard built into {}{}",
                ui::dist_dir().display(),
                bench::ui_size_row(&built)?
            );
            Ok(())
        }
    }
}
