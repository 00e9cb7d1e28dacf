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
//! Visits are limited per client address by Cloudflare's Rate Limiting bindings, and what a
//! flood of unknown codes may cost the origin is bounded per address and per isolate
//! ([`limits`]). `/{code}+` previews where a link goes ([`shortlink::pages::preview_of`]);
//! `/report` is the origin's abuse-report form, forwarded.
//!
//! A link's rules (targeting, A/B split, UTM, click limit, password, disabled, fallback) are
//! decided by `shortlink::redirect::decide`, as at the origin, from a [`Visit`] built here:
//! the country of `request.cf`, the user agent's classification, `Accept-Language`, the query,
//! the day's visitor key, the unlock cookie, and the clicks this isolate let through on a
//! limited link ([`in_flight`]). A password form posts back to the link ([`unlock`]).
//!
//! The decisions live in plain modules without `worker` types ([`route`], [`resolve`] (the
//! miss path), [`breaker`], [`limits`], [`entry`], [`memo`], [`in_flight`], [`unlock`], [`reply`],
//! [`outbox`], [`retry`], [`parked`] and `shortlink::redirect::decide`), unit-tested on the
//! host; this file, [`origin`], [`consumer`], [`sync`] and [`replay`] are the glue to the
//! Workers runtime.

pub mod breaker;
mod consumer;
pub mod entry;
pub mod in_flight;
pub mod limits;
pub mod memo;
mod origin;
pub mod outbox;
pub mod parked;
mod replay;
pub mod reply;
mod resolve;
pub mod retry;
pub mod route;
mod signed;
mod sync;
pub mod unlock;

use std::cell::{Cell, OnceCell, RefCell};
use std::time::Duration;

use shortlink::edge::{ClickEvent, ClickSource};
use shortlink::password::{Attempts, UnlockKey};
use shortlink::redirect::{Decision, LinkRecord, Visit, decide};
use shortlink::visitor::DailySalt;
use shortlink::{ShortCode, signature};
use time::OffsetDateTime;
use worker::kv::KvStore;
use worker::wasm_bindgen::JsValue;
use worker::{
    Context, Date, Delay, Env, Headers, Method, QueueContentType, RawMessageBuilder, Request,
    Response, Result, event,
};

use crate::in_flight::InFlight;
use crate::outbox::{Added, Outbox};
use crate::reply::Reply;
use crate::resolve::{Cache, Found};
use crate::route::Route;

/// The KV namespace of link entries.
const LINKS: &str = "LINKS";
/// The queue of click events.
const CLICKS: &str = "CLICKS";
/// Seconds a KV read of a link may be served from the data centre's cache: KV's minimum, for
/// visits and for a writer's check before it writes alike (left out, KV caches for 60 s).
pub(crate) const KV_CACHE_TTL: u64 = 30;

thread_local! {
    /// Per isolate: what it read from KV in the last second ([`memo`]), and the origin's
    /// circuit breaker (each isolate learns about a dead origin on its own, within a few
    /// requests). Made once and never dropped, so the miss path can hold it across awaits.
    static CACHE: &'static Cache = Box::leak(Box::default());
    /// Clicks this isolate let through on limited links, per record version.
    static IN_FLIGHT: RefCell<InFlight> = RefCell::new(InFlight::default());
    /// Wrong password answers per (link, address) in this isolate.
    static ATTEMPTS: RefCell<Attempts> = RefCell::new(Attempts::new(unlock::ATTEMPTS_CAPACITY));
    /// The key of unlock cookies, derived from the edge secret once per isolate.
    static UNLOCK_KEY: RefCell<Option<UnlockKey>> = const { RefCell::new(None) };
    /// Clicks waiting for this isolate's next queue message.
    static CLICKS_OUT: RefCell<Outbox> = RefCell::new(Outbox::default());
    /// Today's visitor salt, made once a day per isolate rather than once per click.
    static SALT: RefCell<Option<DailySalt>> = const { RefCell::new(None) };
    /// This isolate's random prefix of click ids and the number of the next click.
    static CLICK_IDS: RefCell<Option<(String, u64)>> = const { RefCell::new(None) };
    /// Limit bindings found missing or failing in this isolate, each logged once.
    static LIMITS_WARNED: Cell<[bool; 2]> = const { Cell::new([false; 2]) };
}

