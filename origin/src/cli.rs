//! The `origin` binary's commands: `serve` (with its logging and the signals that stop it)
//! and the one-off commands, which log to stderr so their stdout holds only what they show.

use tokio::net::TcpListener;

use shortlink::workspace::Scope;

use crate::config::{Cli, Command, DatabaseConfig, LogFormat};
use crate::{accounts, auth, db, keys, rate_limit, replay_clicks, serve};

/// Entry point of the binary.
pub async fn run_cli(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => {
            init_logging(config.log_format);
            let listener = TcpListener::bind(config.bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
            serve(&config, listener, shutdown_signal()).await
        }
        Command::CreateApiKey {
            database,
            name,
            workspace,
            scopes,
        } => {
            init_command_logging();
            create_api_key(&database, &name, workspace, scopes).await
        }
        Command::CreateAdmin {
            database,
            code_key,
            username,
            reset,
            password,
        } => {
            init_command_logging();
            let pool = db::pool(&database)?;
            db::require_this_release(&pool).await?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(accounts::random_password);
            let existed =
                accounts::set_admin(&pool, &code_key, &username, &password, reset).await?;
            let what = if existed {
                "Set a new password for"
            } else {
                "Created"
            };
            if generated {
                println!(
                    "{what} the dashboard user {username:?}. Its password is shown only now:\n\n  {password}\n"
                );
            } else {
                println!(
                    "{what} the dashboard user {username:?} with the password in KURZ_ADMIN_PASSWORD."
                );
            }
            Ok(())
        }
        Command::SetRateLimits {
            database,
            workspace,
            api,
            create,
            stats,
            clear,
        } => {
            init_command_logging();
            let pool = db::pool(&database)?;
            db::require_this_release(&pool).await?;
            let set = rate_limit::WorkspaceLimits { api, create, stats };
            let now = rate_limit::set_workspace_limits(&pool, workspace, set, clear).await?;
            let show = |figure: Option<u32>| {
                figure.map_or_else(|| "the deployment's".to_owned(), |n| format!("{n}/min"))
            };
            println!(
                "Workspace {workspace}'s rate limits per caller: api {}, create {}, stats {} \
                 (in force on every instance within 10 s).",
                show(now.api),
                show(now.create),
                show(now.stats)
            );
            Ok(())
        }
        Command::ReplayParkedClicks {
            edge_url,
            edge_secret,
        } => {
            init_command_logging();
            let done = replay_clicks::replay_parked_clicks(
                &edge_url,
                &edge_secret,
                replay_clicks::Pacing::PRODUCTION,
                |answer| {
                    println!(
                        "replayed {} parked messages ({} clicks), {} remain",
                        answer.replayed, answer.clicks, answer.remaining
                    );
                },
            )
            .await?;
            println!(
                "done: {} parked messages ({} clicks) back on the click queue in {} requests; none remain",
                done.messages, done.clicks, done.requests
            );
            Ok(())
        }
    }
}

/// `create-api-key`: a key of `workspace` with `scopes` (every scope when none is given),
/// printed once. Made by the operator, so it names no creator and is not in the audit log
/// (whose entries name a person or a key).
async fn create_api_key(
    database: &DatabaseConfig,
    name: &str,
    workspace: i64,
    mut scopes: Vec<Scope>,
) -> anyhow::Result<()> {
    let name = keys::check_name(name).map_err(|err| anyhow::anyhow!("--name: {err}"))?;
    if scopes.is_empty() {
        scopes = Scope::ALL.to_vec();
    }
    scopes.sort();
    scopes.dedup();
    let pool = db::pool(database)?;
    db::require_this_release(&pool).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1)")
        .bind(workspace)
        .fetch_one(&pool)
        .await?;
    if !exists {
        anyhow::bail!("--workspace: no workspace has the id {workspace}");
    }
    let key = auth::create_operator_key(&pool, workspace, &name, &scopes).await?;
    let scopes: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    println!(
        "Created API key {name:?} in workspace {workspace} with the scopes {}. \
         It is shown only now:\n\n  {key}\n",
        scopes.join(", ")
    );
    Ok(())
}

/// `serve` logs to stdout, the log stream.
fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_env_filter(log_filter());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The one-off commands log to stderr: their stdout holds only what they tell the operator (a
/// new key or password), so `origin create-api-key > key.txt` keeps the log out of it and the
/// secret out of the log.
fn init_command_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .init();
}

fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (what orchestrators send).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing requests in flight");
}
