//! The kurz edge: a Cloudflare Worker that serves redirects from Workers KV.
//!
//! On a KV miss it asks the origin (signed, with a timeout and a circuit breaker) and stores
//! the answer in KV. Every redirect sends a click event to a Cloudflare Queue without
//! delaying the response; the queue consumers here ([`consumer`]) post batches to the
//! origin, retry them for over a day ([`retry`]), and park what the dead-letter queue still
//! cannot deliver in KV ([`parked`]) until `POST /_edge/replay` puts it back on the queue.
//! The origin keeps KV current through `POST /_edge/sync`.
//!
//! Each isolate keeps what it read from KV for a second ([`memo`]), so a hot link costs one
//! KV read per second, and gathers its clicks into queue messages ([`outbox`]).
//!
//! The decisions live in plain modules without `worker` types ([`route`], [`breaker`],
//! [`entry`], [`memo`], [`outbox`], [`retry`], [`parked`] and `shortlink::redirect::decide`),
//! unit-tested on the host; this file, [`origin`], [`consumer`] and [`replay`] are the glue
//! to the Workers runtime.

pub mod breaker;
mod consumer;
pub mod entry;
pub mod memo;
mod origin;
pub mod outbox;
pub mod pages;
pub mod parked;
mod replay;
pub mod retry;
pub mod route;
mod signed;
mod sync;

use std::cell::RefCell;
use std::time::Duration;

use shortlink::edge::{ClickEvent, ClickSource, KV_MISSING, kv_key};
use shortlink::redirect::{Decision, LinkRecord, decide};
use shortlink::visitor::DailySalt;
use shortlink::{ShortCode, signature};
use time::OffsetDateTime;
use worker::wasm_bindgen::JsValue;
use worker::{
    Context, Date, Delay, Env, Headers, Queue, QueueContentType, RawMessageBuilder, Request,
    Response, Result, event,
};

use crate::breaker::Breaker;
use crate::entry::{Entry, Writer};
use crate::memo::Memo;
use crate::outbox::{Added, Outbox};
use crate::route::Route;

/// The KV namespace of link entries.
const LINKS: &str = "LINKS";
/// The queue of click events.
const CLICKS: &str = "CLICKS";
/// Seconds a KV read may be served from the data centre's cache (30 is KV's minimum).
const KV_CACHE_TTL: u64 = 30;
/// Seconds a record fetched from the origin stays in KV. Sync keeps records current, so this
/// only bounds the damage of a lost sync or of a fill that lost its race with one (`fill_kv`).
const FETCHED_RECORD_TTL: u64 = 3600;
/// Seconds an unknown code is remembered as unknown (60 is KV's minimum expiry).
const MISSING_TTL: u64 = 60;

thread_local! {
    /// Per isolate: each isolate learns about a dead origin on its own, within a few requests.
    static BREAKER: RefCell<Breaker> = RefCell::new(Breaker::default());
    /// What this isolate read from KV in the last second.
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
    /// Clicks waiting for this isolate's next queue message.
    static CLICKS_OUT: RefCell<Outbox> = RefCell::new(Outbox::default());
    /// Today's visitor salt, made once a day per isolate rather than once per click.
    static SALT: RefCell<Option<DailySalt>> = const { RefCell::new(None) };
    /// This isolate's random prefix of click ids and the number of the next click.
    static CLICK_IDS: RefCell<Option<(String, u64)>> = const { RefCell::new(None) };
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let route = route::classify(req.method().as_ref(), &req.path());
    let answer = match route {
        Route::Redirect { code, head } => redirect(&req, &env, &ctx, code, head).await,
        Route::Sync => sync::handle(req, &env).await,
        Route::Replay => replay::handle(req, &env).await,
        Route::MethodNotAllowed { allow } => {
            let mut response = Response::error("method not allowed", 405)?;
            response.headers_mut().set("allow", allow)?;
            Ok(response)
        }
        Route::NotFound => page(404, pages::NOT_FOUND),
    };
    // A thrown error would be a bare 500 from the runtime; say what happened instead.
    answer.or_else(|err| {
        worker::console_error!("request failed: {err}");
        unavailable(1)
    })
}