/// This isolate's memo and breaker.
fn cache() -> &'static Cache {
    CACHE.with(|cache| *cache)
}

/// Runs `f` with the unlock key, made from the edge secret the first time; `None` without a
/// secret.
fn with_unlock_key<T>(env: &Env, f: impl FnOnce(&UnlockKey) -> T) -> Option<T> {
    UNLOCK_KEY.with_borrow_mut(|key| {
        if key.is_none() {
            *key = Some(UnlockKey::new(edge_secret(env).ok()?.as_bytes()));
        }
        key.as_ref().map(f)
    })
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let route = route::classify(req.method().as_ref(), &req.path());
    let visit = matches!(
        route,
        Route::Redirect { .. } | Route::Preview { .. } | Route::Unlock { .. }
    );
    let client = client_key(&req);
    if visit && !allowed(&env, limits::VISIT_LIMIT, client.as_deref()).await {
        return respond(Reply::rate_limited(limits::PERIOD_SECS));
    }
    let answer = match route {
        Route::Redirect { code, head } => redirect(&req, &env, &ctx, code, head).await,
        Route::Preview { code, .. } => preview(&req, &env, &ctx, code).await,
        Route::Unlock { code } => unlock(req, &env, &ctx, code).await,
        Route::Report => report(req, &env).await,
        Route::Sync => sync::handle(req, &env).await,
        Route::Replay => replay::handle(req, &env).await,
        Route::MethodNotAllowed { allow } => respond(Reply::method_not_allowed(allow)),
        Route::NotFound => respond(Reply::not_found()),
    };
    // A thrown error would be a bare 500 from the runtime; say what happened instead.
    answer.or_else(|err| {
        worker::console_error!("request failed: {err}");
        respond(Reply::unavailable(1))
    })
}

/// `GET|HEAD /{code}`: the link's rules decide the answer to this visitor
/// (`shortlink::redirect::decide`); a redirect sends its click.
async fn redirect(
    req: &Request,
    env: &Env,
    ctx: &Context,
    code: ShortCode,
    head: bool,
) -> Result<Response> {
    let started_ms = now_ms();
    let record = match lookup(env, ctx, &code, started_ms, client_key(req)).await? {
        Ok(record) => record,
        Err(reply) => return respond(reply),
    };
    let now = timestamp(started_ms);
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let user_agent = header("user-agent");
    // By what the click's event keeps of it, as the origin's ingest classifies the click when
    // it counts it against a limit: a visit is a person's, or a bot's, in both places.
    let agent =
        shortlink::agent::classify(user_agent.as_deref().map(shortlink::edge::kept_user_agent));
    // The serialised URL as the runtime has it: no reparse (which would link the URL parser
    // and its Unicode tables into the worker).
    let url = req.inner().url();
    let query = query_of(&url);
    // The IP address is only hashed into the day's visitor key, never sent or stored.
    let visitor = header("cf-connecting-ip")
        .and_then(|ip| visitor_key(env, now.date(), &ip, user_agent.as_deref()));
    let country = req.cf().and_then(|cf| cf.country());
    let accept_language = header("accept-language");
    let unlocked = record.rules().password.as_ref().is_some_and(|hash| {
        with_unlock_key(env, |key| {
            key.is_unlocked(
                record.link_id,
                hash,
                header("cookie").as_deref(),
                now.unix_timestamp(),
            )
        })
        .unwrap_or(false)
    });
    let limited = record.rules().max_clicks.is_some();
    let visit = Visit {
        now,
        country: country.as_deref(),
        agent,
        accept_language: accept_language.as_deref(),
        query,
        visitor: visitor.as_deref(),
        unlocked,
        clicks_in_flight: if limited {
            IN_FLIGHT.with_borrow(|clicks| {
                clicks.clicks(record.link_id, record.version, record.rules().clicks)
            })
        } else {
            0
        },
    };
    let decision = decide(&record, &visit);
    if let Decision::Redirect { variant, .. } = decision {
        if in_flight::uses_a_click(&record, &decision, head, &agent) {
            IN_FLIGHT.with_borrow_mut(|clicks| {
                clicks.counted(record.link_id, record.version, record.rules().clicks);
            });
        }
        let click = ClickEvent {
            id: next_click_id(),
            link_id: record.link_id,
            code,
            at: now,
            country: country.clone(),
            referrer: header("referer"),
            user_agent,
            qr: shortlink::edge::is_qr_scan(query),
            head,
            source: ClickSource::Edge,
            visitor: visitor.clone(),
            variant,
        };
        send_click(env, ctx, click);
    }
    respond(Reply::of(decision))
}

