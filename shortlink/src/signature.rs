//! Signed requests between the edge and the origin.
//!
//! The sender signs `METHOD \n PATH \n TIMESTAMP \n BODY` with HMAC-SHA256 under the shared
//! secret, and sends the timestamp and the signature in headers. The receiver refuses a
//! missing, malformed or wrong signature, and a timestamp outside a short window; replays
//! within the window are refused by the receiver remembering the signatures it has seen.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-kurz-timestamp";
pub const SIGNATURE_HEADER: &str = "x-kurz-signature";

/// The header in which the edge gives the origin the address of a visitor whose request it
/// forwards (`/report`). The signature covers it (see [`forwarded_path`]): the origin believes
/// it only from a request the edge signed, so nobody who reaches the origin directly can name
/// an address of their choosing.
pub const CLIENT_IP_HEADER: &str = "kurz-edge-client-ip";

/// What is signed, in place of the path, for a visitor's request the edge forwards with the
/// visitor's address in [`CLIENT_IP_HEADER`]: the path and the address, so neither can be
/// changed without the secret. A request's path has no line break, so this is never the path
/// of another signed request.
pub fn forwarded_path(path: &str, client_ip: &str) -> String {
    format!("{path}\n{CLIENT_IP_HEADER}: {client_ip}")
}

/// How far the sender's clock (Unix seconds in the timestamp header) may be from ours.
pub const MAX_SKEW_SECS: i64 = 120;

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request is not signed")]
    Missing,
    #[error("the request signature or timestamp is malformed")]
    Malformed,
    #[error("the request timestamp is too far from now")]
    Stale,
    #[error("the request signature does not match")]
    Mismatch,
}

/// The signature of a request, as lower-case hex.
pub fn sign(secret: &[u8], method: &str, path: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(
        mac(secret, method, path, timestamp, body)
            .finalize()
            .into_bytes(),
    )
}

/// Checks a request's timestamp and signature headers at Unix time `now`.
pub fn verify(
    secret: &[u8],
    method: &str,
    path: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (timestamp, signature) = check_headers(timestamp, signature, now)?;
    // verify_slice compares in constant time.
    mac(secret, method, path, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// What can be checked before the body is read: both headers present and well-formed, and
/// the timestamp within the window. A receiver calls this first, so that an unsigned or stale
/// request never makes it read a body. Returns the timestamp and the signature's bytes.
pub fn check_headers(
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: i64,
) -> Result<(i64, Vec<u8>), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let timestamp: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    // Lower-case only, as [`sign`] writes it: receivers remember the header's text to refuse
    // a replay, and the same bytes in other letters must not pass as a new request.
    if signature.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(SignatureError::Malformed);
    }
    let signature = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;
    // `abs_diff` cannot overflow: a timestamp of i64::MIN must be stale, not a panic.
    if now.abs_diff(timestamp) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok((timestamp, signature))
}

fn mac(secret: &[u8], method: &str, path: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(method.as_bytes());
    mac.update(b"\n");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"shared secret";
    const NOW: i64 = 1_800_000_000;

    /// One request as the receiver sees it, and what verification must say.
    struct Case<'a> {
        method: &'a str,
        path: &'a str,
        timestamp: Option<&'a str>,
        signature: Option<&'a str>,
        body: &'a [u8],
        now: i64,
        expected: Result<(), SignatureError>,
    }

    #[test]
    fn verification_table() {
        let good = sign(SECRET, "POST", "/_edge/sync", NOW, b"{}");
        let ts = NOW.to_string();
        let later = (NOW + 1).to_string();
        let upper = good.to_ascii_uppercase();
        let base = Case {
            method: "POST",
            path: "/_edge/sync",
            timestamp: Some(&ts),
            signature: Some(&good),
            body: b"{}",
            now: NOW,
            expected: Ok(()),
        };
        let cases = [
            Case { ..base },
            Case {
                now: NOW + MAX_SKEW_SECS,
                ..base
            },
            Case {
                now: NOW - MAX_SKEW_SECS,
                ..base
            },
            Case {
                now: NOW + MAX_SKEW_SECS + 1,
                expected: Err(SignatureError::Stale),
                ..base
            },
            Case {
                now: NOW - MAX_SKEW_SECS - 1,
                expected: Err(SignatureError::Stale),
                ..base
            },
            Case {
                timestamp: None,
                expected: Err(SignatureError::Missing),
                ..base
            },
            Case {
                signature: None,
                expected: Err(SignatureError::Missing),
                ..base
            },
            Case {
                timestamp: Some("soon"),
                expected: Err(SignatureError::Malformed),
                ..base
            },
            Case {
                signature: Some("zz"),
                expected: Err(SignatureError::Malformed),
                ..base
            },
            // The same bytes in upper case: one request has one text, remembered against
            // replays.
            Case {
                signature: Some(&upper),
                expected: Err(SignatureError::Malformed),
                ..base
            },
            Case {
                timestamp: Some("-9223372036854775808"),
                expected: Err(SignatureError::Stale),
                ..base
            },
            Case {
                timestamp: Some("9223372036854775807"),
                expected: Err(SignatureError::Stale),
                ..base
            },
            Case {
                timestamp: Some(&ts),
                now: i64::MIN,
                expected: Err(SignatureError::Stale),
                ..base
            },
            Case {
                timestamp: Some("9223372036854775808"),
                expected: Err(SignatureError::Malformed),
                ..base
            },
            Case {
                body: b"{ }",
                expected: Err(SignatureError::Mismatch),
                ..base
            },
            Case {
                method: "PUT",
                expected: Err(SignatureError::Mismatch),
                ..base
            },
            Case {
                path: "/_edge/ingest",
                expected: Err(SignatureError::Mismatch),
                ..base
            },
            Case {
                timestamp: Some(&later),
                expected: Err(SignatureError::Mismatch),
                ..base
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            let got = verify(
                SECRET,
                case.method,
                case.path,
                case.timestamp,
                case.signature,
                case.body,
                case.now,
            );
            assert_eq!(got, case.expected, "case {i}");
            // The headers alone tell every refusal but a mismatch, which needs the body.
            let headers = check_headers(case.timestamp, case.signature, case.now).map(drop);
            let expected = match case.expected {
                Err(SignatureError::Mismatch) => Ok(()),
                other => other,
            };
            assert_eq!(headers, expected, "case {i}, headers only");
        }
        // The address of a forwarded request is signed with its path.
        let forwarded = sign(
            SECRET,
            "POST",
            &forwarded_path("/report", "192.0.2.1"),
            NOW,
            b"{}",
        );
        for (path, expected) in [
            (forwarded_path("/report", "192.0.2.1"), Ok(())),
            (
                forwarded_path("/report", "192.0.2.2"),
                Err(SignatureError::Mismatch),
            ),
            ("/report".to_owned(), Err(SignatureError::Mismatch)),
        ] {
            let got = verify(
                SECRET,
                "POST",
                &path,
                Some(&ts),
                Some(&forwarded),
                b"{}",
                NOW,
            );
            assert_eq!(got, expected, "{path:?}");
        }
        let other_secret = sign(b"another secret", "POST", "/_edge/sync", NOW, b"{}");
        assert_eq!(
            verify(
                SECRET,
                "POST",
                "/_edge/sync",
                Some(&ts),
                Some(&other_secret),
                b"{}",
                NOW
            ),
            Err(SignatureError::Mismatch)
        );
    }
}
