//! Importing links from a file (a plain CSV, or another shortener's export) and exporting the
//! workspace's links.
//!
//! The file is parsed in the browser by `shortlink::import` (the parsers the CLI uses too), then
//! sent to `POST /api/v1/links/bulk` in chunks ([`bulk_runs`]: the origin's count and size):
//! first as a dry run, so the person sees what would be created and what would fail before
//! anything is written; then for real, with a progress bar, stoppable between chunks. Every row that failed (to parse, or at
//! the origin) is listed with its line and can be downloaded as CSV. Nothing is all-or-nothing:
//! the good rows are created, the bad ones reported.

use std::ops::Range;

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use shortlink::api::{BulkItemResult, bulk_runs};
use shortlink::import::{self, Failure, Format};
use shortlink::query::ExportFormat;
use shortlink::workspace::Permission;
use wasm_bindgen::JsCast;

use crate::nav::{Link as PageLink, Page};
use crate::range::count;
use crate::{Auth, api};

/// How many failed rows the page lists; the CSV download has them all.
const SHOWN_FAILURES: usize = 100;

#[component]
pub fn ImportExport() -> impl IntoView {
    let auth = expect_context::<Auth>();
    view! {
        <section class="page" aria-labelledby="import-title">
            <h1 id="import-title">"Import and export"</h1>
            // Viewers may export what they can read; importing writes links.
            {move || auth.permits(Permission::WriteLinks).then(|| view! { <Import/> })}
            <section class="panel" aria-labelledby="export-title">
                <h2 id="export-title">"Export"</h2>
                <p class="hint">"Every link of this workspace with its tags, rules and clicks. \
                    The JSON lines file imports into another kurz deployment losing nothing."</p>
                // A plain download: the session cookie goes with it, as with the clicks CSV.
                <div class="buttons start">
                    <a class="button secondary" href=export_url(ExportFormat::Jsonl) download="">"Export JSON lines"</a>
                    <a class="button secondary" href=export_url(ExportFormat::Csv) download="">"Export CSV"</a>
                </div>
            </section>
        </section>
    }
}

/// `GET /api/v1/links/export` in that format.
fn export_url(format: ExportFormat) -> String {
    format!("/api/v1/links/export?format={}", format.id())
}

/// The file as parsed: the links to send, each with its line and source text (same index),
/// the chunks they go in, and the rows that did not parse.
#[derive(Debug, Default)]
struct Parsed {
    /// Each link's JSON: serialised once, its length sizes the chunks.
    links: Vec<String>,
    origins: Vec<(u64, String)>,
    /// The chunks of `links`, a request each.
    runs: Vec<Range<usize>>,
    failures: Vec<Failure>,
}

impl Parsed {
    fn of(rows: Vec<import::Row>) -> Self {
        let mut parsed = Self::default();
        for row in rows {
            match row.link {
                Ok(link) => {
                    // Serialising a valid link cannot fail; a `null` would be refused as its
                    // own item.
                    let json = serde_json::to_string(&link).unwrap_or_else(|_| "null".to_owned());
                    parsed.links.push(json);
                    parsed.origins.push((row.line, row.source));
                }
                Err(error) => parsed.failures.push(Failure {
                    line: row.line,
                    source: row.source,
                    field: error.field,
                    message: error.message,
                }),
            }
        }
        parsed.runs = bulk_runs(parsed.links.iter().map(String::len));
        parsed
    }
}

/// Where the import stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// No file yet, or a file whose format is shown (changeable) before a dry run.
    Idle,
    /// Reading or parsing the file.
    Parsing,
    /// Sending chunks: `done` of `total` links sent.
    Running {
        dry_run: bool,
        done: usize,
        total: usize,
    },
    /// A run ended, or stopped.
    Finished(Summary),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    dry_run: bool,
    /// Links created (or that would be).
    ok: usize,
    /// Links sent, of `total`.
    sent: usize,
    total: usize,
    /// Why the run ended early: stopped by the person, or a chunk the origin refused whole.
    stopped: Option<String>,
}

