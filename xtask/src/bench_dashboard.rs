//! `cargo xtask bench --only dashboard`: the links page's first screen in headless Chromium,
//! over a workspace of 1,000,000 links against one of 1,000 (the baseline) on the same origin,
//! in the same run; and the dashboard's .wasm size.
//!
//! The release origin serves the release dashboard (`ui::build`); the links are inserted
//! straight into PostgreSQL (one `INSERT … SELECT … FROM generate_series` per workspace), with
//! hourly rollups for a tenth of them and for the newest, so the list's click figures have
//! data. `admin-ui/tests/bench/links-page.mjs` signs in through the form and times fresh loads
//! of `/admin/links` in the page: nothing here is asserted, the figures are printed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::bench::{Origin, build_release_origin, throwaway_database};
use crate::tools::{self, root};
use crate::{edge, ui};

/// Links of the baseline workspace.
const BASELINE_LINKS: u64 = 1_000;
/// Measured loads of the page per workspace (after one unmeasured, cache-warming load).
const LOADS: usize = 5;
/// The target for the first screen over 1,000,000 links, in milliseconds.
const TARGET_MS: f64 = 1_000.0;

pub(crate) fn run(links: u64, work: &Path) -> anyhow::Result<String> {
    let built = ui::build()?;
    build_release_origin(&[])?;
    let chromium = ui::ensure_chromium()?;
    edge::ensure_npm_packages(&ui::tests_dir(), "playwright-core")?;
    let measured = measured_commit();
    let (_cluster, database_url) = throwaway_database(work, "dashboard")?;
    let password = tools::random_hex(12);
    let origin = Origin::start_with(
        &database_url,
        &tools::random_hex(16),
        64,
        &[
            ("KURZ_ADMIN_DIR", ui::dist_dir().to_string_lossy().as_ref()),
            ("KURZ_ADMIN_PASSWORD", password.as_str()),
        ],
    )?;
    eprintln!("seeding {links} links and {BASELINE_LINKS} in another workspace...");
    let seeded = std::time::Instant::now();
    let (big, small) = seed(&database_url, links)?;
    eprintln!("seeded in {:.1?}", seeded.elapsed());

    let workspaces = serde_json::json!([
        { "name": "small", "workspace": small },
        { "name": "big", "workspace": big },
    ]);
    let output = Command::new("node")
        .current_dir(ui::tests_dir())
        .arg("bench/links-page.mjs")
        .env("KURZ_BENCH_URL", format!("http://{}", origin.address))
        .env("KURZ_BENCH_PASSWORD", &password)
        .env("KURZ_BENCH_WORKSPACES", workspaces.to_string())
        .env("KURZ_BENCH_LOADS", LOADS.to_string())
        .env("KURZ_CHROMIUM", chromium)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run node bench/links-page.mjs")?;
    drop(origin);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("bench/links-page.mjs failed ({}): {stdout}", output.status);
    }
    let results: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .with_context(|| format!("bench/links-page.mjs printed no results: {stdout}"))?;

    let small = Figures::of(&results["small"])?;
    let big = Figures::of(&results["big"])?;
    let mut report = format!(
        "\ndashboard links page in Chromium (release build, 127.0.0.1, {measured}): {LOADS} fresh \
         loads each, cache warm, signed in; ms from the navigation's start, median / max\n\n\
         {:<26} {:>16} {:>14} {:>14} {:>7} {:>10}\n",
        "", "first API answer", "rows shown", "interactive", "ratio", "target"
    );
    for (name, figures, target) in [
        (format!("{BASELINE_LINKS} links (baseline)"), &small, false),
        (format!("{links} links"), &big, true),
    ] {
        let verdict = if !target {
            String::new()
        } else if figures.interactive.median < TARGET_MS {
            format!("<{TARGET_MS:.0} ok")
        } else {
            format!("<{TARGET_MS:.0} OVER")
        };
        writeln!(
            report,
            "{name:<26} {:>16} {:>14} {:>14} {:>7.2} {verdict:>10}",
            figures.api.to_string(),
            figures.rows.to_string(),
            figures.interactive.to_string(),
            figures.interactive.median / small.interactive.median,
        )?;
    }
    writeln!(
        report,
        "interactive: a key typed into the search box as soon as the first rows were there was \
         handled (it waited {:.0} ms median for the page's main thread over {links} links, {:.0} \
         ms over {BASELINE_LINKS})",
        big.input_delay.median, small.input_delay.median
    )?;
    report.push_str(&crate::bench::ui_size_row(&built.wasm)?);
    Ok(report)
}

/// The commit the dashboard and origin were built from, and whether the tree differed from it.
fn measured_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root())
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let changed = git(&[
        "status",
        "--porcelain",
        "--",
        "admin-ui/src",
        "admin-ui/locales",
        "admin-ui/style.css",
        "origin/src",
        "origin/migrations",
        "shortlink/src",
    ])
    .is_some_and(|status| !status.is_empty());
    if changed {
        format!("commit {commit} + uncommitted changes")
    } else {
        format!("commit {commit}")
    }
}