/// `POST /{code}`: a password form's answer, as the origin answers it. Checked in this
/// order: the link has a password (else 405, as before passwords, also for an unknown code)
/// and still asks for it (else a `303` back: its GET says why), the body's declared size,
/// this visitor's attempts (429, nothing hashed), then the password itself.
async fn unlock(mut req: Request, env: &Env, ctx: &Context, code: ShortCode) -> Result<Response> {
    let started_ms = now_ms();
    let not_allowed = || respond(Reply::method_not_allowed("GET, HEAD"));
    let record = match lookup(env, ctx, &code, started_ms, client_key(&req)).await? {
        Ok(record) => record,
        Err(reply) if reply.status == 404 => return not_allowed(),
        Err(reply) => return respond(reply),
    };
    let Some(hash) = &record.rules().password else {
        return not_allowed();
    };
    let url = req.inner().url();
    let https = url.starts_with("https:");
    let back = match query_of(&url) {
        Some(query) => format!("/{code}?{query}"),
        None => format!("/{code}"),
    };
    let now = timestamp(started_ms);
    let locked = Visit {
        now,
        country: None,
        agent: shortlink::agent::classify(None),
        accept_language: None,
        query: None,
        visitor: None,
        unlocked: false,
        clicks_in_flight: IN_FLIGHT.with_borrow(|clicks| {
            clicks.clicks(record.link_id, record.version, record.rules().clicks)
        }),
    };
    if decide(&record, &locked) != Decision::Password {
        return respond(Reply::unlocked(back, None));
    }
    let too_large = || respond(Reply::page(413, "The form is too large."));
    match req
        .headers()
        .get("content-length")?
        .map(|n| n.parse::<usize>())
    {
        Some(Ok(length)) if length <= unlock::MAX_BODY => {}
        Some(_) => return too_large(),
        // Browsers send a length with a form; a body without one would be read unbounded.
        None => return respond(Reply::page(411, "A content-length is required.")),
    }
    let lock = unlock::Lock {
        link_id: record.link_id,
        hash,
    };
    let address = req
        .headers()
        .get("cf-connecting-ip")?
        .unwrap_or_else(|| "unknown".to_owned());
    let body = req.bytes().await?;
    if body.len() > unlock::MAX_BODY {
        return too_large();
    }
    // Without the edge secret no cookie can be made (nor the origin reached).
    let reply = with_unlock_key(env, |key| {
        ATTEMPTS.with_borrow_mut(|attempts| {
            unlock::answer(
                key,
                attempts,
                lock,
                &body,
                &address,
                unlock::Back { path: back, https },
                now.unix_timestamp(),
            )
        })
    });
    respond(reply.unwrap_or_else(|| Reply::unavailable(1)))
}

