//! Kutt: its API's links as JSON.
//!
//! `GET /api/v2/links` answers `{"total", "limit", "skip", "data": [...]}`, each link as
//! thedevs-network/kutt's `sanitize.link` (`server/utils/utils.js`) writes it: `id`, `address`
//! (the code), `target`, `description`, `visit_count`, `created_at`, `expire_in`, `password`
//! (only whether there is one), `banned`, `link` (the short URL: a string in v2, `{link, url}`
//! in v3). The description becomes the note; `expire_in` the expiry. A password is not exported
//! by Kutt: such a link is imported without one, with a warning. A link Kutt banned is
//! imported switched off, with a warning.

use serde::Deserialize;

use super::{Clicks, Draft, FileError, Format, Row, json, push};

#[derive(Debug, Deserialize)]
struct Link {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    visit_count: Option<u64>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    expire_in: Option<String>,
    #[serde(default)]
    password: Option<bool>,
    #[serde(default)]
    banned: Option<bool>,
    #[serde(default)]
    link: Option<ShortLink>,
}

/// `"https://kutt.it/abc"` (v2) or `{"link": "kutt.it/abc", "url": "https://kutt.it/abc"}` (v3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ShortLink {
    Text(String),
    Parts {
        #[serde(default)]
        url: Option<String>,
    },
}

pub(super) fn parse(text: &str, max: usize) -> Result<Vec<Row>, FileError> {
    let mut rows = Vec::new();
    for (index, link) in json::records::<Link>(text, Format::KuttJson, max)?
        .iter()
        .enumerate()
    {
        let mut warnings = Vec::new();
        if link.password == Some(true) {
            warnings.push(
                "the link had a password, which Kutt does not export: it is imported without one"
                    .to_owned(),
            );
        }
        let draft = Draft {
            destination: link.target.as_deref().unwrap_or_default(),
            code: link.address.as_deref(),
            code_required: true,
            created_at: link.created_at.as_deref(),
            expires_at: link.expire_in.as_deref(),
            note: link.description.as_deref(),
            clicks: link.visit_count.map_or(Clicks::None, Clicks::Number),
            ..Draft::default()
        };
        let mut built = draft.build(&mut warnings);
        if link.banned == Some(true) {
            warnings.push("Kutt had banned the link: it is imported switched off".to_owned());
            if let Ok(create) = &mut built {
                create.disabled = true;
            }
        }
        let source = match &link.link {
            Some(ShortLink::Text(url)) => Some(url.as_str()),
            Some(ShortLink::Parts { url }) => url.as_deref(),
            None => None,
        }
        .or(link.address.as_deref())
        .unwrap_or_default();
        push(
            &mut rows,
            Row {
                line: index as u64 + 1,
                source: source.to_owned(),
                link: built,
                warnings,
            },
            max,
        )?;
    }
    Ok(rows)
}