/// Median and highest of one figure over the loads.
struct Spread {
    median: f64,
    max: f64,
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} / {:.0}", self.median, self.max)
    }
}

struct Figures {
    api: Spread,
    rows: Spread,
    interactive: Spread,
    input_delay: Spread,
}

impl Figures {
    /// From the script's loads of one workspace: `[{ api, rows, interactive, input_delay }]`.
    fn of(loads: &serde_json::Value) -> anyhow::Result<Self> {
        let loads = loads.as_array().context("no loads")?;
        let spread = |key: &str| -> anyhow::Result<Spread> {
            let mut values: Vec<f64> = loads
                .iter()
                .map(|load| load[key].as_f64().with_context(|| format!("no {key}")))
                .collect::<anyhow::Result<_>>()?;
            if values.is_empty() {
                bail!("no loads");
            }
            values.sort_by(f64::total_cmp);
            Ok(Spread {
                median: values[values.len() / 2],
                max: values[values.len() - 1],
            })
        };
        Ok(Self {
            api: spread("api")?,
            rows: spread("rows")?,
            interactive: spread("interactive")?,
            input_delay: spread("input_delay")?,
        })
    }
}

/// Inserts `links` links into workspace 1 and [`BASELINE_LINKS`] into a new workspace whose
/// owner is also the first admin, with hourly rollups (within the last 7 days and before);
/// returns the two workspaces' ids. Triggers are off while seeding (replica role): the links
/// get their version here, and the origin is not told of a million new codes it has not
/// cached anyway.
fn seed(database_url: &str, links: u64) -> anyhow::Result<(i64, i64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(database_url).await?;
        let admin: i64 = sqlx::query_scalar("SELECT id FROM admin_users WHERE username = 'admin'")
            .fetch_one(&mut db)
            .await
            .context("the origin made no admin user")?;
        let small: i64 =
            sqlx::query_scalar("INSERT INTO workspaces (name) VALUES ('Baseline') RETURNING id")
                .fetch_one(&mut db)
                .await?;
        sqlx::query(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'owner')",
        )
        .bind(small)
        .bind(admin)
        .execute(&mut db)
        .await?;
        sqlx::query("SET session_replication_role = replica")
            .execute(&mut db)
            .await?;
        let big = 1_i64;
        let total = links + BASELINE_LINKS;
        for (workspace, first, last) in [(big, 1, links), (small, links + 1, total)] {
            // Codes: i times an odd constant modulo 2^32 (distinct for distinct i), in hex;
            // a title on a third, tags on a fifth; one created every 30 s up to now.
            sqlx::query(
                "INSERT INTO links (workspace_id, code, destination, title, tags, created_at,
                                    updated_at, version)
                 SELECT $1, lpad(to_hex((i * 2654435761) % 4294967296), 8, '0'),
                        'https://example.com/articles/' || i || '?ref=bench',
                        CASE WHEN i % 3 = 0 THEN 'Article number ' || i END,
                        CASE WHEN i % 5 = 0 THEN ARRAY['bench', 'batch ' || i / 1000]
                             ELSE '{}' END,
                        now() - make_interval(secs => ($3 - i) * 30),
                        now() - make_interval(secs => ($3 - i) * 30),
                        nextval('link_version_seq')
                 FROM generate_series($2::bigint, $3::bigint) AS i",
            )
            .bind(workspace)
            .bind(first as i64)
            .bind(last as i64)
            .execute(&mut db)
            .await?;
        }
        // Clicks: an hour ago, two days ago and three weeks ago, for every tenth link, every
        // baseline link and the 500 newest of the big workspace (its first page).
        sqlx::query(
            "WITH newest AS (SELECT max(id) AS id FROM links WHERE workspace_id = $1)
             INSERT INTO link_stats_hourly (link_id, hour, clicks, qr_scans, bots, uniques)
             SELECT l.id, date_trunc('hour', now()) - make_interval(hours => h),
                    1 + (l.id * h) % 97, (l.id * h) % 7, (l.id * h) % 5, 1 + (l.id * h) % 41
             FROM links l, newest, (VALUES (1), (49), (500)) AS hours(h)
             WHERE l.workspace_id <> $1 OR l.id % 10 = 0 OR l.id > newest.id - 500",
        )
        .bind(big)
        .execute(&mut db)
        .await?;
        sqlx::query("RESET session_replication_role")
            .execute(&mut db)
            .await?;
        // VACUUM: the trigram indexes' pending lists would otherwise hold the new rows until
        // an autovacuum runs (see bench::seed).
        sqlx::query("VACUUM ANALYZE links").execute(&mut db).await?;
        sqlx::query("VACUUM ANALYZE link_stats_hourly")
            .execute(&mut db)
            .await?;
        db.close().await?;
        anyhow::Ok((big, small))
    })
}
