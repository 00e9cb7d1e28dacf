//! Abuse protection: the destination blocklist's rules ([`BlockRule`]), and the bodies of the
//! blocklist and abuse-report routes.
//!
//! A rule is a domain (`evil.example`: it and every subdomain, on any port) or a URL pattern
//! (`example.com/phish/*`, `*.example.net/login*`) matched against a destination without its
//! scheme. Both are normalised as destinations are (lower case, punycode, no trailing dot), so
//! a rule blocks every spelling the URL parser folds into the same destination.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Destination;
#[cfg(feature = "url")]
use crate::Error;

/// Longest rule, in bytes after normalisation: a host (253) with a path worth matching.
pub const MAX_RULE_LEN: usize = 500;
/// Most `*` in a pattern: enough for any real pattern, and the matcher's work stays small.
pub const MAX_STARS: usize = 8;
/// Longest reason given for a rule, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest details of a report, in characters.
pub const MAX_DETAILS_CHARS: usize = 2000;
/// Longest "short URL or code" of a report, in characters (a short URL, with room to spare).
pub const MAX_REPORTED_CHARS: usize = 300;
/// Longest contact address of a report, in characters (RFC 5321's limit on a path).
pub const MAX_CONTACT_CHARS: usize = 254;

/// A blocklist rule, normalised. Made only by [`BlockRule::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRule {
    /// A host (lower case, punycode, no trailing dot, no port): blocks it and its subdomains.
    Domain(String),
    /// A pattern over `host[:port]/path?query` (lower case, host in punycode), `*` matching
    /// any run of characters (`/` included), anchored at both ends.
    Pattern(String),
}

/// Whether a rule is a domain or a pattern, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Domain,
    Pattern,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domain => "domain",
            Self::Pattern => "pattern",
        }
    }
}

#[cfg(feature = "url")]
fn refuse(reason: impl Into<String>) -> Error {
    Error::BlockRule {
        reason: reason.into(),
    }
}

