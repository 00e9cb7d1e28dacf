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
//! fault is alone. That code is set aside; once the edge has taken another batch it is sent
//! alone again, and refused again (so the refusal is about that code, not every change) its
//! rows move to `edge_outbox_dead` (logged): the changes behind it, takedowns included, still
//! arrive. When the edge refuses everything
//! (say, a worker older than this origin), nothing is parked: the rows stay, an error is
//! logged, and delivery backs off. The codes refused alone stay set aside through the backoff
//! (bounded), so the batch after it leaves them out: a run of refused codes at the head of the
//! outbox never holds up the changes behind it.

mod batch;
mod pace;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use shortlink::ShortCode;
use shortlink::edge::{SYNC_PATH, SyncChange};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;

use self::batch::Batch;
use self::pace::{Next, Outcome, Pace, Suspect};
use crate::edge_client;
use crate::links::store::{self, CodeState};

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
/// Records that `code` changed; called in the transaction that changed it.
pub(crate) async fn record_change(tx: &mut PgConnection, code: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO edge_outbox (code) VALUES ($1)")
        .bind(code)
        .execute(tx)
        .await
        .map(drop)
}

/// Records that each of `codes` changed (a bulk create), in one statement; called in the
/// transaction that changed them.
pub(crate) async fn record_changes(
    tx: &mut PgConnection,
    codes: &[&str],
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO edge_outbox (code) SELECT * FROM UNNEST($1::text[])")
        .bind(codes)
        .execute(tx)
        .await
        .map(drop)
}

pub(crate) async fn deliver_forever(state: crate::State, edge: Arc<EdgeSync>) {
    let client = match edge_client::client(Duration::from_secs(10)) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the HTTP client for edge sync");
            return;
        }
    };
    let mut pace = Pace::default();
    loop {
        let set_aside = pace.set_aside();
        let only = pace.recheck.first().map(|suspect| suspect.code.as_str());
        let outcome = attempt(deliver_batch(
            &state,
            &edge,
            &client,
            pace.max_codes,
            &set_aside,
            only,
        ))
        .await
        .and_then(|outcome| outcome);
        let (next, to_park) = pace.settle(outcome);
        if let Err(err) = attempt(park_suspects(state.db(), &to_park))
            .await
            .and_then(|parked| parked.map_err(anyhow::Error::from))
        {
            tracing::warn!(error = %err, "cannot park refused codes: they are sent again");
        }
        match next {
            Next::Now => {}
            Next::Poll => {
                let _ = tokio::time::timeout(POLL, edge.wake.notified()).await;
            }
            Next::After(wait) => tokio::time::sleep(wait).await,
        }
    }
}

/// The longest one attempt (a batch, or parking its refused codes) may take. Its requests to
/// PostgreSQL have no deadline of their own: a primary that vanished without closing its
/// connections (a failover to another address) held the sync, on every origin, until TCP gave
/// up (about 15 minutes), while the API on the new primary took changes. An attempt given up
/// drops its transaction; the batch is sent again, which versions make harmless.
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(30);

/// What `work` gives within [`ATTEMPT_DEADLINE`], or an error: past it, or if it panicked (a
/// value the origin cannot read), so that the task lives on and tries again, logged.
async fn attempt<T>(work: impl Future<Output = T>) -> anyhow::Result<T> {
    use futures_util::FutureExt as _;
    match tokio::time::timeout(
        ATTEMPT_DEADLINE,
        std::panic::AssertUnwindSafe(work).catch_unwind(),
    )
    .await
    {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(_)) => Err(anyhow::anyhow!("the edge sync's attempt panicked")),
        Err(_) => Err(anyhow::anyhow!(
            "the edge sync's attempt took longer than {} s",
            ATTEMPT_DEADLINE.as_secs()
        )),
    }
}

