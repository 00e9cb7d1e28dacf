//! Importing links from a file (a plain CSV, or another shortener's export) and exporting the
//! workspace's links.
//!
//! The browser sends the file as it is to `POST /api/v1/links/import/parse`, where the origin
//! reads it with `shortlink::import` (the parsers the CLI runs on its own machine; the
//! dashboard's wasm does not carry them) and answers the links, the rows that failed and the
//! warnings. The links go to `POST /api/v1/links/bulk` in chunks ([`bulk_runs`]: the origin's
//! count and size): first as a dry run, so the person sees what would be created, what would
//! fail and what would be imported without something before anything is written; then for
//! real, with a progress bar, stoppable between chunks. Every row that failed (to parse, or at
//! the origin) is listed with its line and can be downloaded as CSV. Nothing is all-or-nothing:
//! the good rows are created, the bad ones reported.

use std::ops::Range;

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos_i18n::I18nContext;
use shortlink::api::{BulkItemResult, bulk_runs};
use shortlink::import::{self, Failure, Format, MAX_PARSE_BYTES, ParseQuery, ParsedFile, Warning};
use shortlink::query::{ExportFormat, LinkExportQuery};
use shortlink::workspace::Permission;
use wasm_bindgen::JsCast;

use crate::i18n::{Locale, t, t_string, use_i18n};
use crate::nav::{Link as PageLink, Page};
use crate::range::count;
use crate::{Auth, Flash, api};

/// How many failed rows (and warnings) the page lists; the CSV download has every failure.
const SHOWN_ROWS: usize = 100;

#[component]
pub fn ImportExport() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let i18n = use_i18n();
    view! {
        <section class="page" aria-labelledby="import-title">
            <h1 id="import-title">{t!(i18n, import.title)}</h1>
            // Viewers may export what they can read; importing writes links.
            {move || auth.permits(Permission::WriteLinks).then(|| view! { <Import/> })}
            <section class="panel" aria-labelledby="export-title">
                <h2 id="export-title">{t!(i18n, import.export_title)}</h2>
                <p class="hint">{t!(i18n, import.export_hint)}</p>
                // A plain download: the session cookie goes with it, as with the clicks CSV, and
                // its URL names the workspace shown (refused if another tab switched since).
                <div class="buttons start">
                    <a class="button secondary" href=move || export_url(ExportFormat::Jsonl, auth.workspace_id()) download="">{t!(i18n, import.export_jsonl)}</a>
                    <a class="button secondary" href=move || export_url(ExportFormat::Csv, auth.workspace_id()) download="">{t!(i18n, import.export_csv)}</a>
                </div>
            </section>
        </section>
    }
}

/// `GET /api/v1/links/export` of `workspace` in that format.
fn export_url(format: ExportFormat, workspace: Option<i64>) -> String {
    let query = LinkExportQuery { format, workspace };
    format!("/api/v1/links/export?{}", api::query_string(&query))
}

/// The file as the origin read it: the links to send, each with its line and source text
/// (same index), the chunks they go in, and the rows that did not parse.
#[derive(Debug, Default)]
struct Parsed {
    /// Each link's JSON: its length sizes the chunks.
    links: Vec<String>,
    origins: Vec<(u64, String)>,
    /// The chunks of `links`, a request each.
    runs: Vec<Range<usize>>,
    failures: Vec<Failure>,
}

impl Parsed {
    /// The links are only passed on, so they are read as JSON values (see [`ParsedFile`]).
    fn of(file: ParsedFile<serde_json::Value>) -> Self {
        let (links, origins) = file
            .links
            .into_iter()
            .map(|parsed| (parsed.link.to_string(), (parsed.line, parsed.source)))
            .unzip();
        let mut parsed = Self {
            links,
            origins,
            runs: Vec::new(),
            failures: file.failures,
        };
        parsed.runs = bulk_runs(parsed.links.iter().map(String::len));
        parsed
    }
}

/// Where the import stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// No file yet, or a file not yet sent.
    Idle,
    /// Sending the file to the origin to read.
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

