//! `kurz import`: a file from another shortener (or a kurz export) read here with
//! `shortlink::import`, sent to `POST /links/bulk` in chunks, each row's error reported.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use shortlink::api::{BulkCreate, BulkItemResult, CreateLink, MAX_BULK_LINKS, bulk_runs};
use shortlink::import::{self, Failure, Format, MAX_FILE_BYTES, Row};

use crate::{Client, Error, Exit};

/// Warnings (a password left out, ...) shown one by one before they are only counted.
const WARNINGS_SHOWN: usize = 20;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The file to import.
    file: PathBuf,
    /// The file's format: kurz, bitly, yourls-csv, yourls-sql, shlink-json, shlink-csv,
    /// kutt-json or csv (destination,code,tags). Default: told from the file.
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    format: Option<Format>,
    /// Check every row with the API (values, blocklist, whether its code is free) and create
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// All or nothing: create no link unless every row can be made (one request, so at most
    /// 1000 rows).
    #[arg(long)]
    atomic: bool,
    /// Write the failed rows (line, source, field, message) as CSV to this file instead of
    /// stderr.
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
}

fn parse_format(id: &str) -> Result<Format, String> {
    Format::from_id(id).ok_or_else(|| format!("one of: {}", format_ids()))
}

fn format_ids() -> String {
    let ids: Vec<&str> = Format::ALL.iter().map(|format| format.id()).collect();
    ids.join(", ")
}

/// Counts of what became of the rows sent.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    created: u64,
    would_create: u64,
    rolled_back: u64,
}

pub(crate) async fn run(
    client: &Client,
    args: Args,
    stderr: &mut dyn Write,
) -> Result<Exit, Error> {
    let rows = read_rows(&args.file, args.format)?;
    let mut failures = Vec::new();
    let mut links: Vec<(&Row, &CreateLink)> = Vec::with_capacity(rows.len());
    let mut warnings = 0;
    for row in &rows {
        for warning in &row.warnings {
            warnings += 1;
            if warnings <= WARNINGS_SHOWN {
                writeln!(
                    stderr,
                    "warning: line {} ({}): {warning}",
                    row.line, row.source
                )
                .ok();
            }
        }
        match &row.link {
            Ok(link) => links.push((row, link)),
            Err(err) => failures.push(Failure {
                line: row.line,
                source: row.source.clone(),
                field: err.field.clone(),
                message: err.message.clone(),
            }),
        }
    }
    if warnings > WARNINGS_SHOWN {
        writeln!(stderr, "({} more warnings)", warnings - WARNINGS_SHOWN).ok();
    }
    let runs = chunks(&links)?;
    if args.atomic && runs.len() > 1 {
        return Err(Error::Config(format!(
            "--atomic sends every row in one request, which takes at most {MAX_BULK_LINKS} \
             rows and 4 MiB; the file has {} rows",
            links.len()
        )));
    }
    // All or nothing starts here: a row that cannot even be read fails the whole file.
    let send = !args.atomic || failures.is_empty();
    let unreadable = failures.len();
    let mut tally = Tally::default();
    let mut stopped = None;
    if send {
        stopped = send_chunks(
            client,
            &args,
            &links,
            &runs,
            &mut tally,
            &mut failures,
            stderr,
        )
        .await
        .err();
    }
    // The rows that did not parse, then those the origin refused: each list in file order.
    let refused = failures.split_off(unreadable);
    let failures = import::in_file_order(failures, refused);
    write_failures(&failures, args.errors.as_deref(), stderr)?;
    summarise(&args, &tally, links.len(), &failures, send, stderr);
    if let Some(err) = stopped {
        let run = runs.iter().find(|run| run.start == tally.sent);
        if let Some(run) = run {
            writeln!(stderr, "{}", stop_note(&args, &links, run, &err)).ok();
        }
        return Err(err);
    }
    Ok(if failures.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// The file's rows, in the format asked for or the one it looks like.
fn read_rows(path: &Path, format: Option<Format>) -> Result<Vec<Row>, Error> {
    let shown = path.display().to_string();
    // Read no further than the limit: the parser would refuse the file anyway, after it was
    // all in memory (a pipe or `/dev/stdin` has no size to check first).
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, MAX_FILE_BYTES as u64 + 1),
                &mut bytes,
            )
        })
        .map_err(|err| Error::io(&shown, err))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Error::Input(format!(
            "{shown}: the file is larger than {MAX_FILE_BYTES} bytes; split it"
        )));
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let format = match format {
        Some(format) => format,
        None => shortlink::import::detect(&name, &bytes).ok_or_else(|| {
            Error::Config(format!(
                "cannot tell the format of {shown}; name it with --format ({})",
                format_ids()
            ))
        })?,
    };
    shortlink::import::parse(format, &bytes)
        .map_err(|err| Error::Input(format!("{shown} (read as {format}): {err}")))
}