/// `GET|HEAD /{code}+`: where the link goes, or the visit's own answer when it would not go
/// there (disabled, expired, used up, unknown). No click.
async fn preview(req: &Request, env: &Env, ctx: &Context, code: ShortCode) -> Result<Response> {
    let started_ms = now_ms();
    let record = match lookup(env, ctx, &code, started_ms, client_key(req)).await? {
        Ok(record) => record,
        Err(reply) => return respond(reply),
    };
    let in_flight = if record.rules().max_clicks.is_some() {
        IN_FLIGHT.with_borrow(|clicks| {
            clicks.clicks(record.link_id, record.version, record.rules().clicks)
        })
    } else {
        0
    };
    let url = req.inner().url();
    respond(
        match shortlink::pages::preview_of(&record, timestamp(started_ms), in_flight) {
            Ok(preview) => Reply::preview(route::short_url(&url), &preview),
            Err(decision) => Reply::of(decision),
        },
    )
}

/// `GET|POST /report`: the origin's abuse-report form, so that the short domain serves it.
/// Counted against the client's budget of origin requests; a form's body is read only with a
/// declared length within [`origin::MAX_REPORT_BODY`].
async fn report(mut req: Request, env: &Env) -> Result<Response> {
    if !allowed(env, limits::ORIGIN_LIMIT, client_key(&req).as_deref()).await {
        return respond(Reply::rate_limited(limits::PERIOD_SECS));
    }
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let forwarded = origin::Forwarded {
        content_type: header("content-type"),
        accept_language: header("accept-language"),
        user_agent: header("user-agent"),
        client_ip: header("cf-connecting-ip"),
    };
    let body = if req.method() == Method::Post {
        let too_large = || respond(Reply::page(413, "The form is too large."));
        match header("content-length").map(|n| n.parse::<usize>()) {
            Some(Ok(length)) if length <= origin::MAX_REPORT_BODY => {}
            Some(_) => return too_large(),
            None => return respond(Reply::page(411, "A content-length is required.")),
        }
        let body = req.bytes().await?;
        if body.len() > origin::MAX_REPORT_BODY {
            return too_large();
        }
        Some(body)
    } else {
        None
    };
    let url = req.inner().url();
    let path = (route::REPORT_PATH, query_of(&url));
    match origin::forward(env, req.method().as_ref(), path, &forwarded, body).await {
        Ok(response) => Ok(response),
        Err(err) => {
            worker::console_warn!("forwarding a report failed: {err}");
            respond(Reply::unavailable(5))
        }
    }
}

/// The key the limits count the client by (`CF-Connecting-IP`, see
/// [`limits::client_key`]); `None` where the runtime does not say (never on Cloudflare).
fn client_key(req: &Request) -> Option<String> {
    req.headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .map(|ip| limits::client_key(&ip))
}

/// Whether the rate-limit `binding` lets one more request of `key` through. Without a key,
/// or when the binding is missing or fails, it does (a limit must not take redirects down),
/// logged once per isolate and binding.
async fn allowed(env: &Env, binding: &'static str, key: Option<&str>) -> bool {
    let Some(key) = key else {
        return true;
    };
    rate_limit(env, binding, key).await.unwrap_or_else(|| {
        let index = usize::from(binding == limits::ORIGIN_LIMIT);
        let mut warned = LIMITS_WARNED.get();
        if !warned[index] {
            warned[index] = true;
            LIMITS_WARNED.set(warned);
            worker::console_error!(
                "rate limit {binding} is missing or failed: visits go unlimited"
            );
        }
        true
    })
}

