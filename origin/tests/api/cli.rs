//! The `kurz` command-line client (`cli/`), run in-process (`kurz_cli::run`) against an origin
//! served on a socket, on its own database: what a script sees (stdout, stderr, exit code).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use kurz_cli::{Environment, Exit};
use serde_json::{Value, json};

use crate::support::{As, PUBLIC_URL, TestApp, spawn_app};

/// What one run of `kurz` left.
struct Run {
    exit: Exit,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout's lines as JSON values (`--json`).
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

/// Serves `app` on 127.0.0.1 (as the origin's own `serve` does, with the peer's address); its
/// URL.
async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let service = app
        .router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    url
}

/// Runs `kurz <args>` with `KURZ_URL=url` and `KURZ_API_KEY=key`.
async fn kurz(url: &str, key: Option<&str>, args: &[&str]) -> Run {
    let env = Environment {
        api_key: key.map(str::to_owned),
        url: Some(url.to_owned()),
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let exit = kurz_cli::run(
        std::iter::once("kurz").chain(args.iter().copied()),
        &env,
        &mut stdout,
        &mut stderr,
    )
    .await;
    let run = Run {
        exit,
        stdout: String::from_utf8(stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(stderr).expect("UTF-8 stderr"),
    };
    if let Some(key) = key {
        assert!(
            !run.stdout.contains(key) && !run.stderr.contains(key),
            "the key was shown: {} {}",
            run.stdout,
            run.stderr
        );
    }
    run
}

fn key_of(who: &As) -> &str {
    match who {
        As::Key(key) => key,
        other => panic!("not a key: {other:?}"),
    }
}

#[tokio::test]
async fn create_then_list_shows_it() {
    let app = spawn_app().await;
    let url = serve(&app).await;
    let key = app.api_key.as_str();

    let created = kurz(
        &url,
        Some(key),
        &[
            "create",
            "https://example.com/launch",
            "--code",
            "launch",
            "--tag",
            "Q4",
            "--tag",
            "mail",
            "--title",
            "The launch",
            "--expires",
            "2030-01-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(created.exit, Exit::Success, "{}", created.stderr);
    assert_eq!(created.stdout, format!("{PUBLIC_URL}/launch\n"));
    assert_eq!(created.stderr, "");
    let stored = app
        .api(axum::http::Method::GET, "/api/v1/links/launch", None)
        .await
        .json();
    assert_eq!(stored["tags"], json!(["q4", "mail"]));
    assert_eq!(stored["title"], "The launch");
    assert_eq!(stored["expires_at"], "2030-01-01T00:00:00Z");

    let generated = kurz(
        &url,
        Some(key),
        &["create", "https://example.com/other", "--json"],
    )
    .await;
    assert_eq!(generated.exit, Exit::Success, "{}", generated.stderr);
    let generated = &generated.json_lines()[0];
    assert_eq!(generated["destination"], "https://example.com/other");
    let generated_code = generated["code"].as_str().expect("code");

    let listed = kurz(&url, Some(key), &["list"]).await;
    assert_eq!(listed.exit, Exit::Success, "{}", listed.stderr);
    assert_eq!(
        listed.stdout,
        format!(
            "{generated_code}\t{PUBLIC_URL}/{generated_code}\thttps://example.com/other\n\
             launch\t{PUBLIC_URL}/launch\thttps://example.com/launch\n"
        )
    );
    let tagged = kurz(&url, Some(key), &["list", "--tag", "q4", "--json"]).await;
    let tagged: Vec<Value> = tagged.json_lines();
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0]["code"], "launch");
    let searched = kurz(&url, Some(key), &["list", "--search", "OTHER"]).await;
    assert_eq!(searched.stdout.lines().count(), 1, "{}", searched.stdout);

    // One link per page: without --all one page and a word on stderr; with it, every page.
    let one = kurz(&url, Some(key), &["list", "--limit", "1"]).await;
    assert_eq!(one.stdout.lines().count(), 1);
    assert!(one.stderr.contains("--all"), "{}", one.stderr);
    let all = kurz(&url, Some(key), &["list", "--limit", "1", "--all"]).await;
    assert_eq!(all.exit, Exit::Success);
    assert_eq!(all.stdout, listed.stdout);
    assert_eq!(all.stderr, "");

    // A key of another workspace sees none of them.
    let workspace = app.workspace("other").await;
    let other = app.key(workspace, &["links:read"]).await;
    let theirs = kurz(&url, Some(key_of(&other)), &["list"]).await;
    assert_eq!((theirs.exit, theirs.stdout.as_str()), (Exit::Success, ""));
    // ... and one that may only read cannot create: the API's 403, exit 1.
    let refused = kurz(
        &url,
        Some(key_of(&other)),
        &["create", "https://example.com/x"],
    )
    .await;
    assert_eq!(refused.exit, Exit::Failure);
    assert!(
        refused.stderr.starts_with("error: not allowed"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn configuration_and_usage_errors_exit_2_before_any_request() {
    // Nothing listens here: any request would be a connection error (exit 1), not exit 2.
    let url = "http://127.0.0.1:9";
    let missing = kurz(url, None, &["list"]).await;
    assert_eq!(missing.exit, Exit::Usage);
    assert!(
        missing.stderr.starts_with("error: KURZ_API_KEY is not set"),
        "{}",
        missing.stderr
    );
    for args in [
        &["create", "ftp://example.com"][..],
        &["create", "https://example.com", "--code", "a b"],
        &["create", "https://example.com", "--expires", "tomorrow"],
        &["list", "--limit", "0"],
        &[
            "stats",
            "x",
            "--days",
            "3",
            "--from",
            "2030-01-01T00:00:00Z",
        ],
        &["import", "links.csv", "--format", "nope"],
        &["frobnicate"],
    ] {
        let run = kurz(url, Some("kurz_anything"), args).await;
        assert_eq!(run.exit, Exit::Usage, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.stderr);
    }
    let bad_url = kurz("ftp://kurz.example", Some("kurz_anything"), &["list"]).await;
    assert_eq!(bad_url.exit, Exit::Usage, "{}", bad_url.stderr);
    let help = kurz(url, None, &["--help"]).await;
    assert_eq!(help.exit, Exit::Success);
    assert!(help.stdout.contains("KURZ_API_KEY"), "{}", help.stdout);
}

#[tokio::test]
async fn a_wrong_key_shows_the_apis_401() {
    let app = spawn_app().await;
    let url = serve(&app).await;
    let run = kurz(&url, Some("kurz_not_a_real_key_0123456789"), &["list"]).await;
    assert_eq!(run.exit, Exit::Failure);
    assert_eq!(
        run.stderr,
        "error: sign in, or send an API key: `Authorization: Bearer <key>`\n"
    );
    assert_eq!(run.stdout, "");
}

#[tokio::test]
async fn stats_of_a_link_and_of_an_unknown_code() {
    let app = spawn_app().await;
    let url = serve(&app).await;
    let key = app.api_key.as_str();
    app.create(json!({"destination": "https://example.com/s", "code": "counted"}))
        .await;

    let unknown = kurz(&url, Some(key), &["stats", "nope"]).await;
    assert_eq!(unknown.exit, Exit::Failure);
    assert_eq!(unknown.stderr, "error: no link has the code \"nope\"\n");

    let text = kurz(&url, Some(key), &["stats", "counted", "--days", "3"]).await;
    assert_eq!(text.exit, Exit::Success, "{}", text.stderr);
    // The longest range it takes (before, a moment over 400 days by the server's clock).
    let longest = kurz(&url, Some(key), &["stats", "counted", "--days", "400"]).await;
    assert_eq!(longest.exit, Exit::Success, "{}", longest.stderr);
    assert!(
        text.stdout.contains("total     0 (clicks 0"),
        "{}",
        text.stdout
    );
    let json = kurz(&url, Some(key), &["stats", "counted", "--json"]).await;
    let stats = &json.json_lines()[0];
    assert_eq!(stats["totals"]["total"], 0);
    assert!(stats["top_links"].is_null(), "{stats}");
    let workspace = kurz(&url, Some(key), &["stats", "--json"]).await;
    assert_eq!(workspace.exit, Exit::Success, "{}", workspace.stderr);
    assert!(workspace.json_lines()[0]["top_links"].is_array());
    // A range the API refuses: its message and field.
    let refused = kurz(
        &url,
        Some(key),
        &[
            "stats",
            "counted",
            "--from",
            "2030-01-02T00:00:00Z",
            "--to",
            "2030-01-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(refused.exit, Exit::Failure);
    assert!(refused.stderr.contains("(field: "), "{}", refused.stderr);
}

/// A file with no size to check first (a pipe, `/dev/stdin`; here `/dev/zero`, which never
/// ends) is read no further than the largest import: refused, not read until memory runs out.
#[tokio::test]
async fn import_reads_a_file_of_no_size_no_further_than_the_limit() {
    let app = spawn_app().await;
    let url = serve(&app).await;
    let run = kurz(
        &url,
        Some(app.api_key.as_str()),
        &["import", "/dev/zero", "--format", "csv", "--dry-run"],
    )
    .await;
    assert_eq!(run.exit, Exit::Failure, "{}", run.stderr);
    assert!(run.stderr.contains("larger than"), "{}", run.stderr);
}

#[tokio::test]
async fn import_of_a_plain_csv_creates_the_good_rows_and_reports_the_bad() {
    let app = spawn_app().await;
    let url = serve(&app).await;
    let key = app.api_key.as_str();
    app.create(json!({"destination": "https://example.com/taken", "code": "taken"}))
        .await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("links.csv");
    std::fs::write(
        &file,
        "destination,code,tags\n\
         https://example.com/1,one,a|b\n\
         ftp://example.com/2,two,\n\
         https://example.com/3,taken,\n\
         https://example.com/4,,\n",
    )
    .expect("write the file");
    let file = file.to_str().expect("UTF-8 path");
    let live_links = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM links WHERE deleted_at IS NULL")
            .fetch_one(&app.db)
            .await
            .expect("count")
    };

    // A dry run: the same errors (the one found here and the one only the API can tell),
    // nothing created.
    let dry = kurz(&url, Some(key), &["import", file, "--dry-run"]).await;
    assert_eq!(dry.exit, Exit::Failure, "{}", dry.stderr);
    assert!(
        dry.stderr
            .contains("line,source,field,message\n3,two,destination,"),
        "{}",
        dry.stderr
    );
    assert!(dry.stderr.contains("\n4,taken,code,"), "{}", dry.stderr);
    assert!(
        dry.stderr
            .contains("dry run: 2 of 3 links would be created, 2 rows would fail"),
        "{}",
        dry.stderr
    );
    assert_eq!(live_links().await, 1);

    // All or nothing: the taken code stops every row.
    let atomic_file = dir.path().join("atomic.csv");
    std::fs::write(
        &atomic_file,
        "https://example.com/5,five\nhttps://example.com/6,taken\n",
    )
    .expect("write the file");
    let atomic = kurz(
        &url,
        Some(key),
        &["import", atomic_file.to_str().expect("UTF-8"), "--atomic"],
    )
    .await;
    assert_eq!(atomic.exit, Exit::Failure);
    assert!(
        atomic.stderr.contains("\n2,taken,code,"),
        "{}",
        atomic.stderr
    );
    assert!(
        atomic.stderr.contains("nothing created (--atomic)"),
        "{}",
        atomic.stderr
    );
    assert_eq!(live_links().await, 1);

    let errors = dir.path().join("errors.csv");
    let run = kurz(
        &url,
        Some(key),
        &["import", file, "--errors", errors.to_str().expect("UTF-8")],
    )
    .await;
    assert_eq!(run.exit, Exit::Failure, "{}", run.stderr);
    assert!(
        run.stderr.contains("3 of 3 rows sent: 2 created, 2 failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("2 links created, 2 rows failed (listed in "),
        "{}",
        run.stderr
    );
    let errors = std::fs::read_to_string(&errors).expect("the errors file");
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 3, "{errors}");
    assert_eq!(lines[0], "line,source,field,message");
    assert!(
        lines[1].starts_with("3,two,destination,") && lines[1].contains("http or https"),
        "{errors}"
    );
    assert_eq!(
        lines[2],
        "4,taken,code,\"the code \"\"taken\"\" is already taken; choose another\""
    );

    let listed = kurz(&url, Some(key), &["list", "--json"]).await;
    let links = listed.json_lines();
    assert_eq!(links.len(), 3, "{}", listed.stdout);
    let one = links
        .iter()
        .find(|link| link["code"] == "one")
        .expect("one");
    assert_eq!(
        (&one["destination"], &one["tags"]),
        (&json!("https://example.com/1"), &json!(["a", "b"]))
    );
    assert!(
        links
            .iter()
            .any(|link| link["destination"] == "https://example.com/4")
    );
}

#[tokio::test]
async fn an_export_imported_into_another_deployment_makes_the_same_links() {
    let from = spawn_app().await;
    let from_url = serve(&from).await;
    from.create(json!({"destination": "https://example.com/plain"}))
        .await;
    from.create(json!({
        "destination": "https://example.com/full", "code": "full", "status": 301,
        "expires_at": "2031-02-03T04:05:06Z", "tags": ["launch", "q4"], "title": "Full",
        "note": "with, commas \"and quotes\"", "max_clicks": 10,
        "fallback_url": "https://example.com/over", "utm": {"source": "mail"},
        "targets": [{"when": {"os": ["ios"]}, "destination": "https://apps.apple.com/x"}],
        "split": [{"destination": "https://a.example/", "weight": 50}, {"destination": "https://b.example/", "weight": 50}],
    }))
    .await;
    from.create(json!({"destination": "https://example.com/secret", "code": "secret", "password": "hunter22"}))
        .await;
    from.create(json!({"destination": "https://example.com/off", "code": "off", "disabled": true}))
        .await;

    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("links.jsonl");
    let file = file.to_str().expect("UTF-8");
    let exported = kurz(&from_url, Some(&from.api_key), &["export", "-o", file]).await;
    assert_eq!(exported.exit, Exit::Success, "{}", exported.stderr);
    assert_eq!(exported.stdout, "");
    let to_stdout = kurz(&from_url, Some(&from.api_key), &["export"]).await;
    assert_eq!(
        to_stdout.stdout,
        std::fs::read_to_string(file).expect("the export")
    );
    assert_eq!(to_stdout.json_lines().len(), 4);
    assert!(!dir.path().join("links.jsonl.partial").exists());
    let csv = kurz(
        &from_url,
        Some(&from.api_key),
        &["export", "--format", "csv"],
    )
    .await;
    assert_eq!(csv.exit, Exit::Success, "{}", csv.stderr);
    assert!(
        csv.stdout.starts_with("code,short_url,destination,"),
        "{}",
        csv.stdout
    );
    assert_eq!(csv.stdout.lines().count(), 5, "{}", csv.stdout);

    // Another deployment (its own database), with its own key.
    let to = spawn_app().await;
    let to_url = serve(&to).await;
    let imported = kurz(&to_url, Some(&to.api_key), &["import", file]).await;
    assert_eq!(imported.exit, Exit::Success, "{}", imported.stderr);
    assert!(
        imported.stderr.contains("4 links created, 0 rows failed"),
        "{}",
        imported.stderr
    );
    assert!(
        imported.stderr.contains("warning: line ")
            && imported
                .stderr
                .contains("(secret): the link had a password"),
        "{}",
        imported.stderr
    );

    let list = |url: String, key: String| async move {
        let mut links = kurz(&url, Some(&key), &["list", "--all", "--json"])
            .await
            .json_lines();
        for link in &mut links {
            let link = link.as_object_mut().expect("an object");
            // What belongs to the deployment a link lives in, and the password (never exported).
            for field in ["id", "updated_at", "version", "password_protected"] {
                link.remove(field);
            }
        }
        links.sort_by(|a, b| a["destination"].as_str().cmp(&b["destination"].as_str()));
        links
    };
    let before = list(from_url, from.api_key.clone()).await;
    let after = list(to_url, to.api_key.clone()).await;
    assert_eq!(before.len(), 4);
    assert_eq!(before, after);
}

/// What the fake origin answers first, before it answers every request with success.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// 429 with `Retry-After: 1`: a rate limit, before any work.
    Limited,
    /// 503 `busy` with `Retry-After: 1`: the origin's cap, before any work.
    Busy,
    /// 503 `unavailable` with `Retry-After: 1`: the database went away, maybe mid-way.
    Unavailable,
    /// 500 with a body that is not the API's.
    Broken,
    /// 422 on the request as a whole: nothing was created.
    Refused,
    /// 200 whose body breaks off (the links were created; the answer lost on the way).
    CutShort,
    /// That, then 503 `busy` without a `Retry-After` for every repeat.
    CutShortThenBusy,
}

/// The (status, items) of every request a fake origin got, and the `Idempotency-Key` of each.
type Seen = Arc<Mutex<(Vec<(u16, usize)>, Vec<Option<String>>)>>;

/// A fake origin's `/links/bulk`: answers `first`, then creates every item; returns its URL
/// and what it got.
async fn fake_origin(first: Option<Answer>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let router = axum::Router::new().route(
        "/api/v1/links/bulk",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, Json(body): Json<Value>| {
                let log = log.clone();
                async move {
                    let mut log = log.lock().expect("lock");
                    let now = match first {
                        Some(Answer::CutShortThenBusy) if log.0.is_empty() => {
                            Some(Answer::CutShort)
                        }
                        Some(Answer::CutShortThenBusy) => first,
                        _ => first.filter(|_| log.0.is_empty()),
                    };
                    let answer = fake_answer(now, &body);
                    let items = body["links"].as_array().map_or(0, Vec::len);
                    log.0.push((answer.status().as_u16(), items));
                    let key = headers.get("idempotency-key");
                    log.1
                        .push(key.map(|key| key.to_str().expect("ASCII").to_owned()));
                    answer
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

fn fake_answer(answer: Option<Answer>, body: &Value) -> axum::response::Response {
    let error = |status: StatusCode, code: &str| {
        let body = json!({"error": {"code": code, "message": format!("fake {code}")}});
        (status, [(header::RETRY_AFTER, "1")], Json(body)).into_response()
    };
    match answer {
        Some(Answer::Limited) => return error(StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Some(Answer::Busy) => return error(StatusCode::SERVICE_UNAVAILABLE, "busy"),
        Some(Answer::CutShortThenBusy) => {
            let body = json!({"error": {"code": "busy", "message": "fake busy"}});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
        Some(Answer::Unavailable) => return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Some(Answer::Broken) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
        }
        Some(Answer::Refused) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        Some(Answer::CutShort) => {
            use futures_util::StreamExt;
            // The status and the first bytes go out; the rest never comes.
            let pieces = futures_util::stream::iter([true, false]).then(|first| async move {
                if first {
                    return Ok(r#"{"results": ["#);
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Err(std::io::Error::other("connection lost"))
            });
            let body = axum::body::Body::from_stream(pieces);
            return (StatusCode::OK, body).into_response();
        }
        None => {}
    }
    let dry_run = body["dry_run"] == true;
    let items = body["links"].as_array().expect("links");
    let results: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if dry_run {
                return json!({"status": "would_create"});
            }
            let code = item["code"]
                .as_str()
                .map_or_else(|| format!("g{i}"), str::to_owned);
            json!({"status": "created", "link": {
                "id": i, "code": code, "short_url": format!("{PUBLIC_URL}/{code}"),
                "destination": item["destination"], "status": 302, "expires_at": null,
                "created_at": "2030-01-01T00:00:00Z", "updated_at": "2030-01-01T00:00:00Z",
            }})
        })
        .collect();
    let created = if dry_run { 0 } else { items.len() };
    Json(json!({"results": results, "created": created, "failed": 0})).into_response()
}

#[tokio::test]
async fn import_waits_out_refusals_and_sends_a_chunk_again_only_with_its_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let big = dir.path().join("big.csv");
    let rows: String = (1..=1001)
        .map(|i| format!("https://example.com/{i},c{i}\n"))
        .collect();
    std::fs::write(&big, rows).expect("write the file");
    let small = dir.path().join("small.csv");
    std::fs::write(&small, "https://example.com/1,one\n").expect("write the file");
    let (big, small) = (big.to_str().expect("UTF-8"), small.to_str().expect("UTF-8"));

    // (what comes first, file, dry run, the requests the fake origin got, exit, stderr says)
    let cases = [
        (
            Some(Answer::Limited),
            big,
            false,
            vec![(429, 1000), (200, 1000), (200, 1)],
            Exit::Success,
            "1001 links created, 0 rows failed",
        ),
        (
            None,
            big,
            false,
            vec![(200, 1000), (200, 1)],
            Exit::Success,
            "1000 of 1001 rows sent: 1000 created, 0 failed\n1001 of 1001 rows sent",
        ),
        (
            Some(Answer::Busy),
            small,
            false,
            vec![(503, 1), (200, 1)],
            Exit::Success,
            "1 links created",
        ),
        // The database may have gone away after some work: the chunk is sent again with its
        // key (the origin answers a repeat with the first answer) ...
        (
            Some(Answer::Unavailable),
            big,
            false,
            vec![(503, 1000), (200, 1000), (200, 1)],
            Exit::Success,
            "1001 links created, 0 rows failed",
        ),
        // ... and a dry run without one.
        (
            Some(Answer::Unavailable),
            small,
            true,
            vec![(503, 1), (200, 1)],
            Exit::Success,
            "dry run: 1 of 1 links would be created, 0 rows would fail",
        ),
        (
            Some(Answer::Broken),
            small,
            false,
            vec![(500, 1)],
            Exit::Failure,
            "may have been created (no clear answer came; `kurz list` shows them)\n\
             error: unexpected answer (HTTP 500): boom\n",
        ),
        // A created chunk's answer lost on the way: sent again with its key (the origin
        // answers the repeat with the first answer), not given up as "may have been created".
        (
            Some(Answer::CutShort),
            big,
            false,
            vec![(200, 1000), (200, 1000), (200, 1)],
            Exit::Success,
            "1001 links created, 0 rows failed",
        ),
        // A repeat refused before any work (busy, or the network gone) does not undo the lost
        // answer: the rows may have been created. (Before: "not created", and a run again
        // made them twice.)
        (
            Some(Answer::CutShortThenBusy),
            small,
            false,
            vec![(200, 1), (503, 1)],
            Exit::Failure,
            "stopped: the rows of lines 1 to 1 may have been created",
        ),
        (
            Some(Answer::Refused),
            big,
            false,
            vec![(422, 1000)],
            Exit::Failure,
            "stopped: the rows from line 1 on were not created\nerror: fake invalid_input\n",
        ),
    ];
    for (first, file, dry_run, requests, exit, says) in cases {
        let (url, seen) = fake_origin(first).await;
        let mut args = vec!["import", file];
        if dry_run {
            args.push("--dry-run");
        }
        let run = kurz(&url, Some("kurz_fake"), &args).await;
        assert_eq!(run.exit, exit, "{first:?}: {}", run.stderr);
        let (got, keys) = seen.lock().expect("lock").clone();
        assert_eq!(got, requests, "{first:?}");
        assert!(run.stderr.contains(says), "{first:?}: {}", run.stderr);
        // A key per chunk, the same on each attempt of it; none for a dry run.
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(key.is_none(), dry_run, "{first:?}: {keys:?}");
            if i > 0 && !dry_run {
                let cut_short =
                    i == 1 && matches!(first, Some(Answer::CutShort | Answer::CutShortThenBusy));
                let again = got[i - 1].0 != 200 || cut_short;
                assert_eq!(keys[i - 1] == *key, again, "{first:?}: {keys:?}");
            }
        }
    }

    // Nobody listens: tried a few times (never received, so safe), then the reason.
    let closed = format!("http://127.0.0.1:{}", crate::support::free_port());
    let run = kurz(&closed, Some("kurz_fake"), &["import", small]).await;
    assert_eq!(run.exit, Exit::Failure);
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("stopped: the rows from line 1 on were not created"),
        "{}",
        run.stderr
    );
}
