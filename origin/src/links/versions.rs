//! A link's version over HTTP: the `ETag` of its answers, and the `If-Match` that makes a
//! change apply only to the version the client read (RFC 9110 §13.1.1), so two people editing
//! one link cannot silently overwrite each other.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::error::Error;

/// The strong entity tag of a link at `version`.
pub(crate) fn etag(version: u64) -> HeaderValue {
    HeaderValue::from(version)
        .to_str()
        .ok()
        .and_then(|digits| HeaderValue::from_str(&format!("\"{digits}\"")).ok())
        .unwrap_or_else(|| HeaderValue::from_static("\"0\""))
}

/// A request's `If-Match`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IfMatch {
    /// `*`: any current version (the link must exist, as it must anyway).
    Any,
    /// The versions named by strong tags; weak tags (`W/"…"`) and tags that are not a version
    /// never match: `If-Match` compares strongly.
    Versions(Vec<u64>),
}

/// At most this many tags are read from one request: more is not a client that means it.
const MAX_TAGS: usize = 32;

impl IfMatch {
    /// The request's `If-Match`, if it sent one (all its header lines together). A value that
    /// is not a list of entity tags is a 400: a client that asked for a conditional change
    /// must not get an unconditional one.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, Error> {
        let mut lines = headers.get_all(header::IF_MATCH).iter().peekable();
        if lines.peek().is_none() {
            return Ok(None);
        }
        let mut versions = Vec::new();
        let mut any = false;
        let mut tags = 0;
        for line in lines {
            let line = line.to_str().map_err(|_| bad())?;
            for tag in line.split(',').map(str::trim).filter(|tag| !tag.is_empty()) {
                tags += 1;
                if tags > MAX_TAGS {
                    return Err(Error::BadRequest(format!(
                        "If-Match names more than {MAX_TAGS} versions"
                    )));
                }
                if tag == "*" {
                    any = true;
                    continue;
                }
                let (weak, quoted) = match tag.strip_prefix("W/") {
                    Some(rest) => (true, rest),
                    None => (false, tag),
                };
                let opaque = quoted
                    .strip_prefix('"')
                    .and_then(|rest| rest.strip_suffix('"'))
                    .filter(|opaque| !opaque.contains('"'))
                    .ok_or_else(bad)?;
                if let (false, Ok(version)) = (weak, opaque.parse::<u64>()) {
                    versions.push(version);
                }
            }
        }
        if tags == 0 {
            return Err(bad());
        }
        Ok(Some(if any {
            Self::Any
        } else {
            Self::Versions(versions)
        }))
    }

    /// Refuses the change (412) unless the link's `current` version is one the client named.
    pub(crate) fn check(&self, current: u64) -> Result<(), Error> {
        match self {
            Self::Any => Ok(()),
            Self::Versions(versions) if versions.contains(&current) => Ok(()),
            Self::Versions(_) => Err(Error::PreconditionFailed { current }),
        }
    }
}

fn bad() -> Error {
    Error::BadRequest(
        "If-Match must be \"*\" or entity tags as the link's ETag gives them, e.g. \"42\""
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Option<IfMatch>, Error> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                header::IF_MATCH,
                HeaderValue::from_str(line).expect("value"),
            );
        }
        IfMatch::from_headers(&headers)
    }

    #[test]
    fn if_match_values() {
        type Parsed = Result<Option<IfMatch>, ()>;
        let table: &[(&[&str], Parsed)] = &[
            (&[], Ok(None)),
            (&["\"7\""], Ok(Some(IfMatch::Versions(vec![7])))),
            (&[" \"7\" , \"9\""], Ok(Some(IfMatch::Versions(vec![7, 9])))),
            (&["\"7\"", "\"9\""], Ok(Some(IfMatch::Versions(vec![7, 9])))),
            (&["*"], Ok(Some(IfMatch::Any))),
            // Weak and foreign tags are well-formed but never match.
            (&["W/\"7\""], Ok(Some(IfMatch::Versions(vec![])))),
            (&["\"abc\""], Ok(Some(IfMatch::Versions(vec![])))),
            (&["7"], Err(())),
            (&["\"7"], Err(())),
            (&[""], Err(())),
            (&["\"7\"\"\""], Err(())),
        ];
        for (lines, expected) in table {
            let got = parse(lines).map_err(|_| ());
            assert_eq!(&got, expected, "{lines:?}");
        }
    }

    #[test]
    fn too_many_tags_are_refused() {
        let many = vec!["\"1\""; MAX_TAGS + 1].join(",");
        assert!(parse(&[&many]).is_err());
    }

    #[test]
    fn check_compares_versions() {
        assert!(IfMatch::Any.check(5).is_ok());
        assert!(IfMatch::Versions(vec![4, 5]).check(5).is_ok());
        assert!(matches!(
            IfMatch::Versions(vec![4]).check(5),
            Err(Error::PreconditionFailed { current: 5 })
        ));
    }

    #[test]
    fn etag_is_a_quoted_version() {
        assert_eq!(etag(42), "\"42\"");
    }
}
