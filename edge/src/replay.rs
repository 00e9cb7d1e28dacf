//! `POST /_edge/replay` (signed by the origin, as sync is): moves parked click messages (see
//! [`crate::parked`]) back onto the click queue, oldest first, a bounded chunk per request,
//! and answers how many it moved and how many remain. `origin replay-parked-clicks` calls it
//! until none remain.
//!
//! A message is sent to the queue before its entry is deleted, so a failure between the two
//! leaves it parked and a later replay sends it again: ingest is idempotent on the event id,
//! so that costs nothing but a duplicate delivery.

use shortlink::edge::{REPLAY_PATH, ReplayRequest, ReplayResult};
use worker::wasm_bindgen::JsValue;
use worker::{Env, QueueContentType, RawMessageBuilder, Request, Response, Result};

use crate::outbox::{Body, events_of};
use crate::parked::{
    self, PREFIX, REPLAY_LIST_LIMIT, REPLAY_LIST_PAGES, REPLAY_MOST, REPLAY_READ_MOST,
};
use crate::{CLICKS, LINKS, signed};

/// The body (`shortlink::edge::ReplayRequest`) holds a nonce and a key name.
const MAX_BODY: usize = 1024;

pub(crate) async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let body = match signed::verified_body(&mut req, env, REPLAY_PATH, MAX_BODY).await? {
        Ok(body) => body,
        Err(refused) => return Ok(refused),
    };
    // An origin that predates `after` sends an empty body: from the oldest. Read as text, as
    // every other body and KV entry is: `from_slice` would be a second instance of serde_json's
    // parser in the .wasm (5 KiB gzip).
    let request: ReplayRequest = std::str::from_utf8(&body)
        .ok()
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or_default();
    let kv = env.kv(LINKS)?;
    let queue = env.queue(CLICKS)?;
    let listed = list_parked(env, request.after.as_deref()).await?;
    let mut result = ReplayResult {
        replayed: 0,
        clicks: 0,
        remaining: 0,
        last: None,
    };
    let mut read = 0;
    for name in &listed.keys {
        if result.replayed == REPLAY_MOST || read == REPLAY_READ_MOST {
            break;
        }
        read += 1;
        result.last = Some(name.clone());
        // Listed but gone: deleted by an earlier replay, and the listing has not caught up.
        let Some(message) = kv.get(name).text().await? else {
            continue;
        };
        let clicks = events_of(Body::Events(&message)).map_or(0, |events| events.len());
        let body = RawMessageBuilder::new(JsValue::from_str(&message))
            .build_with_content_type(QueueContentType::Text);
        queue.send_raw(body).await?;
        kv.delete(name).await?;
        result.replayed += 1;
        result.clicks += clicks;
    }
    result.remaining = parked::remaining(listed.keys.len(), read, listed.list_complete);
    if result.replayed > 0 {
        worker::console_log!(
            "replayed {} parked messages ({} clicks), {} remain",
            result.replayed,
            result.clicks,
            result.remaining
        );
    }
    Response::from_json(&result)
}

/// Parked keys past `after`, oldest first, from the first page of the listing that has any.
struct Listed {
    keys: Vec<String>,
    list_complete: bool,
}

/// The first page of parked keys with keys past `after` (at most [`REPLAY_LIST_PAGES`] pages
/// looked at), those keys.
async fn list_parked(env: &Env, after: Option<&str>) -> Result<Listed> {
    let mut cursor = None;
    for _ in 0..REPLAY_LIST_PAGES {
        let page = list_page(env, cursor.as_deref()).await?;
        let keys = parked::past(&page.keys, after).to_vec();
        if !keys.is_empty() || page.cursor.is_none() {
            return Ok(Listed {
                keys,
                list_complete: page.cursor.is_none(),
            });
        }
        cursor = page.cursor;
    }
    // Pages of keys already handled (the listing lags): more remain, maybe.
    Ok(Listed {
        keys: Vec::new(),
        list_complete: false,
    })
}

/// One page of the listing: its keys, and the cursor of the next (None: the last page).
struct Page {
    keys: Vec<String>,
    cursor: Option<String>,
}

/// `LINKS.list({prefix, limit, cursor})`, called on the binding itself: `KvStore::list` reads
/// the answer through serde-wasm-bindgen (keys' metadata as `serde_json::Value`), which would
/// be the worker's only use of that deserialiser.
async fn list_page(env: &Env, cursor: Option<&str>) -> Result<Page> {
    use worker::js_sys::{Array, Function, Object, Promise, Reflect};
    use worker::wasm_bindgen::JsCast;
    let field = |target: &JsValue, name: &str| Reflect::get(target, &JsValue::from_str(name));
    let namespace = field(env, LINKS)?;
    let list: Function = field(&namespace, "list")?.dyn_into()?;
    let options = Object::new();
    Reflect::set(&options, &"prefix".into(), &PREFIX.into())?;
    Reflect::set(
        &options,
        &"limit".into(),
        &JsValue::from_f64(REPLAY_LIST_LIMIT as f64),
    )?;
    if let Some(cursor) = cursor {
        Reflect::set(&options, &"cursor".into(), &cursor.into())?;
    }
    let promise: Promise = list.call1(&namespace, &options)?.dyn_into()?;
    let answer = worker::js_sys::futures::JsFuture::from(promise).await?;
    let keys: Array = field(&answer, "keys")?.dyn_into()?;
    let keys = keys
        .iter()
        .filter_map(|key| field(&key, "name").ok()?.as_string())
        .collect();
    let list_complete = field(&answer, "list_complete")?.as_bool().unwrap_or(true);
    let cursor = if list_complete {
        None
    } else {
        field(&answer, "cursor")?.as_string()
    };
    Ok(Page { keys, cursor })
}