/// The import's state, shared by its parts (and by its tasks, which run without a reactive
/// owner to ask for the language or the session).
#[derive(Clone, Copy)]
struct ImportState {
    i18n: I18nContext<Locale>,
    auth: Auth,
    /// The chosen file, sent as it is (the page never reads it).
    file: StoredValue<Option<web_sys::File>, LocalStorage>,
    file_name: RwSignal<Option<String>>,
    /// The format chosen, or `None` for the origin to recognise it (then set to its answer).
    format: RwSignal<Option<Format>>,
    file_error: RwSignal<Option<String>>,
    /// The origin could not recognise the format: the person chooses it.
    format_unknown: RwSignal<bool>,
    parsed: StoredValue<Parsed>,
    /// The rows that failed (to parse, or at the origin), in file order.
    failures: RwSignal<Vec<Failure>>,
    warnings: RwSignal<Vec<Warning>>,
    stage: RwSignal<Stage>,
    stop: StoredValue<bool>,
    /// The dashboard's notice, which outlives this page: where a run stopped by leaving the
    /// page says so.
    flash: Flash,
}

impl ImportState {
    fn new() -> Self {
        Self {
            i18n: use_i18n(),
            auth: expect_context::<Auth>(),
            file: StoredValue::new_local(None),
            file_name: RwSignal::new(None),
            format: RwSignal::new(None),
            file_error: RwSignal::new(None),
            format_unknown: RwSignal::new(false),
            parsed: StoredValue::new(Parsed::default()),
            failures: RwSignal::new(Vec::new()),
            warnings: RwSignal::new(Vec::new()),
            stage: RwSignal::new(Stage::Idle),
            stop: StoredValue::new(false),
            flash: expect_context::<Flash>(),
        }
    }

    /// Forgets the last outcome (another file or format was chosen).
    fn reset(self) {
        self.stage.set(Stage::Idle);
        self.file_error.set(None);
        self.format_unknown.set(false);
        self.failures.set(Vec::new());
        self.warnings.set(Vec::new());
        self.parsed.set_value(Parsed::default());
    }

    fn busy(self) -> bool {
        matches!(self.stage.get(), Stage::Running { .. } | Stage::Parsing)
    }
}

#[component]
fn Import() -> impl IntoView {
    let i18n = use_i18n();
    let state = ImportState::new();
    provide_context(state);

    let choose_file = move |event: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&event);
        let Some(file) = input.files().and_then(|files| files.get(0)) else {
            return;
        };
        state.reset();
        // A new file's format is recognised anew, unless the person chooses one.
        state.format.set(None);
        state.file_name.set(Some(file.name()));
        if file.size() > MAX_PARSE_BYTES as f64 {
            let size = MAX_PARSE_BYTES / (1024 * 1024);
            state
                .file_error
                .set(Some(t_string!(i18n, import.too_large, size)));
            state.file.set_value(None);
            return;
        }
        state.file.set_value(Some(file));
    };

    let running = move || state.busy();
    view! {
        <section class="panel" aria-labelledby="import-panel-title">
            <h2 id="import-panel-title">{t!(i18n, import.import_title)}</h2>
            <p class="hint">{t!(i18n, import.import_hint)}</p>
            <div class="toolbar">
                <label class="grow">
                    <span class="label">{t!(i18n, import.file)}</span>
                    <input type="file" id="import-file" on:change=choose_file disabled=running
                        accept=".csv,.json,.jsonl,.ndjson,.txt,.sql"/>
                </label>
                <label>
                    <span class="label">{t!(i18n, import.format)}</span>
                    <select id="import-format" aria-label=move || t_string!(i18n, import.format) disabled=running
                        prop:value=move || state.format.get().map(|f| f.id().to_owned()).unwrap_or_default()
                        on:change=move |ev| {
                            let chosen = Format::from_id(&event_target_value(&ev));
                            state.reset();
                            state.format.set(chosen);
                        }>
                        <option value="">{t!(i18n, import.format_auto)}</option>
                        {Format::ALL.iter().map(|f| view! { <option value=f.id()>{format_name(*f)}</option> }).collect_view()}
                    </select>
                </label>
            </div>
            <p class="error" role="alert">{move || state.file_error.get()}</p>
            {move || (state.format_unknown.get() && !running()).then(|| view! {
                <p class="hint" id="import-format-unknown">{t!(i18n, import.format_unknown)}</p>
            })}
            <div class="buttons start">
                <button class="secondary" id="import-dry-run"
                    disabled=move || running() || state.file_name.get().is_none() || state.file_error.get().is_some()
                    on:click=move |_| read_and_check(state)>{t!(i18n, import.dry_run)}</button>
            </div>
            {move || match state.stage.get() {
                Stage::Idle => ().into_any(),
                Stage::Parsing => view! { <p class="loading" role="status">{t!(i18n, import.reading)}</p> }.into_any(),
                Stage::Running { dry_run, done, total } => view! { <Progress dry_run done total/> }.into_any(),
                Stage::Finished(summary) => view! { <Outcome summary/> }.into_any(),
            }}
        </section>
    }
}

