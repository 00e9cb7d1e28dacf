//! Delivering webhook messages: claim, sign, send, schedule.
//!
//! **Claim.** A background task on every origin takes due messages (`state = 'pending'`,
//! `next_attempt_at` past, no live lease) of enabled endpoints by one `UPDATE … FOR UPDATE
//! SKIP LOCKED` that sets a lease (`locked_until`): origins share the work, and a message is
//! sent by one at a time. An origin that dies mid-send leaves a lease that runs out, and the
//! message is sent again (at-least-once, under the same `webhook-id`). A message is taken only
//! when no older message about the same link to the same endpoint is pending, so a link's
//! messages arrive in order, retries included. Up to `KURZ_WEBHOOK_CONCURRENCY` are sent at
//! once, at most [`PER_ENDPOINT`] of them to one endpoint and half of them to one workspace's
//! endpoints, each workspace's first due message taken before any workspace's second: a
//! receiver that hangs, or a workspace of many such, cannot hold up the others' messages; the
//! task is woken by [`super::wake`] after a commit that wrote messages, and polls
//! every [`POLL`] for the rest.
//!
//! **Sign and send.** Standard Webhooks: `webhook-id` (the message's, the same on every
//! attempt), `webhook-timestamp` (this attempt's) and `webhook-signature` (`v1,` + HMAC-SHA256
//! by the endpoint's secret, made by the `standardwebhooks` crate). No redirect is followed, no
//! proxy used, and unless `KURZ_WEBHOOK_ALLOW_PRIVATE` no loopback, private, link-local or
//! unique-local address is connected to, whether the URL names it or a name resolves to it
//! ([`is_public`]), so an endpoint cannot make kurz probe its own network. At most 1 KiB of
//! an answer is read, for the log.
//!
//! **Schedule.** A 2xx delivers the message (and clears the endpoint's `failing_since`).
//! Anything else is an attempt in `webhook_attempts`, and the next one follows the
//! [`RETRY_AFTER`] table (with up to 10 % jitter, never earlier): 8 attempts over more than
//! 24 h, after which the message has `failed`. An endpoint that has answered no attempt
//! with a 2xx for 24 h is switched off at its next failed attempt (whichever message's: a
//! backlog whose first tries take longer than a day does not keep it on), and so is one that
//! answers 410 Gone, at once; either way with its reason and an audit entry
//! (`webhook.disabled`). A switched-off
//! endpoint's pending messages are kept, unsent, parked (next attempt at `infinity`, so no
//! claim reads them) until a person switches it on again, when they are due at once. A
//! failed attempt pushes the later messages of its link back to its retry, so they are not
//! due (and read by every claim only to be skipped) before it.
//!
//! **Retention.** Delivered and failed messages (with their attempts) are deleted after
//! [`RETENTION`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::audit::{self, ActorRef, Change};
use crate::caller::WorkspaceId;
use crate::config::WebhookConfig;
use crate::error::Error;

/// The wait after each failed attempt: after the 1st, 5 s; after the 7th, 10 h; the 8th
/// failure is final. 27.6 h in all: a receiver down for a day still gets every message.
pub(crate) const RETRY_AFTER: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// How long an endpoint may fail (no 2xx) before its next failed attempt switches it off.
pub(crate) const FAILING_FOR: time::Duration = time::Duration::hours(24);
/// Sends to one endpoint under way at once in one origin: a receiver that hangs until the
/// timeout holds this many of the `KURZ_WEBHOOK_CONCURRENCY` sends, and the others' messages
/// still go out.
const PER_ENDPOINT: usize = 4;
/// The share of `KURZ_WEBHOOK_CONCURRENCY` one workspace's endpoints may take at once in one
/// origin while another workspace has due messages: a workspace of 20 endpoints that hang (4
/// sends each) would otherwise hold every send, and every other workspace's messages would
/// wait behind its timeouts. Alone, a workspace takes every send (a deployment of one
/// workspace keeps its whole concurrency); one that comes later waits at most for the sends
/// under way to end (the timeout), then gets its share.
fn per_workspace(concurrency: usize) -> usize {
    (concurrency / 2).max(1)
}
/// How often messages written by other origins (and retries coming due) are looked for.
const POLL: Duration = Duration::from_secs(1);
/// Most of an answer read, for the log.
const MAX_ANSWER_BYTES: usize = 1024;
/// Delivered and failed messages are deleted after this.
pub(crate) const RETENTION: time::Duration = time::Duration::days(30);

