//! Destinations: the absolute http(s) URL a short link sends its visitors to.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest destination accepted, in bytes after normalisation. Longer URLs break in browsers,
/// proxies and KV keys alike, and are almost always a tracking blob pasted by mistake.
const MAX_LEN: usize = 4096;

/// An absolute `http`/`https` URL with a host and no user-info part, normalised (lower-case
/// scheme and host, punycode host, default port dropped, path percent-encoded) and at most
/// 4096 bytes long.
///
/// With the `url` feature (the default), [`Destination::parse`] parses and normalises any
/// input with the `url` crate. Without it (the edge worker, where the URL parser and its
/// Unicode tables would be a fifth of the download), it accepts only what is already in that
/// normalised form: the edge only ever reads destinations the origin normalised and signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Destination(String);

#[cfg(feature = "openapi")]
crate::openapi::schema!(
    Destination,
    crate::openapi::text(
        "An absolute http or https URL with a host and no user-info; normalised when stored.",
        (1, MAX_LEN),
        Some("^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\\s]+"),
    )
);

impl Destination {
    #[cfg(feature = "url")]
    pub fn parse(input: &str) -> Result<Self, Error> {
        use url::Url;
        // Checking the raw length first keeps a multi-megabyte string away from the URL parser.
        let input = input.trim();
        if input.len() > 2 * MAX_LEN {
            return Err(Error::DestinationTooLong {
                max: MAX_LEN,
                len: input.len(),
            });
        }
        let url = Url::parse(input).map_err(|e| Error::DestinationUnparsable {
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::DestinationScheme {
                scheme: url.scheme().to_owned(),
            });
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::DestinationNoHost);
        }
        // `https://paypal.com@evil.example/` shows a trusted name but goes elsewhere.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::DestinationUserInfo);
        }
        let normalised = String::from(url);
        if normalised.len() > MAX_LEN {
            return Err(Error::DestinationTooLong {
                max: MAX_LEN,
                len: normalised.len(),
            });
        }
        // What the origin writes, the edge (built without `url`) must accept.
        debug_assert_eq!(check_normalised(&normalised), Ok(()), "{normalised}");
        Ok(Self(normalised))
    }

    /// Accepts only an already normalised destination (see the type's documentation).
    #[cfg(not(feature = "url"))]
    pub fn parse(input: &str) -> Result<Self, Error> {
        check_normalised(input)?;
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host, lower-case (and punycode for international names).
    pub fn host(&self) -> &str {
        // The parse above guarantees an authority: "scheme://host[:port]/...".
        let after_scheme = self.0.split_once("://").map_or("", |(_, rest)| rest);
        let authority = after_scheme
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        if authority.starts_with('[') {
            // IPv6 literal: keep the brackets, drop the port.
            return authority
                .split_once(']')
                .map_or(authority, |(host, _)| &authority[..=host.len()]);
        }
        authority.split(':').next().unwrap_or_default()
    }

    /// The host as a loop check compares it (see [`HostKey`]).
    pub fn host_key(&self) -> HostKey {
        HostKey::new(self.host())
    }

    /// Whether this destination points at one of `hosts`, ports ignored; used to refuse links
    /// that would redirect to the shortener itself.
    pub fn points_to_any<'a>(&self, hosts: impl IntoIterator<Item = &'a HostKey>) -> bool {
        let own = self.host_key();
        hosts.into_iter().any(|host| *host == own)
    }
}

/// A host in the one form that a loop check compares: lower-case, without the trailing dots of
/// a fully qualified name (`kurz.example.` is `kurz.example`), an IPv4-mapped IPv6 address as
/// the IPv4 address it reaches (`[::ffff:7f00:1]` is `127.0.0.1`).
///
/// The other spellings of an address (`2130706433`, `0x7f.1`, `0177.0.0.1`, `[0::1]`,
/// `%2E` in a name) are already one form in a [`Destination`]: the URL parser normalises them.
/// Ports are not part of a host: the same host on another port is refused too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostKey(String);

impl HostKey {
    /// From a host as [`Destination::host`] gives it (brackets around IPv6 kept).
    pub fn new(host: &str) -> Self {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mapped = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok())
            .and_then(|ip| ip.to_ipv4_mapped());
        match mapped {
            Some(v4) => Self(v4.to_string()),
            None => Self(host),
        }
    }

    /// The host of a URL (`https://kurz.example:8443/x`) or a bare host (`kurz.example`,
    /// `10.0.0.5`, `[::1]`, with or without a port), normalised as a destination's is.
    #[cfg(feature = "url")]
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        let url = if input.contains("://") {
            input.to_owned()
        } else {
            format!("http://{input}/")
        };
        Destination::parse(&url).map(|destination| destination.host_key())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The checks a normalised destination passes: `http(s)://`, a host, no user-info, only