/// A format's name in the page's language.
fn format_name(format: Format) -> impl IntoView + use<> {
    let i18n = use_i18n();
    match format {
        Format::Kurz => t!(i18n, import.format_kurz).into_any(),
        Format::Bitly => t!(i18n, import.format_bitly).into_any(),
        Format::YourlsCsv => t!(i18n, import.format_yourls_csv).into_any(),
        Format::YourlsSql => t!(i18n, import.format_yourls_sql).into_any(),
        Format::ShlinkJson => t!(i18n, import.format_shlink_json).into_any(),
        Format::ShlinkCsv => t!(i18n, import.format_shlink_csv).into_any(),
        Format::KuttJson => t!(i18n, import.format_kutt_json).into_any(),
        Format::Csv => t!(i18n, import.format_csv).into_any(),
    }
}

/// Sends the file to the origin to read, then its links as a dry run.
fn read_and_check(state: ImportState) {
    let auth = state.auth;
    let Some(session) = auth.session() else {
        return;
    };
    let Some(file) = state.file.get_value() else {
        return;
    };
    let query = ParseQuery {
        format: state.format.get_untracked(),
        name: state.file_name.get_untracked(),
    };
    state.reset();
    state.stage.set(Stage::Parsing);
    leptos::task::spawn_local(async move {
        match api::parse_import(&session, &query, &file).await {
            Ok(parsed) => {
                state.format.try_set(Some(parsed.format));
                state.warnings.try_set(parsed.warnings.clone());
                state.parsed.try_set_value(Parsed::of(parsed));
                send(session, state, true).await;
            }
            Err(err) => {
                auth.check(&err);
                match err.field.as_deref() {
                    Some("format") if query.format.is_none() => {
                        state.format_unknown.try_set(true);
                    }
                    _ => {
                        state.file_error.try_set(Some(err.message));
                    }
                }
                state.stage.try_set(Stage::Idle);
            }
        }
    });
}

/// Sends every link the origin read in chunks; a dry run only checks them.
async fn send(session: api::Session, state: ImportState, dry_run: bool) {
    let (i18n, auth) = (state.i18n, state.auth);
    state.stop.set_value(false);
    let Some(total) = state.parsed.try_with_value(|p| p.links.len()) else {
        return;
    };
    // The origin's refusals, in file order like the parse errors.
    let mut found = Vec::new();
    let (mut sent, mut ok, mut stopped) = (0, 0, None);
    let Some(runs) = state.parsed.try_with_value(|p| p.runs.clone()) else {
        return;
    };
    let import_key = import_key();
    // Every chunk goes to the workspace the import began in, whatever the page shows later.
    let workspace = api::shown_workspace();
    for (number, run) in runs.into_iter().enumerate() {
        if state.stop.try_get_value() != Some(false) {
            stopped = Some(t_string!(i18n, import.stopped).to_string());
            break;
        }
        state.stage.try_set(Stage::Running {
            dry_run,
            done: sent,
            total,
        });
        // The page is gone (another page was opened): stop here, said below.
        let Some(body) = state
            .parsed
            .try_with_value(|p| p.links.get(run.clone()).map(|links| body(links, dry_run)))
            .flatten()
        else {
            break;
        };
        let key = format!("{import_key}-chunk-{number}");
        let key = (!dry_run).then_some(key.as_str());
        let answer = match send_chunk(&session, body, key, workspace, state.stop).await {
            Ok(answer) => answer,
            Err(err) => {
                auth.check(&err);
                let number = sent + 1;
                stopped = Some(t_string!(
                    i18n,
                    import.stopped_at,
                    number,
                    error = err.message
                ));
                break;
            }
        };
        for (index, result) in answer.results.into_iter().enumerate() {
            match result {
                BulkItemResult::Created { .. } | BulkItemResult::WouldCreate => ok += 1,
                BulkItemResult::Failed { error } => {
                    let (line, source) = state
                        .parsed
                        .try_with_value(|p| p.origins.get(sent + index).cloned())
                        .flatten()
                        .unwrap_or_default();
                    found.push(Failure {
                        line,
                        source,
                        field: error.field,
                        // In the page's language, as every other error of the origin.
                        message: api::localized(&error.code, &error.message),
                    });
                }
                BulkItemResult::RolledBack => {}
            }
        }
        sent = run.end;
        // Between chunks: the page draws the progress, a click on Stop is seen.
        TimeoutFuture::new(0).await;
    }
    let Some(refused) = state
        .parsed
        .try_with_value(|p| import::in_file_order(p.failures.clone(), found))
    else {
        // The page is gone, and the run stopped with it: said on the page the person is on
        // now, until another notice replaces it (a dry run wrote nothing: nothing to say).
        if !dry_run && sent < total {
            state.flash.0.set(Some(t_string!(
                i18n,
                import.left_page,
                done = count(sent as i64),
                total = count(total as i64),
                created = count(ok as i64)
            )));
        }
        return;
    };
    state.failures.try_set(refused);
    state.stage.try_set(Stage::Finished(Summary {
        dry_run,
        ok,
        sent,
        total,
        stopped,
    }));
}