impl BlockRule {
    /// A rule from what an admin typed: a leading `http://` or `https://` is dropped (a rule
    /// covers both schemes); then text with a `/` or `*` is a pattern, anything else a domain.
    #[cfg(feature = "url")]
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        if input.len() > 2 * MAX_RULE_LEN {
            return Err(Error::TooLong {
                what: "rule",
                max: MAX_RULE_LEN,
                len: input.chars().count(),
            });
        }
        let lower = input.to_lowercase();
        let rest = ["https://", "http://"]
            .iter()
            .find_map(|scheme| lower.strip_prefix(scheme))
            .unwrap_or(&lower);
        // The path with its unreserved characters decoded, as destinations are matched, before
        // any check: every check sees the form that is stored (and read again).
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let decoded = format!("{}{}", &rest[..split], decode_unreserved(&rest[split..]));
        let rest = decoded.as_str();
        if rest.is_empty() {
            return Err(Error::Empty { what: "rule" });
        }
        if rest.contains("://") {
            return Err(refuse("only http and https destinations can be blocked"));
        }
        if rest.chars().any(char::is_whitespace) {
            return Err(refuse("a rule must not contain spaces"));
        }
        // Decoding left the host as it was, and makes no `/`, `?` or `#` (none is unreserved).
        let (host, path) = rest.split_at(split);
        // `good.example@evil.example` would read as a trusted name; destinations never carry
        // user names (they are refused), so a rule with one could only mislead.
        if host.contains('@') {
            return Err(refuse("a rule must not contain a user name ('@')"));
        }
        // The URL parser decodes a host's `%2a` into a `*` it then keeps: a name is typed as
        // itself (Unicode is fine), never percent-encoded.
        if host.contains('%') {
            return Err(refuse("a rule's host must not be percent-encoded ('%')"));
        }
        let rule = if path.is_empty() && !host.contains('*') {
            // A port is dropped: a domain is blocked on every port.
            let (domain, _port) = host_key(host)?;
            // `com` would disable every .com link of every workspace: far more than any
            // abuse, and one typo away from a real rule.
            if !domain.starts_with('[') && !domain.contains('.') {
                return Err(refuse(format!(
                    "{domain:?} is a single label (a top-level domain or a bare name): a domain rule must name a domain such as evil.example, to block only it and its subdomains"
                )));
            }
            Self::Domain(domain)
        } else {
            let stars = rest.matches('*').count();
            if stars > MAX_STARS {
                return Err(refuse(format!(
                    "a pattern may hold at most {MAX_STARS} '*'"
                )));
            }
            if rest.chars().all(|c| c == '*' || c == '/' || c == '.') {
                return Err(refuse("a pattern must name something besides '*'"));
            }
            // `*.com/*` is the single-label domain rule again, spelled as a pattern: every
            // link under a top-level domain. A pattern whose host is only `*` labels and one
            // name must narrow it down by its path.
            let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
            let mut labels = name.trim_end_matches('.').rsplit('.');
            let last = labels.next().unwrap_or_default();
            let only_stars_before =
                labels.all(|label| !label.is_empty() && label.bytes().all(|b| b == b'*'));
            let path_is_any = path.chars().all(|c| c == '*' || c == '/');
            if only_stars_before && !last.contains('*') && path_is_any {
                return Err(refuse(format!(
                    "{input:?} would block every link under .{last}: name a domain (evil.example) or narrow the pattern with a path"
                )));
            }
            Self::Pattern(format!("{}{}", pattern_host(host)?, pattern_path(path)))
        };
        if rule.as_str().len() > MAX_RULE_LEN {
            return Err(Error::TooLong {
                what: "rule",
                max: MAX_RULE_LEN,
                len: rule.as_str().len(),
            });
        }
        Ok(rule)
    }

    /// The normalised text (what the blocklist stores and shows).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Domain(text) | Self::Pattern(text) => text,
        }
    }

    pub fn kind(&self) -> RuleKind {
        match self {
            Self::Domain(_) => RuleKind::Domain,
            Self::Pattern(_) => RuleKind::Pattern,
        }
    }

    /// Whether the rule blocks this destination.
    pub fn matches(&self, destination: &Destination) -> bool {
        let host = destination.host_key();
        match self {
            Self::Domain(domain) => {
                let host = host.as_str();
                host == domain
                    || host
                        .strip_suffix(domain.as_str())
                        .is_some_and(|sub| sub.ends_with('.'))
            }
            Self::Pattern(pattern) => glob(pattern, &without_scheme(destination, host.as_str())),
        }
    }

    /// Text that every destination this rule matches contains (case-insensitively) as it is
    /// stored, unless the stored text holds a `%` (an encoded character [`BlockRule::matches`]
    /// decodes), to find candidates in the database before `matches` decides; `None` when
    /// there is no such text of 3 characters or more.
    ///
    /// A domain is its own needle, except an IPv4 address (an IPv6 spelling may hide it). A
    /// pattern's comes only from its path, query or fragment: `matches` compares the host as
    /// [`crate::HostKey`] normalises it, which the stored text may spell otherwise
    /// (`evil.example.`, `[::ffff:7f00:1]`), while what follows the host is compared as
    /// stored.
    pub fn needle(&self) -> Option<&str> {
        let needle = match self {
            Self::Domain(domain) => {
                let ipv4ish = domain.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                (!ipv4ish).then_some(domain.as_str())?
            }
            Self::Pattern(pattern) => {
                let after_host = &pattern[pattern.find(['/', '?', '#'])?..];
                after_host.split('*').max_by_key(|part| part.len())?
            }
        };
        (needle.len() >= 3).then_some(needle)
    }

    /// The host and each parent domain of a destination's host: the domain rules that could
    /// block it are among these (an indexed lookup instead of reading every rule).
    pub fn domains_of(destination: &Destination) -> Vec<String> {
        let host = destination.host_key();
        let host = host.as_str();
        let mut domains = vec![host.to_owned()];
        if !host.starts_with('[') {
            domains.extend(
                host.match_indices('.')
                    .map(|(at, _)| host[at + 1..].to_owned())
                    .filter(|parent| !parent.is_empty()),
            );
        }
        domains
    }
}