#[component]
fn Import() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let file_name = RwSignal::new(None::<String>);
    let bytes = StoredValue::new(Vec::<u8>::new());
    let format = RwSignal::new(None::<Format>);
    let file_error = RwSignal::new(None::<String>);
    let parsed = StoredValue::new(Parsed::default());
    let failures = RwSignal::new(Vec::<Failure>::new());
    let stage = RwSignal::new(Stage::Idle);
    let stop = StoredValue::new(false);

    let choose_file = move |event: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&event);
        let Some(file) = input.files().and_then(|files| files.get(0)) else {
            return;
        };
        let file = gloo_file::File::from(file);
        stage.set(Stage::Parsing);
        file_error.set(None);
        failures.set(Vec::new());
        file_name.set(Some(file.name()));
        if file.size() > import::MAX_FILE_BYTES as u64 {
            file_error.set(Some(format!(
                "The file is larger than {} MB: split it, or import it with the kurz command-line client.",
                import::MAX_FILE_BYTES / 1_000_000
            )));
            stage.set(Stage::Idle);
            return;
        }
        leptos::task::spawn_local(async move {
            match gloo_file::futures::read_as_bytes(&file).await {
                Ok(read) => {
                    format.try_set(import::detect(&file.name(), &read));
                    bytes.try_set_value(read);
                }
                Err(err) => {
                    file_error.try_set(Some(format!("The file could not be read ({err}).")));
                }
            }
            stage.try_set(Stage::Idle);
        });
    };

    // Sends every parsed link in chunks; a dry run only checks them.
    let run = move |dry_run: bool| {
        let Some(session) = auth.session() else {
            return;
        };
        let Some(chosen) = format.get_untracked() else {
            return;
        };
        stop.set_value(false);
        stage.set(Stage::Parsing);
        leptos::task::spawn_local(async move {
            // Let the page say "Checking…" before the parse holds the thread.
            TimeoutFuture::new(0).await;
            let Some(rows) = bytes.try_with_value(|bytes| import::parse(chosen, bytes)) else {
                return;
            };
            let rows = match rows {
                Ok(rows) => rows,
                Err(err) => {
                    file_error.try_set(Some(err.to_string()));
                    stage.try_set(Stage::Idle);
                    return;
                }
            };
            parsed.set_value(Parsed::of(rows));
            let total = parsed.with_value(|p| p.links.len());
            // The origin's refusals, in file order like the parse errors.
            let mut found = Vec::new();
            let (mut sent, mut ok, mut stopped) = (0, 0, None);
            let Some(runs) = parsed.try_with_value(|p| p.runs.clone()) else {
                return;
            };
            let import_key = import_key();
            for (number, run) in runs.into_iter().enumerate() {
                if stop.try_get_value() != Some(false) {
                    stopped = Some("Stopped: the rest of the file was not sent.".to_owned());
                    break;
                }
                stage.try_set(Stage::Running {
                    dry_run,
                    done: sent,
                    total,
                });
                // The page is gone (another page was opened): stop here.
                let Some(body) = parsed
                    .try_with_value(|p| p.links.get(run.clone()).map(|links| body(links, dry_run)))
                    .flatten()
                else {
                    return;
                };
                let key = format!("{import_key}-chunk-{number}");
                let key = (!dry_run).then_some(key.as_str());
                let answer = match send_chunk(&session, body, key).await {
                    Ok(answer) => answer,
                    Err(err) => {
                        auth.check(&err);
                        stopped = Some(format!("Stopped at link {}: {}", sent + 1, err.message));
                        break;
                    }
                };
                for (index, result) in answer.results.into_iter().enumerate() {
                    match result {
                        BulkItemResult::Created { .. } | BulkItemResult::WouldCreate => ok += 1,
                        BulkItemResult::Failed { error } => {
                            let (line, source) = parsed
                                .try_with_value(|p| p.origins.get(sent + index).cloned())
                                .flatten()
                                .unwrap_or_default();
                            found.push(Failure {
                                line,
                                source,
                                field: error.field,
                                message: error.message,
                            });
                        }
                        BulkItemResult::RolledBack => {}
                    }
                }
                sent = run.end;
                // Between chunks: the page draws the progress, a click on Stop is seen.
                TimeoutFuture::new(0).await;
            }
            let Some(refused) =
                parsed.try_with_value(|p| import::in_file_order(p.failures.clone(), found))
            else {
                return;
            };
            failures.try_set(refused);
            stage.try_set(Stage::Finished(Summary {
                dry_run,
                ok,
                sent,
                total,
                stopped,
            }));
        });
    };

    let running = move || matches!(stage.get(), Stage::Running { .. } | Stage::Parsing);
    view! {
        <section class="panel" aria-labelledby="import-panel-title">
            <h2 id="import-panel-title">"Import"</h2>
            <p class="hint">"A plain CSV of destination,code,tags, or an export of Bitly, YOURLS, Shlink, Kutt or kurz. \
                Original codes are kept; a code already taken is reported for its row. \
                A dry run shows what would happen before anything is written."</p>
            <div class="toolbar">
                <label class="grow">
                    <span class="label">"File"</span>
                    <input type="file" id="import-file" on:change=choose_file disabled=running
                        accept=".csv,.json,.jsonl,.ndjson,.txt,.sql"/>
                </label>
                <label>
                    <span class="label">"Format"</span>
                    <select id="import-format" aria-label="Format" disabled=running
                        prop:value=move || format.get().map(|f| f.id().to_owned()).unwrap_or_default()
                        on:change=move |ev| {
                            format.set(Format::from_id(&event_target_value(&ev)));
                            stage.set(Stage::Idle);
                            failures.set(Vec::new());
                        }>
                        <option value="" disabled=true>"Choose the format"</option>
                        {Format::ALL.iter().map(|f| view! { <option value=f.id()>{f.name()}</option> }).collect_view()}
                    </select>
                </label>
            </div>
            <p class="error" role="alert">{move || file_error.get()}</p>
            {move || (file_name.get().is_some() && format.get().is_none() && file_error.get().is_none() && !running()).then(|| view! {
                <p class="hint" id="import-format-unknown">"The format could not be recognised: choose it above."</p>
            })}
            <div class="buttons start">
                <button class="secondary" id="import-dry-run"
                    disabled=move || running() || format.get().is_none() || file_error.get().is_some()
                    on:click=move |_| run(true)>"Dry run"</button>
            </div>
            {move || match stage.get() {
                Stage::Idle => ().into_any(),
                Stage::Parsing => view! { <p class="loading" role="status">"Reading the file…"</p> }.into_any(),
                Stage::Running { dry_run, done, total } => view! {
                    <div class="import-progress">
                        <label for="import-progress">{if dry_run { "Checking" } else { "Importing" }}</label>
                        <progress id="import-progress" max=total.max(1).to_string() value=done.to_string()
                            aria-label=if dry_run { "Dry run progress" } else { "Import progress" }
                            aria-valuetext=format!("{done} of {total} links")></progress>
                        <span class="progress-text" role="status">{format!("{} of {} links", count(done as i64), count(total as i64))}</span>
                        <button class="secondary" on:click=move |_| stop.set_value(true)>"Stop"</button>
                    </div>
                }.into_any(),
                Stage::Finished(summary) => view! {
                    <Outcome summary=summary failures=failures on_import=Callback::new(move |()| run(false))/>
                }.into_any(),
            }}
        </section>
    }
}

