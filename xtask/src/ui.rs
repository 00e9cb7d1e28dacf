//! The dashboard (`admin-ui`): its release build into `target/admin-ui`, and its browser tests.
//!
//! The build is cargo (wasm32, profile `ui-release`, linked with `--emit-relocs`), then
//! wasm-split, which cuts the module at the dashboard's `#[lazy]` functions (the pages few
//! people open) into a main module and chunks fetched on first use, then wasm-bindgen
//! (`--target web`) on the main module and binaryen's `wasm-opt` on every module. The files
//! go into one folder named after a hash of their contents (they name each other, so they are
//! renamed together), each gzipped beside itself, so the origin can cache `/admin/assets/*`
//! forever while `index.html` (revalidated) picks up a new build.

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
    /// The main module: what every page load fetches.
    pub(crate) wasm: PathBuf,
    /// The chunks, each fetched the first time one of its pages is opened.
    pub(crate) chunks: Vec<PathBuf>,
    /// Each split (a page, or the link form: `admin-ui/src/pages/mod.rs`) and the chunks its
    /// first showing fetches.
    pub(crate) splits: std::collections::BTreeMap<String, Vec<PathBuf>>,
}

/// The wasm-bindgen glue; the split's link module imports `initSync` from it.
const GLUE: &str = "admin-ui.js";
/// The link module the split writes: the loaders of the chunks, imported by the main module.
const LINK: &str = "__wasm_split.js";

/// Builds the dashboard into [`dist_dir`].
pub(crate) fn build() -> anyhow::Result<Built> {
    ensure_wasm_target()?;
    edge::ensure_tools()?;
    // The relocations are what lets wasm-split move functions and data between modules.
    // These flags replace `.cargo/config.toml`'s for this build, so they repeat its
    // `--cfg erase_components` (see there).
    exec(
        cargo()
            .args([
                "build",
                "--locked",
                "-p",
                "admin-ui",
                "--target",
                "wasm32-unknown-unknown",
                "--profile",
                "ui-release",
            ])
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                ["--cfg", "erase_components", "-C", "link-arg=--emit-relocs"].join("\x1f"),
            ),
    )?;
    let stage = root().join("target/admin-ui-stage");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage)?;
    let input = fs::read(root().join("target/wasm32-unknown-unknown/ui-release/admin-ui.wasm"))
        .context("cannot read the dashboard's .wasm")?;
    let main_split = stage.join("main.wasm");
    let split = wasm_split_cli_support::transform({
        let mut options = wasm_split_cli_support::Options::new(&input);
        options.output_dir = &stage;
        options.main_out_path = &main_split;
        options.main_module = "./admin-ui.js";
        options.link_name = "./__wasm_split.js";
        options
    })
    .map_err(|error| anyhow::anyhow!("wasm-split failed: {error:?}"))?;
    exec(
        Command::new(edge::cargo_bin_dir().join("wasm-bindgen"))
            .args([
                "--target",
                "web",
                "--no-typescript",
                "--remove-name-section",
                "--remove-producers-section",
                // The chunks call the main module through its function table: keep it exported.
                "--keep-lld-exports",
                "--out-name",
                "admin-ui",
                "--out-dir",
            ])
            .arg(&stage)
            .arg(&main_split),
    )?;
    fs::remove_file(&main_split)?;
    // binaryen's size optimiser (from the edge's npm packages) on the main module, which
    // every page load fetches (the table it shares with the chunks is exported, so wasm-opt
    // keeps its layout). Not on the chunks: a hundred runs would take minutes for a few KB;
    // their custom sections (function names) are dropped instead.
    for chunk in &split.split_modules {
        let bytes = fs::read(chunk)?;
        fs::write(chunk, without_custom_sections(&bytes)?)?;
    }
    let main = stage.join("admin-ui_bg.wasm");
    exec(
        Command::new(edge::npm_bin("wasm-opt"))
            .arg(&main)
            .arg("-o")
            .arg(&main)
            .arg("-Oz")
            .args(edge::WASM_FEATURES),
    )?;
    let source = root().join("admin-ui");
    let dist = dist_dir();
    let _ = fs::remove_dir_all(&dist);
    fs::create_dir_all(dist.join("assets"))?;
    let app = publish_folder(&stage, &dist, "app")?;
    let css = publish(&source.join("style.css"), &dist, "style", "css")?;
    // The module that starts the app: a file, not an inline script, so the page's
    // Content-Security-Policy can forbid inline scripts.
    let boot_source = root().join("target/admin-ui-boot.js");
    fs::write(
        &boot_source,
        format!(
            "import init from './{app}/{GLUE}';\ninit({{ module_or_path: '/admin/assets/{app}/admin-ui_bg.wasm' }});\n"
        ),
    )?;
    let boot = publish(&boot_source, &dist, "boot", "js")?;
    let index = fs::read_to_string(source.join("index.html"))?
        .replace("{{style}}", &format!("/admin/assets/{css}"))
        .replace("{{boot}}", &format!("/admin/assets/{boot}"));
    fs::write(dist.join("index.html"), index)?;
    let folder = dist.join("assets").join(&app);
    let chunks = split
        .split_modules
        .iter()
        .filter_map(|path| path.file_name())
        .map(|name| folder.join(name))
        .collect();
    let splits = split
        .prefetch_map
        .into_iter()
        .map(|(name, files)| {
            let files = files
                .iter()
                .map(|stem| folder.join(format!("{stem}.wasm")))
                .collect();
            (name, files)
        })
        .collect();
    Ok(Built {
        wasm: folder.join("admin-ui_bg.wasm"),
        chunks,
        splits,
    })
}

