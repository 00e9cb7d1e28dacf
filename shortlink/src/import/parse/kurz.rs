//! kurz's own JSON-lines export (`GET /api/v1/links/export`): one
//! [`ExportedLink`] per line, made a [`CreateLink`] again with every field that round-trips:
//! destination, code, status, expiry, switched off, click limit, fallback, targeting, split,
//! UTM, tags, note, title, creation date, its clicks in all as `imported_clicks`, and the
//! clicks it used against its limit as `clicks_used` (so a used-up link stays used up).
//!
//! A link's password is never exported (a `Link` only says `password_protected`): such a link
//! is imported without one, with a warning on its row. Its id, short URL, version and
//! `updated_at` belong to the deployment it left.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{FileError, Format, Row, RowError, push};
use crate::api::{CreateLink, ExportedLink};
use crate::timestamp;

pub(super) fn parse(text: &str, max: usize) -> Result<Vec<Row>, FileError> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let row = match serde_json::from_str::<ExportedLink>(line) {
            Ok(exported) => {
                let source = exported.link.code.as_str().to_owned();
                let mut warnings = Vec::new();
                if exported.link.password_protected {
                    warnings.push(
                        "the link had a password, which exports leave out: it is imported \
                         without one"
                            .to_owned(),
                    );
                }
                if exported.clicks.is_none() {
                    warnings.push(
                        "the export holds no click total (it was made by a key without \
                         stats:read): the link is imported with none"
                            .to_owned(),
                    );
                }
                Row {
                    line: 0,
                    source,
                    link: create_link(exported),
                    warnings,
                }
            }
            Err(e) => Row {
                line: 0,
                source: code_of_malformed(line),
                link: Err(RowError::whole(format_args!("not a kurz link: {e}"))),
                warnings: Vec::new(),
            },
        };
        push(
            &mut rows,
            Row {
                line: index as u64 + 1,
                ..row
            },
            max,
        )?;
    }
    Ok(rows)
}

/// The link to create again. Timestamps a `Link` carries are checked against kurz's range, as
/// the API would (a `Link` is read without that check).
fn create_link(exported: ExportedLink) -> Result<CreateLink, RowError> {
    let ExportedLink { link, clicks } = exported;
    // The edge's clicks are counted after they happened, so a link may have used a few more
    // than its limit: it is used up, which its limit says as well.
    let clicks_used = link
        .max_clicks
        .map_or(0, |max| link.clicks_used.min(max.get()));
    let created_at =
        timestamp::check(link.created_at).map_err(|e| RowError::new("created_at", e))?;
    let expires_at = link
        .expires_at
        .map(timestamp::check)
        .transpose()
        .map_err(|e| RowError::new("expires_at", e))?;
    Ok(CreateLink {
        destination: link.destination,
        code: Some(link.code),
        status: link.status,
        expires_at,
        disabled: link.disabled,
        max_clicks: link.max_clicks,
        fallback_url: link.fallback_url,
        password: None,
        targets: link.targets,
        split: link.split,
        utm: link.utm,
        tags: link.tags,
        note: link.note,
        title: link.title,
        created_at: Some(created_at),
        imported_clicks: clicks.unwrap_or(0),
        clicks_used,
    })
}

/// The `code` of a line that is not a valid link, so people can find it.
fn code_of_malformed(line: &str) -> String {
    #[derive(Deserialize)]
    struct CodeOnly {
        code: Option<String>,
    }
    serde_json::from_str::<CodeOnly>(line)
        .ok()
        .and_then(|only| only.code)
        .unwrap_or_default()
}

/// A kurz export: its first line is one link (an object with `code`, `short_url` and
/// `destination`).
pub(super) fn detect(text: &str) -> Option<Format> {
    #[derive(Deserialize)]
    struct Probe {
        code: Option<IgnoredAny>,
        short_url: Option<IgnoredAny>,
        destination: Option<IgnoredAny>,
    }
    let first = text.lines().next()?;
    // An object: serde reads a struct from an array as well, by position (a one-line array of
    // three Shlink records passed for the three fields).
    if !first.trim_start().starts_with('{') {
        return None;
    }
    let probe = serde_json::from_str::<Probe>(first).ok()?;
    (probe.code.is_some() && probe.short_url.is_some() && probe.destination.is_some())
        .then_some(Format::Kurz)
}
