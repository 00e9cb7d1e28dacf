//! A throwaway PostgreSQL cluster for local runs, tests and benchmarks.
//!
//! It runs the server binaries of the machine (`initdb`, `pg_ctl`) on a folder of the caller's
//! choosing and a free loopback port. PostgreSQL refuses to run as root and CI runs as root, so
//! when we are root the binaries run as the `postgres` system user (which Debian's package
//! creates) and the folder is handed to that user.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why a cluster could not be made, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under \
         /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql) or set \
         DATABASE_URL to use a running server"
    )]
    NotInstalled,
    #[error("running as root, but there is no `postgres` system user to run PostgreSQL as")]
    NoPostgresUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} failed ({status}):\n{output}")]
    Command {
        what: String,
        status: String,
        output: String,
    },
}

/// How the server trades durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Crash-safe defaults, for data kept between runs (`cargo xtask dev`).
    Safe,
    /// fsync and full-page writes off: for tests and benchmarks whose data is thrown away.
    Throwaway,
}

/// A running cluster; dropping it stops the server (the data folder stays).
#[derive(Debug)]
pub struct Cluster {
    /// Folder holding `data/` (the cluster), the server log and the Unix socket.
    dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    /// The user and group the server runs as when we are root.
    run_as: Option<(u32, u32)>,
    /// The server's buffer pool (`shared_buffers`) in MiB; PostgreSQL's default (128 MiB)
    /// when `None`.
    shared_buffers_mib: Option<u32>,
}

impl Cluster {
    /// Starts a cluster in `dir`, creating it first if `dir` holds none yet, with
    /// PostgreSQL's default buffer pool (128 MiB): enough for tests and a local run.
    pub fn start(dir: &Path, durability: Durability) -> Result<Self, Error> {
        Self::start_with_buffers(dir, durability, None)
    }

