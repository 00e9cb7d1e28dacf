//! `POST /_edge/sync`: the origin writes link records and tombstones to KV, each only when
//! it is newer than what KV holds.

use futures_util::future::try_join_all;
use shortlink::edge::{SyncBatch, SyncChange, SyncResult, TOMBSTONE_TTL_SECS, Tombstone, kv_key};
use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use worker::kv::KvStore;
use worker::{Env, Request, Response, Result};

use crate::entry::{self, Entry, Writer};
use crate::route::SYNC_PATH;
use crate::{LINKS, edge_secret, now_secs};

/// Largest sync body read. The origin's batches stay under a quarter of it
/// (`MAX_BATCH_BYTES` in `origin/src/outbox.rs`); one refused with 413 is sent again in halves.
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
    let codes: Vec<_> = batch
        .changes
        .iter()
        .map(|change| change.code.clone())
        .collect();
    let applied = try_join_all(batch.changes.into_iter().map(|change| apply(&kv, change))).await;
    // This isolate reads the new entries from KV from now on (also when only some writes
    // landed); other isolates within the memo's second.
    crate::MEMO.with_borrow_mut(|memo| codes.iter().for_each(|code| memo.forget(code)));
    let mut result = SyncResult {
        written: 0,
        deleted: 0,
        stale: 0,
    };
    for outcome in applied? {
        match outcome {
            Applied::Written => result.written += 1,
            Applied::Deleted => result.deleted += 1,
            Applied::Stale => result.stale += 1,
        }
    }
    Response::from_json(&result)
}

enum Applied {
    Written,
    Deleted,
    /// KV already held a newer version of the code.
    Stale,
}

/// Writes one change to KV unless KV holds a newer state of the code ([`entry::replaces`]):
/// a sync request that was overtaken (sent before a timeout, then again with a newer state)
/// or a miss fill that read the origin later leave it alone. A
/// deleted code gets a tombstone rather than no entry, so that an older record written
/// late finds it. KV has no compare-and-swap; the origin sends one sync request at a time,
/// and `fill_kv` in lib.rs states what still can race.
async fn apply(kv: &KvStore, change: SyncChange) -> Result<Applied> {
    let key = kv_key(&change.code);
    let (incoming, value, ttl) = match change.record {
        Some(record) => {
            let json = serde_json::to_string(&record)?;
            (Entry::Link(record), json, None)
        }
        None => {
            let tombstone = Tombstone {
                version: change.version,
            };
            let json = serde_json::to_string(&tombstone)?;
            let entry = Entry::Deleted(change.version);
            (entry, json, Some(TOMBSTONE_TTL_SECS))
        }
    };
    let current = kv.get(&key).text().await?.map(|text| entry::parse(&text));
    if !entry::replaces(Writer::Sync, &incoming, current.as_ref()) {
        return Ok(Applied::Stale);
    }
    let put = kv.put(&key, value)?;
    match ttl {
        Some(ttl) => put.expiration_ttl(ttl).execute().await?,
        None => put.execute().await?,
    }
    Ok(match incoming {
        Entry::Deleted(_) => Applied::Deleted,
        _ => Applied::Written,
    })
}

fn json_error(status: u16, code: &str, message: &str) -> Result<Response> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    Ok(Response::from_json(&body)?.with_status(status))
}