/// printable ASCII (normalisation percent-encodes everything else) and at most 4096 bytes.
fn check_normalised(input: &str) -> Result<(), Error> {
    if input.len() > MAX_LEN {
        return Err(Error::DestinationTooLong {
            max: MAX_LEN,
            len: input.len(),
        });
    }
    let Some((scheme, rest)) = input.split_once("://") else {
        return Err(Error::DestinationUnparsable {
            reason: "not an absolute URL".to_owned(),
        });
    };
    if !matches!(scheme, "http" | "https") {
        return Err(Error::DestinationScheme {
            scheme: scheme.to_owned(),
        });
    }
    if !input.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::DestinationUnparsable {
            reason: "not in normalised form (unencoded characters)".to_owned(),
        });
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(Error::DestinationUserInfo);
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(Error::DestinationNoHost);
    }
    Ok(())
}

impl TryFrom<String> for Destination {
    type Error = Error;

    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl std::str::FromStr for Destination {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl From<Destination> for String {
    fn from(destination: Destination) -> Self {
        destination.0
    }
}

impl AsRef<str> for Destination {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(all(test, feature = "url"))]
mod tests {
    use super::*;

    #[test]
    fn every_normalised_destination_passes_the_edge_check() {
        for input in [
            "https://example.com",
            "https://bücher.example/ä?q=ü#ö",
            "http://[::1]:8080/a b",
            "https://example.com/%E2%9C%93?x=\"y\"&z=<1>",
        ] {
            let destination = Destination::parse(input).expect("valid");
            assert_eq!(
                check_normalised(destination.as_str()),
                Ok(()),
                "{destination}"
            );
        }
        for (input, expected) in [
            ("ftp://example.com/", "scheme"),
            ("example.com/a", "unparsable"),
            ("https://exa mple.com/", "unparsable"),
            ("https://bücher.example/", "unparsable"),
            ("https://a@evil.example/", "userinfo"),
            ("https:///path", "nohost"),
        ] {
            let kind = match check_normalised(input) {
                Err(Error::DestinationScheme { .. }) => "scheme",
                Err(Error::DestinationUnparsable { .. }) => "unparsable",
                Err(Error::DestinationUserInfo) => "userinfo",
                Err(Error::DestinationNoHost) => "nohost",
                other => panic!("{input:?}: {other:?}"),
            };
            assert_eq!(kind, expected, "{input:?}");
        }
    }

    #[test]
    fn accepts_and_normalises() {
        let cases = [
            ("https://example.com", "https://example.com/"),
            ("HTTPS://EXAMPLE.com/Path", "https://example.com/Path"),
            ("http://example.com:80/a", "http://example.com/a"),
            ("https://example.com:443/a", "https://example.com/a"),
            ("https://example.com:8443/a", "https://example.com:8443/a"),
            ("  https://example.com/a  ", "https://example.com/a"),
            ("https://example.com/a/../b", "https://example.com/b"),
            ("https://example.com/a b", "https://example.com/a%20b"),
            (
                "https://example.com/?q=1#frag",
                "https://example.com/?q=1#frag",
            ),
            ("https://bücher.example/", "https://xn--bcher-kva.example/"),
            ("http://127.0.0.1:3000/x", "http://127.0.0.1:3000/x"),
            ("http://[::1]:8080/", "http://[::1]:8080/"),
            (
                "https://example.com/%E2%9C%93",
                "https://example.com/%E2%9C%93",
            ),
        ];
        for (input, expected) in cases {
            let got = Destination::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got.as_str(), expected, "input {input:?}");
        }
    }

    #[test]
    fn refuses() {
        let long = format!("https://example.com/{}", "a".repeat(4096));
        let huge = format!("https://example.com/{}", "a".repeat(100_000));
        type IsExpected = fn(&Error) -> bool;
        let cases: &[(&str, IsExpected)] = &[
            ("", |e| matches!(e, Error::DestinationUnparsable { .. })),
            ("example.com", |e| {
                matches!(e, Error::DestinationUnparsable { .. })
            }),
            ("/relative/path", |e| {
                matches!(e, Error::DestinationUnparsable { .. })
            }),
            ("not a url", |e| {
                matches!(e, Error::DestinationUnparsable { .. })
            }),
            ("http://", |e| {
                matches!(e, Error::DestinationUnparsable { .. })
            }),
            ("https://exa mple.com/", |e| {
                matches!(e, Error::DestinationUnparsable { .. })
            }),
            ("ftp://example.com/", |e| {
                matches!(e, Error::DestinationScheme { .. })
            }),
            ("javascript:alert(1)", |e| {
                matches!(e, Error::DestinationScheme { .. })
            }),
            ("data:text/html,hi", |e| {
                matches!(e, Error::DestinationScheme { .. })
            }),
            ("mailto:a@example.com", |e| {
                matches!(e, Error::DestinationScheme { .. })
            }),
            ("file:///etc/passwd", |e| {
                matches!(e, Error::DestinationScheme { .. })
            }),
            ("https://paypal.com@evil.example/", |e| {
                *e == Error::DestinationUserInfo
            }),
            ("https://user:pw@example.com/", |e| {
                *e == Error::DestinationUserInfo
            }),
            ("https://:pw@example.com/", |e| {
                *e == Error::DestinationUserInfo
            }),
            (&long, |e| matches!(e, Error::DestinationTooLong { .. })),
            (&huge, |e| matches!(e, Error::DestinationTooLong { .. })),
        ];
        for (input, is_expected) in cases {
            let err = Destination::parse(input).expect_err(input);
            assert!(is_expected(&err), "input {input:?} gave {err:?}");
        }
    }

    #[test]
    fn host() {
        let cases = [
            ("https://Kurz.example/abc", "kurz.example"),
            ("http://kurz.example:8080/abc", "kurz.example"),
            ("http://[::1]:8080/", "[::1]"),
            ("https://example.com?x=1", "example.com"),
            ("https://example.com#top", "example.com"),
        ];
        for (input, host) in cases {
            let destination = Destination::parse(input).expect("valid");
            assert_eq!(destination.host(), host, "input {input:?}");
        }
    }

    /// Every spelling of a host this deployment answers on is caught, and nothing else.
    #[test]
    fn loop_check() {
        // Hosts as an operator configures them: the public URL, the edge's, extra ones.
        let own: Vec<HostKey> = [
            "https://Kurz.Example",
            "https://go.example.:8443/",
            "http://127.0.0.1:8080",
            "[::1]",
            "203.0.113.7",
            "[2001:DB8::1]",
        ]
        .iter()
        .map(|host| HostKey::parse(host).unwrap_or_else(|e| panic!("{host}: {e}")))
        .collect();
        let cases = [
            // Trailing dots: the fully qualified name is the same host.
            ("https://kurz.example./x", true),
            ("https://kurz.example../x", true),
            ("https://kurz.example%2E/x", true),
            ("https://go.example/x", true),
            // Case, ports (default or not), user-visible variations of the name.
            ("HTTPS://KURZ.EXAMPLE/x", true),
            ("https://KURZ.example:443/x", true),
            ("http://kurz.example:8080/x", true),
            ("https://ＫＵＲＺ.example/x", true),
            // IPv4 in decimal, hex, octal and short forms, and mapped into IPv6.
            ("http://127.0.0.1/x", true),
            ("http://2130706433/x", true),
            ("http://0x7f000001/x", true),
            ("http://0x7f.1/x", true),
            ("http://0177.0.0.1/x", true),
            ("http://127.1/x", true),
            ("http://[::ffff:127.0.0.1]/x", true),
            ("http://[::ffff:7f00:1]/x", true),
            ("http://3405803783/x", true),
            ("http://[::ffff:cb00:7107]:8080/x", true),
            // IPv6 in any notation.
            ("http://[0:0:0:0:0:0:0:1]/x", true),
            ("http://[::0001]/x", true),
            ("http://[2001:db8:0::1]/x", true),
            ("http://[2001:0DB8::0:1]/x", true),
            // Not ours.
            ("https://kurz.example.evil/x", false),
            ("https://evil.kurz.example/x", false),
            ("https://kurzexample/x", false),
            ("https://example.com/kurz.example", false),
            ("https://example.com/?u=https://kurz.example/", false),
            ("http://127.0.0.2/x", false),
            ("http://[::2]/x", false),
            ("http://[::127.0.0.1]/x", false),
            ("http://203.0.113.8/x", false),
            ("http://[2001:db8::2]/x", false),
        ];
        for (input, expected) in cases {
            let destination =
                Destination::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(
                destination.points_to_any(&own),
                expected,
                "{input:?} (host {})",
                destination.host_key()
            );
        }
    }

    #[test]
    fn host_keys_of_configured_hosts() {
        let cases = [
            ("kurz.example", "kurz.example"),
            ("KURZ.example.", "kurz.example"),
            ("kurz.example:8443", "kurz.example"),
            ("https://kurz.example/go", "kurz.example"),
            ("0x7f.1", "127.0.0.1"),
            ("[::FFFF:127.0.0.1]:80", "127.0.0.1"),
            ("[0::1]", "[::1]"),
            ("bücher.example", "xn--bcher-kva.example"),
        ];
        for (input, expected) in cases {
            let key = HostKey::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(key.as_str(), expected, "{input:?}");
        }
        for bad in [
            "",
            "a b",
            "https://",
            "ftp://kurz.example",
            "user@kurz.example",
        ] {
            assert!(HostKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialize_runs_the_rules() {
        let err = serde_json::from_str::<Destination>("\"ftp://x.example\"").expect_err("ftp");
        assert!(err.to_string().contains("http or https"), "{err}");
    }
}