/// One `limit({ key })` call of a Rate Limiting binding: whether it lets the request through,
/// `None` without an answer. By hand rather than through `worker::RateLimiter`, whose
/// serde-wasm-bindgen conversions would grow the .wasm.
async fn rate_limit(env: &Env, binding: &str, key: &str) -> Option<bool> {
    use worker::js_sys::{Object, Reflect};
    use worker::wasm_bindgen::JsCast;
    let limiter = Reflect::get(env, &JsValue::from_str(binding))
        .ok()
        .filter(|limiter| !limiter.is_undefined())?;
    let options = Object::new();
    Reflect::set(&options, &JsValue::from_str("key"), &JsValue::from_str(key)).ok()?;
    let limiter: worker::worker_sys::RateLimiter = limiter.unchecked_into();
    let outcome = worker::wasm_bindgen_futures::JsFuture::from(limiter.limit(options).ok()?)
        .await
        .ok()?;
    Reflect::get(&outcome, &JsValue::from_str("success"))
        .ok()?
        .as_bool()
}

/// The origin's budget for this client (the `ORIGIN_LIMIT` binding), for the miss path.
struct OriginBudget<'a> {
    env: &'a Env,
    client: Option<String>,
}

impl resolve::Budget for OriginBudget<'_> {
    async fn take(&self) -> bool {
        allowed(self.env, limits::ORIGIN_LIMIT, self.client.as_deref()).await
    }
}

/// The query of a request's serialised URL (without `?` and any fragment).
fn query_of(url: &str) -> Option<&str> {
    url.split_once('?')
        .map(|(_, rest)| rest.split('#').next().unwrap_or_default())
}

/// The code's link record, from this isolate's memo, KV, or the origin (then filled into KV
/// after the answer); or the answer when there is none to redirect to (404, 503 while the
/// origin is down or the isolate at its bound, 429 when `client` spent its origin budget).
async fn lookup(
    env: &Env,
    ctx: &Context,
    code: &ShortCode,
    started_ms: u64,
    client: Option<String>,
) -> Result<std::result::Result<LinkRecord, Reply<'static>>> {
    let kv = LazyKv {
        env,
        store: OnceCell::new(),
    };
    let origin = WorkerOrigin(env);
    let budget = OriginBudget { env, client };
    let (found, fill) = resolve::find(cache(), &kv, &origin, &budget, code, started_ms, now_ms)
        .await
        .map_err(worker::Error::RustError)?;
    if let Some(fill) = fill {
        let kv = WorkerKv(match kv.store.into_inner() {
            Some(store) => store,
            None => env.kv(LINKS)?,
        });
        ctx.wait_until(async move {
            if let Err(err) = resolve::fill(&kv, &fill).await {
                worker::console_error!("caching {} in KV failed: {err}", fill.code);
            }
        });
    }
    Ok(match found {
        Found::Link(record) => Ok(record),
        Found::NoLink => Err(Reply::not_found()),
        Found::Unavailable {
            retry_after_secs,
            failure,
        } => {
            if let Some(failure) = failure {
                worker::console_warn!("origin unavailable for {code}: {failure}");
            }
            Err(Reply::unavailable(retry_after_secs))
        }
        Found::Limited { retry_after_secs } => Err(Reply::rate_limited(retry_after_secs)),
    })
}

/// Workers KV for the miss path, its binding looked up on first use: a visit the memo
/// answers never reads it (six property reads across the JavaScript boundary).
struct LazyKv<'a> {
    env: &'a Env,
    store: OnceCell<KvStore>,
}

impl LazyKv<'_> {
    fn store(&self) -> std::result::Result<WorkerKv<&KvStore>, String> {
        if let Some(store) = self.store.get() {
            return Ok(WorkerKv(store));
        }
        let store = self.env.kv(LINKS).map_err(|err| err.to_string())?;
        Ok(WorkerKv(self.store.get_or_init(|| store)))
    }
}

impl resolve::Kv for LazyKv<'_> {
    async fn get(&self, key: &str) -> std::result::Result<Option<String>, String> {
        self.store()?.get(key).await
    }

    async fn put(&self, key: &str, value: &str, ttl: u64) -> std::result::Result<(), String> {
        self.store()?.put(key, value, ttl).await
    }
}