impl std::fmt::Display for BlockRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host as a destination's is normalised ([`crate::HostKey`]), and its port if given.
#[cfg(feature = "url")]
fn host_key(host: &str) -> Result<(String, Option<u16>), Error> {
    if host.is_empty() {
        return Err(Error::Empty {
            what: "rule's host",
        });
    }
    let parse = |host: &str| {
        url::Url::parse(&format!("http://{host}/"))
            .map_err(|err| refuse(format!("{host:?} is not a host name: {err}")))
    };
    let url = parse(host)?;
    let mut name = crate::HostKey::new(url.host_str().unwrap_or_default());
    // Without its trailing dots a name may read otherwise (`0..` is `0`, which is 0.0.0.0):
    // read again until it stays, as the stored rule will be.
    for _ in 0..3 {
        // `.` is a host to the URL parser, and nothing once its trailing dot is gone.
        if name.as_str().is_empty() {
            return Err(Error::Empty {
                what: "rule's host",
            });
        }
        let again = crate::HostKey::new(parse(name.as_str())?.host_str().unwrap_or_default());
        if again == name {
            break;
        }
        name = again;
    }
    Ok((name.as_str().to_owned(), url.port()))
}

/// A pattern's host: each label without a `*` normalised like a host (punycode), the rest
/// kept as typed (lower case, ASCII only).
#[cfg(feature = "url")]
fn pattern_host(host: &str) -> Result<String, Error> {
    if !host.contains('*') {
        return Ok(match host_key(host)? {
            (name, Some(port)) => format!("{name}:{port}"),
            (name, None) => name,
        });
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit() || b == b'*') => {
            (name, Some(port))
        }
        _ => (host, None),
    };
    let labels = name
        .trim_end_matches('.')
        .split('.')
        .map(|label| {
            if label.contains('*') {
                if label
                    .bytes()
                    .all(|b| b == b'*' || b == b'-' || b.is_ascii_alphanumeric())
                {
                    Ok(label.to_owned())
                } else {
                    Err(refuse(format!(
                        "{label:?}: a label with '*' may hold only letters, digits and '-'"
                    )))
                }
            } else if !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                Ok(label.to_owned())
            } else {
                // Read as a label of a name, not as a whole host: alone, `163` or `0x1f`
                // would be an IPv4 address (`0.0.0.163`), and a stored rule would grow each
                // time it is read again.
                let (name, _) = host_key(&format!("{label}.invalid"))?;
                Ok(name.strip_suffix(".invalid").unwrap_or(&name).to_owned())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut text = labels.join(".");
    if let Some(port) = port {
        text.push(':');
        text.push_str(port);
    }
    Ok(text)
}

/// A pattern's path, query and fragment as a destination's are stored: a `/` before a query
/// or fragment right after the host (`example.com?utm=*`), and what is not ASCII
/// percent-encoded (in lower case, as matching reads destinations).
#[cfg(feature = "url")]
fn pattern_path(path: &str) -> String {
    let mut text = String::with_capacity(path.len() + 1);
    if path.starts_with(['?', '#']) {
        text.push('/');
    }
    for c in path.chars() {
        if c.is_ascii() {
            text.push(c);
        } else {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                text.push_str(&format!("%{byte:02x}"));
            }
        }
    }
    text
}

/// `text` with each percent-encoded unreserved character (`A-Z a-z 0-9 - . _ ~`) decoded, in
/// lower case: RFC 3986 (6.2.2.2) makes `/%70hish` and `/phish` the same resource, and
/// servers answer them alike, so a pattern and a destination are compared in this form. So
/// are the characters a URL may not hold as they are but that delimit nothing
/// (`" ' < > ^ ` { | }`): the URL parser encodes some of them in one part of a destination and
/// keeps them in another (`{` in a path, not in a query), and a server reads both alike. Any
/// other `%XX` (a reserved character, a byte of UTF-8) means something else decoded and is
/// kept. Decoded again until nothing changes (`%%37%30` is `%70`, then `p`), on both sides:
/// a server decodes once, but a blocklist had rather block a contrived spelling too than
/// have a rule and a destination disagree.
fn decode_unreserved(text: &str) -> String {
    let mut text = text.to_owned();
    loop {
        // Each round that changes anything shortens the text.
        let once = decode_once(&text);
        if once == text {
            return text.to_lowercase();
        }
        text = once;
    }
}

