//! `cargo xtask dev`: PostgreSQL (kept under `.data/`), the origin with the dashboard, the edge
//! worker under `wrangler dev`, and the URLs to use them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use devpg::{Cluster, Durability};

use crate::tools::{self, cargo, create_database, ensure_postgres, exec, root};
use crate::{edge, ui};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Port of the origin (another free port is used if it is taken).
    #[arg(long, env = "KURZ_DEV_PORT", default_value_t = 8080)]
    port: u16,
    /// Port of the edge worker (another free port is used if it is taken).
    #[arg(long, env = "KURZ_DEV_EDGE_PORT", default_value_t = 8787)]
    edge_port: u16,
    /// Run the origin alone, without building and starting the edge worker.
    #[arg(long)]
    no_edge: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let data = root().join(".data");
    fs::create_dir_all(&data).context("cannot create .data")?;
    // Nobody else may list it; its secrets are files of the user's alone (0600), and the
    // cluster's data folder is PostgreSQL's (0700). Run as root, the cluster runs as
    // `postgres`, which must pass through this folder to its own: 0700 stopped initdb.
    fs::set_permissions(&data, fs::Permissions::from_mode(0o711))
        .context("cannot make .data private")?;
    let secrets = load_or_create_secrets(&data)?;

    // An existing server, if the user has one; else our own cluster under .data/postgres.
    let (database_url, _cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            ensure_postgres()?;
            let cluster = Cluster::start(&data.join("postgres"), Durability::Safe)?;
            create_database(&cluster.url("postgres"), "kurz")?;
            (cluster.url("kurz"), Some(cluster))
        }
    };

    exec(cargo().args(["build", "-p", "origin", "--bin", "origin"]))?;
    ui::build()?;
    let port = port_or_free(args.port)?;
    let origin_url = format!("http://127.0.0.1:{port}");
    // Prometheus' scrape address: a port of its own, as in production.
    let metrics_address = format!("127.0.0.1:{}", tools::free_port()?);
    let edge = if args.no_edge {
        None
    } else {
        edge::ensure_tools()?;
        Some(EdgePorts {
            port: port_or_free(args.edge_port)?,
            inspector: tools::free_port()?,
        })
    };
    // Short links are handed out on the edge's host when there is one.
    let public_url = edge.as_ref().map_or_else(
        || origin_url.clone(),
        |edge| format!("http://127.0.0.1:{}", edge.port),
    );

    // The origin writes the first API key there on a new database's first start (never to
    // its log, which is this terminal).
    let first_start_file = data.join("first-start.txt");
    let mut origin = Command::new(root().join("target/debug/origin"));
    origin
        .arg("serve")
        .env("DATABASE_URL", &database_url)
        .env("KURZ_BIND", format!("127.0.0.1:{port}"))
        .env("KURZ_PUBLIC_URL", &public_url)
        .env("KURZ_CODE_KEY", &secrets.code_key)
        .env("KURZ_ADMIN_DIR", ui::dist_dir())
        .env("KURZ_ADMIN_PASSWORD", &secrets.admin_password)
        .env("KURZ_FIRST_START_FILE", &first_start_file)
        .env("KURZ_METRICS_BIND", &metrics_address)
        // Local webhook receivers (a script on this machine) are the point of a dev setup.
        .env("KURZ_WEBHOOK_ALLOW_PRIVATE", "true");
    if edge.is_some() {
        origin
            .env("KURZ_EDGE_URL", &public_url)
            .env("KURZ_EDGE_SECRET", &secrets.edge_secret);
    }
    let mut children = vec![origin.spawn().context("cannot start the origin")?];
    let started = (|| {
        tools::wait_for_http(([127, 0, 0, 1], port).into(), "/ready", 60)?;
        if let Some(edge) = &edge {
            children.push(start_wrangler(edge, &origin_url, &secrets)?);
            // The first start compiles the worker: allow it minutes.
            tools::wait_until_listening(([127, 0, 0, 1], edge.port).into(), 600)?;
        }
        anyhow::Ok(())
    })();
    if let Err(err) = started {
        children.iter_mut().for_each(stop);
        return Err(err);
    }
    let edge_line = if edge.is_some() {
        format!(
            "  edge        {public_url}   (wrangler dev: KV and the click queue in .wrangler/)\n"
        )
    } else {
        String::new()
    };
    eprintln!(
        "\n  kurz is running.\n\n  dashboard   {origin_url}/admin   (user admin; password: KURZ_ADMIN_PASSWORD in .data/secrets.env)\n{edge_line}  origin      {origin_url}\n  API         {origin_url}/api/v1/links  (Authorization: Bearer <key>), reference at {origin_url}/api/docs\n  CLI         KURZ_URL={origin_url} KURZ_API_KEY=<key> cargo run -q -p kurz-cli -- list   (kurz create|list|stats|import|export)\n  health      {origin_url}/health, {origin_url}/ready\n  metrics     http://{metrics_address}/metrics   (Prometheus text format)\n  database    {database_url}\n\n  Short links are served at {public_url}/<code>.\n  The first start wrote an API key to {first_start}; more with:\n    DATABASE_URL={database_url} target/debug/origin create-api-key --name me\n\n  Ctrl-C stops everything.\n",
        first_start = first_start_file.display()
    );
    wait_for_ctrl_c_or_exit(&mut children)
}

