//! `kurz`: a command-line client of the kurz API, for scripts. The program is
//! [`kurz_cli::run`]; this hands it the process's arguments, environment and streams.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let env = kurz_cli::Environment::from_process();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    kurz_cli::run(std::env::args_os(), &env, &mut stdout, &mut stderr)
        .await
        .into()
}
