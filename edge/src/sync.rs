//! `POST /_edge/sync`: the origin writes link records and tombstones to KV, each only when
//! it is newer than what KV holds.

use futures_util::future::try_join_all;
use shortlink::edge::{
    SYNC_PATH, SyncBatch, SyncChange, SyncResult, TOMBSTONE_TTL_SECS, Tombstone, kv_key,
};
use worker::kv::KvStore;
use worker::{Env, Request, Response, Result};

use crate::LINKS;
use crate::entry::{self, Entry, Writer};
use crate::signed::{self, json_error};

/// Largest sync body read. The origin's batches stay under a quarter of it
/// (`MAX_BATCH_BYTES` in `origin/src/outbox.rs`); one refused with 413 is sent again in halves.
const MAX_BODY: usize = 1024 * 1024;

pub(crate) async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let body = match signed::verified_body(&mut req, env, SYNC_PATH, MAX_BODY).await? {
        Ok(body) => body,
        Err(refused) => return Ok(refused),
    };
    let kv = env.kv(LINKS)?;
    // Read as text, as KV entries are: one instance of the record's deserialiser in the .wasm.
    let body = match std::str::from_utf8(&body) {
        Ok(body) => body,
        Err(err) => return json_error(400, "bad_request", &format!("not UTF-8: {err}")),
    };
    let batch: SyncBatch = match serde_json::from_str(body) {
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
    let mut memo = crate::cache().memo.borrow_mut();
    codes.iter().for_each(|code| memo.forget(code));
    drop(memo);
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
    // As recent as KV reads go (its cache's shortest, as the fill's check).
    let current = kv
        .get(&key)
        .cache_ttl(crate::KV_CACHE_TTL)
        .text()
        .await?
        .map(|text| entry::parse(&text));
    if !entry::replaces(Writer::Sync, &incoming, current.as_ref()) {
        return Ok(Applied::Stale);
    }
    crate::kv_put(kv, &key, &value, ttl).await?;
    Ok(match incoming {
        Entry::Deleted(_) => Applied::Deleted,
        _ => Applied::Written,
    })
}
