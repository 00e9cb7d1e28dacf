//! The `origin` binary: parses the command line and hands over to the library.

/// mimalloc rather than the system's allocator: a redirect allocates and frees a few dozen
/// small blocks (the request's head, its extensions, the response's headers), often on
/// another worker thread than the one that allocated them, and glibc's malloc and free took
/// a sixth of the origin's own CPU on the cache-hit path. With mimalloc the cache-hit
/// redirect served 25 % more requests a second on the same machine (docs/scaling.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = origin::config::Cli::parse_or_exit();
    origin::run_cli(cli).await
}
