//! Delivers link changes to the edge: the outbox rows written with every link change are
//! turned into `POST /_edge/sync` batches, retried with backoff until the edge accepts them.
//!
//! One origin delivers at a time (an advisory lock held by the delivering transaction), so
//! two sync requests never race each other to KV. Each change carries the version of the
//! state it sends (`links.version`, see `0007_link_versions.sql`) and the edge keeps the
//! newer of what it holds and what it gets; a code without a live link is sent as a
//! tombstone with the version of its delete. Rows are deleted in the delivering transaction
//! only after the edge answered 2xx, so a crash or an unreachable edge loses nothing.
//!
//! Batches are bounded by bytes as well as by codes, well under the edge's body limit. A
//! batch the edge refuses for good (400, 413, 422) is sent again in halves until the code at
//! fault is alone; that code's rows then move to `edge_outbox_dead` (logged), so the changes
//! behind it, takedowns included, still arrive.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use shortlink::ShortCode;
use shortlink::edge::SyncChange;
use shortlink::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use sqlx::{PgConnection, Postgres, Transaction};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::links::{RECORD_COLUMNS, RecordRow};

/// Where and how to reach the edge.
#[derive(Debug)]
pub(crate) struct EdgeSync {
    /// The worker's base URL, without a trailing slash.
    pub(crate) url: String,
    pub(crate) secret: String,
    /// Woken by this instance's link writes, so their delivery starts at once.
    pub(crate) wake: Notify,
}

/// Most codes in one sync request (and outbox rows read for one).
const MAX_CODES: usize = 200;
/// Most bytes in one sync request: a quarter of the edge's 1 MiB body limit
/// (`edge/src/sync.rs`). The largest record is about 8 KiB of JSON (a 4 KiB destination whose
/// every byte is escaped), so a batch holds at least 30 of those, or 200 ordinary records.
/// One change is sent even when it alone is larger.
pub(crate) const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Held by the delivering transaction: one deliverer at a time across origins.
const DELIVERER_LOCK: &str = "kurz edge sync";
/// How often outbox rows written by other instances are looked for.
const POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Records that `code` changed; called in the transaction that changed it.
pub(crate) async fn record_change(tx: &mut PgConnection, code: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO edge_outbox (code) VALUES ($1)")
        .bind(code)
        .execute(tx)
        .await
        .map(drop)
}

/// What one delivery attempt did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing to deliver, or another origin is delivering.
    Idle,
    /// The edge took the changes of this many outbox rows.
    Delivered(usize),
    /// The edge refused a batch of this many codes for good: fewer are sent next time.
    Refused { codes: usize },
    /// Codes the edge refused alone, or whose rows cannot make a record, were parked.
    Parked,
}