/// Workers KV for the miss path and its fill.
struct WorkerKv<S = KvStore>(S);

impl<S: std::borrow::Borrow<KvStore>> resolve::Kv for WorkerKv<S> {
    async fn get(&self, key: &str) -> std::result::Result<Option<String>, String> {
        let get = self.0.borrow().get(key).cache_ttl(KV_CACHE_TTL);
        get.text().await.map_err(|err| err.to_string())
    }

    async fn put(&self, key: &str, value: &str, ttl: u64) -> std::result::Result<(), String> {
        kv_put(self.0.borrow(), key, value, Some(ttl))
            .await
            .map_err(|err| err.to_string())
    }
}

/// Writes text to KV, expiring after `ttl` seconds if given. As bytes: `KvStore::put` would
/// pass a `String` through serde-wasm-bindgen (and link float formatting into the worker).
async fn kv_put(kv: &KvStore, key: &str, value: &str, ttl: Option<u64>) -> Result<()> {
    let put = kv.put_bytes(key, value.as_bytes())?;
    match ttl {
        Some(ttl) => put.expiration_ttl(ttl).execute().await?,
        None => put.execute().await?,
    }
    Ok(())
}

/// The origin's `/_edge/resolve` for the miss path.
struct WorkerOrigin<'a>(&'a Env);

impl resolve::Origin for WorkerOrigin<'_> {
    async fn resolve(&self, code: &ShortCode) -> std::result::Result<resolve::Resolved, String> {
        origin::resolve(self.0, code)
            .await
            .map_err(|err| err.to_string())
    }

    fn give_up_after_ms(&self) -> u64 {
        let timeout = origin::resolve_timeout(self.0);
        u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) + 1_000
    }
}

/// Turns a reply into the runtime's response: the one place that does.
fn respond(reply: Reply<'_>) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in &reply.headers {
        headers.append(name, value)?;
    }
    let response = match reply.html {
        Some(html) => {
            headers.set("content-type", "text/html; charset=utf-8")?;
            Response::ok(html)?
        }
        None => Response::empty()?,
    };
    Ok(response.with_status(reply.status).with_headers(headers))
}

/// Queues the click after the response is sent: a slow or failing queue never delays a visitor.
fn send_click(env: &Env, ctx: &Context, event: ClickEvent) {
    let event = event.bounded();
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
        Added::Send(message) => ctx.wait_until(send_clicks(env.clone(), message)),
        Added::ScheduleFlush => {
            let env = env.clone();
            ctx.wait_until(async move {
                Delay::from(Duration::from_millis(outbox::FLUSH_AFTER_MS)).await;
                if let Some(message) = CLICKS_OUT.with_borrow_mut(Outbox::take) {
                    send_clicks(env, message).await;
                }
            });
        }
    }
}

/// Sends one message of clicks to the queue, trying three times (a queue over its rate, 5,000
/// messages a second, answers 429). A message it still refuses, or that has no queue to go
/// to, is parked in KV for `origin replay-parked-clicks`, as the dead-letter consumer parks
/// what the origin refuses: a click is lost only if KV refuses it too.
async fn send_clicks(env: Env, message: String) {
    let refused = match env.queue(CLICKS) {
        Ok(queue) => {
            let mut attempt = 1;
            loop {
                let body = RawMessageBuilder::new(JsValue::from_str(&message))
                    .build_with_content_type(QueueContentType::Text);
                match queue.send_raw(body).await {
                    Ok(()) => return,
                    Err(err) if attempt < 3 => {
                        worker::console_warn!("queueing clicks failed, retrying: {err}");
                        Delay::from(Duration::from_millis(250 << (2 * (attempt - 1)))).await;
                        attempt += 1;
                    }
                    Err(err) => break err.to_string(),
                }
            }
        }
        Err(err) => format!("no click queue bound: {err}"),
    };
    consumer::park_unsent(&env, &message, &refused).await;
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