/// The end of a run: what was (or would be) created, the rows that failed, and what next.
#[component]
fn Outcome(
    summary: Summary,
    failures: RwSignal<Vec<Failure>>,
    on_import: Callback<()>,
) -> impl IntoView {
    let failed = failures.with(Vec::len);
    let ok = count(summary.ok as i64);
    let links = if summary.ok == 1 { "link" } else { "links" };
    let rows = match failed {
        1 => "1 row".to_owned(),
        n => format!("{} rows", count(n as i64)),
    };
    let text = if summary.dry_run {
        let have = if failed == 1 { "has" } else { "have" };
        format!(
            "Dry run: would create {ok} {links}; {rows} {have} errors. Nothing was written yet."
        )
    } else {
        format!("Imported {ok} {links}; {rows} failed.")
    };
    let finished = summary.sent == summary.total;
    view! {
        <div class="import-summary" id="import-summary">
            {(!summary.dry_run).then(|| view! {
                <progress id="import-progress" max=summary.total.max(1).to_string() value=summary.sent.to_string()
                    aria-label="Import progress" aria-valuetext=format!("{} of {} links", summary.sent, summary.total)></progress>
            })}
            <p class="notice" role="status">{text}</p>
            {summary.stopped.map(|why| view! { <p class="error" role="alert">{why}</p> })}
            <div class="buttons start">
                {(summary.dry_run && finished && summary.ok > 0).then(|| view! {
                    <button class="primary" on:click=move |_| on_import.run(())>{format!("Import {ok} {links}")}</button>
                })}
                {(!summary.dry_run && summary.ok > 0).then(|| view! {
                    <PageLink to=Page::Links class="button secondary">"See the links"</PageLink>
                })}
                {(failed > 0).then(|| view! {
                    <button class="secondary" on:click=move |_| failures.with_untracked(|f| download_csv(f))>"Download errors (CSV)"</button>
                })}
            </div>
            {(failed > 0).then(|| view! { <FailureTable failures=failures/> })}
        </div>
    }
}

