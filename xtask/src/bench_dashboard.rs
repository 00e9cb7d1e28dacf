//! `cargo xtask bench --only dashboard`: the links page's first screen in headless Chromium,
//! over a workspace of 1,000,000 links against one of 1,000 (the baseline) on the same origin,
//! in the same run; and the dashboard's .wasm size.
//!
//! The release origin serves the release dashboard (`ui::build`); the links are inserted
//! straight into PostgreSQL (`INSERT … SELECT … FROM generate_series`, 100,000 a statement),
//! and some of them get clicks through the signed ingest route, counted by the origin into
//! the rollups, so the list's click figures have data. `admin-ui/tests/bench/links-page.mjs`
//! signs in through the form and times fresh loads of `/admin/links` in the page: nothing here
//! is asserted, the figures are printed.

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

pub(crate) fn run(links: u64, work: &Path, shared_buffers_mib: u32) -> anyhow::Result<String> {
    let measured = measured_commit();
    let built = ui::build()?;
    build_release_origin(&[])?;
    let chromium = ui::ensure_chromium()?;
    edge::ensure_npm_packages(&ui::tests_dir(), "playwright-core")?;
    let (_cluster, database_url) = throwaway_database(work, "dashboard", shared_buffers_mib)?;
    let password = tools::random_hex(12);
    let secret = tools::random_hex(32);
    let origin = Origin::start_with(
        &database_url,
        &tools::random_hex(16),
        64,
        &[
            ("KURZ_ADMIN_DIR", ui::dist_dir().to_string_lossy().as_ref()),
            ("KURZ_ADMIN_PASSWORD", password.as_str()),
            ("KURZ_EDGE_SECRET", secret.as_str()),
        ],
    )?;
    let base = format!("http://{}", origin.address);
    eprintln!("seeding {links} links and {BASELINE_LINKS} in another workspace...");
    let seeded = std::time::Instant::now();
    let (big, small) = seed(&database_url, &base, &secret, links)?;
    eprintln!("seeded in {:.1?}", seeded.elapsed());

    // Each workspace's search: the destination of the link in the middle of its seeded ones,
    // which only that link matches (and most of its trigrams are in every tenth link or more).
    let (big_middle, small_middle) = (links.div_ceil(2), links + BASELINE_LINKS / 2);
    let workspaces = serde_json::json!([
        { "name": "small", "workspace": small,
          "search": format!("articles/{small_middle}?"), "code": seeded_code(small_middle) },
        { "name": "big", "workspace": big,
          "search": format!("articles/{big_middle}?"), "code": seeded_code(big_middle) },
    ]);
    let output = Command::new("node")
        .current_dir(ui::tests_dir())
        .arg("bench/links-page.mjs")
        .env("KURZ_BENCH_URL", &base)
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
        "", "first API answer", "rows painted", "interactive", "ratio", "target"
    );
    for (name, figures, target) in [
        (
            format!("{} links (baseline)", thousands(BASELINE_LINKS)),
            &small,
            false,
        ),
        (format!("{} links", thousands(links)), &big, true),
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
            figures.painted.to_string(),
            figures.interactive.to_string(),
            figures.interactive.median / small.interactive.median,
        )?;
    }
    writeln!(
        report,
        "\nsearch, one link matches (`articles/<the middle link>?`): ms median / max\n\n\
         {:<26} {:>16} {:>22} {:>7}",
        "", "API request", "typed to row shown", "ratio"
    )?;
    for (name, figures) in [
        (
            format!("{} links (baseline)", thousands(BASELINE_LINKS)),
            &small,
        ),
        (format!("{} links", thousands(links)), &big),
    ] {
        writeln!(
            report,
            "{name:<26} {:>16} {:>22} {:>7.2}",
            figures.search_api.to_string(),
            figures.search_shown.to_string(),
            figures.search_shown.median / small.search_shown.median,
        )?;
    }
    writeln!(
        report,
        "typed to row shown: from the search box's last input event to the matching row alone in \
         the table (the page's 250 ms debounce, the request and the table drawn again); ratio: \
         its median against the baseline's, same run\n"
    )?;
    writeln!(
        report,
        "rows painted: the first rows in the document ({:.0} ms median over {} links), then a \
         frame drawn and the main thread free; interactive: that, and a key typed into the \
         search box as soon as the script saw the rows was handled ({:.0} ms median, round \
         trips to the browser included; it waited {:.0} ms median for the main thread) and its \
         search went out",
        big.rows.median,
        thousands(links),
        big.key.median,
        big.input_delay.median,
    )?;
    report.push_str(&crate::bench::ui_size_row(&built)?);
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
    painted: Spread,
    key: Spread,
    interactive: Spread,
    input_delay: Spread,
    search_api: Spread,
    search_shown: Spread,
}

impl Figures {
    /// From the script's loads of one workspace: `[{ api, rows, painted, key, interactive,
    /// input_delay, search_api, search_shown }]`.
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
            painted: spread("painted")?,
            key: spread("key")?,
            interactive: spread("interactive")?,
            input_delay: spread("input_delay")?,
            search_api: spread("search_api")?,
            search_shown: spread("search_shown")?,
        })
    }
}