/// Copies every file of `stage` into `dist/assets/<stem>-<hash>/` (and a `.gz` beside each),
/// the hash taken over all of them; returns the folder's name.
fn publish_folder(stage: &Path, dist: &Path, stem: &str) -> anyhow::Result<String> {
    let mut files = Vec::new();
    for entry in fs::read_dir(stage)? {
        let path = entry?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    for needed in [GLUE, LINK, "admin-ui_bg.wasm"] {
        if !files.iter().any(|file| file.ends_with(needed)) {
            bail!("the dashboard's build made no {needed}");
        }
    }
    let mut all = Vec::new();
    for file in &files {
        all.extend_from_slice(file.file_name().unwrap_or_default().as_encoded_bytes());
        all.extend_from_slice(&fs::read(file)?);
    }
    let digest = crate::tools::sha256_hex(&all);
    let name = format!("{stem}-{}", &digest[..12]);
    let folder = dist.join("assets").join(&name);
    fs::create_dir_all(&folder)?;
    for file in &files {
        let bytes = fs::read(file)?;
        let target = folder.join(file.file_name().context("a file without a name")?);
        fs::write(&target, &bytes)?;
        fs::write(with_gz(&target), gzip(&bytes)?)?;
    }
    Ok(name)
}

/// A wasm module without its custom sections (names, producers): what the browser does not
/// need. The module format: an 8-byte header, then sections of an id byte, a LEB128 size and
/// the contents; custom sections have id 0.
fn without_custom_sections(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    let Some((header, mut rest)) = module.split_at_checked(8) else {
        bail!("not a wasm module");
    };
    let mut out = header.to_vec();
    while let Some((&id, after_id)) = rest.split_first() {
        let mut size: usize = 0;
        let mut length = 0;
        for (i, byte) in after_id.iter().enumerate().take(5) {
            size |= usize::from(byte & 0x7f) << (7 * i);
            length = i + 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let end = length + size;
        if end > after_id.len() {
            bail!("a wasm section runs past the module's end");
        }
        if id != 0 {
            out.push(id);
            out.extend_from_slice(&after_id[..end]);
        }
        rest = &after_id[end..];
    }
    Ok(out)
}

fn with_gz(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes)?;
    Ok(gz.finish()?)
}

/// Copies `file` into `dist/assets` as `<stem>-<hash>.<extension>` (and a `.gz` beside it);
/// returns the new name.
fn publish(file: &Path, dist: &Path, stem: &str, extension: &str) -> anyhow::Result<String> {
    let bytes = fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let digest = crate::tools::sha256_hex(&bytes);
    let name = format!("{stem}-{}.{extension}", &digest[..12]);
    let target = dist.join("assets").join(&name);
    fs::write(&target, &bytes)?;
    fs::write(with_gz(&target), gzip(&bytes)?)?;
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
