//! The dashboard (`admin-ui`): its release build into `target/admin-ui`, and its browser tests.
//!
//! The build is cargo (wasm32, profile `ui-release`) then wasm-bindgen (`--target web`); every
//! asset is then named after a hash of its content and gzipped beside itself, so the origin can
//! cache `/admin/assets/*` forever while `index.html` (revalidated) picks up a new build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::edge;
use crate::tools::{apt_install, cargo, ensure_wasm_target, exec, on_path, root};

/// The built dashboard: what `KURZ_ADMIN_DIR` points at.
pub(crate) fn dist_dir() -> PathBuf {
    root().join("target/admin-ui")
}

pub(crate) struct Built {
    pub(crate) wasm: PathBuf,
}

/// Builds the dashboard into [`dist_dir`].
pub(crate) fn build() -> anyhow::Result<Built> {
    ensure_wasm_target()?;
    edge::ensure_tools()?;
    // `.cargo/config.toml` sets `--cfg erase_components` for wasm32 (see there).
    exec(cargo().args([
        "build",
        "--locked",
        "-p",
        "admin-ui",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "ui-release",
    ]))?;
    let stage = root().join("target/admin-ui-stage");
    let _ = fs::remove_dir_all(&stage);
    exec(
        Command::new(edge::cargo_bin_dir().join("wasm-bindgen"))
            .args([
                "--target",
                "web",
                "--no-typescript",
                "--remove-name-section",
                "--remove-producers-section",
                "--out-dir",
            ])
            .arg(&stage)
            .arg(root().join("target/wasm32-unknown-unknown/ui-release/admin-ui.wasm")),
    )?;
    // binaryen's size optimiser (from the edge's npm packages): about 4 KB less gzipped.
    let staged = stage.join("admin-ui_bg.wasm");
    exec(
        Command::new(edge::npm_bin("wasm-opt"))
            .arg(&staged)
            .arg("-o")
            .arg(&staged)
            .arg("-Oz")
            .args(edge::WASM_FEATURES),
    )?;
    let source = root().join("admin-ui");
    let dist = dist_dir();
    let _ = fs::remove_dir_all(&dist);
    fs::create_dir_all(dist.join("assets"))?;
    let wasm = publish(&stage.join("admin-ui_bg.wasm"), &dist, "admin-ui", "wasm")?;
    let glue = publish(&stage.join("admin-ui.js"), &dist, "admin-ui", "js")?;
    let css = publish(&source.join("style.css"), &dist, "style", "css")?;
    // The module that starts the app: a file, not an inline script, so the page's
    // Content-Security-Policy can forbid inline scripts.
    let boot_source = stage.join("boot.js");
    fs::write(
        &boot_source,
        format!(
            "import init from './{glue}';\ninit({{ module_or_path: '/admin/assets/{wasm}' }});\n"
        ),
    )?;
    let boot = publish(&boot_source, &dist, "boot", "js")?;
    let index = fs::read_to_string(source.join("index.html"))?
        .replace("{{style}}", &format!("/admin/assets/{css}"))
        .replace("{{boot}}", &format!("/admin/assets/{boot}"));
    fs::write(dist.join("index.html"), index)?;
    Ok(Built {
        wasm: dist.join("assets").join(wasm),
    })
}

/// Copies `file` into `dist/assets` as `<stem>-<hash>.<extension>` (and a `.gz` beside it);
/// returns the new name.
fn publish(file: &Path, dist: &Path, stem: &str, extension: &str) -> anyhow::Result<String> {
    use std::io::Write;
    let bytes = fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let digest = crate::tools::sha256_hex(&bytes);
    let name = format!("{stem}-{}.{extension}", &digest[..12]);
    let target = dist.join("assets").join(&name);
    fs::write(&target, &bytes)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    fs::write(dist.join("assets").join(format!("{name}.gz")), gz.finish()?)?;
    Ok(name)
}

/// Debian's chromium for the browser tests (never a browser a tool downloads itself), and a
/// Korean font (Debian's Nanum), without which the Korean pages' screenshots show empty boxes.
pub(crate) fn ensure_chromium() -> anyhow::Result<PathBuf> {
    if !on_path("chromium") {
        apt_install(&["chromium"])?;
    }
    if !Path::new("/usr/share/fonts/truetype/nanum").exists() {
        apt_install(&["fonts-nanum"])?;
    }
    let path = PathBuf::from("/usr/bin/chromium");
    if !path.exists() {
        bail!("chromium was installed but /usr/bin/chromium is missing");
    }
    Ok(path)
}

pub(crate) fn tests_dir() -> PathBuf {
    root().join("admin-ui/tests")
}

/// Runs the browser tests against an origin binary, on the given PostgreSQL.
pub(crate) fn run_browser_tests(
    origin_bin: &Path,
    admin_database_url: &str,
    pattern: Option<&str>,
) -> anyhow::Result<()> {
    let chromium = ensure_chromium()?;
    // playwright-core and axe-core, as pinned by the tests' package-lock.json.
    edge::ensure_npm_packages(&tests_dir(), "playwright-core")?;
    let mut node = Command::new("node");
    node.current_dir(tests_dir())
        .args(["--test", "--test-concurrency=1"]);
    if let Some(pattern) = pattern {
        node.arg(format!("--test-name-pattern={pattern}"));
    }
    exec(
        node.arg(".")
            .env("KURZ_ORIGIN_BIN", origin_bin)
            .env("KURZ_ADMIN_DIR", dist_dir())
            .env("KURZ_TEST_DATABASE_URL", admin_database_url)
            .env("KURZ_CHROMIUM", chromium)
            .env("KURZ_ARTIFACTS", root().join("artifacts/ui")),
    )
}

/// `cargo xtask test-ui`: the origin and the dashboard built, then only the browser tests, on
/// `KURZ_TEST_DATABASE_URL` or a throwaway cluster (as `cargo xtask test` makes).
pub(crate) fn run_only(pattern: Option<&str>) -> anyhow::Result<()> {
    crate::tools::ensure_postgres()?;
    exec(cargo().args(["build", "--locked", "-p", "origin"]))?;
    let built = build()?;
    let (_, gzip) = edge::sizes(&built.wasm)?;
    eprintln!("dashboard .wasm: {gzip} bytes gzipped");
    let origin = root().join("target/debug/origin");
    if let Ok(url) = std::env::var("KURZ_TEST_DATABASE_URL") {
        return run_browser_tests(&origin, &url, pattern);
    }
    let dir = tempfile::Builder::new()
        .prefix("kurz-test-pg-")
        .tempdir()
        .context("cannot make a folder for the test database")?;
    let cluster = devpg::Cluster::start(dir.path(), devpg::Durability::Throwaway)?;
    run_browser_tests(&origin, &cluster.url("postgres"), pattern)
}