struct EdgePorts {
    port: u16,
    inspector: u16,
}

fn port_or_free(wanted: u16) -> anyhow::Result<u16> {
    if std::net::TcpListener::bind(("127.0.0.1", wanted)).is_ok() {
        return Ok(wanted);
    }
    let port = tools::free_port()?;
    eprintln!("port {wanted} is taken; using {port}");
    Ok(port)
}

/// `wrangler dev` runs the build command of wrangler.toml (worker-build), then serves the
/// worker in workerd, rebuilding when `edge/src` or `shortlink/src` change.
fn start_wrangler(edge: &EdgePorts, origin_url: &str, secrets: &Secrets) -> anyhow::Result<Child> {
    // wrangler reads local secrets from .dev.vars beside wrangler.toml (ignored by git).
    write_private(
        &root().join(".dev.vars"),
        &format!(
            "# Written by `cargo xtask dev` from .data/secrets.env.\nEDGE_SECRET={}\n",
            secrets.edge_secret
        ),
    )?;
    let path = std::env::join_paths(
        std::iter::once(edge::cargo_bin_dir()).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )?;
    edge::offline_env(&mut Command::new(edge::npm_bin("wrangler")))
        .current_dir(root())
        .env("PATH", path)
        .args([
            "dev",
            "--local",
            "--ip",
            "127.0.0.1",
            "--port",
            &edge.port.to_string(),
            "--inspector-port",
            &edge.inspector.to_string(),
            "--show-interactive-dev-session=false",
            "--var",
            &format!("ORIGIN_URL:{origin_url}"),
        ])
        .spawn()
        .context("cannot start wrangler dev")
}

struct Secrets {
    code_key: String,
    edge_secret: String,
    admin_password: String,
}

/// Local secrets live in `.data/secrets.env` (ignored by git), made on first run and shown once.
fn load_or_create_secrets(data: &Path) -> anyhow::Result<Secrets> {
    let path = data.join("secrets.env");
    if !path.exists() {
        write_private(
            &path,
            "# Generated by `cargo xtask dev` on first run. Keep it private.\n",
        )?;
    }
    let mut text = fs::read_to_string(&path)?;
    // Each secret is made the first time it is needed, so older folders gain new ones.
    let mut secret = |name: &str, bytes: usize| -> anyhow::Result<String> {
        let prefix = format!("{name}=");
        if let Some(value) = text.lines().find_map(|line| line.strip_prefix(&prefix)) {
            return Ok(value.to_owned());
        }
        let value = tools::random_hex(bytes);
        text.push_str(&format!("{prefix}{value}\n"));
        write_private(&path, &text)?;
        eprintln!("generated {name} into {}: {value}", path.display());
        Ok(value)
    };
    Ok(Secrets {
        code_key: secret("KURZ_CODE_KEY", 16)?,
        edge_secret: secret("KURZ_EDGE_SECRET", 32)?,
        // The first dashboard user's; later changes: `origin create-admin --reset`.
        admin_password: secret("KURZ_ADMIN_PASSWORD", 12)?,
    })
}

/// Writes a file of secrets only its owner may read or write (mode 0600, also when it was
/// made before with a looser one).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn wait_for_ctrl_c_or_exit(children: &mut [Child]) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("cannot handle Ctrl-C")?;
    loop {
        if rx.recv_timeout(Duration::from_millis(250)).is_ok() {
            eprintln!("\nstopping...");
            children.iter_mut().rev().for_each(stop);
            return Ok(());
        }
        for child in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                let id = child.id();
                children.iter_mut().rev().for_each(stop);
                bail!("process {id} exited ({status}); stopped the rest");
            }
        }
    }
}

/// Asks the origin to finish gracefully (SIGTERM: its in-flight requests complete, then it
/// stores the clicks they queued), then makes sure it is gone. It is given 25 s: the origin's
/// shutdown may take its grace (`KURZ_SHUTDOWN_GRACE_SECS`, 10 s), the clicks' drain (5 s)
/// and the store after them.
pub(crate) fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    let _ = child.wait();
}