fn decode_once(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let unreserved = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'.'
                            | b'_'
                            | b'~'
                            | b'"'
                            | b'\''
                            | b'<'
                            | b'>'
                            | b'^'
                            | b'`'
                            | b'{'
                            | b'|'
                            | b'}'
                    )
            });
        match unreserved {
            Some(byte) => {
                decoded.push(char::from(byte));
                i += 3;
            }
            None => {
                let next = text[i..].chars().next().map_or(1, char::len_utf8);
                decoded.push_str(&text[i..i + next]);
                i += next;
            }
        }
    }
    decoded
}

/// What a pattern is matched against: the destination without its scheme, the host as
/// [`crate::HostKey`] has it (so `evil.example.` is `evil.example`), unreserved characters
/// decoded (so `/%70hish` is `/phish`), lower case.
fn without_scheme(destination: &Destination, host_key: &str) -> String {
    let text = destination.as_str();
    let after_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
    let after_host = after_scheme
        .get(destination.host().len()..)
        .unwrap_or_default();
    format!("{host_key}{}", decode_unreserved(after_host)).to_lowercase()
}

/// Whether `pattern` (with `*` for any run of characters) matches all of `text`. Linear in
/// practice: a `*` is retried only from the position after its last try (the classic greedy
/// matcher), so no input backtracks exponentially.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// An entry of the blocklist (`GET /api/v1/abuse/blocklist`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockEntry {
    pub id: i64,
    /// Normalised: a domain (`evil.example`) or a pattern (`example.com/phish/*`).
    pub rule: String,
    pub kind: RuleKind,
    pub reason: String,
    /// Who added it: the person's or key's name when they did (kept after they are renamed
    /// or removed). Always present in this server's answers.
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Links this rule disabled when it was added (in every workspace).
    pub links_disabled: u64,
    /// Whether every existing link has been checked against it (a large deployment's links
    /// are checked in batches, in the background, after the answer).
    pub sweep_done: bool,
}

/// `POST /api/v1/abuse/blocklist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddBlockRule {
    /// A domain (`evil.example`, its subdomains too) or a pattern (`example.com/phish/*`).
    pub rule: String,
    /// Why (shown to admins), at most 500 characters.
    #[serde(default)]
    pub reason: String,
}

/// The whole blocklist (it is small: domains and patterns an admin typed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Blocklist {
    pub entries: Vec<BlockEntry>,
}

/// What a report says is wrong with a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportCategory {
    Phishing,
    Malware,
    Spam,
    Illegal,
    Other,
}

impl ReportCategory {
    pub const ALL: [Self; 5] = [
        Self::Phishing,
        Self::Malware,
        Self::Spam,
        Self::Illegal,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phishing => "phishing",
            Self::Malware => "malware",
            Self::Spam => "spam",
            Self::Illegal => "illegal",
            Self::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// As the report form shows it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Phishing => "Phishing (steals passwords or payment details)",
            Self::Malware => "Malware (harmful downloads)",
            Self::Spam => "Spam",
            Self::Illegal => "Illegal content",
            Self::Other => "Something else",
        }
    }
}

/// `POST /report`: a visitor's report of a short link (JSON, or the form's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    /// The short URL (`https://kurz.example/abc`) or its code.
    pub link: String,
    pub category: ReportCategory,
    /// What is wrong, at most 2000 characters.
    #[serde(default)]
    pub details: String,
    /// An address to reach the reporter at, if they want to be; at most 254 characters.
    #[serde(default)]
    pub contact: Option<String>,
}

/// Whether a report is still to be looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Open,
    Resolved,
}

/// `GET /api/v1/abuse/reports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `open` (the default) or `resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReportStatus>,
    /// From a previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// A stored report, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub id: i64,
    /// What the reporter typed.
    pub link: String,
    /// The code it named, when a live link had it at the time of the report.
    pub code: Option<String>,
    /// The reported link's workspace and destination, while the link exists.
    pub workspace_id: Option<i64>,
    pub destination: Option<String>,
    /// Whether the reported link is disabled now.
    pub link_disabled: Option<bool>,
    /// Whether this report's resolution holds the link down now: its workspace cannot enable
    /// it, give it a fallback or delete it until the operator lifts the takedown
    /// (`DELETE /api/v1/abuse/reports/{id}/takedown`).
    #[serde(default)]
    pub link_taken_down: Option<bool>,
    pub category: ReportCategory,
    pub details: String,
    pub contact: Option<String>,
    pub status: ReportStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub resolved_by: Option<String>,
}

