//! The queue consumers: one worker consumes the click queue and its dead-letter queue, and a
//! batch's queue name says which ([`parked::consumer_for`]).
//!
//! - **Click queue**: the events of the batch's messages (see [`crate::outbox`]) go to the
//!   origin's ingest, in one request per [`outbox::INGEST_BYTES`] of messages. On success a
//!   request's messages are acknowledged; otherwise each is retried after its delay in the
//!   [`retry`] schedule, by its own attempts, for 32 hours; then the queue moves it to the
//!   dead-letter queue.
//! - **Dead-letter queue**: the same delivery once more; what the origin still does not take
//!   is parked in KV ([`parked`]) for an operator to replay (`origin replay-parked-clicks`).
//!
//! A message is acknowledged only once the origin or KV holds its clicks. Its events are
//! passed on as written, unread ([`events_of`]): the origin reads them. Messages that are no
//! list of events at all (not a JSON array) are acknowledged and logged: no retry could ever
//! deliver them.

use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::value::RawValue;
use worker::js_sys::Reflect;
use worker::wasm_bindgen::JsValue;
use worker::worker_sys;
use worker::{Env, MessageExt, QueueRetryOptionsBuilder, RawMessage, Result};

use crate::outbox::{self, Body, events_of};
use crate::parked::{self, Consumer};
use crate::retry::{self, Backoff};
use crate::{LINKS, origin};

/// One message of a batch with what the consumers need of it.
struct Delivery {
    message: RawMessage,
    /// Deliveries of this message so far, this one included (1 the first time).
    attempts: u32,
    /// Its events as written (see [`events_of`]).
    events: Vec<Box<RawValue>>,
    /// The message's size as it came, in bytes of JSON.
    bytes: usize,
}

impl Delivery {
    fn retry(&self, backoff: Backoff) {
        let options = QueueRetryOptionsBuilder::new()
            .with_delay_seconds(backoff.delay_secs(self.attempts))
            .build();
        self.message.retry_with_options(&options);
    }
}

/// Handles a batch of either queue. An error leaves the messages neither acknowledged nor
/// retried: the runtime retries the whole batch after the consumer's `retry_delay`.
pub(crate) async fn consume(batch: &worker_sys::MessageBatch, env: &Env) -> Result<()> {
    let queue = String::from(batch.queue()?);
    let deliveries = deliveries(batch)?;
    let sizes: Vec<usize> = deliveries.iter().map(|d| d.bytes).collect();
    // One at a time: the origin is not asked for more at once than before the split.
    for post in outbox::posts(&sizes, outbox::INGEST_BYTES) {
        deliver(&deliveries[post], &queue, env).await;
    }
    Ok(())
}

/// Posts these messages' events to the origin in one request and acknowledges them, or
/// retries or parks them: all of them when the origin failed the request, or those holding
/// an event it could not read (a newer worker's), the others being stored.
async fn deliver(deliveries: &[Delivery], queue: &str, env: &Env) {
    let events: Vec<&RawValue> = deliveries
        .iter()
        .flat_map(|d| d.events.iter().map(AsRef::as_ref))
        .collect();
    if events.is_empty() {
        deliveries.iter().for_each(|d| d.message.ack());
        return;
    }
    let backoff = backoff(env);
    let (undelivered, why): (Vec<&Delivery>, String) = match origin::ingest(env, &events).await {
        Ok(unread) => {
            let sizes: Vec<usize> = deliveries.iter().map(|d| d.events.len()).collect();
            let holding = outbox::holding(&sizes, &unread);
            let mut undelivered = Vec::new();
            for (delivery, holds) in deliveries.iter().zip(holding) {
                match holds {
                    false => delivery.message.ack(),
                    true => undelivered.push(delivery),
                }
            }
            if undelivered.is_empty() {
                return;
            }
            let why = format!(
                "the origin cannot read {} of their events (a newer worker's?); it stored the others",
                unread.len()
            );
            (undelivered, why)
        }
        Err(err) => (deliveries.iter().collect(), err.to_string()),
    };
    match parked::consumer_for(queue) {
        Consumer::Clicks => {
            let attempts = undelivered.iter().map(|d| d.attempts).max().unwrap_or(1);
            worker::console_warn!(
                "click delivery of {} messages failed (attempt {attempts}), retrying in {} s: {why}",
                undelivered.len(),
                backoff.delay_secs(attempts)
            );
            undelivered.iter().for_each(|d| d.retry(backoff));
        }
        Consumer::DeadLetter => {
            let clicks: usize = undelivered.iter().map(|d| d.events.len()).sum();
            worker::console_warn!(
                "parking {} dead-lettered messages ({clicks} clicks) in KV: {why}",
                undelivered.len()
            );
            park(&undelivered, env, backoff).await;
        }
    }
}

