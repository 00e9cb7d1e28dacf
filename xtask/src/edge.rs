//! The edge worker: its tools (installed once, outside the clone) and its build.
//!
//! - `wasm-bindgen` and `worker-build` are cargo-installed into cargo's own bin folder, so a
//!   fresh clone (CI) finds them again; an exact version already there is reused.
//! - wrangler, miniflare and binaryen's `wasm-opt` come from npm, pinned by
//!   `edge/package-lock.json`; npm's own cache makes a second `npm ci` quick.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::tools::{apt_install, exec, on_path, root};

/// Must equal the `wasm-bindgen` crate version in Cargo.lock.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
/// Must match the `worker` crate version.
const WORKER_BUILD_VERSION: &str = "0.8.7";

/// The built worker, as `wrangler` and miniflare load it.
pub(crate) struct Worker {
    pub(crate) wasm: PathBuf,
}

pub(crate) fn edge_dir() -> PathBuf {
    root().join("edge")
}

/// A program from the edge's npm packages.
pub(crate) fn npm_bin(name: &str) -> PathBuf {
    edge_dir().join("node_modules/.bin").join(name)
}

/// Installs whatever the worker build and its tests need that is not there yet.
pub(crate) fn ensure_tools() -> anyhow::Result<()> {
    if !on_path("node") || !on_path("npm") {
        apt_install(&["nodejs", "npm"])?;
    }
    ensure_cargo_tool(
        "wasm-bindgen",
        "wasm-bindgen-cli",
        WASM_BINDGEN_VERSION,
        false,
    )?;
    // worker-build's lock file resolves on this registry; wasm-bindgen-cli's does not.
    ensure_cargo_tool("worker-build", "worker-build", WORKER_BUILD_VERSION, true)?;
    ensure_npm_packages(&edge_dir(), "wrangler")
}

pub(crate) fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

fn cargo_tool(binary: &str) -> PathBuf {
    cargo_bin_dir().join(binary)
}

fn ensure_cargo_tool(
    binary: &str,
    package: &str,
    version: &str,
    locked: bool,
) -> anyhow::Result<()> {
    let path = cargo_tool(binary);
    let installed = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(version));
    if installed {
        return Ok(());
    }
    eprintln!(
        "installing {package} {version} (once; it stays in {})",
        cargo_bin_dir().display()
    );
    // Outside the workspace, so its rust-toolchain.toml and config do not apply.
    let mut install = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    install
        .current_dir(std::env::temp_dir())
        .args(["install", package, "--version", version]);
    if locked {
        install.arg("--locked");
    }
    exec(&mut install)
}

/// `npm ci` in `dir` unless its `node_modules` already matches its `package-lock.json`
/// (`bin` is a program the packages install, to tell a complete install).
pub(crate) fn ensure_npm_packages(dir: &Path, bin: &str) -> anyhow::Result<()> {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("{}/package-lock.json is missing", dir.display()))?;
    // npm keeps a copy of the lock it installed from; equal content means nothing to do.
    let installed = std::fs::read(dir.join("node_modules/.kurz-installed-lock")).ok();
    if installed.as_deref() == Some(lock.as_slice())
        && dir.join("node_modules/.bin").join(bin).exists()
    {
        return Ok(());
    }
    exec(Command::new("npm").current_dir(dir).args([
        "ci",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]))?;
    std::fs::write(dir.join("node_modules/.kurz-installed-lock"), lock)?;
    Ok(())
}

/// Environment that keeps worker-build and wrangler offline and quiet.
pub(crate) fn offline_env(command: &mut Command) -> &mut Command {
    command
        .env("WASM_BINDGEN_BIN", cargo_tool("wasm-bindgen"))
        .env("WASM_OPT_BIN", npm_bin("wasm-opt"))
        .env(
            "ESBUILD_BIN",
            edge_dir().join("node_modules/@esbuild/linux-x64/bin/esbuild"),
        )
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
}

/// Builds `edge/build/` (index.js and index_bg.wasm) with the size-optimised profile.
pub(crate) fn build_worker() -> anyhow::Result<Worker> {
    build_worker_in(&edge_dir())
}

/// Builds the bench's constant-302 Rust worker into `edge/bench/floor/build/`, as the edge is.
pub(crate) fn build_floor_worker() -> anyhow::Result<Worker> {
    build_worker_in(&edge_dir().join("bench/floor"))
}

fn build_worker_in(crate_dir: &Path) -> anyhow::Result<Worker> {
    ensure_tools()?;
    exec(
        offline_env(&mut Command::new(cargo_tool("worker-build")))
            .current_dir(crate_dir)
            .args(["--profile", "wasm-release"]),
    )?;
    let wasm = crate_dir.join("build/index_bg.wasm");
    if !wasm.exists() {
        bail!("worker-build finished but {} is missing", wasm.display());
    }
    strip_names(&wasm)?;
    Ok(Worker { wasm })
}

/// worker-build always keeps the function names (for stack traces); a deployment does not
/// need them and they are a third of the download. The features are the ones the Rust
/// wasm32 target emits: enabling more (`--all-features`) makes workerd refuse the module.
fn strip_names(wasm: &Path) -> anyhow::Result<()> {
    exec(
        Command::new(npm_bin("wasm-opt"))
            .arg(wasm)
            .args(["-o"])
            .arg(wasm)
            .args(["--strip-debug", "--strip-producers"])
            .args(WASM_FEATURES),
    )
}

/// The wasm features the Rust wasm32 target emits, for binaryen's `wasm-opt`: enabling more
/// (`--all-features`) makes workerd refuse the module.
pub(crate) const WASM_FEATURES: [&str; 6] = [
    "--enable-mutable-globals",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-bulk-memory",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// Raw and gzip sizes of a file, in bytes.
pub(crate) fn sizes(path: &Path) -> anyhow::Result<(usize, usize)> {
    use std::io::Write;
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw)?;
    Ok((raw.len(), gz.finish()?.len()))
}