/// A run on its way: how far, and Stop.
#[component]
fn Progress(dry_run: bool, done: usize, total: usize) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<ImportState>();
    let text = t_string!(
        i18n,
        import.progress,
        done = count(done as i64),
        total = count(total as i64)
    );
    view! {
        <div class="import-progress">
            <label for="import-progress">{if dry_run { t!(i18n, import.checking).into_any() } else { t!(i18n, import.importing).into_any() }}</label>
            <progress id="import-progress" max=total.max(1).to_string() value=done.to_string()
                aria-label=move || if dry_run { t_string!(i18n, import.dry_run_progress) } else { t_string!(i18n, import.import_progress) }
                aria-valuetext=text.clone()></progress>
            <span class="progress-text" role="status">{text}</span>
            <button class="secondary" on:click=move |_| state.stop.set_value(true)>{t!(i18n, import.stop)}</button>
        </div>
    }
}

/// "3 links" and "1 row", in the page's language.
fn links_and_rows(links: usize, rows: usize) -> (String, String) {
    let i18n = use_i18n();
    let links = match links {
        1 => t_string!(i18n, import.links_1).to_string(),
        n => t_string!(i18n, import.links_n, count = count(n as i64)),
    };
    let rows = match rows {
        1 => t_string!(i18n, import.rows_1).to_string(),
        n => t_string!(i18n, import.rows_n, count = count(n as i64)),
    };
    (links, rows)
}

/// The end of a run: what was (or would be) created, the rows that failed, the warnings, and
/// what next.
#[component]
fn Outcome(summary: Summary) -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<ImportState>();
    let failed = state.failures.with(Vec::len);
    let warned = state.warnings.with(Vec::len);
    let (links, rows) = links_and_rows(summary.ok, failed);
    let text = match (summary.dry_run, failed) {
        (true, 1) => {
            t_string!(i18n, import.dry_run_done_1, links = links.clone(), rows)
        }
        (true, _) => {
            t_string!(i18n, import.dry_run_done_n, links = links.clone(), rows)
        }
        (false, _) => t_string!(i18n, import.imported, links = links.clone(), rows),
    };
    let finished = summary.sent == summary.total;
    let import = move |_| {
        let Some(session) = state.auth.session() else {
            return;
        };
        leptos::task::spawn_local(send(session, state, false));
    };
    let import_label = t_string!(i18n, import.import_button, links);
    view! {
        <div class="import-summary" id="import-summary">
            {(!summary.dry_run).then(|| view! {
                <progress id="import-progress" max=summary.total.max(1).to_string() value=summary.sent.to_string()
                    aria-label=move || t_string!(i18n, import.import_progress)
                    aria-valuetext=t_string!(i18n, import.progress, done = count(summary.sent as i64), total = count(summary.total as i64))></progress>
            })}
            <p class="notice" role="status">{text}</p>
            {summary.stopped.map(|why| view! { <p class="error" role="alert">{why}</p> })}
            <div class="buttons start">
                {(summary.dry_run && finished && summary.ok > 0).then(|| view! {
                    <button class="primary" on:click=import>{import_label}</button>
                })}
                {(!summary.dry_run && summary.ok > 0).then(|| view! {
                    <PageLink to=Page::Links class="button secondary">{t!(i18n, import.see_links)}</PageLink>
                })}
                {(failed > 0).then(|| view! {
                    <button class="secondary" on:click=move |_| state.failures.with_untracked(|f| download_csv(f))>{t!(i18n, import.download_errors)}</button>
                })}
            </div>
            {(failed > 0).then(|| view! { <FailureTable/> })}
            {(warned > 0).then(|| view! { <WarningTable/> })}
        </div>
    }
}

