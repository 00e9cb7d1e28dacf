//! A deployment's first start, run as the real binary with its log captured: the first API key
//! and the generated dashboard password are in the first-start file (mode 0600), and nowhere
//! in the log.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::{CODE_KEY, config, free_port, new_database};

/// The origin binary serving on `port`, its stdout and stderr (the log) going to `log`.
fn start(database_url: &str, port: u16, first_start_file: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_origin"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("KURZ_BIND", format!("127.0.0.1:{port}"))
        .env("KURZ_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("KURZ_CODE_KEY", CODE_KEY)
        .env("KURZ_FIRST_START_FILE", first_start_file)
        // Everything any crate logs, in both formats' worth of detail.
        .env("RUST_LOG", "trace")
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start the origin binary")
}

fn stop(mut origin: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &origin.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(origin.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = origin.kill();
    let _ = origin.wait();
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "the origin did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn value<'a>(file: &'a str, name: &str) -> &'a str {
    file.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in the first-start file:\n{file}"))
}

#[tokio::test]
async fn the_first_starts_secrets_are_in_a_private_file_and_not_in_the_log() {
    let database_url = new_database().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets_path = dir.path().join("first-start.txt");
    let log_path = dir.path().join("origin.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let origin = start(&database_url, port, &secrets_path, &log_path);
    wait_ready(&client, &base).await;
    let secrets = std::fs::read_to_string(&secrets_path).expect("the first-start file");
    let api_key = value(&secrets, "KURZ_API_KEY").to_owned();
    let password = value(&secrets, "KURZ_ADMIN_PASSWORD").to_owned();
    assert_eq!(value(&secrets, "KURZ_ADMIN_USER"), "admin");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets_path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }

    // Both secrets work.
    let links = client
        .get(format!("{base}/api/v1/links"))
        .bearer_auth(&api_key)
        .send()
        .await
        .expect("request");
    assert_eq!(links.status(), 200);
    let session = client
        .post(format!("{base}/api/v1/session"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"username": "admin", "password": password}).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(session.status(), 200);

    // A second start makes no new secrets and leaves the file as it was.
    stop(origin);
    let origin = start(&database_url, port, &secrets_path, &log_path);
    wait_ready(&client, &base).await;
    stop(origin);
    assert_eq!(
        std::fs::read_to_string(&secrets_path).expect("the first-start file"),
        secrets
    );

    let log = std::fs::read_to_string(&log_path).expect("the log");
    assert!(
        log.contains("first-start file"),
        "the log says where the secrets are:\n{log}"
    );
    assert!(
        log.contains(&secrets_path.display().to_string()),
        "the log names the file:\n{log}"
    );
    for (name, secret) in [("API key", &api_key), ("admin password", &password)] {
        assert!(!log.contains(secret.as_str()), "the {name} is in the log");
    }
}

#[tokio::test]
async fn a_first_start_file_that_cannot_be_written_keeps_the_origin_unready() {
    let database_url = new_database().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("origin.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let unwritable = dir.path().join("no such folder/first-start.txt");
    let origin = start(&database_url, port, &unwritable, &log_path);
    // Once the log says why (the start is slow on a loaded machine), the origin answers, and
    // is not ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let ready = client.get(format!("{base}/ready")).send().await;
        if let Ok(ready) = ready
            && log.contains("cannot write KURZ_FIRST_START_FILE")
        {
            break ready;
        }
        assert!(
            Instant::now() < deadline,
            "the log never said why, or the origin never answered:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop(origin);
    assert_eq!(ready.status(), 503);
    // Nothing was made that nobody could read: the next start with a good file makes both.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&sqlx::PgPool::connect(&database_url).await.expect("connect"))
        .await
        .expect("count");
    assert_eq!(count, 0);
}

#[tokio::test]
async fn create_api_key_prints_the_key_on_stdout_and_logs_on_stderr() {
    let database_url = new_database().await;
    let output = Command::new(env!("CARGO_BIN_EXE_origin"))
        .args(["create-api-key", "--name", "deploy script"])
        .env_clear()
        .env("DATABASE_URL", &database_url)
        .env("RUST_LOG", "debug")
        .output()
        .expect("run origin create-api-key");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    let key = stdout
        .split_whitespace()
        .find(|word| word.starts_with("kurz_"))
        .unwrap_or_else(|| panic!("no key on stdout:\n{stdout}"));
    assert!(!stderr.contains(key), "the key is in the log:\n{stderr}");
    assert!(
        stderr.contains("DEBUG") || stderr.contains("INFO"),
        "the log went elsewhere:\n{stderr}"
    );
    assert!(
        !stdout.contains("DEBUG") && !stdout.contains("INFO"),
        "log lines on stdout:\n{stdout}"
    );
}

/// The release before this one: every migration but the last.
async fn older_release() -> sqlx::migrate::Migrator {
    let older = tempfile::tempdir().expect("temporary directory");
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    files.pop();
    for file in &files {
        std::fs::copy(file, older.path().join(file.file_name().expect("name"))).expect("copy");
    }
    sqlx::migrate::Migrator::new(older.path())
        .await
        .expect("the older release's migrations")
}

fn create_api_key(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_origin"));
    command
        .args(["create-api-key", "--name", "deploy script"])
        .env_clear()
        .env("DATABASE_URL", database_url);
    command
}

/// A one-off command started while a `serve` migrates a fresh database (an init job beside
/// it) waits for the migrations, then runs: the half-migrated schema it would read meanwhile
/// is no older release's.
#[tokio::test]
async fn a_one_off_command_waits_for_migrations_under_way() {
    use sqlx::Connection as _;
    use sqlx::migrate::Migrate as _;
    let database_url = new_database().await;
    let db = sqlx::PgPool::connect(&database_url).await.expect("connect");
    // The serve: under the migrations' lock, half-way through them.
    let mut serve = sqlx::PgConnection::connect(&database_url)
        .await
        .expect("connect");
    serve.lock().await.expect("lock");
    older_release()
        .await
        .run_direct(&mut serve)
        .await
        .expect("the first migrations");
    let command = create_api_key(&database_url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start origin create-api-key");
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::support::lock_waiters(&db, "%pg_advisory_lock%").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the command did not wait for the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    origin::db::MIGRATOR
        .run_direct(&mut serve)
        .await
        .expect("the rest");
    serve.unlock().await.expect("unlock");
    let done = command.wait_with_output().expect("the command");
    assert!(done.status.success(), "{done:?}");
    assert!(String::from_utf8_lossy(&done.stdout).contains("kurz_"));
}

/// A one-off command takes a database at its own release's schema only. One an older release
/// migrated (during an upgrade its origins still serve from it) is refused and left as it is:
/// before, `create-api-key` of the new release migrated it under the old origins.
#[tokio::test]
async fn a_one_off_command_does_not_migrate_an_older_releases_database() {
    let database_url = new_database().await;
    let db = sqlx::PgPool::connect(&database_url).await.expect("connect");
    let older = older_release().await;
    older.run(&db).await.expect("the older release's schema");
    let create_key = || create_api_key(&database_url).output().expect("run");

    let refused = create_key();
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Start this release's `origin serve`"),
        "{stderr}"
    );
    let last: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&db)
        .await
        .expect("version");
    assert_eq!(
        Some(last),
        older.iter().map(|migration| migration.version).max(),
        "migrated"
    );
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&db)
        .await
        .expect("keys");
    assert_eq!(keys, 0);

    // Once this release serves from it, the command runs.
    origin::db::MIGRATOR
        .run(&db)
        .await
        .expect("this release's schema");
    let made = create_key();
    assert!(made.status.success(), "{made:?}");

    // A newer release's schema is that release's to serve and to change.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99999999999999, 'a later release', true, '\\x00', 1)",
    )
    .execute(&db)
    .await
    .expect("a newer migration");
    let refused = create_key();
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("which this release does not know"),
        "{stderr}"
    );
}

#[tokio::test]
async fn instances_starting_together_make_one_first_key() {
    let database_url = new_database().await;
    let state = origin::State::new(&config(&database_url)).expect("state");
    state.migrate().await.expect("migrations");
    // Each on a connection of its own, as separate instances would be.
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let db = sqlx::PgPool::connect_lazy(&database_url).expect("pool");
            tokio::spawn(async move { origin::auth::create_first_key(&db).await })
        })
        .collect();
    let mut made = 0;
    for start in starts {
        made += usize::from(start.await.expect("task").expect("query").is_some());
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(state.db())
        .await
        .expect("count");
    assert_eq!((made, keys), (1, 1));
}