async fn redirect(
    req: &Request,
    env: &Env,
    ctx: &Context,
    code: ShortCode,
    head: bool,
) -> Result<Response> {
    let started_ms = now_ms();
    let record = match lookup(env, ctx, &code, started_ms).await? {
        Ok(record) => record,
        Err(answer) => return Ok(answer),
    };
    answer(req, env, ctx, &record, code, head, timestamp(started_ms))
}

/// The code's link record, from this isolate's memo, KV, or the origin (then filled into KV);
/// or the answer when there is none to redirect to (404, or 503 while the origin is down).
async fn lookup(
    env: &Env,
    ctx: &Context,
    code: &ShortCode,
    started_ms: u64,
) -> Result<std::result::Result<LinkRecord, Response>> {
    let (memo_hit, generation) =
        MEMO.with_borrow(|memo| (memo.get(code, started_ms).cloned(), memo.generation()));
    // What this request learns is remembered as of its start, which errs towards fresher.
    let remember = |entry: Entry| {
        MEMO.with_borrow_mut(|memo| memo.remember(code.clone(), entry, generation, started_ms));
    };
    let known = match memo_hit {
        Some(entry) => Some(entry),
        None => {
            let stored = env
                .kv(LINKS)?
                .get(&kv_key(code))
                .cache_ttl(KV_CACHE_TTL)
                .text()
                .await?;
            let entry = stored.as_deref().map(entry::parse);
            if let Some(entry) = &entry {
                remember(entry.clone());
            }
            entry
        }
    };
    let record = match known {
        Some(Entry::Link(record)) => record,
        Some(Entry::Missing | Entry::Deleted(_)) => return page(404, pages::NOT_FOUND).map(Err),
        Some(Entry::Unreadable(_)) | None => {
            let now = now_ms();
            if !BREAKER.with_borrow_mut(|breaker| breaker.allow(now)) {
                return unavailable(BREAKER.with_borrow(|breaker| breaker.retry_after_secs(now)))
                    .map(Err);
            }
            match origin::resolve(env, code).await {
                Ok(Some((record, json))) => {
                    BREAKER.with_borrow_mut(Breaker::succeeded);
                    let entry = Entry::Link(record.clone());
                    remember(entry.clone());
                    fill_kv(ctx, env, code, entry, json, FETCHED_RECORD_TTL);
                    record
                }
                Ok(None) => {
                    BREAKER.with_borrow_mut(Breaker::succeeded);
                    let missing = KV_MISSING.to_owned();
                    fill_kv(ctx, env, code, Entry::Missing, missing, MISSING_TTL);
                    remember(Entry::Missing);
                    return page(404, pages::NOT_FOUND).map(Err);
                }
                Err(err) => {
                    worker::console_warn!("origin unavailable for {code}: {err}");
                    let now = now_ms();
                    BREAKER.with_borrow_mut(|breaker| breaker.failed(now));
                    return unavailable(
                        BREAKER.with_borrow(|breaker| breaker.retry_after_secs(now)),
                    )
                    .map(Err);
                }
            }
        }
    };
    Ok(Ok(record))
}

/// The answer to a visit of `record` at `now`: a redirect (and its click), or 410.
fn answer(
    req: &Request,
    env: &Env,
    ctx: &Context,
    record: &LinkRecord,
    code: ShortCode,
    head: bool,
    now: OffsetDateTime,
) -> Result<Response> {
    let visit = shortlink::redirect::Visit {
        now,
        country: None,
        agent: shortlink::agent::classify(None),
        accept_language: None,
        query: None,
        visitor: None,
        unlocked: false,
        clicks_in_flight: 0,
    };
    match decide(record, &visit) {
        Decision::Redirect {
            status,
            location,
            cache_control,
            ..
        } => {
            send_click(req, env, ctx, record, code, head, now);
            let headers = Headers::new();
            headers.set("location", &location)?;
            match cache_control.as_static() {
                Some(text) => headers.set("cache-control", text)?,
                None => headers.set("cache-control", &cache_control.to_string())?,
            }
            Ok(Response::empty()?
                .with_status(status.code())
                .with_headers(headers))
        }
        Decision::Expired => page(410, pages::EXPIRED),
        Decision::Disabled | Decision::Password | Decision::Fallback { .. } => {
            page(404, pages::NOT_FOUND)
        }
    }
}

