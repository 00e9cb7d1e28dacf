//! `origin replay-parked-clicks`: asks the edge to move the clicks its dead-letter consumer
//! parked in KV (the origin did not take them for over a day) back onto the click queue, a
//! chunk per signed `POST /_edge/replay`, until none remain. Run it once the origin takes
//! clicks again. Replaying twice is harmless: ingest is idempotent on the event id.

use std::time::Duration;

use anyhow::{Context, bail};
use shortlink::edge::{REPLAY_PATH, ReplayRequest, ReplayResult};

use crate::edge_client;
/// Tries of one replay request before giving up (a moment's network trouble).
const TRIES: u32 = 3;
/// Requests in a row that may find parked entries listed but none to move before giving up:
/// with [`Pacing::stalled`] between them, longer than KV's listing takes to show deletes (a
/// minute).
const STALLED_TRIES: u32 = 8;

/// How long to wait between requests that make no progress, and between tries of one.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub stalled: Duration,
    pub retry: Duration,
}

impl Pacing {
    pub const PRODUCTION: Self = Self {
        stalled: Duration::from_secs(10),
        retry: Duration::from_secs(2),
    };
}

/// What a whole replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub requests: usize,
    pub messages: usize,
    pub clicks: usize,
}

/// Calls the edge's replay route until nothing remains; `progress` sees every answer.
pub async fn replay_parked_clicks(
    edge_url: &str,
    secret: &str,
    pacing: Pacing,
    mut progress: impl FnMut(&ReplayResult),
) -> anyhow::Result<Replayed> {
    let client = edge_client::client(Duration::from_secs(60))?;
    let mut total = Replayed::default();
    let mut stalled = 0;
    // Where the last request stopped: the next skips the keys up to it unread (KV's listing
    // shows deleted keys for up to a minute).
    let mut after = None;
    loop {
        let answer = replay_once(&client, edge_url, secret, pacing, after.as_deref()).await?;
        if let Some(last) = &answer.last {
            after = Some(last.clone());
        }
        total.requests += 1;
        total.messages += answer.replayed;
        total.clicks += answer.clicks;
        progress(&answer);
        if answer.remaining == 0 {
            return Ok(total);
        }
        if answer.replayed > 0 {
            stalled = 0;
            continue;
        }
        // Entries listed that none of the request's reads found: deleted by this replay, and
        // KV's listing has not caught up yet.
        stalled += 1;
        if stalled == STALLED_TRIES {
            bail!(
                "the edge still lists {} parked entries it cannot read; run this again later",
                answer.remaining
            );
        }
        tokio::time::sleep(pacing.stalled).await;
    }
}

