//! Signed requests from the origin to the edge (`/_edge/sync`, `/_edge/replay`), the one place
//! that sends them.
//!
//! The signature covers the method, the path, the timestamp in whole seconds and the body, and
//! the edge refuses a signature it has seen as a replay. Two requests with the same body in
//! the same second (a replay request after another, a sync batch sent again at once after a
//! failure) would carry the same signature, so every body gets a random `nonce` member: no
//! two requests of this origin ever repeat a signature.

use anyhow::{Context, bail};
use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use time::OffsetDateTime;

/// Random bytes in a nonce (hex in the body): enough that no two requests ever share one.
const NONCE_BYTES: usize = 16;
/// What the nonce adds to a body: `"nonce":"<32 hex digits>",`.
pub(crate) const NONCE_OVERHEAD: usize = br#""nonce":"","#.len() + 2 * NONCE_BYTES;

/// The HTTP client for requests to the edge: it follows no redirect. Followed, a redirect (an
/// `http://` `KURZ_EDGE_URL` that a proxy sends to `https://`) turned the POST into a GET the
/// edge refused with 405, which says nothing of the URL, or sent the signed body on to
/// wherever it pointed; an answer that redirects is reported instead ([`redirected`]).
pub(crate) fn client(timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client for the edge")
}

/// What to say of an answer that redirects: where to, and what to change.
pub(crate) fn redirected(response: &reqwest::Response) -> Option<String> {
    response.status().is_redirection().then(|| {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|to| to.to_str().ok())
            .unwrap_or("no Location");
        format!(
            "the edge answered {} (to {to:.200}): set KURZ_EDGE_URL to the scheme and host it \
             redirects to",
            response.status()
        )
    })
}

/// POSTs `object` (a JSON object) to `path` at the edge's `base_url`, with a fresh nonce as
/// its first member, signed with `secret`. Sent with a Content-Length, which the edge requires.
pub(crate) async fn post(
    client: &reqwest::Client,
    base_url: &str,
    secret: &str,
    path: &str,
    object: &[u8],
) -> anyhow::Result<reqwest::Response> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce)
        .map_err(|err| anyhow::anyhow!("no randomness for a request nonce: {err}"))?;
    let body = with_nonce(object, &hex::encode(nonce))?;
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signed = signature::sign(secret.as_bytes(), "POST", path, timestamp, &body);
    let url = format!("{}{path}", base_url.trim_end_matches('/'));
    client
        .post(&url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signed)
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))
}

/// `object` with `"nonce": nonce` as its first member. Only the opening brace is looked at, so
/// a batch built byte by byte is not parsed again.
fn with_nonce(object: &[u8], nonce: &str) -> anyhow::Result<Vec<u8>> {
    let Some(rest) = object.strip_prefix(b"{") else {
        bail!("a request body to the edge must be a JSON object");
    };
    let empty = rest.trim_ascii_start().starts_with(b"}");
    let mut body = Vec::with_capacity(object.len() + NONCE_OVERHEAD);
    body.extend_from_slice(br#"{"nonce":""#);
    body.extend_from_slice(nonce.as_bytes());
    body.push(b'"');
    if !empty {
        body.push(b',');
    }
    body.extend_from_slice(rest);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use shortlink::edge::{ReplayRequest, SyncBatch};

    use super::*;

    #[test]
    fn the_nonce_is_the_first_member_of_any_object() {
        let nonce = "0123456789abcdef0123456789abcdef";
        let replay = with_nonce(b"{}", nonce).expect("an object");
        let parsed: ReplayRequest = serde_json::from_slice(&replay).expect("a replay request");
        assert_eq!(parsed.nonce.as_deref(), Some(nonce));
        assert_eq!(replay.len(), 2 + NONCE_OVERHEAD - 1);

        let batch = with_nonce(br#"{"changes":[]}"#, nonce).expect("an object");
        let parsed: SyncBatch = serde_json::from_slice(&batch).expect("a sync batch");
        assert_eq!(parsed.nonce.as_deref(), Some(nonce));
        assert_eq!(batch.len(), br#"{"changes":[]}"#.len() + NONCE_OVERHEAD);

        for not_an_object in [&b""[..], b"[]", b" {}", b"null"] {
            assert!(with_nonce(not_an_object, nonce).is_err());
        }
    }
}
