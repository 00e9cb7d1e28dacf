//! Talking to the origin: resolving a code on a KV miss, and delivering click batches.

use std::pin::pin;
use std::time::Duration;

use futures_util::future::{Either, select};
use shortlink::ShortCode;
use shortlink::edge::{ClickEvent, IngestBatch};
use shortlink::redirect::LinkRecord;
use worker::{
    AbortController, Delay, Env, Fetch, Headers, Message, MessageBatch, MessageExt, Method,
    QueueRetryOptionsBuilder, Request, RequestInit, Response, Result,
};

use crate::outbox::events_of;
use crate::{edge_secret, signed_headers};

/// How long a visitor waits for the origin on a KV miss before getting a 503.
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(2_000);
/// How long the queue consumer waits for ingest.
const INGEST_TIMEOUT: Duration = Duration::from_secs(20);

fn origin_url(env: &Env) -> Result<String> {
    Ok(env
        .var("ORIGIN_URL")?
        .to_string()
        .trim_end_matches('/')
        .to_owned())
}

/// The link record for `code` with its JSON (to store in KV as is), `None` if the origin has
/// no such link, or an error if the origin could not answer.
pub(crate) async fn resolve(env: &Env, code: &ShortCode) -> Result<Option<(LinkRecord, String)>> {
    let path = format!("/_edge/resolve/{code}");
    let headers = signed_headers(&edge_secret(env)?, "GET", &path, b"")?;
    let mut response = send(env, Method::Get, &path, headers, None, RESOLVE_TIMEOUT).await?;
    match response.status_code() {
        200 => {
            let json = response.text().await?;
            let record = serde_json::from_str(&json).map_err(|err| {
                worker::Error::RustError(format!("origin sent a bad record: {err}"))
            })?;
            Ok(Some((record, json)))
        }
        404 => Ok(None),
        status => Err(worker::Error::RustError(format!(
            "origin answered {status}"
        ))),
    }
}

/// The queue consumer: posts the click events of the batch's messages (see [`crate::outbox`])
/// to the origin's ingest route, in one request. On
/// success they are acknowledged; otherwise retried later (the queue keeps them), so a
/// click is never lost to an origin outage. Messages that are not click events at all are
/// acknowledged and logged: retrying them could never succeed.
pub(crate) async fn deliver_clicks(
    batch: &MessageBatch<serde_json::Value>,
    env: &Env,
) -> Result<()> {
    let mut events = Vec::new();
    let mut deliverable: Vec<Message<serde_json::Value>> = Vec::new();
    for message in batch.messages()? {
        match events_of(message.body()) {
            Ok(more) => {
                events.extend(more.into_iter().map(ClickEvent::bounded));
                deliverable.push(message);
            }
            Err(err) => {
                worker::console_error!("dropping a message that is not click events: {err}");
                message.ack();
            }
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    let body = serde_json::to_vec(&IngestBatch { events })
        .map_err(|err| worker::Error::RustError(err.to_string()))?;
    let path = "/_edge/ingest";
    let result = async {
        let headers = signed_headers(&edge_secret(env)?, "POST", path, &body)?;
        headers.set("content-type", "application/json")?;
        let response = send(
            env,
            Method::Post,
            path,
            headers,
            Some(body.clone()),
            INGEST_TIMEOUT,
        )
        .await?;
        match response.status_code() {
            200..=299 => Ok(()),
            status => Err(worker::Error::RustError(format!(
                "ingest answered {status}"
            ))),
        }
    }
    .await;
    match result {
        Ok(()) => deliverable.iter().for_each(MessageExt::ack),
        Err(err) => {
            worker::console_warn!("click delivery failed, will retry: {err}");
            let retry_delay = env
                .var("CLICK_RETRY_DELAY_SECS")
                .ok()
                .and_then(|v| v.to_string().parse().ok())
                .unwrap_or(10);
            let options = QueueRetryOptionsBuilder::new()
                .with_delay_seconds(retry_delay)
                .build();
            for message in &deliverable {
                message.retry_with_options(&options);
            }
        }
    }
    Ok(())
}

/// One request to the origin, abandoned after `timeout`.
async fn send(
    env: &Env,
    method: Method,
    path: &str,
    headers: Headers,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Response> {
    let url = format!("{}{path}", origin_url(env)?);
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    }
    let request = Request::new_with_init(&url, &init)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let fetching = pin!(fetch.send_with_signal(&signal));
    let waiting = pin!(Delay::from(timeout));
    match select(fetching, waiting).await {
        Either::Left((response, _)) => response,
        Either::Right(((), _)) => {
            controller.abort();
            Err(worker::Error::RustError(format!(
                "origin did not answer within {timeout:?}"
            )))
        }
    }
}
