//! `kurz export`: every link of the workspace, streamed from `GET /links/export` to stdout or
//! a file, never held in memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use shortlink::query::{ExportFormat, LinkExportQuery};

use crate::{Client, Error, Exit};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// jsonl (one link a line; `kurz import` reads it back) or csv (for spreadsheets).
    #[arg(long, value_parser = format_parser(), default_value = ExportFormat::Jsonl.id())]
    format: ExportFormat,
    /// Write to this file instead of stdout. It appears only once the export is complete.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `--format`: the export's formats as its query names them (listed in `--help`).
fn format_parser() -> impl TypedValueParser<Value = ExportFormat> {
    PossibleValuesParser::new(ExportFormat::ALL.map(ExportFormat::id))
        .try_map(|id| ExportFormat::from_id(&id).ok_or("not an export format"))
}

pub(crate) async fn run(
    client: &Client,
    args: Args,
    stdout: &mut dyn Write,
) -> Result<Exit, Error> {
    let query = LinkExportQuery {
        format: args.format,
        workspace: None,
    };
    match &args.output {
        None => {
            let mut out = std::io::BufWriter::new(stdout);
            copy(client, &query, &mut out, "stdout").await?;
            out.flush().map_err(|err| Error::io("stdout", err))?;
        }
        Some(path) => {
            // Written beside it and renamed when complete, so that a broken export never
            // leaves a file that looks whole (and a previous export stays until then).
            let partial = partial_path(path);
            let shown = partial.display().to_string();
            let file = std::fs::File::create(&partial).map_err(|err| Error::io(&shown, err))?;
            let mut out = std::io::BufWriter::new(file);
            let written = async {
                copy(client, &query, &mut out, &shown).await?;
                let file = out
                    .into_inner()
                    .map_err(|err| Error::io(&shown, err.into_error()))?;
                file.sync_all().map_err(|err| Error::io(&shown, err))
            }
            .await;
            if let Err(err) = written {
                std::fs::remove_file(&partial).ok();
                return Err(err);
            }
            std::fs::rename(&partial, path)
                .map_err(|err| Error::io(path.display().to_string(), err))?;
        }
    }
    Ok(Exit::Success)
}

/// Copies the answer's body to `out` as it arrives.
async fn copy(
    client: &Client,
    query: &LinkExportQuery,
    out: &mut dyn Write,
    shown: &str,
) -> Result<(), Error> {
    let mut response = client.export(query).await?;
    // An error after the first bytes (the origin stopped, the connection broke) ends the
    // body without its last chunk, which reqwest reports here: never a short export taken
    // for a whole one.
    while let Some(chunk) = response.chunk().await? {
        out.write_all(&chunk).map_err(|err| Error::io(shown, err))?;
    }
    Ok(())
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}