    /// [`Cluster::start`] with a buffer pool (`shared_buffers`) of `shared_buffers_mib` MiB:
    /// for benchmarks, which should measure a server sized for its data as a deployment's is,
    /// not one that reads most pages from the kernel's cache.
    pub fn start_with_buffers(
        dir: &Path,
        durability: Durability,
        shared_buffers_mib: Option<u32>,
    ) -> Result<Self, Error> {
        let bin_dir = find_bin_dir().ok_or(Error::NotInstalled)?;
        let run_as = if running_as_root()? {
            Some(postgres_user()?)
        } else {
            None
        };
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io_err(format!("resolving {}", dir.display())))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(io_err(format!("handing {} to postgres", dir.display())))?;
        }
        let port = free_port()?;
        let cluster = Self {
            dir,
            bin_dir,
            port,
            run_as,
            shared_buffers_mib,
        };
        if !cluster.data_dir().join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        cluster.pg_ctl_start(durability)?;
        Ok(cluster)
    }

    /// Starts a streaming replica of `primary` in `dir` (which must hold no cluster yet): a
    /// base backup of it (`pg_basebackup -R`, which also writes the standby's settings),
    /// served on a port of its own. It replays what the primary writes moments later, answers
    /// reads, and refuses writes. The primary's `pg_hba.conf` must let `postgres` connect for
    /// replication from 127.0.0.1, as [`Cluster::start`]'s `initdb` does (trust).
    pub fn start_replica(
        dir: &Path,
        primary: &Cluster,
        durability: Durability,
    ) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io_err(format!("resolving {}", dir.display())))?;
        if let Some((uid, gid)) = primary.run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(io_err(format!("handing {} to postgres", dir.display())))?;
        }
        let replica = Self {
            dir,
            bin_dir: primary.bin_dir.clone(),
            port: free_port()?,
            run_as: primary.run_as,
            shared_buffers_mib: primary.shared_buffers_mib,
        };
        let data = replica.data_dir();
        let port = primary.port.to_string();
        replica.run(
            "pg_basebackup",
            replica
                .command("pg_basebackup")
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
                // A fast checkpoint: the default spreads it over minutes.
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-D"])
                .arg(&data),
        )?;
        replica.pg_ctl_start(durability)?;
        Ok(replica)
    }

    /// Stops the server at once, as if it crashed (immediate shutdown: no checkpoint, open
    /// connections cut). [`Cluster::restart`] starts it again (it recovers first).
    pub fn kill(&self) -> Result<(), Error> {
        let data = self.data_dir();
        self.run(
            "stopping PostgreSQL at once",
            self.command("pg_ctl")
                .args(["stop", "-w", "-m", "immediate", "-D"])
                .arg(&data),
        )
        .map(drop)
    }

    /// The connection URL of database `database`, as the superuser `postgres` (trust auth on
    /// loopback only).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server now (fast shutdown: open connections are closed).
    pub fn stop(&self) -> Result<(), Error> {
        let data = self.data_dir();
        self.run(
            "stopping PostgreSQL",
            self.command("pg_ctl")
                .args(["stop", "-w", "-m", "fast", "-D"])
                .arg(&data),
        )
        .map(drop)
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn restart(&self, durability: Durability) -> Result<(), Error> {
        self.pg_ctl_start(durability)
    }

    /// Whether the server is up (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.data_dir())
            .output()
            .is_ok_and(|output| output.status.success())
    }

    /// The folder the cluster writes to: its data, its log and its socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last `lines` lines of the server's log: what it said before it stopped, if it did.
    /// Clients it turned away while starting, recovering or stopping are left out: after a
    /// crash they are most of the log, and they hide the line that says why.
    pub fn log_tail(&self, lines: usize) -> String {
        const TURNED_AWAY: [&str; 3] = [
            "the database system is not yet accepting connections",
            "Consistent recovery state has not been yet reached",
            "the database system is in recovery mode",
        ];
        let text = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| !TURNED_AWAY.iter().any(|noise| line.contains(noise)))
            .collect();
        kept[kept.len().saturating_sub(lines)..].join("\n")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn initdb(&self) -> Result<(), Error> {
        let data = self.data_dir();
        self.run(
            "initdb",
            self.command("initdb")
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
        )
        .map(drop)
    }

    fn pg_ctl_start(&self, durability: Durability) -> Result<(), Error> {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=300",
            self.port,
            self.dir.display()
        );
        if durability == Durability::Throwaway {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        if let Some(mib) = self.shared_buffers_mib {
            options.push_str(&format!(" -c shared_buffers={mib}MB"));
        }
        let data = self.data_dir();
        let log = self.dir.join("server.log");
        let result = self.run(
            "starting PostgreSQL",
            self.command("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options]),
        );
        result.map(drop).map_err(|err| match err {
            Error::Command {
                what,
                status,
                output,
            } => Error::Command {
                what,
                status,
                output: format!("{output}\n--- {} ---\n{}", log.display(), self.log_tail(20)),
            },
            other => other,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program_path(&self.bin_dir, program));
        command.current_dir(&self.dir);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn run(&self, what: &str, command: &mut Command) -> Result<Output, Error> {
        let output = command.output().map_err(io_err(what.to_owned()))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(Error::Command {
                what: what.to_owned(),
                status: output.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            // Nothing useful can be done with a failure while dropping; the next start of the
            // same folder recovers from a server that did not stop.
            let _ = self.stop();
        }
    }
}

/// Where `initdb` and `pg_ctl` live: `PATH` first, then Debian's versioned folders (newest).
pub fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        versions.sort_by_key(|bin| {
            bin.parent()
                .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        versions.pop()
    })
}

/// `program` in `bin_dir`, or beside the file `bin_dir/pg_ctl` links to: a folder on PATH may
/// hold links to a few of the server's programs only (e.g. `/usr/local/bin/pg_ctl` to
/// `/usr/lib/postgresql/15/bin/pg_ctl`), not `pg_basebackup`.
fn program_path(bin_dir: &Path, program: &str) -> PathBuf {
    let path = bin_dir.join(program);
    if path.is_file() {
        return path;
    }
    fs::canonicalize(bin_dir.join("pg_ctl"))
        .ok()
        .and_then(|pg_ctl| Some(pg_ctl.parent()?.join(program)))
        .filter(|beside| beside.is_file())
        .unwrap_or(path)
}

fn running_as_root() -> Result<bool, Error> {
    // `/proc/self` belongs to the effective user of the process reading it.
    let meta = fs::metadata("/proc/self").map_err(io_err("reading /proc/self".to_owned()))?;
    Ok(meta.uid() == 0)
}

fn postgres_user() -> Result<(u32, u32), Error> {
    let passwd =
        fs::read_to_string("/etc/passwd").map_err(io_err("reading /etc/passwd".to_owned()))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != "postgres" {
                return None;
            }
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .ok_or(Error::NoPostgresUser)
}

/// A free loopback port for a process started next (a cluster, an origin), found below Linux's
/// default ephemeral range (32768–60999). A port of that range, found free and released, may
/// be taken before the process binds it by any outgoing connection of the machine (as its
/// source port) or any `bind(0)`; one below it only by an explicit bind.
pub fn free_port() -> Result<u16, Error> {
    for _ in 0..100 {
        let mut bytes = [0u8; 2];
        getrandom::fill(&mut bytes).map_err(|err| Error::Io {
            what: "finding a free port".to_owned(),
            source: io::Error::other(err.to_string()),
        })?;
        let port = 20_000 + u16::from_le_bytes(bytes) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(io_err("finding a free port".to_owned()))?;
    let port = listener
        .local_addr()
        .map_err(io_err("finding a free port".to_owned()))?
        .port();
    Ok(port)
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_says_whether_it_runs_and_what_it_logged() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let cluster = Cluster::start(dir.path(), Durability::Throwaway).expect("start PostgreSQL");
        assert!(cluster.is_running());
        assert!(
            cluster.log_tail(50).contains("ready to accept connections"),
            "{}",
            cluster.log_tail(50)
        );

        cluster.kill().expect("stop PostgreSQL at once");
        assert!(!cluster.is_running());
        // Clients turned away while it was going down come after the line that says so.
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("server.log"))
            .expect("the server's log");
        for _ in 0..5 {
            io::Write::write_all(
                &mut log,
                b"FATAL:  the database system is not yet accepting connections\n\
                  DETAIL:  Consistent recovery state has not been yet reached.\n",
            )
            .expect("append to the log");
        }
        let tail = cluster.log_tail(3);
        assert_eq!(tail.lines().count(), 3, "{tail}");
        assert!(
            tail.lines()
                .last()
                .is_some_and(|line| line.contains("database system is shut down")),
            "{tail}"
        );
    }
}
