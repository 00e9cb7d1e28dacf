//! The file formats the importers read, as the CLI's `--format`, the dashboard's choice and the
//! parse route's `format` name them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The file formats the importers read; in JSON and query strings by its [`id`](Format::id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// kurz's own JSON-lines export: one `ExportedLink` per line.
    Kurz,
    /// Bitly's CSV export of links.
    Bitly,
    /// The YOURLS Import/Export plugin's CSV, or the `yourls_url` table as CSV.
    YourlsCsv,
    /// A mysqldump of YOURLS's `yourls_url` table.
    YourlsSql,
    /// Shlink's REST API answer (`GET /rest/v3/short-urls`), or an array of its short URLs.
    ShlinkJson,
    /// shlink-web-client's CSV export of short URLs.
    ShlinkCsv,
    /// Kutt's API answer (`GET /api/v2/links`), or an array of its links.
    KuttJson,
    /// A plain CSV: `destination,code,tags`, header optional.
    Csv,
}

impl Format {
    pub const ALL: [Format; 8] = [
        Format::Kurz,
        Format::Bitly,
        Format::YourlsCsv,
        Format::YourlsSql,
        Format::ShlinkJson,
        Format::ShlinkCsv,
        Format::KuttJson,
        Format::Csv,
    ];

    /// For people: what the dashboard lists.
    pub fn name(self) -> &'static str {
        match self {
            Format::Kurz => "kurz export (JSON lines)",
            Format::Bitly => "Bitly (CSV export)",
            Format::YourlsCsv => "YOURLS (CSV export)",
            Format::YourlsSql => "YOURLS (database dump)",
            Format::ShlinkJson => "Shlink (API JSON)",
            Format::ShlinkCsv => "Shlink (CSV export)",
            Format::KuttJson => "Kutt (API JSON)",
            Format::Csv => "CSV (destination, code, tags)",
        }
    }

    /// For URLs and the CLI's `--format`.
    pub fn id(self) -> &'static str {
        match self {
            Format::Kurz => "kurz",
            Format::Bitly => "bitly",
            Format::YourlsCsv => "yourls-csv",
            Format::YourlsSql => "yourls-sql",
            Format::ShlinkJson => "shlink-json",
            Format::ShlinkCsv => "shlink-csv",
            Format::KuttJson => "kutt-json",
            Format::Csv => "csv",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.id() == id)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_have_unique_ids_that_round_trip() {
        for format in Format::ALL {
            assert_eq!(Format::from_id(format.id()), Some(format));
            assert!(!format.name().is_empty());
            let json = serde_json::to_string(&format).expect("serialises");
            assert_eq!(json, format!("\"{}\"", format.id()));
            assert_eq!(serde_json::from_str::<Format>(&json).ok(), Some(format));
        }
        assert_eq!(Format::from_id("nope"), None);
    }
}