/// The wait before the attempt after `attempts` failed ones, `jitter` (0 to 1) adding up to a
/// tenth; `None` when that was the last.
pub(crate) fn retry_after(attempts: i32, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let wait = RETRY_AFTER.get(index)?;
    Some(wait.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 10.0))
}

/// Whether kurz may connect to `ip` for a webhook: not loopback, private (RFC 1918, shared
/// 100.64/10), link-local, unique-local or site-local, unspecified, broadcast, multicast,
/// documentation, benchmarking (198.18/15), reserved (240/4), IETF protocol assignments
/// (192.0.0/24) or discard-only (100::/64). An IPv4 address inside IPv6 is judged as IPv4:
/// mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`, deprecated but still routed by some
/// stacks), NAT64 (64:ff9b::/96 and the local 64:ff9b:1::/48) and 6to4 (2002::/16, whose
/// relay would reach the IPv4 address in bits 16–47).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    let v6 = match ip.to_canonical() {
        IpAddr::V4(v4) => return is_public_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    let segments = v6.segments();
    let octets = v6.octets();
    let v4_at =
        |at: usize| Ipv4Addr::new(octets[at], octets[at + 1], octets[at + 2], octets[at + 3]);
    // NAT64 (well-known prefix) and IPv4-compatible (`::` and `::1` are themselves below).
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
        || (segments[..6] == [0; 6] && u32::from(v4_at(12)) > 1)
    {
        return is_public_v4(v4_at(12));
    }
    // 6to4: the IPv4 address follows the prefix.
    if segments[0] == 0x2002 {
        return is_public_v4(v4_at(2));
    }
    !(v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        // Local-use NAT64 (RFC 8215): whatever it translates to is the operator's network.
        || segments[..3] == [0x64, 0xff9b, 1]
        // Discard-only (RFC 6666).
        || segments[..4] == [0x100, 0, 0, 0]
        // Documentation (RFC 3849).
        || segments[..2] == [0x2001, 0xdb8]
        // Unique-local, link-local, site-local (deprecated, still routed by some).
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0)
}

/// [`is_public`] for IPv4.
fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT).
        || (a == 100 && (b & 0xc0) == 64)
        // IETF protocol assignments (RFC 6890), including 192.0.0.8 and the DS-Lite ones.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking (RFC 2544).
        || (a == 198 && (b & 0xfe) == 18)
        // Reserved for future use (and 255.255.255.255, above).
        || a >= 240)
}

/// Resolves names to their public addresses only (see [`is_public`]).
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (private networks are refused unless KURZ_WEBHOOK_ALLOW_PRIVATE)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The client webhooks are sent with.
fn client(config: &WebhookConfig) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(config.timeout())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent("kurz-webhooks");
    let builder = match config.allow_private {
        true => builder,
        false => builder.dns_resolver(Arc::new(PublicOnly)),
    };
    builder.build()
}

/// A message claimed for one attempt.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    message_id: String,
    payload: String,
    /// Attempts made before this one.
    attempts: i32,
    endpoint_id: i64,
    /// The endpoint's workspace.
    workspace_id: i64,
    /// The link it is about, if one: its later messages wait for it.
    link_id: Option<i64>,
    url: String,
    secret: String,
}

/// Without the secret (and the URL, which may carry a token of the receiver's), so a
/// claimed message can be logged.
impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("message_id", &self.message_id)
            .field("attempts", &self.attempts)
            .field("endpoint_id", &self.endpoint_id)
            .field("workspace_id", &self.workspace_id)
            .field("link_id", &self.link_id)
            .finish_non_exhaustive()
    }
}

