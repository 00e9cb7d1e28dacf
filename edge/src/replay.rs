//! `POST /_edge/replay` (signed by the origin, as sync is): moves parked click messages (see
//! [`crate::parked`]) back onto the click queue, oldest first, a bounded chunk per request,
//! and answers how many it moved and how many remain. `origin replay-parked-clicks` calls it
//! until none remain.
//!
//! A message is sent to the queue before its entry is deleted, so a failure between the two
//! leaves it parked and a later replay sends it again: ingest is idempotent on the event id,
//! so that costs nothing but a duplicate delivery.

use shortlink::edge::{REPLAY_PATH, ReplayResult};
use worker::wasm_bindgen::JsValue;
use worker::{Env, QueueContentType, RawMessageBuilder, Request, Response, Result};

use crate::outbox::{Body, events_of};
use crate::parked::{self, PREFIX, REPLAY_LIST_LIMIT, REPLAY_MOST, REPLAY_READ_MOST};
use crate::{CLICKS, LINKS, signed};

/// The body holds only a nonce (`shortlink::edge::ReplayRequest`); its signature is what
/// matters.
const MAX_BODY: usize = 1024;

pub(crate) async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    if let Err(refused) = signed::verified_body(&mut req, env, REPLAY_PATH, MAX_BODY).await? {
        return Ok(refused);
    }
    let kv = env.kv(LINKS)?;
    let queue = env.queue(CLICKS)?;
    let listed = list_parked(env).await?;
    let mut result = ReplayResult {
        replayed: 0,
        clicks: 0,
        remaining: 0,
    };
    let mut read = 0;
    for name in &listed.keys {
        if result.replayed == REPLAY_MOST || read == REPLAY_READ_MOST {
            break;
        }
        read += 1;
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

/// One page of parked keys, oldest first.
struct Listed {
    keys: Vec<String>,
    list_complete: bool,
}

/// `LINKS.list({prefix, limit})`, called on the binding itself: `KvStore::list` reads the
/// answer through serde-wasm-bindgen (keys' metadata as `serde_json::Value`), which would be
/// the worker's only use of that deserialiser.
async fn list_parked(env: &Env) -> Result<Listed> {
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
    let promise: Promise = list.call1(&namespace, &options)?.dyn_into()?;
    let answer = worker::js_sys::futures::JsFuture::from(promise).await?;
    let keys: Array = field(&answer, "keys")?.dyn_into()?;
    let keys = keys
        .iter()
        .filter_map(|key| field(&key, "name").ok()?.as_string())
        .collect();
    let list_complete = field(&answer, "list_complete")?.as_bool().unwrap_or(true);
    Ok(Listed {
        keys,
        list_complete,
    })
}