#[component]
fn FailureTable(failures: RwSignal<Vec<Failure>>) -> impl IntoView {
    let (rows, more) = failures.with_untracked(|all| {
        let rows = all
            .iter()
            .take(SHOWN_FAILURES)
            .map(|f| {
                let source: String = f.source.chars().take(80).collect();
                view! {
                    <tr data-line=f.line.to_string()>
                        <td class="num">{f.line}</td>
                        <td class="code">{source}</td>
                        <td>{f.field.clone().unwrap_or_default()}</td>
                        <td>{f.message.clone()}</td>
                    </tr>
                }
            })
            .collect_view();
        (rows, all.len().saturating_sub(SHOWN_FAILURES))
    });
    view! {
        <div class="table-wrap">
            <table id="import-errors">
                <caption class="visually-hidden">"Rows with errors"</caption>
                <thead>
                    <tr>
                        <th scope="col" class="num">"Line"</th>
                        <th scope="col">"Row"</th>
                        <th scope="col">"Field"</th>
                        <th scope="col">"Error"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        {(more > 0).then(|| view! { <p class="hint">{format!("And {} more: download the CSV for every row.", count(more as i64))}</p> })}
    }
}

/// Sends one chunk, and again after a pause (a few times) when it was refused before any
/// work (429 rate limit, 503 `busy`) or its answer was lost (no answer, another 503): with its
/// `Idempotency-Key` (`key`, the same on every attempt; none for a dry run, which writes
/// nothing) the origin answers a repeat with the first answer, so no link is made twice.
async fn send_chunk(
    session: &api::Session,
    body: String,
    key: Option<&str>,
) -> Result<shortlink::api::BulkResult, api::ApiError> {
    let mut pause = 1000;
    loop {
        match api::bulk_create(session, body.clone(), key).await {
            Err(err) if matches!(err.status, 0 | 429 | 503) && pause <= 16_000 => {
                TimeoutFuture::new(pause).await;
                pause *= 2;
            }
            answer => return answer,
        }
    }
}

/// A key no other import uses (this one's chunks add their number): the time, and a random
/// number (only unique among this caller's keys, so `Math.random` is enough).
fn import_key() -> String {
    let now = js_sys::Date::now() as u64;
    let random = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    format!("kurz-dashboard-{now:x}-{random:x}")
}

/// The body of one request (a `BulkCreate`, never atomic) of links already serialised.
fn body(links: &[String], dry_run: bool) -> String {
    let mut body = String::from("{\"links\":[");
    body.push_str(&links.join(","));
    body.push_str(if dry_run { "],\"dry_run\":true}" } else { "]}" });
    body
}

/// Saves the failed rows as a file, from a Blob URL (nothing goes to the server).
fn download_csv(failures: &[Failure]) {
    let blob = gloo_file::Blob::new_with_options(
        import::failures_csv(failures).as_str(),
        Some("text/csv"),
    );
    let url = gloo_file::ObjectUrl::from(blob);
    let Some(anchor) = document()
        .create_element("a")
        .ok()
        .and_then(|a| a.dyn_into::<web_sys::HtmlAnchorElement>().ok())
    else {
        return;
    };
    anchor.set_href(&url);
    anchor.set_download("import-errors.csv");
    anchor.click();
    // The download reads the URL after this click returns: keep it a moment.
    gloo_timers::callback::Timeout::new(10_000, move || drop(url)).forget();
}