/// Sends the links in chunks; returns early with the error that stopped it (its chunk's rows
/// and those after it not counted in `tally.sent`).
async fn send_chunks(
    client: &Client,
    args: &Args,
    links: &[(&Row, &CreateLink)],
    runs: &[Range<usize>],
    tally: &mut Tally,
    failures: &mut Vec<Failure>,
    stderr: &mut dyn Write,
) -> Result<(), Error> {
    // Each chunk's own key, the same for every attempt of it: a chunk whose answer was lost is
    // sent again and answered as the first time, so no link is made twice. A dry run writes
    // nothing and needs none.
    let run_key = super::create::idempotency_key();
    for (number, range) in runs.iter().enumerate() {
        let key = format!("{run_key}-chunk-{number}");
        let chunk = &links[range.clone()];
        let body = BulkCreate {
            links: chunk.iter().map(|(_, link)| *link).collect(),
            atomic: args.atomic,
            dry_run: args.dry_run,
        };
        let key = (!args.dry_run).then_some(key.as_str());
        let answer = client.bulk(&body, key).await?;
        if answer.results.len() != chunk.len() {
            return Err(Error::UnexpectedAnswer {
                status: 200,
                what: format!(
                    "{} results for {} links sent",
                    answer.results.len(),
                    chunk.len()
                ),
            });
        }
        for ((row, _), result) in chunk.iter().zip(answer.results) {
            match result {
                BulkItemResult::Created { .. } => tally.created += 1,
                BulkItemResult::WouldCreate => tally.would_create += 1,
                BulkItemResult::RolledBack => tally.rolled_back += 1,
                BulkItemResult::Failed { error } => failures.push(Failure {
                    line: row.line,
                    source: row.source.clone(),
                    field: error.field,
                    message: error.message,
                }),
            }
        }
        tally.sent += chunk.len();
        writeln!(
            stderr,
            "{} of {} rows sent: {} {}, {} failed",
            tally.sent,
            links.len(),
            if args.dry_run {
                tally.would_create
            } else {
                tally.created
            },
            if args.dry_run {
                "would be created"
            } else {
                "created"
            },
            failures.len()
        )
        .ok();
    }
    Ok(())
}

/// What became of the rows when a request failed: the run it carried was surely not created,
/// or may have been (no clear answer came: the origin may have committed it), and the runs
/// after it were not sent.
fn stop_note(
    args: &Args,
    links: &[(&Row, &CreateLink)],
    run: &Range<usize>,
    err: &Error,
) -> String {
    let line = |index: usize| links.get(index).map(|(row, _)| row.line);
    let (Some(first), Some(last)) = (line(run.start), line(run.end - 1)) else {
        return String::new();
    };
    if args.dry_run {
        return format!("stopped: the rows from line {first} on were not checked");
    }
    if !err.may_have_been_done() {
        return format!("stopped: the rows from line {first} on were not created");
    }
    let rest = match line(run.end) {
        Some(next) => format!("; the rows from line {next} on were not sent"),
        None => String::new(),
    };
    format!(
        "stopped: the rows of lines {first} to {last} may have been created (no clear answer \
         came; `kurz list` shows them){rest}"
    )
}

/// The links in request-sized runs ([`bulk_runs`]: within the origin's count and body limit).
fn chunks(links: &[(&Row, &CreateLink)]) -> Result<Vec<Range<usize>>, Error> {
    let lengths = links
        .iter()
        .map(|(row, link)| {
            serde_json::to_vec(link)
                .map(|json| json.len())
                .map_err(|err| Error::Input(format!("line {}: {err}", row.line)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(bulk_runs(lengths))
}

/// The failed rows as CSV: to `path`, or to `stderr`.
fn write_failures(
    failures: &[Failure],
    path: Option<&Path>,
    stderr: &mut dyn Write,
) -> Result<(), Error> {
    let csv = import::failures_csv(failures);
    match path {
        Some(path) => {
            std::fs::write(path, csv).map_err(|err| Error::io(path.display().to_string(), err))
        }
        None if failures.is_empty() => Ok(()),
        None => stderr
            .write_all(csv.as_bytes())
            .map_err(|err| Error::io("stderr", err)),
    }
}

fn summarise(
    args: &Args,
    tally: &Tally,
    rows: usize,
    failures: &[Failure],
    sent: bool,
    stderr: &mut dyn Write,
) {
    let failed = failures.len();
    let where_listed = match (&args.errors, failed) {
        (_, 0) => String::new(),
        (Some(path), _) => format!(" (listed in {})", path.display()),
        (None, _) => " (listed above)".to_owned(),
    };
    let text = if !sent {
        format!("nothing sent (--atomic): {failed} rows cannot be read{where_listed}")
    } else if args.dry_run {
        format!(
            "dry run: {} of {rows} links would be created, {failed} rows would fail{where_listed}",
            tally.would_create
        )
    } else if tally.rolled_back > 0 {
        format!("nothing created (--atomic): {failed} rows failed{where_listed}")
    } else {
        format!(
            "{} links created, {failed} rows failed{where_listed}",
            tally.created
        )
    };
    writeln!(stderr, "{text}").ok();
}