/// Sends the changes of up to `max_codes` codes in one request, leaving out `set_aside`; of
/// only the code `only` when given.
async fn deliver_batch(
    state: &crate::State,
    edge: &EdgeSync,
    client: &reqwest::Client,
    max_codes: usize,
    set_aside: &[String],
    only: Option<&str>,
) -> anyhow::Result<Outcome> {
    let mut tx: Transaction<'_, Postgres> = state.db().begin().await?;
    // The transaction waits idle while the batch is posted to the edge (at most the client's
    // timeout). If this origin's host dies meanwhile, PostgreSQL would hold the lock, and every
    // origin's sync with it, until TCP keepalive noticed (hours on Linux's defaults): past
    // this idle time it ends the session instead.
    sqlx::query("SET LOCAL idle_in_transaction_session_timeout = '30s'")
        .execute(&mut *tx)
        .await?;
    // Once the lock is held, the transaction is ended explicitly on every path but a database
    // error. A dropped one is rolled back by a task sqlx spawns when the connection returns to
    // the pool; the next attempt, which follows at once, races it and often finds the lock
    // still held (and then waits a poll).
    let deliverer: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
        .bind(DELIVERER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !deliverer {
        tx.rollback().await?;
        return Ok(Outcome::Busy);
    }
    let claimed = Claimed::take(&mut tx, max_codes, set_aside, only).await?;
    if claimed.codes.is_empty() {
        tx.rollback().await?;
        return Ok(Outcome::Idle);
    }
    let (changes, stale) = current_changes(&mut tx, &claimed.codes).await?;
    if !stale.is_empty() {
        // Not in this transaction: the UPDATE's row lock would be held across the request to
        // the edge, and every edit of the link would wait for it.
        tx.rollback().await?;
        for stale in stale {
            reversion(state.db(), stale).await?;
        }
        return Ok(Outcome::Reversioned);
    }
    let mut parked = false;
    let mut withdrawn = Vec::new();
    let mut batch = Batch::new(MAX_BATCH_BYTES - edge_client::NONCE_OVERHEAD);
    for (code, change) in changes {
        match change {
            Change::Send(change) => match batch.add(&code, &change) {
                Ok(true) => {}
                Ok(false) => break,
                // A record JSON cannot hold (a date before year 0, written around the API):
                // withdrawn as a row that cannot make one is, rather than failing every
                // attempt and holding up every change behind it.
                Err(err) => {
                    let tombstone = SyncChange {
                        record: None,
                        ..*change
                    };
                    if !batch.add(&code, &tombstone)? {
                        break;
                    }
                    withdrawn.push((code, format!("its record cannot be written: {err}")));
                }
            },
            Change::Withdraw(change, err) => {
                if !batch.add(&code, &change)? {
                    break;
                }
                withdrawn.push((code, err));
            }
            Change::Unusable(err) => {
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
    let response = match edge_client::post(client, &edge.url, &edge.secret, SYNC_PATH, &body).await
    {
        Ok(response) => response,
        Err(err) => {
            tx.rollback().await?;
            let timed_out = err.chain().any(|cause| {
                cause
                    .downcast_ref::<reqwest::Error>()
                    .is_some_and(reqwest::Error::is_timeout)
            });
            if timed_out {
                tracing::warn!(
                    error = format!("{err:#}"),
                    codes = sent.len(),
                    "the edge did not take a batch in time: fewer are sent next"
                );
                return Ok(Outcome::TimedOut { codes: sent.len() });
            }
            return Err(err);
        }
    };
    let status = response.status();
    if status.is_success() {
        let ids: Vec<i64> = sent.iter().flat_map(|code| claimed.ids_of(code)).collect();
        sqlx::query("DELETE FROM edge_outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        for (code, error) in &withdrawn {
            tracing::error!(
                code,
                error,
                "a link withdrawn from the edge: noted in edge_outbox_dead"
            );
            note_dead(&mut tx, code, error).await?;
        }
        tx.commit().await?;
        return Ok(Outcome::Delivered(ids.len()));
    }
    let refusal = match edge_client::redirected(&response) {
        Some(redirected) => redirected,
        None => {
            let text = response.text().await.unwrap_or_default();
            format!("edge answered {status}: {text:.300}")
        }
    };
    // Codes parked above are parked again next time if this one is rolled back.
    if parked {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    if !refused_for_good(status) {
        // Unreachable, overloaded, or a secret or clock that an operator has to fix: the same
        // batch again later.
        anyhow::bail!(refusal);
    }
    if let [code] = sent.as_slice() {
        return Ok(Outcome::RefusedAlone(Suspect {
            ids: claimed.ids_of(code),
            code: code.clone(),
            refusal,
        }));
    }
    tracing::warn!(codes = sent.len(), %refusal, "edge sync batch refused: sending it in halves");
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
    async fn take(
        tx: &mut PgConnection,
        max_codes: usize,
        set_aside: &[String],
        only: Option<&str>,
    ) -> Result<Self, sqlx::Error> {
        // SKIP LOCKED only matters while origins from before the lock run beside this one.
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, code FROM edge_outbox
             WHERE code <> ALL($2) AND ($3::text IS NULL OR code = $3)
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(MAX_CODES as i64)
        .bind(set_aside)
        .bind(only)
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

/// Answers to a sync request that sending the same changes again cannot change: the body
/// is too large or not understood (say, by a worker older than this origin).
fn refused_for_good(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY
    )
}

/// What to do about one code.
#[derive(Debug)]
enum Change {
    /// Boxed: a record with rules is large, and most changes are sent.
    Send(Box<SyncChange>),
    /// The stored row cannot make a record (written around the API): no retry can fix it.
    Unusable(String),
    /// A live link whose row cannot make a record: a tombstone at its version is sent, and
    /// once delivered the fault is noted in `edge_outbox_dead`.
    Withdraw(Box<SyncChange>, String),
}

/// A live link (row `id`, at `version`) older than a deleted link of its code: see
/// [`reversion`].
#[derive(Debug, Clone, Copy)]
struct Stale {
    id: i64,
    version: i64,
}

/// The change to send for each code, in the order given, unless some live links are
/// [`Stale`]: then those, and nothing is to be sent before they have new versions.
async fn current_changes(
    tx: &mut PgConnection,
    codes: &[String],
) -> anyhow::Result<(Vec<(String, Change)>, Vec<Stale>)> {
    let states = store::code_states(tx, codes).await?;
    let mut states: HashMap<String, CodeState> = states
        .into_iter()
        .map(|state| (state.code.clone(), state))
        .collect();
    let mut changes = Vec::with_capacity(codes.len());
    let mut stale = Vec::new();
    for code in codes {
        let change = match states.remove(code) {
            Some(state) => match change_of(state)? {
                Ok(change) => change,
                Err(link) => {
                    stale.push(link);
                    continue;
                }
            },
            // No row at all (the outbox row was written by hand): nothing to redirect to.
            None => match ShortCode::parse(code) {
                Ok(code) => Change::Send(Box::new(SyncChange {
                    code,
                    version: 0,
                    record: None,
                })),
                Err(err) => Change::Unusable(err.to_string()),
            },
        };
        changes.push((code.clone(), change));
    }
    Ok((changes, stale))
}

fn change_of(state: CodeState) -> anyhow::Result<Result<Change, Stale>> {
    let code = match ShortCode::parse(&state.code) {
        Ok(code) => code,
        Err(err) => {
            return Ok(Ok(Change::Unusable(format!(
                "invalid code stored in links: {err}"
            ))));
        }
    };
    if !state.live {
        return Ok(Ok(Change::Send(Box::new(SyncChange {
            code,
            version: u64::try_from(state.newest)?,
            record: None,
        }))));
    }
    if state.row.version < state.newest {
        return Ok(Err(Stale {
            id: state.row.id,
            version: state.row.version,
        }));
    }
    let version = u64::try_from(state.row.version)?;
    Ok(Ok(match state.row.into_record() {
        Ok(record) => Change::Send(Box::new(SyncChange {
            code,
            version: record.version,
            record: Some(record),
        })),
        // The edge must not go on serving an older state (a takedown may be what this change
        // is): it gets what the origin's own redirect gives, no redirect.
        Err(err) => Change::Withdraw(
            Box::new(SyncChange {
                code,
                version,
                record: None,
            }),
            format!(
                "the stored row cannot make a record, so the code was withdrawn from the edge (a tombstone at version {version}): {:#}",
                anyhow::Error::new(err)
            ),
        ),
    }))
}

/// Gives a live link that is older than a deleted link of its code a new version (the
/// trigger's), in a statement of its own.
///
/// Its insert took its version before a concurrent delete of the code's previous link took
/// its own, then waited for that delete to commit: sent as it is, it would lose to that
/// delete's tombstone. Only the state that was read is re-versioned: if an edit or a delete of
/// the link committed since, it has a newer version already (and an outbox row of its own),
/// and bumping it here would not change what the next read sends. Either way the code is read
/// again before anything is sent, so no old state ever goes out under a new version.
async fn reversion(db: &PgPool, Stale { id, version }: Stale) -> Result<(), sqlx::Error> {
    store::reversion(db, id, version).await
}

/// Moves a code's outbox rows aside, so that they no longer hold up the rows behind them.
/// Rows already gone (delivered by another origin meanwhile) are not parked.
async fn park(
    tx: &mut PgConnection,
    code: &str,
    ids: &[i64],
    error: &str,
) -> Result<(), sqlx::Error> {
    let moved: Vec<i64> =
        sqlx::query_scalar("DELETE FROM edge_outbox WHERE id = ANY($1) RETURNING id")
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
    if moved.is_empty() {
        return Ok(());
    }
    tracing::error!(
        code,
        error,
        "the edge cannot take this code's change: parked in edge_outbox_dead, later changes go on"
    );
    note_dead(tx, code, error).await
}

async fn note_dead(tx: &mut PgConnection, code: &str, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO edge_outbox_dead (code, error) VALUES ($1, $2)")
        .bind(code)
        .bind(error)
        .execute(&mut *tx)
        .await
        .map(drop)
}

/// Parks the codes the edge refused alone, now that it took another batch.
async fn park_suspects(db: &PgPool, suspects: &[Suspect]) -> Result<(), sqlx::Error> {
    if suspects.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for suspect in suspects {
        park(&mut tx, &suspect.code, &suspect.ids, &suspect.refusal).await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attempt that hangs (a primary gone without closing its connections) or panics (a
    /// value the origin cannot read) is an error to retry, not a sync task stopped for good.
    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_or_panics_is_an_error() {
        assert_eq!(attempt(async { 7 }).await.expect("done"), 7);
        let hung = attempt(std::future::pending::<()>())
            .await
            .expect_err("past the deadline");
        assert!(hung.to_string().contains("longer than 30 s"), "{hung}");
        let panicked = attempt(async {
            if ATTEMPT_DEADLINE > Duration::ZERO {
                panic!("a value the origin cannot read");
            }
        })
        .await
        .expect_err("panicked");
        assert!(panicked.to_string().contains("panicked"), "{panicked}");
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
