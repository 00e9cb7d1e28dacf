//! `kurz`, the command-line client of the kurz API, for scripts: create, list, import,
//! export and stats, with an API key from the environment.
//!
//! [`run`] is the whole program with its inputs passed in (arguments, environment, output
//! streams), so that tests run it in-process against a real origin; `main.rs` only hands it
//! the process's own.

mod client;
mod commands;
mod error;

use std::ffi::OsString;
use std::fmt;
use std::io::Write;

use clap::{Parser, Subcommand};

pub use client::Client;
pub use error::Error;

/// The variable holding the API key. The key is read only from the environment: an argument
/// would show in `ps` and in shell history.
pub const KEY_VARIABLE: &str = "KURZ_API_KEY";
/// The variable holding the origin's URL (`--url` overrides it).
pub const URL_VARIABLE: &str = "KURZ_URL";
/// The origin of `cargo xtask dev`, when neither `--url` nor [`URL_VARIABLE`] says another.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "kurz",
    version,
    about = "A command-line client of the kurz API, for scripts.",
    after_help = "Environment:\n  KURZ_API_KEY  the API key (required; never pass it as an argument)\n  KURZ_URL      the origin, e.g. https://kurz.example.com (default: http://127.0.0.1:8080)\n\nExit codes: 0 done, 1 a request or a row failed, 2 wrong usage or configuration."
)]
pub struct Cli {
    /// The origin's URL; overrides KURZ_URL.
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a link and print its short URL.
    Create(commands::create::Args),
    /// List links: code, short URL and destination, one per line, newest first.
    List(commands::list::Args),
    /// Show a link's statistics (or the workspace's, without a code).
    Stats(commands::stats::Args),
    /// Import links from a file (another shortener's export, a kurz export, or a CSV).
    Import(commands::import::Args),
    /// Export every link of the workspace (JSON lines or CSV), streamed.
    Export(commands::export::Args),
}

/// What the program reads from its environment.
#[derive(Clone, Default)]
pub struct Environment {
    /// [`KEY_VARIABLE`].
    pub api_key: Option<String>,
    /// [`URL_VARIABLE`].
    pub url: Option<String>,
}

impl Environment {
    /// The process's own environment. An empty variable counts as unset.
    pub fn from_process() -> Self {
        let read = |name: &str| {
            std::env::var_os(name)
                .map(|value| value.to_string_lossy().into_owned())
                .filter(|value| !value.is_empty())
        };
        Self {
            api_key: read(KEY_VARIABLE),
            url: read(URL_VARIABLE),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("api_key", &self.api_key.as_ref().map(|_| "(set)"))
            .field("url", &self.url)
            .finish()
    }
}

/// How the program ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Success,
    /// A request failed, or some rows of an import did.
    Failure,
    /// The command line or the configuration is wrong; nothing was sent.
    Usage,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(match exit {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
        })
    }
}

/// Runs one command line (`args` starting with the program's name) and says how it ended.
/// Results go to `stdout`; errors, progress and help for mistakes to `stderr`.
pub async fn run<I, T>(
    args: I,
    env: &Environment,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` are answers, not mistakes.
            // Nothing is left to tell a failed write to.
            return if err.use_stderr() {
                write!(stderr, "{}", err.render()).ok();
                Exit::Usage
            } else {
                write!(stdout, "{}", err.render()).ok();
                Exit::Success
            };
        }
    };
    match execute(cli, env, stdout, stderr).await {
        Ok(exit) => exit,
        Err(err) => {
            writeln!(stderr, "error: {err}").ok();
            err.exit()
        }
    }
}

async fn execute(
    cli: Cli,
    env: &Environment,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<Exit, Error> {
    let client = client_for(cli.url.as_deref(), env)?;
    match cli.command {
        Command::Create(args) => commands::create::run(&client, args, stdout).await,
        Command::List(args) => commands::list::run(&client, args, stdout, stderr).await,
        Command::Stats(args) => commands::stats::run(&client, args, stdout).await,
        Command::Import(args) => commands::import::run(&client, args, stderr).await,
        Command::Export(args) => commands::export::run(&client, args, stdout).await,
    }
}

fn client_for(url: Option<&str>, env: &Environment) -> Result<Client, Error> {
    let key = env.api_key.clone().ok_or_else(|| {
        Error::Config(format!(
            "{KEY_VARIABLE} is not set: export {KEY_VARIABLE}=<an API key of your workspace> \
             (make one in the dashboard, or with `origin create-api-key`)"
        ))
    })?;
    let url = url.or(env.url.as_deref()).unwrap_or(DEFAULT_URL);
    Client::new(url, key)
}