#[component]
fn FailureTable() -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<ImportState>();
    let (rows, more) = state.failures.with_untracked(|all| {
        let rows = all
            .iter()
            .take(SHOWN_ROWS)
            .map(|f| {
                view! {
                    <tr data-line=f.line.to_string()>
                        <td class="num">{f.line}</td>
                        <td class="code">{shortened(&f.source)}</td>
                        <td>{f.field.clone().unwrap_or_default()}</td>
                        <td>{f.message.clone()}</td>
                    </tr>
                }
            })
            .collect_view();
        (rows, all.len().saturating_sub(SHOWN_ROWS))
    });
    view! {
        <div class="table-wrap">
            <table id="import-errors">
                <caption class="visually-hidden">{t!(i18n, import.errors_caption)}</caption>
                <thead>
                    <tr>
                        <th scope="col" class="num">{t!(i18n, import.line)}</th>
                        <th scope="col">{t!(i18n, import.row)}</th>
                        <th scope="col">{t!(i18n, import.field)}</th>
                        <th scope="col">{t!(i18n, import.error)}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        {(more > 0).then(|| view! { <p class="hint">{t!(i18n, import.more_errors, count = move || count(more as i64))}</p> })}
    }
}

/// What rows are imported without (a password, a visit limit) or with changed (a title cut).
#[component]
fn WarningTable() -> impl IntoView {
    let i18n = use_i18n();
    let state = expect_context::<ImportState>();
    let (rows, more) = state.warnings.with_untracked(|all| {
        let rows = all
            .iter()
            .take(SHOWN_ROWS)
            .map(|w| {
                view! {
                    <tr data-line=w.line.to_string()>
                        <td class="num">{w.line}</td>
                        <td class="code">{shortened(&w.source)}</td>
                        <td>{w.message.clone()}</td>
                    </tr>
                }
            })
            .collect_view();
        (rows, all.len().saturating_sub(SHOWN_ROWS))
    });
    view! {
        <h3 id="import-warnings-title">{t!(i18n, import.warnings_title)}</h3>
        <p class="hint">{t!(i18n, import.warnings_hint)}</p>
        <div class="table-wrap">
            <table id="import-warnings" aria-labelledby="import-warnings-title">
                <thead>
                    <tr>
                        <th scope="col" class="num">{t!(i18n, import.line)}</th>
                        <th scope="col">{t!(i18n, import.row)}</th>
                        <th scope="col">{t!(i18n, import.warning)}</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        {(more > 0).then(|| view! { <p class="hint">{t!(i18n, import.more_warnings, count = move || count(more as i64))}</p> })}
    }
}

/// A row's source as the table shows it: its first 80 characters.
fn shortened(source: &str) -> String {
    source.chars().take(80).collect()
}

/// Sends one chunk to `workspace`, and again after a pause (a few times) when it was refused
/// before any work (429 rate limit, 503 `busy`) or its answer was lost (no answer, another
/// 503): with its `Idempotency-Key` (`key`, the same on every attempt; none for a dry run,
/// which writes nothing) the origin answers a repeat with the first answer, so no link is made
/// twice. No retry once the page is gone (`stop` dropped with it).
async fn send_chunk(
    session: &api::Session,
    body: String,
    key: Option<&str>,
    workspace: Option<i64>,
    stop: StoredValue<bool>,
) -> Result<shortlink::api::BulkResult, api::ApiError> {
    let mut pause = 1000;
    loop {
        match api::bulk_create(session, body.clone(), key, workspace).await {
            Err(err) if matches!(err.status, 0 | 429 | 503) && pause <= 16_000 => {
                TimeoutFuture::new(pause).await;
                if stop.try_get_value().is_none() {
                    return Err(err);
                }
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