/// One signed replay request, tried up to [`TRIES`] times.
async fn replay_once(
    client: &reqwest::Client,
    edge_url: &str,
    secret: &str,
    pacing: Pacing,
    after: Option<&str>,
) -> anyhow::Result<ReplayResult> {
    let mut tries = 0;
    loop {
        tries += 1;
        match post(client, edge_url, secret, after).await {
            Ok(answer) => return Ok(answer),
            Err(err) if tries < TRIES => {
                tracing::warn!(error = %format!("{err:#}"), "replay request failed, retrying");
                tokio::time::sleep(pacing.retry).await;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn post(
    client: &reqwest::Client,
    edge_url: &str,
    secret: &str,
    after: Option<&str>,
) -> anyhow::Result<ReplayResult> {
    let request = ReplayRequest {
        nonce: None,
        after: after.map(str::to_owned),
    };
    let body = serde_json::to_vec(&request).context("cannot write the replay request")?;
    let response = edge_client::post(client, edge_url, secret, REPLAY_PATH, &body).await?;
    if let Some(redirected) = edge_client::redirected(&response) {
        bail!(redirected);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {REPLAY_PATH} answered {status}: {body:.300}");
    }
    serde_json::from_str(&body).with_context(|| format!("POST {REPLAY_PATH} answered {body:.300}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const FAST: Pacing = Pacing {
        stalled: Duration::from_millis(1),
        retry: Duration::from_millis(1),
    };

    /// A fake edge that answers the next of `answers` (a status and a result).
    async fn edge(answers: Vec<(StatusCode, ReplayResult)>) -> (String, Arc<Mutex<usize>>) {
        let mut answers = answers.into_iter();
        edge_answering(move |_| answers.next().expect("no more requests than answers")).await
    }

    /// A fake edge that checks each request's signature, refuses one it has seen before as
    /// the worker does (`edge/src/signed.rs`), and answers what `answer` makes of the request,
    /// counting what it answered.
    async fn edge_answering(
        answer: impl FnMut(ReplayRequest) -> (StatusCode, ReplayResult) + Send + 'static,
    ) -> (String, Arc<Mutex<usize>>) {
        let answers = Arc::new(Mutex::new(answer));
        let calls = Arc::new(Mutex::new(0));
        let counted = calls.clone();
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let app = Router::new().route(
            REPLAY_PATH,
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let answers = answers.clone();
                let calls = counted.clone();
                let seen = seen.clone();
                async move {
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let verified = signature::verify(
                        SECRET.as_bytes(),
                        "POST",
                        REPLAY_PATH,
                        header(TIMESTAMP_HEADER),
                        header(SIGNATURE_HEADER),
                        &body,
                        now,
                    );
                    if verified.is_err() {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let signature = header(SIGNATURE_HEADER).unwrap_or_default().to_owned();
                    if !seen.lock().expect("not poisoned").insert(signature) {
                        return (StatusCode::UNAUTHORIZED, "already received".to_owned());
                    }
                    *calls.lock().expect("not poisoned") += 1;
                    let request = serde_json::from_slice(&body).expect("a replay request");
                    let (status, result) = (answers.lock().expect("not poisoned"))(request);
                    (status, serde_json::to_string(&result).expect("serialises"))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}/", listener.local_addr().expect("has an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    fn result(replayed: usize, clicks: usize, remaining: usize) -> ReplayResult {
        ReplayResult {
            replayed,
            clicks,
            remaining,
            last: None,
        }
    }

    /// An edge URL that redirects (a proxy sending `http://` on to `https://`) is named with
    /// where it points, not followed: followed, a 308 sent the signed request on, and a 301
    /// turned it into a GET.
    #[tokio::test]
    async fn a_redirect_is_reported_not_followed() {
        let (target, calls) = edge(vec![(StatusCode::OK, result(1, 1, 0))]).await;
        let app = Router::new().route(
            REPLAY_PATH,
            post(move || {
                let to = format!("{}{}", target.trim_end_matches('/'), REPLAY_PATH);
                async move {
                    (
                        StatusCode::PERMANENT_REDIRECT,
                        [(axum::http::header::LOCATION, to)],
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}/", listener.local_addr().expect("has an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let err = replay_parked_clicks(&url, SECRET, FAST, |_| {})
            .await
            .expect_err("refused");
        let message = format!("{err:#}");
        assert!(message.contains("308"), "{message}");
        assert!(message.contains("set KURZ_EDGE_URL"), "{message}");
        assert_eq!(*calls.lock().expect("not poisoned"), 0);
    }

    #[tokio::test]
    async fn replays_chunk_by_chunk_until_none_remain() {
        let ok = StatusCode::OK;
        let (url, calls) = edge(vec![
            (ok, result(25, 400, 30)),
            (StatusCode::SERVICE_UNAVAILABLE, result(0, 0, 0)),
            (ok, result(25, 380, 5)),
            // Listed but already deleted: no progress, then the listing catches up.
            (ok, result(0, 0, 5)),
            (ok, result(5, 60, 0)),
        ])
        .await;
        let mut seen = Vec::new();
        let replayed =
            replay_parked_clicks(&url, SECRET, FAST, |answer| seen.push(answer.remaining))
                .await
                .expect("replays");
        assert_eq!(
            replayed,
            Replayed {
                requests: 4,
                messages: 55,
                clicks: 840,
            }
        );
        assert_eq!(seen, [30, 5, 5, 0]);
        assert_eq!(*calls.lock().expect("not poisoned"), 5);
    }

    /// Each request goes out the moment the one before was answered, well within a second:
    /// with a signature over the same body and second they were refused as replays.
    #[tokio::test]
    async fn requests_in_the_same_second_are_not_replays() {
        let ok = StatusCode::OK;
        let answers = (0..5)
            .map(|left| (ok, result(1, 1, 4 - left)))
            .collect::<Vec<_>>();
        let (url, calls) = edge(answers).await;
        let started = std::time::Instant::now();
        let replayed = replay_parked_clicks(&url, SECRET, Pacing::PRODUCTION, |_| {})
            .await
            .expect("replays");
        assert_eq!(replayed.requests, 5);
        assert_eq!(*calls.lock().expect("not poisoned"), 5);
        // No try was refused and waited for (`Pacing::PRODUCTION` waits 2 s after one).
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    /// KV's listing shows deleted keys for up to a minute: each request names where the last
    /// one stopped, so the edge does not spend its reads on keys already moved. (Reading from
    /// the oldest each time, the third request found only deleted keys, and the replay
    /// stalled until the listing caught up.)
    #[tokio::test]
    async fn each_request_goes_on_where_the_last_stopped() {
        // The edge's rules (`edge/src/replay.rs`), over a listing that never forgets a key.
        let listed: Vec<String> = (0..60).map(|n| format!("parked:{n:015}:m")).collect();
        let mut parked: HashSet<String> = listed.iter().cloned().collect();
        let (url, calls) = edge_answering(move |request| {
            let past: Vec<&String> = listed
                .iter()
                .filter(|name| request.after.as_ref().is_none_or(|after| *name > after))
                .collect();
            let mut answer = result(0, 0, 0);
            let mut read = 0;
            for name in &past {
                if answer.replayed == 25 || read == 50 {
                    break;
                }
                read += 1;
                answer.last = Some((*name).clone());
                if parked.remove(*name) {
                    answer.replayed += 1;
                    answer.clicks += 1;
                }
            }
            answer.remaining = past.len() - read;
            (StatusCode::OK, answer)
        })
        .await;
        let replayed = replay_parked_clicks(&url, SECRET, FAST, |_| {})
            .await
            .expect("replays");
        assert_eq!((replayed.messages, replayed.requests), (60, 3));
        assert_eq!(*calls.lock().expect("not poisoned"), 3);
    }

    #[tokio::test]
    async fn gives_up_when_entries_stay_listed_but_unreadable() {
        let answers = vec![(StatusCode::OK, result(0, 0, 3)); STALLED_TRIES as usize];
        let (url, calls) = edge(answers).await;
        let err = replay_parked_clicks(&url, SECRET, FAST, |_| {})
            .await
            .expect_err("gives up");
        assert!(err.to_string().contains("3 parked entries"), "{err}");
        assert_eq!(*calls.lock().expect("not poisoned"), STALLED_TRIES as usize);
    }

    #[tokio::test]
    async fn a_refused_signature_is_an_error_after_its_tries() {
        let (url, calls) = edge(Vec::new()).await;
        let err = replay_parked_clicks(&url, "another secret of thirty-two chars", FAST, |_| {})
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("401"), "{err}");
        assert_eq!(*calls.lock().expect("not poisoned"), 0);
    }
}