pub(crate) async fn deliver_forever(state: crate::State, edge: Arc<EdgeSync>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the HTTP client for edge sync");
            return;
        }
    };
    let mut backoff = Duration::from_millis(200);
    // Halved on every batch the edge refuses and grown by a quarter on every one it takes
    // (doubling would send again the size just refused, every other time), until the outbox
    // is empty.
    let mut max_codes = MAX_CODES;
    loop {
        match deliver_batch(&state, &edge, &client, max_codes).await {
            Ok(Outcome::Idle) => {
                backoff = Duration::from_millis(200);
                max_codes = MAX_CODES;
                let _ = tokio::time::timeout(POLL, edge.wake.notified()).await;
            }
            Ok(Outcome::Delivered(rows)) => {
                tracing::debug!(rows, "link changes delivered to the edge");
                backoff = Duration::from_millis(200);
                max_codes = (max_codes + max_codes.div_ceil(4)).min(MAX_CODES);
            }
            Ok(Outcome::Refused { codes }) => max_codes = (codes / 2).max(1),
            Ok(Outcome::Parked) => {}
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "edge sync failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sends the changes of up to `max_codes` codes in one request.
async fn deliver_batch(
    state: &crate::State,
    edge: &EdgeSync,
    client: &reqwest::Client,
    max_codes: usize,
) -> anyhow::Result<Outcome> {
    let mut tx: Transaction<'_, Postgres> = state.db().begin().await?;
    // Once the lock is held, the transaction is ended explicitly on every path but a database
    // error: a dropped one is rolled back only later, on its connection, and would keep the
    // lock from the next attempt.
    let deliverer: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
        .bind(DELIVERER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !deliverer {
        return Ok(Outcome::Idle);
    }
    let claimed = Claimed::take(&mut tx, max_codes).await?;
    if claimed.codes.is_empty() {
        tx.rollback().await?;
        return Ok(Outcome::Idle);
    }
    let mut parked = false;
    let mut batch = Batch::new(MAX_BATCH_BYTES);
    for (code, change) in current_changes(&mut tx, &claimed.codes).await? {
        match change {
            Ok(change) => {
                if !batch.add(&code, &change)? {
                    break;
                }
            }
            Err(err) => {
                park(&mut tx, &code, &claimed.ids_of(&code), &err).await?;
                parked = true;
            }
        }
    }
    if batch.codes.is_empty() {
        tx.commit().await?;
        return Ok(Outcome::Parked);
    }
    let (body, sent) = batch.finish();
    let response = match post(edge, client, body).await {
        Ok(response) => response,
        Err(err) => {
            tx.rollback().await?;
            return Err(err.into());
        }
    };
    let status = response.status();
    if status.is_success() {
        let ids: Vec<i64> = sent.iter().flat_map(|code| claimed.ids_of(code)).collect();
        sqlx::query("DELETE FROM edge_outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Outcome::Delivered(ids.len()));
    }
    let text = response.text().await.unwrap_or_default();
    let refusal = format!("edge answered {status}: {text}");
    if !refused_for_good(status) {
        // Unreachable, overloaded, or a secret or clock that an operator has to fix: the same
        // batch again later. Codes parked above are parked again then.
        tx.rollback().await?;
        anyhow::bail!(refusal);
    }
    if let [code] = sent.as_slice() {
        park(&mut tx, code, &claimed.ids_of(code), &refusal).await?;
        tx.commit().await?;
        return Ok(Outcome::Parked);
    }
    tracing::warn!(codes = sent.len(), %refusal, "edge sync batch refused: sending it in halves");
    if parked {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(Outcome::Refused { codes: sent.len() })
}

/// The outbox rows one delivery works on, locked by its transaction, and their codes.
#[derive(Debug)]
struct Claimed {
    /// (id, code), oldest first.
    rows: Vec<(i64, String)>,
    /// The first `max_codes` distinct codes of the rows, in the order of their oldest row.
    codes: Vec<String>,
}

impl Claimed {
    async fn take(tx: &mut PgConnection, max_codes: usize) -> Result<Self, sqlx::Error> {
        // SKIP LOCKED only matters while origins from before the lock run beside this one.
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, code FROM edge_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(MAX_CODES as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut codes = Vec::new();
        let mut seen = HashSet::new();
        for (_, code) in &rows {
            if codes.len() == max_codes {
                break;
            }
            if seen.insert(code.as_str()) {
                codes.push(code.clone());
            }
        }
        Ok(Self { rows, codes })
    }

    /// The ids of the claimed rows of `code`: delivering the code's current state settles
    /// all of them.
    fn ids_of(&self, code: &str) -> Vec<i64> {
        self.rows
            .iter()
            .filter(|(_, row_code)| row_code == code)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// One signed `POST /_edge/sync`.
async fn post(
    edge: &EdgeSync,
    client: &reqwest::Client,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    let path = "/_edge/sync";
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = signature::sign(edge.secret.as_bytes(), "POST", path, timestamp, &body);
    client
        .post(format!("{}{path}", edge.url))
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
}

/// Answers to a sync request that sending the same changes again cannot change: the body
/// is too large or not understood (say, by a worker older than this origin).
fn refused_for_good(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY
    )
}

/// A sync request's body, built change by change so that its size is known before it grows
/// past its limit. The JSON is that of `shortlink::edge::SyncBatch`.
#[derive(Debug)]
struct Batch {
    body: Vec<u8>,
    codes: Vec<String>,
    limit: usize,
}

impl Batch {
    const START: &'static [u8] = br#"{"changes":["#;
    const END: &'static [u8] = b"]}";

    fn new(limit: usize) -> Self {
        Self {
            body: Self::START.to_vec(),
            codes: Vec::new(),
            limit,
        }
    }

    /// Adds the change unless it would make the body larger than the limit (the first change
    /// is always added); false when it did not fit.
    fn add(&mut self, code: &str, change: &SyncChange) -> serde_json::Result<bool> {
        let json = serde_json::to_vec(change)?;
        let separator = usize::from(!self.codes.is_empty());
        let size = self.body.len() + separator + json.len() + Self::END.len();
        if !self.codes.is_empty() && size > self.limit {
            return Ok(false);
        }
        if separator == 1 {
            self.body.push(b',');
        }
        self.body.extend(json);
        self.codes.push(code.to_owned());
        Ok(true)
    }

    /// The body, and the codes whose changes it holds.
    fn finish(mut self) -> (Vec<u8>, Vec<String>) {
        self.body.extend(Self::END);
        (self.body, self.codes)
    }
}

/// A code's newest row: its live link if it has one, else its latest deleted one.
#[derive(Debug, sqlx::FromRow)]
struct CodeState {
    code: String,
    live: bool,
    /// The highest version among all of the code's rows.
    newest: i64,
    #[sqlx(flatten)]
    row: RecordRow,
}

/// The change to send for each code, in the order given; `Err` for a code whose stored row
/// cannot make a record (written around the API), which no retry can fix.
async fn current_changes(
    tx: &mut PgConnection,
    codes: &[String],
) -> anyhow::Result<Vec<(String, Result<SyncChange, String>)>> {
    let states: Vec<CodeState> = sqlx::query_as(&format!(
        "SELECT DISTINCT ON (code) code, deleted_at IS NULL AS live,
                max(version) OVER (PARTITION BY code) AS newest, {RECORD_COLUMNS}
         FROM links WHERE code = ANY($1)
         ORDER BY code, deleted_at IS NULL DESC, version DESC"
    ))
    .bind(codes)
    .fetch_all(&mut *tx)
    .await?;
    let mut states: std::collections::HashMap<String, CodeState> = states
        .into_iter()
        .map(|state| (state.code.clone(), state))
        .collect();
    let mut changes = Vec::with_capacity(codes.len());
    for code in codes {
        let change = match states.remove(code) {
            Some(state) => change_of(&mut *tx, state).await?,
            // No row at all (the outbox row was written by hand): nothing to redirect to.
            None => ShortCode::parse(code)
                .map(|code| SyncChange {
                    code,
                    version: 0,
                    record: None,
                })
                .map_err(|err| err.to_string()),
        };
        changes.push((code.clone(), change));
    }
    Ok(changes)
}

async fn change_of(
    tx: &mut PgConnection,
    mut state: CodeState,
) -> anyhow::Result<Result<SyncChange, String>> {
    let code = match ShortCode::parse(&state.code) {
        Ok(code) => code,
        Err(err) => return Ok(Err(format!("invalid code stored in links: {err}"))),
    };
    if !state.live {
        return Ok(Ok(SyncChange {
            code,
            version: u64::try_from(state.newest)?,
            record: None,
        }));
    }
    if state.row.version < state.newest {
        // This link's insert took its version before a concurrent delete of the code's
        // previous link took its own, then waited for that delete to commit: it would lose to
        // that delete's tombstone. A new version (set by the trigger) puts it after.
        state.row.version =
            sqlx::query_scalar("UPDATE links SET version = 0 WHERE id = $1 RETURNING version")
                .bind(state.row.id)
                .fetch_one(&mut *tx)
                .await?;
    }
    Ok(match state.row.into_record() {
        Ok(record) => Ok(SyncChange {
            code,
            version: record.version,
            record: Some(record),
        }),
        Err(err) => Err(format!("{:#}", anyhow::Error::new(err))),
    })
}

/// Moves a code's outbox rows aside, so that they no longer hold up the rows behind them.
async fn park(
    tx: &mut PgConnection,
    code: &str,
    ids: &[i64],
    error: &str,
) -> Result<(), sqlx::Error> {
    tracing::error!(
        code,
        error,
        "the edge cannot take this code's change: parked in edge_outbox_dead, later changes go on"
    );
    sqlx::query("DELETE FROM edge_outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO edge_outbox_dead (code, error) VALUES ($1, $2)")
        .bind(code)
        .bind(error)
        .execute(&mut *tx)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use shortlink::edge::SyncBatch;
    use shortlink::redirect::LinkRecord;
    use shortlink::{Destination, RedirectStatus};

    use super::*;

    fn change(code: &str, destination: &str) -> SyncChange {
        let record = LinkRecord::new(
            1,
            5,
            Destination::parse(destination).expect("valid"),
            RedirectStatus::Found,
            None,
        );
        SyncChange {
            code: ShortCode::parse(code).expect("valid"),
            version: 5,
            record: Some(record),
        }
    }

    #[test]
    fn batches_are_sync_batches_bounded_by_bytes() {
        let parse = |body: &[u8]| -> SyncBatch { serde_json::from_slice(body).expect("a batch") };
        assert_eq!(parse(&Batch::new(MAX_BATCH_BYTES).finish().0).changes, []);

        // Backslashes double in JSON: a 4 KiB destination of them is ~8 KiB encoded.
        let heavy = format!("https://example.com/?q={}", "\\".repeat(4000));
        let mut batch = Batch::new(MAX_BATCH_BYTES);
        let mut added = Vec::new();
        for i in 0..200 {
            let change = change(&format!("c{i}"), &heavy);
            if !batch.add(&format!("c{i}"), &change).expect("serialises") {
                break;
            }
            added.push(change);
        }
        assert!((25..40).contains(&added.len()), "{}", added.len());
        let (body, codes) = batch.finish();
        assert_eq!(codes.len(), added.len());
        assert!(body.len() <= MAX_BATCH_BYTES, "{}", body.len());
        assert!(body.len() > MAX_BATCH_BYTES - 9_000, "{}", body.len());
        assert_eq!(parse(&body).changes, added);

        // A change larger than the limit still goes, alone.
        let mut batch = Batch::new(100);
        assert!(
            batch
                .add("big", &change("big", &heavy))
                .expect("serialises")
        );
        let small = change("small", "https://example.com/");
        assert!(!batch.add("small", &small).expect("serialises"));
        let (body, codes) = batch.finish();
        assert_eq!(codes, ["big"]);
        assert_eq!(parse(&body).changes.len(), 1);
    }

    #[test]
    fn only_answers_that_cannot_change_are_refusals_for_good() {
        let cases = [
            (400, true),
            (413, true),
            (422, true),
            (401, false),
            (404, false),
            (408, false),
            (429, false),
            (500, false),
            (503, false),
        ];
        for (status, expected) in cases {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(refused_for_good(status), expected, "{status}");
        }
    }
}