/// The code [`seed`] gives its `i`th link.
fn seeded_code(i: u64) -> String {
    format!("{:08x}", i.wrapping_mul(2_654_435_761) % (1 << 32))
}

/// Links inserted per statement while seeding.
const SEED_CHUNK: u64 = 100_000;

/// Inserts `links` links into workspace 1 and [`BASELINE_LINKS`] into a new workspace whose
/// owner is also the first admin, straight into PostgreSQL (its triggers run, so every table
/// the schema keeps beside `links` is filled as for any insert); then clicks for the newest
/// 1,000 links of each workspace and every 100th link of the big one, over the last 10 days,
/// through the signed ingest route as the edge sends them, and waits until the origin has
/// counted them into the rollups. Returns the two workspaces' ids.
fn seed(database_url: &str, base: &str, secret: &str, links: u64) -> anyhow::Result<(i64, i64)> {
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
        let big = 1_i64;
        let total = links + BASELINE_LINKS;
        let mut chunks = Vec::new();
        for (workspace, first, last) in [(big, 1, links), (small, links + 1, total)] {
            let mut from = first;
            while from <= last {
                let to = (from + SEED_CHUNK - 1).min(last);
                chunks.push((workspace, from, to));
                from = to + 1;
            }
        }
        for (workspace, first, last) in chunks {
            // Codes: i times an odd constant modulo 2^32 (distinct for distinct i), in hex
            // ([`seeded_code`]);
            // a title on a third, tags on a fifth; one link made every 30 s up to now.
            sqlx::query(
                "INSERT INTO links (workspace_id, code, destination, title, tags, created_at,
                                    updated_at)
                 SELECT $1, lpad(to_hex((i * 2654435761) % 4294967296), 8, '0'),
                        'https://example.com/articles/' || i || '?ref=bench',
                        CASE WHEN i % 3 = 0 THEN 'Article number ' || i END,
                        CASE WHEN i % 5 = 0 THEN ARRAY['bench', 'batch ' || i / 1000]
                             ELSE '{}' END,
                        now() - make_interval(secs => ($4 - i) * 30),
                        now() - make_interval(secs => ($4 - i) * 30)
                 FROM generate_series($2::bigint, $3::bigint) AS i",
            )
            .bind(workspace)
            .bind(first as i64)
            .bind(last as i64)
            .bind(total as i64)
            .execute(&mut db)
            .await?;
        }
        let clicked: Vec<(i64, String)> = sqlx::query_as(
            "(SELECT id, code FROM links WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1000)
             UNION
             (SELECT id, code FROM links WHERE workspace_id = $2 ORDER BY id DESC LIMIT 1000)
             UNION
             SELECT id, code FROM links WHERE workspace_id = $1 AND id % 100 = 0",
        )
        .bind(big)
        .bind(small)
        .fetch_all(&mut db)
        .await?;
        let clicks = ingest_clicks(base, secret, &clicked).await?;
        eprintln!(
            "{clicks} clicks on {} links sent; counting...",
            clicked.len()
        );
        // The origin counts stored clicks in the background; the list shows them once counted.
        loop {
            let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM clicks_pending)")
                .fetch_one(&mut db)
                .await?;
            if !pending {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        // VACUUM: the trigram indexes' pending lists would otherwise hold the new rows until
        // an autovacuum runs (see bench::seed); ANALYZE: plans for the tables' real sizes.
        sqlx::query("VACUUM ANALYZE").execute(&mut db).await?;
        db.close().await?;
        anyhow::Ok((big, small))
    })
}

/// Sends 1 to 7 clicks for each link (id, code), at times over the last 10 days, in batches
/// of 1,000 through `POST /_edge/ingest`; returns how many.
async fn ingest_clicks(base: &str, secret: &str, links: &[(i64, String)]) -> anyhow::Result<usize> {
    const AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, \
                         like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let now = time::OffsetDateTime::now_utc();
    let events: Vec<serde_json::Value> = links
        .iter()
        .flat_map(|(id, code)| {
            (0..1 + id % 7).map(move |n| {
                let at = now - time::Duration::minutes((id * 37 + n * 1_009) % (10 * 24 * 60));
                serde_json::json!({
                    "id": format!("bench-{id}-{n}"),
                    "link_id": id,
                    "code": code,
                    "at": at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    "country": "DE",
                    "referrer": null,
                    "user_agent": AGENT,
                    "qr": n % 5 == 4,
                    "head": false,
                    "source": "edge",
                    "visitor": format!("{:032x}", id * 8 + n),
                })
            })
        })
        .collect();
    let client = reqwest::Client::new();
    for batch in events.chunks(1_000) {
        let body = serde_json::to_vec(&serde_json::json!({ "events": batch }))?;
        crate::bench_analytics::post_signed(&client, base, secret, body).await?;
    }
    Ok(events.len())
}
