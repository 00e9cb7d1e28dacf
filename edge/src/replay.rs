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
    let listed = kv
        .list()
        .prefix(PREFIX.to_owned())
        .limit(REPLAY_LIST_LIMIT)
        .execute()
        .await?;
    let mut result = ReplayResult {
        replayed: 0,
        clicks: 0,
        remaining: 0,
    };
    let mut read = 0;
    for key in &listed.keys {
        if result.replayed == REPLAY_MOST || read == REPLAY_READ_MOST {
            break;
        }
        read += 1;
        // Listed but gone: deleted by an earlier replay, and the listing has not caught up.
        let Some(message) = kv.get(&key.name).text().await? else {
            continue;
        };
        let clicks = events_of(Body::Events(&message)).map_or(0, |events| events.len());
        let body = RawMessageBuilder::new(JsValue::from_str(&message))
            .build_with_content_type(QueueContentType::Text);
        queue.send_raw(body).await?;
        kv.delete(&key.name).await?;
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
