//! Finding and installing what the tasks need, and running commands loudly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// The repository root (the workspace of this xtask).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the workspace root")
        .to_path_buf()
}

/// Runs `command`, echoing it first; fails unless it exits 0.
pub(crate) fn exec(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// `cargo` with the toolchain that runs this xtask, at the repository root.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(root());
    command
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Installs Debian packages (as root, as on CI and these machines).
pub(crate) fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    static UPDATED: OnceLock<()> = OnceLock::new();
    let as_root = std::fs::metadata("/proc/self")
        .map(|meta| std::os::unix::fs::MetadataExt::uid(&meta) == 0)
        .unwrap_or(false);
    if !as_root {
        bail!(
            "{} missing; install with: sudo apt-get install -y {}",
            packages.join(", "),
            packages.join(" ")
        );
    }
    if UPDATED.get().is_none() {
        exec(Command::new("apt-get").args(["update", "-qq"]))?;
        let _ = UPDATED.set(());
    }
    exec(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages),
    )
}

/// PostgreSQL's server binaries (initdb, pg_ctl), installed from Debian if missing.
pub(crate) fn ensure_postgres() -> anyhow::Result<()> {
    if devpg::find_bin_dir().is_none() {
        eprintln!("PostgreSQL server binaries not found: installing them");
        apt_install(&["postgresql", "postgresql-contrib"])?;
        if devpg::find_bin_dir().is_none() {
            bail!("PostgreSQL was installed but initdb is still not found");
        }
    }
    Ok(())
}

/// The wasm32 target, which `shortlink` must build for.
pub(crate) fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root())
        .output()
        .context("cannot run rustup")?;
    if !String::from_utf8_lossy(&installed.stdout).contains("wasm32-unknown-unknown") {
        exec(
            Command::new("rustup")
                .args(["target", "add", "wasm32-unknown-unknown"])
                .current_dir(root()),
        )?;
    }
    Ok(())
}

/// Random bytes as hex, for generated secrets and names.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system provides randomness");
    hex::encode(buffer)
}

/// A random code scramble key.
pub(crate) fn random_key() -> [u8; 16] {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).expect("the operating system provides randomness");
    key
}

/// Creates `database` on the server at `admin_url` unless it exists.
pub(crate) fn create_database(admin_url: &str, database: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            // An identifier cannot be a bind parameter; callers pass fixed names.
            sqlx::query(&format!("CREATE DATABASE \"{database}\""))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;
        anyhow::Ok(())
    })
}

/// Waits until `url` answers 200, or fails after `seconds`.
pub(crate) fn wait_for_http(
    address: std::net::SocketAddr,
    path: &str,
    seconds: u64,
) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let answer = std::net::TcpStream::connect(address).and_then(|mut stream| {
            stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        });
        if answer.is_ok_and(|response| response.starts_with("HTTP/1.1 200")) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("http://{address}{path} did not answer 200 within {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits until something accepts connections on `address`, or fails after `seconds`.
pub(crate) fn wait_until_listening(
    address: std::net::SocketAddr,
    seconds: u64,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::net::TcpStream::connect(address).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("nothing listens on {address} after {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// A free loopback port for a process started next ([`devpg::free_port`]: below the
/// ephemeral range, so no connection takes it before the process binds it).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(devpg::free_port()?)
}

/// Bytes free to users other than root on the file system holding `path`.
pub(crate) fn free_space(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// SHA-256 of `bytes`, in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// schemathesis, the API fuzzer of `cargo xtask schemathesis`: pinned, from PyPI.
pub(crate) const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// schemathesis's `st`, installed once into a virtualenv beside the cargo-installed tools
/// (outside the clone, so a checkout stays clean and every clone shares it).
pub(crate) fn ensure_schemathesis() -> anyhow::Result<PathBuf> {
    let venv = crate::edge::cargo_bin_dir()
        .parent()
        .map_or_else(|| PathBuf::from("/root/.cargo"), Path::to_path_buf)
        .join("kurz-tools")
        .join(format!("schemathesis-{SCHEMATHESIS_VERSION}"));
    let st = venv.join("bin/st");
    let installed = Command::new(&st)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(SCHEMATHESIS_VERSION));
    if installed {
        return Ok(st);
    }
    let has_venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_venv {
        apt_install(&["python3", "python3-venv"])?;
    }
    eprintln!(
        "installing schemathesis {SCHEMATHESIS_VERSION} (once; it stays in {})",
        venv.display()
    );
    exec(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )?;
    exec(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
    ]))?;
    Ok(st)
}
