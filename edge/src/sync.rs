//! `POST /_edge/sync`: the origin writes and deletes link records in KV.

use futures_util::future::try_join_all;
use shortlink::edge::{SyncBatch, SyncResult, kv_key};
use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use worker::{Env, Request, Response, Result};

use crate::route::SYNC_PATH;
use crate::{LINKS, edge_secret, now_secs};

/// Largest sync body read: batches are at most a few hundred records.
const MAX_BODY: usize = 1024 * 1024;
/// Signatures are remembered this long (well past the allowed clock skew) to refuse replays.
const NONCE_TTL: u64 = 2 * signature::MAX_SKEW_SECS as u64 + 60;

pub(crate) async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let too_large = req
        .headers()
        .get("content-length")?
        .and_then(|length| length.parse::<usize>().ok())
        .is_some_and(|length| length > MAX_BODY);
    if too_large {
        return json_error(413, "payload_too_large", "sync batch over 1 MiB");
    }
    let body = req.bytes().await?;
    if body.len() > MAX_BODY {
        return json_error(413, "payload_too_large", "sync batch over 1 MiB");
    }
    let timestamp = req.headers().get(TIMESTAMP_HEADER)?;
    let given = req.headers().get(SIGNATURE_HEADER)?;
    let secret = edge_secret(env)?;
    if let Err(err) = signature::verify(
        secret.as_bytes(),
        "POST",
        SYNC_PATH,
        timestamp.as_deref(),
        given.as_deref(),
        &body,
        now_secs(),
    ) {
        return json_error(401, "unauthorized", &err.to_string());
    }
    let kv = env.kv(LINKS)?;
    // The signature covers the timestamp, so it is unique per request: seeing it again is a
    // replay. (KV is eventually consistent across data centres, so this refuses replays to
    // the same data centre; the window above bounds the rest.)
    let nonce = format!("nonce:{}", given.unwrap_or_default());
    if kv.get(&nonce).text().await?.is_some() {
        return json_error(401, "unauthorized", "this request was already received");
    }
    kv.put(&nonce, "1")?
        .expiration_ttl(NONCE_TTL)
        .execute()
        .await?;

    let batch: SyncBatch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(err) => return json_error(400, "bad_request", &format!("not a sync batch: {err}")),
    };
    let mut result = SyncResult {
        written: 0,
        deleted: 0,
    };
    let mut writes = Vec::new();
    let codes: Vec<_> = batch
        .changes
        .iter()
        .map(|change| change.code.clone())
        .collect();
    for change in batch.changes {
        let key = kv_key(&change.code);
        let kv = kv.clone();
        match change.record {
            Some(record) => {
                result.written += 1;
                let json = serde_json::to_string(&record)
                    .map_err(|err| worker::Error::RustError(err.to_string()))?;
                writes.push(Box::pin(async move { kv.put(&key, json)?.execute().await })
                    as std::pin::Pin<
                        Box<dyn Future<Output = std::result::Result<(), worker::kv::KvError>>>,
                    >);
            }
            None => {
                result.deleted += 1;
                writes.push(Box::pin(async move { kv.delete(&key).await }));
            }
        }
    }
    let written = try_join_all(writes).await;
    // This isolate reads the new records from KV from now on (also when only some writes
    // landed); other isolates within the memo's second.
    crate::MEMO.with_borrow_mut(|memo| codes.iter().for_each(|code| memo.forget(code)));
    written?;
    Response::from_json(&result)
}

fn json_error(status: u16, code: &str, message: &str) -> Result<Response> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    Ok(Response::from_json(&body)?.with_status(status))
}
