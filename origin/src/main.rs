//! The `origin` binary: parses the command line and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = origin::config::Cli::parse();
    origin::run_cli(cli).await
}
