//! Importers: a file exported from another shortener (or from kurz itself) read into
//! [`CreateLink`](crate::api::CreateLink) rows, ready for `POST /api/v1/links/bulk` in chunks of
//! [`MAX_BULK_LINKS`](crate::api::MAX_BULK_LINKS).
//!
//! Pure parsers, like the rest of the crate: the `kurz` CLI runs them on a file from disk, the
//! origin on a file the dashboard uploads (`POST /api/v1/links/import/parse`, answering a
//! [`ParsedFile`]); both clients send the rows, show each row's error and write the rows that
//! failed as the same CSV ([`failures_csv`]). Nothing here talks to a network, reads a clock or
//! draws a random number.
//!
//! The parsers ([`parse`], [`detect`], and the `csv` crate) are behind the `import` feature:
//! the dashboard leaves it out and keeps only what it shows ([`Format`], [`ParsedFile`],
//! [`Failure`] and its CSV), so its wasm does not carry them.
//!
//! | [`Format`] | what | its shape comes from |
//! |---|---|---|
//! | `kurz` | kurz's own JSON-lines export: one [`ExportedLink`](crate::api::ExportedLink) a line | `shortlink/src/api.rs` |
//! | `bitly` | Bitly's CSV export of links | Bitly's API fields (`link`, `custom_bitlinks`, `long_url`, `title`, `tags`, `created_at`) and its web export's columns (`Link`, `Custom Link`, `Destination URL`, ...) |
//! | `yourls-csv` | the YOURLS Import/Export plugin's CSV (`source,target,hits`), or the `yourls_url` table as CSV (`keyword,url,title,timestamp,ip,clicks`) | GautamGupta/YOURLS-Import-Export `fileio/csv.php`; YOURLS `includes/functions-install.php` |
//! | `yourls-sql` | a mysqldump of the `yourls_url` table (any table prefix) | the same table definition |
//! | `shlink-json` | Shlink's REST API, `GET /rest/v3/short-urls` pages, or a bare array of short URLs | shlinkio/shlink `ShortUrlDataTransformer` and `ShortUrl::toArray` |
//! | `shlink-csv` | shlink-web-client's "Export" of short URLs | shlinkio/shlink-web-client `ExportShortUrlsBtn.tsx` |
//! | `kutt-json` | Kutt's API, `GET /api/v2/links` pages, or a bare array of links | thedevs-network/kutt `server/utils/utils.js` (`sanitize.link`) |
//! | `csv` | a plain `destination,code,tags` CSV, header optional | kurz |
//!
//! `shortlink/tests/import/samples/README.md` says which document or source file each sample
//! file follows.
//!
//! What every source keeps: the original code, when it is a valid [`ShortCode`](crate::ShortCode)
//! (a code kurz refuses is that row's error, never silently replaced by a generated one); the
//! destination; and where the source has them, the creation date (`created_at`, in UTC), the
//! title, the tags and the click total (`imported_clicks`). Every value goes through the same
//! rules as a link typed in the dashboard ([`ShortCode`](crate::ShortCode), the [`rules`](crate::rules)), and a code is refused here when it names a route of the links API
//! (`bulk`, `export`) or an earlier row of the same file took it. A title or note longer than
//! kurz keeps is cut to its limit, with a warning on its row: it is no reason to lose the link.
//!
//! What only the API can check, so a row that parses here may still be refused when sent: what
//! depends on the time of the request (a `created_at` in the future, an `expires_at` that is
//! not after `created_at`, or already past when the row has no `created_at`), on the
//! deployment's data (a code already in use, a destination that loops to this deployment) and
//! on its limits (`imported_clicks` above 10^15, which the store refuses).
//!
//! What is not kept: the source's domain (a link moves to this deployment's), per-click
//! history, and passwords (no source exports them: a protected link is imported without one,
//! with a warning on its row).
//!
//! Built without the `url` feature, [`Destination::parse`](crate::Destination::parse) takes
//! only destinations already in normalised form, so a destination with unencoded characters
//! becomes a row error rather than a link.

mod failures;
mod format;
#[cfg(feature = "import")]
mod parse;
mod parsed;

pub use failures::{Failure, failures_csv, in_file_order};
pub use format::Format;
#[cfg(feature = "import")]
pub use parse::{FileError, Row, RowError, detect, parse, parse_at_most};
pub use parsed::{MAX_PARSE_BYTES, MAX_PARSE_ROWS, ParseQuery, ParsedFile, ParsedLink, Warning};

/// The largest file an importer reads: beyond, the CLI would hold several times this much while
/// parsing. The origin's parse route takes less ([`MAX_PARSE_BYTES`]).
pub const MAX_FILE_BYTES: usize = 100 * 1024 * 1024;

/// The most rows one file may hold (each row is kept in memory until sent).
pub const MAX_ROWS: usize = 1_000_000;