/// Writes each message's events to KV and acknowledges it once written; a message KV did not
/// take is retried on the same schedule.
async fn park(deliveries: &[&Delivery], env: &Env, backoff: Backoff) {
    let Some(kv) = links_kv(env) else {
        worker::console_error!("cannot park dead-lettered clicks, no KV binding {LINKS}");
        deliveries.iter().for_each(|d| d.retry(backoff));
        return;
    };
    let writes = deliveries.iter().map(|delivery| {
        let kv = &kv;
        async move {
            let key = parked::key(
                delivery.message.timestamp().as_millis(),
                &delivery.message.id(),
            );
            let put = async {
                let value = serde_json::to_string(&delivery.events)
                    .map_err(|err| worker::Error::RustError(err.to_string()))?;
                put_parked(kv, &key, &value, delivery.events.len()).await
            };
            match put.await {
                Ok(()) => delivery.message.ack(),
                Err(err) => {
                    worker::console_error!("parking {key} failed, will retry: {err}");
                    delivery.retry(backoff);
                }
            }
        }
    });
    join_all(writes).await;
}

/// Parks a message of clicks (`message`, a JSON array of events) that the click queue refused
/// (`why`) when the worker sent it, under the time and its first event's id.
pub(crate) async fn park_unsent(env: &Env, message: &str, why: &str) {
    let events = events_of(Body::Events(message)).unwrap_or_default();
    let first = events
        .first()
        .and_then(|event| serde_json::from_str::<EventId>(event.get()).ok());
    let first = first.as_ref().map_or("", |event| event.id.as_str());
    let key = parked::key(worker::Date::now().as_millis(), first);
    let parked = async {
        let kv = links_kv(env)
            .ok_or_else(|| worker::Error::RustError(format!("no KV binding {LINKS}")))?;
        put_parked(&kv, &key, message, events.len()).await
    };
    match parked.await {
        Ok(()) => worker::console_warn!(
            "the click queue refused {} clicks ({why}): parked as {key}",
            events.len()
        ),
        Err(err) => worker::console_error!(
            "the click queue refused {} clicks ({why}), and parking them failed, lost: {err}",
            events.len()
        ),
    }
}

/// Of an event, only its id (the rest is the origin's to read).
#[derive(Deserialize)]
struct EventId {
    id: String,
}

/// The `LINKS` binding itself: a put with metadata through workers-rs would pass the metadata
/// through `serde_json::Value` and serde-wasm-bindgen, the worker's only use of either.
fn links_kv(env: &Env) -> Option<JsValue> {
    Reflect::get(env, &JsValue::from_str(LINKS))
        .ok()
        .filter(JsValue::is_object)
}

/// `LINKS.put(key, value, {metadata: {clicks}})`: the count shows in a key listing
/// (`wrangler kv key list`) without reading values.
async fn put_parked(kv: &JsValue, key: &str, value: &str, clicks: usize) -> Result<()> {
    use worker::js_sys::{Function, Object, Promise};
    use worker::wasm_bindgen::JsCast;
    let put: Function = Reflect::get(kv, &JsValue::from_str("put"))?.dyn_into()?;
    let metadata = Object::new();
    Reflect::set(
        &metadata,
        &"clicks".into(),
        &JsValue::from_f64(clicks as f64),
    )?;
    let options = Object::new();
    Reflect::set(&options, &"metadata".into(), &metadata)?;
    let promise: Promise = put
        .call3(kv, &key.into(), &value.into(), &options)?
        .dyn_into()?;
    worker::js_sys::futures::JsFuture::from(promise).await?;
    Ok(())
}

/// The batch's messages with their attempts, which workers-rs 0.8.7 does not expose: read
/// from the runtime's message objects before they are wrapped.
fn deliveries(batch: &worker_sys::MessageBatch) -> Result<Vec<Delivery>> {
    let mut deliveries = Vec::new();
    for raw in batch.messages()?.iter() {
        let attempts = Reflect::get(&raw, &JsValue::from_str("attempts"))
            .ok()
            .and_then(|attempts| attempts.as_f64())
            // A float to integer `as` saturates: a missing or odd count reads as a first try.
            .map_or(1, |attempts| attempts.max(1.0) as u32);
        let message = RawMessage::from(worker_sys::Message::from(raw));
        // Read as JSON text: the worker's messages are text already; an older worker's
        // single event (an object) is turned into text by the runtime's JSON.
        let body = message.body();
        let text = body.as_string().map(|text| (text, true)).or_else(|| {
            let json = worker::js_sys::JSON::stringify(&body).ok()?;
            json.as_string().map(|text| (text, false))
        });
        let Some((text, array)) = text else {
            worker::console_error!("dropping a message whose body is not JSON");
            message.ack();
            continue;
        };
        let body = if array {
            Body::Events(&text)
        } else {
            Body::Event(&text)
        };
        match events_of(body) {
            Ok(events) => deliveries.push(Delivery {
                events,
                message,
                attempts,
                bytes: text.len(),
            }),
            Err(err) => {
                worker::console_error!("dropping a message that is no list of click events: {err}");
                message.ack();
            }
        }
    }
    Ok(deliveries)
}

/// The schedule from the worker's variables; the production one if they are unusable.
fn backoff(env: &Env) -> Backoff {
    let var = |name: &str| env.var(name).ok().map(|value| value.to_string());
    let (first, max) = (
        var("CLICK_RETRY_DELAY_SECS"),
        var("CLICK_RETRY_MAX_DELAY_SECS"),
    );
    Backoff::from_vars(first.as_deref(), max.as_deref()).unwrap_or_else(|err| {
        worker::console_error!("{err}; retrying on the default schedule");
        retry::Backoff::DEFAULT
    })
}