/// Stores what the origin said (`entry`, as `value`) in KV after the response is sent,
/// expiring after `ttl` seconds, unless KV holds the same state or a newer one by then
/// ([`entry::replaces`]): a sync that deleted or changed the code while the origin was
/// answering is kept.
///
/// KV has no compare-and-swap, so KV is read again right before the write. What remains is a
/// sync whose write lands between that read and this write (or, across data centres, within
/// KV's propagation delay of it): this older entry then overwrites it, until `ttl` expires or
/// the code changes again. ARCHITECTURE.md states this window among the invariants.
fn fill_kv(ctx: &Context, env: &Env, code: &ShortCode, entry: Entry, value: String, ttl: u64) {
    let key = kv_key(code);
    let kv = env.kv(LINKS);
    ctx.wait_until(async move {
        let fill = async {
            let kv = kv?;
            let current = kv.get(&key).text().await?.map(|text| entry::parse(&text));
            if entry::replaces(Writer::Fill, &entry, current.as_ref()) {
                kv.put(&key, value)?.expiration_ttl(ttl).execute().await?;
            }
            Ok::<_, worker::Error>(())
        };
        if let Err(err) = fill.await {
            worker::console_error!("caching {key} in KV failed: {err}");
        }
    });
}

/// Queues the click after the response is sent: a slow or failing queue never delays a visitor.
fn send_click(
    req: &Request,
    env: &Env,
    ctx: &Context,
    record: &LinkRecord,
    code: ShortCode,
    head: bool,
    at: OffsetDateTime,
) {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    // The serialised URL as the runtime has it: no reparse (which would link the URL parser
    // and its Unicode tables into the worker).
    let url = req.inner().url();
    let query = url
        .split_once('?')
        .map(|(_, rest)| rest.split('#').next().unwrap_or_default().to_owned());
    // The IP address is only hashed into the day's visitor key, never sent or stored.
    let visitor = header("cf-connecting-ip")
        .and_then(|ip| visitor_key(env, at.date(), &ip, header("user-agent").as_deref()));
    let event = ClickEvent {
        id: next_click_id(),
        link_id: record.link_id,
        code,
        at,
        country: req.cf().and_then(|cf| cf.country()),
        referrer: header("referer"),
        user_agent: header("user-agent"),
        qr: shortlink::edge::is_qr_scan(query.as_deref()),
        head,
        source: ClickSource::Edge,
        visitor,
        variant: None,
    }
    .bounded();
    let json = match serde_json::to_string(&event) {
        Ok(json) => json,
        Err(err) => {
            worker::console_error!("a click event did not serialise: {err}");
            return;
        }
    };
    // The queue binding is looked up only for a send, not for every click that joins a message.
    match CLICKS_OUT.with_borrow_mut(|out| out.add(&json)) {
        Added::Queued => {}
        Added::Send(message) => ctx.wait_until(send_clicks(env.queue(CLICKS), message)),
        Added::ScheduleFlush => {
            let queue = env.queue(CLICKS);
            ctx.wait_until(async move {
                Delay::from(Duration::from_millis(outbox::FLUSH_AFTER_MS)).await;
                if let Some(message) = CLICKS_OUT.with_borrow_mut(Outbox::take) {
                    send_clicks(queue, message).await;
                }
            });
        }
    }
}

/// Sends one message of clicks to the queue, trying three times before giving up on it.
async fn send_clicks(queue: Result<Queue>, message: String) {
    let lost = |message: &str| {
        outbox::events_of(&serde_json::Value::String(message.to_owned()))
            .map_or(0, |events| events.len())
    };
    let queue = match queue {
        Ok(queue) => queue,
        Err(err) => {
            let lost = lost(&message);
            worker::console_error!("no click queue bound, {lost} clicks lost: {err}");
            return;
        }
    };
    for attempt in 1..=3 {
        let body = RawMessageBuilder::new(JsValue::from_str(&message))
            .build_with_content_type(QueueContentType::Text);
        match queue.send_raw(body).await {
            Ok(()) => return,
            Err(err) if attempt < 3 => {
                worker::console_warn!("queueing clicks failed, retrying: {err}");
                Delay::from(Duration::from_millis(100 * attempt)).await;
            }
            Err(err) => {
                let lost = lost(&message);
                worker::console_error!("queueing clicks failed, {lost} clicks lost: {err}");
            }
        }
    }
}

