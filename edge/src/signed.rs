//! Requests the origin signs to the edge: the body of a request whose signature, timestamp and
//! freshness check out, or the answer that refuses it.

use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use worker::{Env, Request, Response, Result};

use crate::{LINKS, edge_secret, now_secs};

/// Signatures are remembered this long (well past the allowed clock skew) to refuse replays.
const NONCE_TTL: u64 = 2 * signature::MAX_SKEW_SECS as u64 + 60;

/// The body of a signed `POST` to `path` of at most `max_body` bytes, or the 401/411/413
/// answer. Everything that can be checked without the body is checked before it is read (the
/// signature headers, the timestamp's freshness, a declared length within the limit), so that
/// an unsigned client cannot make the worker read a large or endless (chunked) body.
pub(crate) async fn verified_body(
    req: &mut Request,
    env: &Env,
    path: &str,
    max_body: usize,
) -> Result<std::result::Result<Vec<u8>, Response>> {
    let timestamp = req.headers().get(TIMESTAMP_HEADER)?;
    let given = req.headers().get(SIGNATURE_HEADER)?;
    if let Err(err) = signature::check_headers(timestamp.as_deref(), given.as_deref(), now_secs()) {
        return json_error(401, "unauthorized", &err.to_string()).map(Err);
    }
    let too_large = || {
        json_error(
            413,
            "payload_too_large",
            &format!("request body over {max_body} bytes"),
        )
    };
    let declared = req.headers().get("content-length")?;
    match declared.map(|length| length.parse::<usize>()) {
        Some(Ok(length)) if length <= max_body => {}
        Some(Ok(_)) => return too_large().map(Err),
        // The origin always sends a length; a body without one is read only by streaming it.
        None | Some(Err(_)) => {
            return json_error(411, "length_required", "a content-length is required").map(Err);
        }
    }
    let body = req.bytes().await?;
    if body.len() > max_body {
        return too_large().map(Err);
    }
    let secret = edge_secret(env)?;
    if let Err(err) = signature::verify(
        secret.as_bytes(),
        "POST",
        path,
        timestamp.as_deref(),
        given.as_deref(),
        &body,
        now_secs(),
    ) {
        return json_error(401, "unauthorized", &err.to_string()).map(Err);
    }
    // The signature covers the timestamp and the body, whose nonce the origin draws for every
    // request, so it is unique per request: seeing it again is a replay. (KV is eventually
    // consistent across data centres, so this refuses replays to the same data centre; the
    // timestamp window bounds the rest.)
    let kv = env.kv(LINKS)?;
    let nonce = format!("nonce:{}", given.unwrap_or_default());
    if kv.get(&nonce).text().await?.is_some() {
        return json_error(401, "unauthorized", "this request was already received").map(Err);
    }
    crate::kv_put(&kv, &nonce, "1", Some(NONCE_TTL)).await?;
    Ok(Ok(body))
}

/// An error in the API's shape: `{"error": {"code", "message"}}`.
pub(crate) fn json_error(status: u16, code: &str, message: &str) -> Result<Response> {
    let body = shortlink::api::ErrorBody {
        error: shortlink::api::ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
            field: None,
        },
    };
    Ok(Response::from_json(&body)?.with_status(status))
}
