//! One module per command; each takes the [`crate::Client`] and its parsed arguments.

pub(crate) mod create;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod list;
pub(crate) mod stats;

use std::io::Write;

use crate::Error;

/// Writes one line of results; a closed `stdout` (`kurz list | head`) ends the command.
pub(crate) fn line(out: &mut dyn Write, text: std::fmt::Arguments<'_>) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(|err| Error::io("stdout", err))
}

/// Writes `value` as one line of JSON.
pub(crate) fn json_line(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), Error> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|err| Error::io("stdout", std::io::Error::other(err)))?;
    line(out, format_args!(""))
}