/// The queue entry point, for the click queue and its dead-letter queue. Exported by hand, as
/// `#[event(queue)]` would: workers-rs 0.8.7 wraps the runtime's messages without their
/// `attempts`, which the retry schedule needs. An error makes the runtime retry the batch.
#[worker::wasm_bindgen::prelude::wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
pub async fn queue(
    batch: worker::worker_sys::MessageBatch,
    env: Env,
    _ctx: worker::worker_sys::Context,
) -> std::result::Result<JsValue, JsValue> {
    consumer::consume(&batch, &env)
        .await
        .map(|()| JsValue::UNDEFINED)
        .map_err(|err| {
            worker::console_error!("queue batch failed: {err}");
            JsValue::from_str(&err.to_string())
        })
}

fn page(status: u16, html: &str) -> Result<Response> {
    let mut response = Response::from_html(html)?.with_status(status);
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}

fn unavailable(retry_after_secs: u64) -> Result<Response> {
    let mut response = page(503, pages::UNAVAILABLE)?;
    response
        .headers_mut()
        .set("retry-after", &retry_after_secs.to_string())?;
    Ok(response)
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

fn timestamp(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}

/// The day's visitor key, with the day's salt made once per isolate.
fn visitor_key(env: &Env, day: time::Date, ip: &str, user_agent: Option<&str>) -> Option<String> {
    SALT.with_borrow_mut(|salt| {
        if salt.as_ref().is_none_or(|salt| salt.day() != day) {
            // Without the secret the worker cannot sync or reach the origin either; clicks
            // then go without a visitor key rather than fail.
            let secret = edge_secret(env).ok()?;
            *salt = Some(DailySalt::new(secret.as_bytes(), day));
        }
        salt.as_ref()
            .map(|salt| salt.key(ip, user_agent.unwrap_or_default()))
    })
}

/// A click's event id: this isolate's random prefix (122 random bits, from
/// `crypto.randomUUID()` once) and a sequence number, so ids never collide in practice and
/// making one costs no call into JavaScript.
fn next_click_id() -> String {
    CLICK_IDS.with_borrow_mut(|ids| {
        let (prefix, next) = ids.get_or_insert_with(|| (random_uuid(), 0));
        *next += 1;
        format!("{prefix}-{next:x}")
    })
}

/// `crypto.randomUUID()`.
fn random_uuid() -> String {
    use worker::js_sys::{Function, Reflect, global};
    use worker::wasm_bindgen::{JsCast, JsValue};
    let uuid = || -> Option<String> {
        let crypto = Reflect::get(&global(), &JsValue::from_str("crypto")).ok()?;
        let random_uuid: Function = Reflect::get(&crypto, &JsValue::from_str("randomUUID"))
            .ok()?
            .dyn_into()
            .ok()?;
        random_uuid.call0(&crypto).ok()?.as_string()
    };
    uuid().unwrap_or_else(|| {
        // Not reached on Workers, which always have crypto.randomUUID.
        let random = (worker::js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        format!("{:x}-{random:x}", now_ms())
    })
}

/// The shared secret of signed requests to and from the origin.
fn edge_secret(env: &Env) -> Result<String> {
    Ok(env.secret("EDGE_SECRET")?.to_string())
}

/// Signs a request to the origin.
fn signed_headers(secret: &str, method: &str, path: &str, body: &[u8]) -> Result<Headers> {
    let timestamp = now_secs();
    let headers = Headers::new();
    headers.set(signature::TIMESTAMP_HEADER, &timestamp.to_string())?;
    headers.set(
        signature::SIGNATURE_HEADER,
        &signature::sign(secret.as_bytes(), method, path, timestamp, body),
    )?;
    Ok(headers)
}