/// One page of `GET /api/v1/abuse/reports`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportPage {
    pub reports: Vec<Report>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `PATCH /api/v1/abuse/reports/{id}`: resolve a report, and disable its link if asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResolveReport {
    /// Must be `resolved` (reports are not reopened).
    pub status: ReportStatus,
    /// Also disable the reported link (as a `PATCH` of the link would, synced to the edge).
    #[serde(default)]
    pub disable_link: bool,
}

#[cfg(all(test, feature = "url"))]
mod tests {
    use super::*;

    fn rule(text: &str) -> BlockRule {
        BlockRule::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    fn dest(text: &str) -> Destination {
        Destination::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    #[test]
    fn rules_parse_into_their_normal_form() {
        let cases = [
            ("evil.example", BlockRule::Domain("evil.example".into())),
            ("  EVIL.Example. ", BlockRule::Domain("evil.example".into())),
            (
                "https://evil.example",
                BlockRule::Domain("evil.example".into()),
            ),
            (
                "bücher.example",
                BlockRule::Domain("xn--bcher-kva.example".into()),
            ),
            (
                "evil.example:8080",
                BlockRule::Domain("evil.example".into()),
            ),
            ("203.0.113.9", BlockRule::Domain("203.0.113.9".into())),
            ("[::1]", BlockRule::Domain("[::1]".into())),
            (
                "Example.COM/Phish/*",
                BlockRule::Pattern("example.com/phish/*".into()),
            ),
            (
                "*.example.net/login*",
                BlockRule::Pattern("*.example.net/login*".into()),
            ),
            (
                "http://*.bücher.example/*",
                BlockRule::Pattern("*.xn--bcher-kva.example/*".into()),
            ),
            ("evil*.example", BlockRule::Pattern("evil*.example".into())),
            // Under a whole top-level domain, but narrowed by the name or the path.
            ("paypal-*.com", BlockRule::Pattern("paypal-*.com".into())),
            (
                "*.com/paypal-login*",
                BlockRule::Pattern("*.com/paypal-login*".into()),
            ),
            // A label of digits is a label, not an IPv4 address.
            (
                "*.163.com/login*",
                BlockRule::Pattern("*.163.com/login*".into()),
            ),
            (
                "*.0x1f.example/*",
                BlockRule::Pattern("*.0x1f.example/*".into()),
            ),
            // As destinations are stored: a path before a query, non-ASCII percent-encoded.
            (
                "example.com?utm=*",
                BlockRule::Pattern("example.com/?utm=*".into()),
            ),
            (
                "example.com/über*",
                BlockRule::Pattern("example.com/%c3%bcber*".into()),
            ),
            // Unreserved characters decoded, to a fixed point.
            (
                "example.com/%70hish/%7E*",
                BlockRule::Pattern("example.com/phish/~*".into()),
            ),
            (
                "example.com/%%37%30hish*",
                BlockRule::Pattern("example.com/phish*".into()),
            ),
            (
                "example.com/%2f%25*",
                BlockRule::Pattern("example.com/%2f%25*".into()),
            ),
            (
                "example.com/%41dmin/%4A*",
                BlockRule::Pattern("example.com/admin/j*".into()),
            ),
            // Characters a URL may not hold as they are but that delimit nothing: decoded.
            (
                "example.com/%7Bid%7D/%22x%22%3cy%3e*",
                BlockRule::Pattern("example.com/{id}/\"x\"<y>*".into()),
            ),
            (
                "example.com/*?q=%27*",
                BlockRule::Pattern("example.com/*?q='*".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(rule(input), expected, "{input}");
            // Stored rules are read again on every check: the normal form is a fixed point.
            assert_eq!(rule(expected.as_str()), expected, "{input} read again");
        }
    }

    #[test]
    fn rules_refused() {
        let long = format!("{}.example", "a".repeat(600));
        let cases = [
            "",
            "   ",
            "https://",
            "ftp://evil.example",
            "good.example@evil.example",
            "good.example@evil.example/x",
            "evil example",
            "*",
            "*/*",
            "*.*",
            "a*b*c*d*e*f*g*h*i*j.example",
            long.as_str(),
            "ex ample.com/x",
            "*bücher.example/*",
            // A single label would block a whole top-level domain (or nothing real).
            "com",
            "COM.",
            "https://com:443",
            "localhost",
            "xn--p1ai",
            // The same as a pattern: everything under a top-level domain.
            "*.com/*",
            "*.com",
            "*.*.com/",
            "https://*.COM:443/**",
            // Refused as what they decode to (and are stored as): only `*`, `/` and `.`.
            "*/%2e%2e/*",
            "*/%2E",
            "*.*/%2e*",
            ".%2a",
            "evil%2eexample",
        ];
        for input in cases {
            assert!(BlockRule::parse(input).is_err(), "{input:?} was accepted");
        }
    }

    proptest::proptest! {
        /// Stored rules are parsed again on every check: whatever is accepted is accepted
        /// again, as itself.
        #[test]
        fn an_accepted_rule_is_a_fixed_point(input in "(https?://)?[a-zA-Z*.%0-9ü:\\[\\]-]{0,12}(:[0-9]{1,4})?([/?#][a-zA-Z0-9*%./?#~_ü{}'-]{0,16})?") {
            if let Ok(rule) = BlockRule::parse(&input) {
                proptest::prop_assert_eq!(BlockRule::parse(rule.as_str()), Ok(rule), "{}", input);
            }
        }
    }

    #[test]
    fn domains_block_themselves_and_subdomains() {
        let evil = rule("evil.example");
        let cases = [
            ("https://evil.example/", true),
            ("http://evil.example/x?y=1", true),
            ("https://EVIL.example./login", true),
            ("https://www.evil.example/", true),
            ("https://a.b.evil.example:8443/", true),
            ("https://notevil.example/", false),
            ("https://evil.example.com/", false),
            ("https://good.example/evil.example", false),
            ("https://good.example/?u=https://evil.example/", false),
        ];
        for (url, blocked) in cases {
            assert_eq!(evil.matches(&dest(url)), blocked, "{url}");
        }
        let idn = rule("bücher.example");
        assert!(idn.matches(&dest("https://BÜCHER.example/")));
        assert!(idn.matches(&dest("https://shop.xn--bcher-kva.example/")));
        let ip = rule("127.0.0.1");
        assert!(ip.matches(&dest("http://[::ffff:7f00:1]/")));
        assert!(ip.matches(&dest("http://2130706433/")));
    }

    #[test]
    fn user_info_cannot_smuggle_a_host() {
        // A destination never carries a user name, so the trick cannot reach a link at all.
        assert!(Destination::parse("https://good.example@evil.example/").is_err());
        // And a rule naming the trusted part does not block the real host by accident.
        assert!(!rule("good.example").matches(&dest("https://evil.example/good.example")));
    }

    #[test]
    fn patterns_match_the_whole_destination_without_scheme() {
        let cases = [
            ("example.com/phish/*", "https://example.com/phish/a/b", true),
            ("example.com/phish/*", "http://EXAMPLE.com/Phish/x", true),
            ("example.com/phish/*", "https://example.com/phish", false),
            (
                "example.com/phish/*",
                "https://www.example.com/phish/x",
                false,
            ),
            ("example.com/phish/*", "https://example.com/other", false),
            ("*.example.net/login*", "https://a.example.net/login", true),
            (
                "*.example.net/login*",
                "https://a.b.example.net/login?x=1",
                true,
            ),
            ("*.example.net/login*", "https://example.net/login", false),
            (
                "*.example.net/login*",
                "https://a.example.net/logout",
                false,
            ),
            ("*.example.net/login*", "https://a.example.net./login", true),
            ("example.com:8080/*", "https://example.com:8080/x", true),
            ("example.com:8080/*", "https://example.com/x", false),
            ("example.com/*", "https://example.com:8080/x", false),
            (
                "*.bücher.example/*",
                "https://shop.xn--bcher-kva.example/",
                true,
            ),
            ("*.163.com/login*", "https://mail.163.com/login", true),
            ("example.com?utm=*", "https://example.com?utm=x", true),
            ("example.com/über*", "https://example.com/über/x", true),
            ("*/wp-login.php", "https://any.example/wp-login.php", true),
            // Unreserved characters percent-encoded are the same path to a server: in the
            // destination, and in the rule as typed.
            ("example.com/phish/*", "https://example.com/%70hish/x", true),
            (
                "example.com/phish/*",
                "https://example.com/%70%48%49sh/x",
                true,
            ),
            ("example.com/%70hish/*", "https://example.com/phish/x", true),
            ("*/wp-login.php", "https://a.example/wp%2Dlogin%2ephp", true),
            ("example.com?utm=*", "https://example.com?%75tm=x", true),
            // A reserved character or a byte of UTF-8 encoded means something else.
            ("example.com/a/b*", "https://example.com/a%2Fb", false),
            ("example.com/über*", "https://example.com/%C3%BCber", true),
            ("example.com/%*", "https://example.com/%25", true),
            ("example.com/%2*", "https://example.com/%2", true),
            // Characters a URL may not hold as they are but that delimit nothing, which the
            // parser encodes in a path and keeps in a query (`{`), or the reverse (`'`).
            ("example.com/{id}*", "https://example.com/{id}/x", true),
            ("example.com/{id}*", "https://example.com/%7Bid%7D", true),
            ("example.com/<x>*", "https://example.com/%3Cx%3E", true),
            (
                "example.com/*{email}*",
                "https://example.com/in?u={email}",
                true,
            ),
            (
                "example.com/*{email}*",
                "https://example.com/{email}/x",
                true,
            ),
            ("example.com/*?q='*", "https://example.com/a?q='1'", true),
            ("example.com/*'*", "https://example.com/it's", true),
            ("example.com/*%27*", "https://example.com/a?q='1'", true),
            (
                "*/wp-login.php",
                "https://any.example/wp-login.php?x",
                false,
            ),
        ];
        for (pattern, url, blocked) in cases {
            assert_eq!(
                rule(pattern).matches(&dest(url)),
                blocked,
                "{pattern} {url}"
            );
        }
    }

    #[test]
    fn needles_are_in_every_match() {
        let cases = [
            ("evil.example", Some("evil.example")),
            ("10.0.0.1", None),
            ("*.example.net/login*", Some("/login")),
            // The host is compared normalised, but stored as typed: never its needle.
            ("evil.example/phish*", Some("/phish")),
            ("evil.example/*", None),
            ("10.0.0.1/*", None),
            ("evil*.example", None),
            ("*/a*", None),
            ("example.com:8080/*/wp-admin/*", Some("/wp-admin/")),
            ("example.com?utm=*", Some("/?utm=")),
            ("example.com/*123.45", Some("123.45")),
        ];
        for (text, needle) in cases {
            assert_eq!(rule(text).needle(), needle, "{text}");
        }
        // Each needle is in the stored text of destinations the rule blocks, however the
        // host is spelt there.
        let blocked = [
            ("evil.example/phish*", "https://evil.example./phish"),
            ("evil.example/phish*", "https://EVIL.example/Phish/x"),
            ("127.0.0.1/login*", "http://[::ffff:7f00:1]/login"),
            ("*.example.net/login*", "https://a.example.net./login?x"),
            ("evil.example", "https://www.evil.example./x"),
        ];
        for (text, url) in blocked {
            let (rule, destination) = (rule(text), dest(url));
            assert!(rule.matches(&destination), "{text} {url}");
            if let Some(needle) = rule.needle() {
                assert!(
                    destination.as_str().to_lowercase().contains(needle),
                    "{text}: {needle:?} not in {}",
                    destination.as_str()
                );
            }
        }
    }

    #[test]
    fn domains_of_a_host_are_it_and_its_parents() {
        assert_eq!(
            BlockRule::domains_of(&dest("https://a.b.Evil.example./x")),
            [
                "a.b.evil.example",
                "b.evil.example",
                "evil.example",
                "example"
            ]
        );
        assert_eq!(BlockRule::domains_of(&dest("http://[::1]/")), ["[::1]"]);
    }

    #[test]
    fn glob_never_backtracks_without_bound() {
        let text = "a".repeat(4000);
        let pattern = format!("*a*a*a*a*a*a*a*b{}", "");
        assert!(!glob(&pattern, &text));
        assert!(glob("*", ""));
        assert!(glob("a*", "a"));
        assert!(!glob("a", ""));
    }
}