/// What the receiver did with one attempt.
#[derive(Debug)]
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    took: Duration,
}

impl Answer {
    fn delivered(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }

    fn gone(&self) -> bool {
        self.status == Some(410)
    }

    /// The answer in a few words, for a disabled endpoint's reason.
    fn describe(&self) -> String {
        match (self.status, &self.error) {
            (Some(status), _) => format!("HTTP {status}"),
            (None, Some(error)) => error.chars().take(200).collect(),
            (None, None) => "no answer".to_owned(),
        }
    }
}

/// Delivers messages until the process ends.
pub(crate) async fn deliver_forever(state: crate::State) {
    let webhooks = &state.inner.webhooks;
    let client = match client(&webhooks.config) {
        Ok(client) => Arc::new(client),
        Err(err) => {
            tracing::error!(error = %err, "cannot build the HTTP client for webhooks: none are delivered");
            return;
        }
    };
    let concurrency = usize::try_from(webhooks.config.concurrency).unwrap_or(1);
    // The lease outlasts the longest attempt, so no other origin takes a message being sent.
    let lease = webhooks.config.timeout() + Duration::from_secs(30);
    let mut sending = JoinSet::new();
    // The endpoint of each send under way, by its task: a send that panics gives its slot
    // back too.
    let mut sends_to: HashMap<tokio::task::Id, (i64, i64)> = HashMap::new();
    let mut in_flight = InFlight::default();
    // Claimed in batches: when woken, at each poll, and once half the sends are done (not
    // one query for each message that finishes).
    let mut claim_now = true;
    loop {
        let room = concurrency.saturating_sub(sending.len());
        if claim_now && room > 0 {
            let caps = Caps {
                endpoint: PER_ENDPOINT,
                workspace: per_workspace(concurrency),
            };
            match claim(state.db(), room, lease, &in_flight, caps).await {
                Ok(claimed) => {
                    for message in claimed {
                        let endpoint = (message.endpoint_id, message.workspace_id);
                        in_flight.add(endpoint);
                        let db = state.db().clone();
                        let client = client.clone();
                        let allow_private = webhooks.config.allow_private;
                        let task = sending.spawn(async move {
                            let answer = send(&client, &message, allow_private).await;
                            if let Err(err) = settle(&db, &message, &answer).await {
                                // Its lease runs out and it is sent again.
                                tracing::warn!(error = ?err, delivery = message.id, "cannot record a webhook attempt");
                            }
                        });
                        sends_to.insert(task.id(), endpoint);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot claim webhook deliveries"),
            }
        }
        tokio::select! {
            Some(done) = sending.join_next_with_id(), if !sending.is_empty() => {
                let mut ended = vec![done];
                while let Some(done) = sending.try_join_next_with_id() {
                    ended.push(done);
                }
                for done in ended {
                    let task = match done {
                        Ok((task, ())) => task,
                        Err(err) => {
                            // Its message's lease runs out and it is sent again.
                            tracing::error!(error = %err, "a webhook send ended without recording its attempt");
                            err.id()
                        }
                    };
                    if let Some(endpoint) = sends_to.remove(&task) {
                        in_flight.remove(endpoint);
                    }
                }
                claim_now = sending.len() <= concurrency / 2;
            }
            () = webhooks.wake.notified() => claim_now = true,
            () = tokio::time::sleep(POLL) => claim_now = true,
        }
    }
}

/// The sends under way in this origin, per endpoint and per workspace.
#[derive(Debug, Default)]
struct InFlight {
    endpoints: HashMap<i64, usize>,
    workspaces: HashMap<i64, usize>,
}

impl InFlight {
    /// A send to the endpoint `(endpoint, its workspace)` began.
    fn add(&mut self, (endpoint, workspace): (i64, i64)) {
        *self.endpoints.entry(endpoint).or_default() += 1;
        *self.workspaces.entry(workspace).or_default() += 1;
    }

    /// A send to the endpoint `(endpoint, its workspace)` ended.
    fn remove(&mut self, (endpoint, workspace): (i64, i64)) {
        for (map, key) in [
            (&mut self.endpoints, endpoint),
            (&mut self.workspaces, workspace),
        ] {
            if let Some(sends) = map.get_mut(&key) {
                *sends = sends.saturating_sub(1);
                if *sends == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

/// Most sends under way at once in one origin to one endpoint, and to one workspace's.
#[derive(Debug, Clone, Copy)]
struct Caps {
    endpoint: usize,
    workspace: usize,
}

/// The keys and counts of one of [`InFlight`]'s maps, as query parameters.
fn as_arrays(sends: &HashMap<i64, usize>) -> (Vec<i64>, Vec<i64>) {
    sends
        .iter()
        .map(|(key, n)| (*key, i64::try_from(*n).unwrap_or(i64::MAX)))
        .unzip()
}

/// Takes up to `limit` due messages for this origin, under a lease, at most `caps` less the
/// sends `in_flight` of each endpoint and workspace: the caps are applied in the query, so
/// nothing is claimed only to be given back (the workspace's cap only while another workspace
/// has due messages, [`per_workspace`]). Each workspace's due messages take turns: every
/// workspace's first (by due time) comes before any workspace's second, so a workspace with a
/// backlog does not make the others' messages wait for all of it.
///
/// Each enabled endpoint's first due rows are read in order of their due time through
/// `webhook_deliveries_endpoint_due`, at most its share, for the endpoints that have pending
/// messages (found by a skip scan of that index): a claim reads about what it claims, not
/// the whole backlog (a bulk import's thousands of messages would make draining it
/// quadratic), nor every endpoint. The rows it steps over are few: leased ones, and the later messages of a link
/// whose earlier one is leased (a failed attempt pushes them back to its retry, and a
/// switched-off endpoint's wait at `infinity`, see [`settle`], [`park`]). The candidates are
/// chosen without locks, then locked with `SKIP LOCKED` (another origin claiming is skipped,
/// not waited for), and the update checks the lease again: a row another origin claimed after
/// this statement's snapshot is not taken twice.
async fn claim(
    db: &PgPool,
    limit: usize,
    lease: Duration,
    in_flight: &InFlight,
    caps: Caps,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let (busy, sends) = as_arrays(&in_flight.endpoints);
    let (busy_workspaces, workspace_sends) = as_arrays(&in_flight.workspaces);
    sqlx::query_as(
        "UPDATE webhook_deliveries d
         SET locked_until = now() + make_interval(secs => $2)
         FROM webhook_endpoints e
         WHERE e.id = d.endpoint_id AND e.enabled AND d.state = 'pending'
           AND (d.locked_until IS NULL OR d.locked_until < now())
           -- Checked again on the row as it is now: a message parked (its endpoint switched
           -- off) or put back to its retry since the statement's snapshot is not due.
           AND d.next_attempt_at <= now()
           AND d.id = ANY(ARRAY(
             SELECT id FROM webhook_deliveries WHERE id = ANY(ARRAY(
               SELECT fair.id FROM (
                 SELECT due.id, due.next_attempt_at, ep.workspace_id,
                        row_number() OVER (PARTITION BY ep.workspace_id
                                           ORDER BY due.next_attempt_at, due.id) AS turn,
                        -- Whether another workspace has due messages too.
                        min(ep.workspace_id) OVER () <> max(ep.workspace_id) OVER () AS shared
                 FROM (
                     -- The endpoints with pending messages, one index probe each (a skip
                     -- scan): not every endpoint, most of which have nothing to send.
                     WITH RECURSIVE waiting (endpoint_id) AS (
                         (SELECT endpoint_id FROM webhook_deliveries WHERE state = 'pending'
                          ORDER BY endpoint_id LIMIT 1)
                         UNION ALL
                         SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
                                 WHERE d.state = 'pending' AND d.endpoint_id > w.endpoint_id
                                 ORDER BY d.endpoint_id LIMIT 1)
                         FROM waiting w WHERE w.endpoint_id IS NOT NULL)
                     SELECT endpoint_id FROM waiting WHERE endpoint_id IS NOT NULL
                 ) AS waiting
                 JOIN webhook_endpoints ep ON ep.id = waiting.endpoint_id
                 LEFT JOIN unnest($3::bigint[], $4::bigint[]) AS busy (endpoint_id, sends)
                     ON busy.endpoint_id = ep.id
                 CROSS JOIN LATERAL (
                     SELECT c.id, c.next_attempt_at
                     FROM webhook_deliveries c
                     WHERE c.endpoint_id = ep.id AND c.state = 'pending'
                       AND c.next_attempt_at <= now()
                       AND (c.locked_until IS NULL OR c.locked_until < now())
                       AND (c.link_id IS NULL OR NOT EXISTS (
                           SELECT 1 FROM webhook_deliveries older
                           WHERE older.endpoint_id = c.endpoint_id
                             AND older.link_id = c.link_id
                             AND older.state = 'pending' AND older.id < c.id))
                     ORDER BY c.next_attempt_at, c.id
                     LIMIT greatest($5 - COALESCE(busy.sends, 0), 0)
                 ) due
                 WHERE ep.enabled
               ) AS fair
               LEFT JOIN unnest($6::bigint[], $7::bigint[]) AS held (workspace_id, sends)
                   ON held.workspace_id = fair.workspace_id
               WHERE NOT fair.shared OR fair.turn <= $8 - COALESCE(held.sends, 0)
               ORDER BY fair.turn, fair.next_attempt_at, fair.id
               LIMIT $1))
             FOR UPDATE SKIP LOCKED))
         RETURNING d.id, d.message_id, d.payload::text AS payload, d.attempts, d.endpoint_id,
                   e.workspace_id, d.link_id, e.url, e.secret",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(lease.as_secs_f64())
    .bind(busy)
    .bind(sends)
    .bind(i64::try_from(caps.endpoint).unwrap_or(i64::MAX))
    .bind(busy_workspaces)
    .bind(workspace_sends)
    .bind(i64::try_from(caps.workspace).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await
}

/// Parks the pending messages of a switched-off endpoint (their next attempt at `infinity`),
/// so the claim never reads them again until [`unpark`].
pub(crate) async fn park(tx: &mut PgConnection, endpoint: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_at = 'infinity'
         WHERE endpoint_id = $1 AND state = 'pending'",
    )
    .bind(endpoint)
    .execute(tx)
    .await
    .map(drop)
}

/// Makes every pending message of an endpoint due now (switched on again, or its URL
/// changed: the wait was for the old receiver). The order per link holds: the claim still
/// takes a link's oldest pending message first. Wake the deliverer after the commit.
pub(crate) async fn unpark(tx: &mut PgConnection, endpoint: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_at = now()
         WHERE endpoint_id = $1 AND state = 'pending' AND next_attempt_at > now()",
    )
    .bind(endpoint)
    .execute(tx)
    .await
    .map(drop)
}

/// One attempt: sign, POST, and read the start of the answer.
async fn send(client: &reqwest::Client, message: &Claimed, allow_private: bool) -> Answer {
    let started = Instant::now();
    let failed = |error: String| Answer {
        status: None,
        error: Some(error),
        took: started.elapsed(),
    };
    if !allow_private
        && let Some(ip) = literal_address(&message.url)
        && !is_public(ip)
    {
        return failed(format!(
            "{ip} is not a public address (private networks are refused unless KURZ_WEBHOOK_ALLOW_PRIVATE)"
        ));
    }
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = standardwebhooks::Webhook::new(&message.secret).and_then(|webhook| {
        webhook.sign(&message.message_id, timestamp, message.payload.as_bytes())
    });
    let signature = match signature {
        Ok(signature) => signature,
        Err(err) => return failed(format!("the endpoint's secret cannot sign: {err}")),
    };
    let request = client
        .post(&message.url)
        .header("webhook-id", &message.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(message.payload.clone());
    let mut response = match request.send().await {
        Ok(response) => response,
        // Without the URL: it may carry a token of the receiver's.
        Err(err) => return failed(describe_error(err)),
    };
    let status = response.status();
    let mut answer = Vec::new();
    if !status.is_success() {
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES - answer.len();
                    answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    let error = (!status.is_success()).then(|| {
        // A binary answer (gzip, UTF-16) may hold NULs, which PostgreSQL's text refuses: the
        // attempt would never be recorded, and the message sent again and again.
        let text = String::from_utf8_lossy(&answer).replace('\0', "\u{FFFD}");
        format!("HTTP {}: {}", status.as_u16(), text.trim())
    });
    Answer {
        status: Some(status.as_u16()),
        error,
        took: started.elapsed(),
    }
}

/// The address a URL names literally (no name to resolve, so the resolver never sees it).
fn literal_address(url: &str) -> Option<IpAddr> {
    match url::Url::parse(url).ok()?.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

fn describe_error(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out: no answer within KURZ_WEBHOOK_TIMEOUT_MS".to_owned();
    }
    format!("{:#}", anyhow::Error::new(err.without_url()))
}

/// Records the attempt and what follows from it, in one transaction.
async fn settle(db: &PgPool, message: &Claimed, answer: &Answer) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    let attempt = message.attempts + 1;
    let took = i32::try_from(answer.took.as_millis()).unwrap_or(i32::MAX);
    let status = answer.status.map(|s| i16::try_from(s).unwrap_or(i16::MAX));
    let delivered = answer.delivered();
    let wait = match delivered {
        true => None,
        false => retry_after(attempt, jitter()),
    };
    let state = match (delivered, wait) {
        (true, _) => "delivered",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    // The endpoint first, locked: switching it off (which parks its messages) waits for this
    // attempt's record, or this attempt sees it off and parks its retry too.
    let enabled: Option<bool> =
        sqlx::query_scalar("SELECT enabled FROM webhook_endpoints WHERE id = $1 FOR NO KEY UPDATE")
            .bind(message.endpoint_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(enabled) = enabled else {
        // Deleted meanwhile, with its messages.
        return Ok(());
    };
    // Only if no other origin recorded this attempt meanwhile (its lease ran out here).
    let mine = sqlx::query(
        "UPDATE webhook_deliveries
         SET attempts = $2, state = $3, last_status = $4, last_error = $5,
             last_attempt_at = now(), locked_until = NULL,
             delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
             next_attempt_at = CASE WHEN $8 THEN now() + make_interval(secs => $6)
                                    ELSE 'infinity' END
         WHERE id = $1 AND attempts = $7 AND state = 'pending'",
    )
    .bind(message.id)
    .bind(attempt)
    .bind(state)
    .bind(status)
    .bind(&answer.error)
    .bind(wait.unwrap_or_default().as_secs_f64())
    .bind(message.attempts)
    .bind(enabled)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if mine == 0 {
        return Ok(());
    }
    // The link's later messages wait for this one's retry: pushed back to it, they are not
    // due (read by every claim only to be skipped) before it is.
    if let (Some(link), true) = (message.link_id, state == "pending") {
        sqlx::query(
            "UPDATE webhook_deliveries later SET next_attempt_at = this.next_attempt_at
             FROM webhook_deliveries this
             WHERE this.id = $3 AND later.endpoint_id = $1 AND later.link_id = $2
               AND later.state = 'pending' AND later.id > this.id
               AND later.next_attempt_at < this.next_attempt_at",
        )
        .bind(message.endpoint_id)
        .bind(link)
        .bind(message.id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, status, error, duration_ms)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(message.id)
    .bind(attempt)
    .bind(status)
    .bind(&answer.error)
    .bind(took)
    .execute(&mut *tx)
    .await?;
    if delivered {
        sqlx::query(
            "UPDATE webhook_endpoints SET last_success_at = now(), failing_since = NULL
             WHERE id = $1",
        )
        .bind(message.endpoint_id)
        .execute(&mut *tx)
        .await?;
        return Ok(tx.commit().await?);
    }
    let (failing_since,): (OffsetDateTime,) = sqlx::query_as(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, now())
         WHERE id = $1 RETURNING failing_since",
    )
    .bind(message.endpoint_id)
    .fetch_one(&mut *tx)
    .await?;
    let reason = if answer.gone() {
        Some(format!(
            "the receiver answered 410 Gone at {}: it wants no more deliveries",
            super::events::now_rfc3339()?
        ))
    } else if OffsetDateTime::now_utc() - failing_since >= FAILING_FOR {
        Some(format!(
            "failing since {}: last answer {}",
            super::events::rfc3339(failing_since)?,
            answer.describe()
        ))
    } else {
        None
    };
    if let Some(reason) = reason {
        disable(&mut tx, message.endpoint_id, &reason).await?;
    }
    Ok(tx.commit().await?)
}

/// Switches an endpoint off for `reason`, with its audit entry.
async fn disable(tx: &mut PgConnection, endpoint: i64, reason: &str) -> Result<(), Error> {
    let workspace: Option<i64> = sqlx::query_scalar(
        "UPDATE webhook_endpoints
         SET enabled = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
         WHERE id = $1 AND enabled RETURNING workspace_id",
    )
    .bind(endpoint)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(workspace) = workspace else {
        return Ok(());
    };
    park(tx, endpoint).await?;
    tracing::warn!(endpoint, workspace, %reason, "webhook endpoint switched off");
    let change = Change {
        action: "webhook.disabled",
        target: ("webhook", endpoint),
        before: Some(serde_json::json!({"enabled": true})),
        after: Some(serde_json::json!({"enabled": false, "disabled_reason": reason})),
    };
    audit::record(
        tx,
        WorkspaceId::trusted(workspace),
        ActorRef::system("webhook delivery"),
        change,
    )
    .await
}

/// A random fraction in [0, 1): spreads the retries of many messages that failed together.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Sends message `delivery` of `endpoint` (of `workspace`) again, now: pending with its next
/// attempt due, under the same `webhook-id`. Its attempts go on counting, so a message that had
/// failed gets one more attempt (and has failed again if that fails). `false` when the
/// workspace has no such message. Wake the deliverer ([`super::wake`]) after the commit.
///
/// Refused (409) while it is being sent (`delivery_in_flight`: a second send at once, whose
/// attempt would go unrecorded), and while a newer message about the same link to the same
/// endpoint is pending (`newer_delivery_pending`): made pending again then, it could go out
/// at the same time as that newer one, or after it, and a link's messages arrive in order.
/// Once the newer ones are delivered (or failed), the old one may be sent again: a person
/// asking for it on purpose, under its old `webhook-id` and timestamp in the body.
pub(crate) async fn redeliver(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    endpoint: i64,
    delivery: i64,
) -> Result<bool, Error> {
    // Locked: no claim takes it (they skip locked rows) until this commits.
    let found: Option<(Option<i64>, bool)> = sqlx::query_as(
        "SELECT d.link_id, COALESCE(d.state = 'pending' AND d.locked_until >= now(), false)
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.id = $1 AND d.endpoint_id = $2 AND e.workspace_id = $3
         FOR UPDATE OF d",
    )
    .bind(delivery)
    .bind(endpoint)
    .bind(workspace.get())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((link, leased)) = found else {
        return Ok(false);
    };
    if leased {
        return Err(Error::Conflict {
            code: "delivery_in_flight",
            message: "this delivery is being sent right now: redeliver it once this attempt is in its log".to_owned(),
        });
    }
    if let Some(link) = link {
        let newer: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries
                            WHERE endpoint_id = $1 AND link_id = $2 AND state = 'pending'
                              AND id > $3)",
        )
        .bind(endpoint)
        .bind(link)
        .bind(delivery)
        .fetch_one(&mut *tx)
        .await?;
        if newer {
            return Err(Error::Conflict {
                code: "newer_delivery_pending",
                message: "a newer message about this link to this endpoint is still pending: \
                          sent now, this one would arrive out of order; redeliver it once that one is delivered"
                    .to_owned(),
            });
        }
    }
    sqlx::query(
        "UPDATE webhook_deliveries
         SET state = 'pending', next_attempt_at = now(), locked_until = NULL
         WHERE id = $1",
    )
    .bind(delivery)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Deletes delivered and failed messages older than [`RETENTION`] (with their attempts),
/// in batches; returns how many.
pub(crate) async fn delete_old(db: &PgPool, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
    crate::db::delete_in_batches(
        db,
        "DELETE FROM webhook_deliveries WHERE id = ANY(ARRAY(
             SELECT id FROM webhook_deliveries
             WHERE state <> 'pending' AND created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        now - RETENTION,
    )
    .await
}

impl crate::State {
    /// Deletes delivered and failed webhook messages older than the retention as of `now`
    /// (a serving origin does it every hour); returns how many.
    pub async fn delete_old_webhook_deliveries(
        &self,
        now: OffsetDateTime,
    ) -> Result<u64, sqlx::Error> {
        delete_old(self.db(), now).await
    }
}

/// Applies the retention at start and every hour ([`crate::db::hourly`]).
pub(crate) async fn forget_old_forever(db: PgPool) {
    crate::db::hourly("webhook deliveries", || {
        delete_old(&db, OffsetDateTime::now_utc())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attempts of one message before it has failed.
    const MAX_ATTEMPTS: i32 = RETRY_AFTER.len() as i32 + 1;

    #[test]
    fn retries_span_more_than_a_day() {
        let total: Duration = RETRY_AFTER.iter().sum();
        assert!(total >= Duration::from_secs(24 * 3600), "{total:?}");
        assert_eq!(MAX_ATTEMPTS, 8);
        // With the least jitter too: the schedule is never shortened.
        let least: Duration = (1..MAX_ATTEMPTS)
            .map(|n| retry_after(n, 0.0).expect("a retry follows"))
            .sum();
        assert_eq!(least, total);
        assert_eq!(retry_after(MAX_ATTEMPTS, 0.0), None);
        assert_eq!(retry_after(0, 0.0), None);
        assert_eq!(retry_after(1, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(7, 0.0), Some(Duration::from_secs(10 * 3600)));
        // Jitter adds at most a tenth.
        assert_eq!(retry_after(1, 1.0), Some(Duration::from_millis(5500)));
        assert_eq!(retry_after(1, 7.0), Some(Duration::from_millis(5500)));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn only_public_addresses() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            // IPv4-compatible.
            "::7f00:1",
            "::a00:1",
            "::0.0.0.2",
            // Local-use NAT64, 6to4 of private IPv4, site-local, documentation, discard.
            "64:ff9b:1::a00:1",
            "64:ff9b:1::101:101",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "2002:a9fe:a9fe::",
            "fec0::1",
            "2001:db8::1",
            "100::1",
            // Benchmarking, reserved, IETF protocol assignments.
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "250.1.2.3",
            "192.0.0.8",
            "192.0.0.170",
        ];
        for ip in refused {
            assert!(!is_public(ip.parse().expect(ip)), "{ip} taken");
        }
        let taken = [
            "1.1.1.1",
            "93.184.216.34",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "::101:101",
            "2002:808:808::1",
            "198.17.255.255",
            "198.20.0.1",
            "192.0.1.1",
            "223.255.255.1",
            "2001:db9::1",
        ];
        for ip in taken {
            assert!(is_public(ip.parse().expect(ip)), "{ip} refused");
        }
    }

    #[test]
    fn literal_addresses_of_urls() {
        assert_eq!(
            literal_address("http://127.0.0.1:9/x"),
            Some("127.0.0.1".parse().expect("ip"))
        );
        assert_eq!(
            literal_address("http://[::1]/x"),
            Some("::1".parse().expect("ip"))
        );
        assert_eq!(literal_address("https://hooks.example.com/"), None);
        // A decimal or hex spelling is an IPv4 address to the URL standard too.
        assert_eq!(
            literal_address("http://2130706433/"),
            Some("127.0.0.1".parse().expect("ip"))
        );
    }
}
