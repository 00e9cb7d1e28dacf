//! Clicks on the origin's own redirect route: handed to a bounded channel without waiting,
//! and stored in batches by a background task. Under overload the channel fills up and
//! clicks are shed (and counted); a redirect never waits for analytics.
//!
//! A batch is retried for as long as PostgreSQL is unreachable. A batch it refuses (a value
//! or a constraint it rejects) is stored in halves until the refused events are found: those
//! are parked in `clicks_parked`, the others stored, so one bad event never blocks the ones
//! behind it. On shutdown the task takes no new clicks, stores those queued, and counts what
//! is still unstored at the deadline as shed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shortlink::edge::ClickEvent;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::db::Migrated;

/// Clicks waiting to be stored; beyond this they are shed.
const QUEUE: usize = 50_000;
/// Most clicks in one insert.
const BATCH: usize = 1_000;
/// How long the first click of a batch waits for company.
const LINGER: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// SQLSTATE classes that say nothing about the events: the connection (08), a lost race (40),
/// resources (53), locks and object state (55), the server shutting down (57), the server's
/// own I/O (58). A batch failing so is retried as it is; any other refusal is taken to be
/// about some event in it.
const OUTAGE_CLASSES: [&str; 6] = ["08", "40", "53", "55", "57", "58"];

#[derive(Debug)]
pub(crate) struct Recorder {
    sender: mpsc::Sender<ClickEvent>,
    /// Clicks that were not stored and never will be: the queue was full, the origin was
    /// shutting down, or the shutdown's deadline passed before they were stored.
    shed: AtomicU64,
    /// Clicks PostgreSQL refused, set aside in `clicks_parked`.
    parked: AtomicU64,
    /// The shutdown's deadline, once shutdown began: the storing task then stores what is
    /// queued and stops, giving up at the deadline.
    drain: watch::Sender<Option<Instant>>,
    /// Set by the storing task when it stops, for the shutdown waiting on it.
    stopped: watch::Sender<bool>,
}

impl Recorder {
    pub(crate) fn new() -> (Arc<Self>, mpsc::Receiver<ClickEvent>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (
            Arc::new(Self {
                sender,
                shed: AtomicU64::new(0),
                parked: AtomicU64::new(0),
                drain: watch::Sender::new(None),
                stopped: watch::Sender::new(false),
            }),
            receiver,
        )
    }

    /// Never waits: a full queue sheds the click, and so does a shutdown under way.
    pub(crate) fn record(&self, event: ClickEvent) {
        match self.sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let shed = self.add_shed(1);
                if shed.is_power_of_two() {
                    tracing::warn!(
                        shed,
                        "click queue full: clicks are being shed, redirects are not affected"
                    );
                }
            }
            // The shutdown logs the total.
            Err(TrySendError::Closed(_)) => {
                self.add_shed(1);
            }
        }
    }

    /// Clicks shed since start.
    pub(crate) fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Clicks parked since start.
    pub(crate) fn parked(&self) -> u64 {
        self.parked.load(Ordering::Relaxed)
    }

    /// Counts `clicks` more as shed; returns the new total.
    pub(crate) fn add_shed(&self, clicks: u64) -> u64 {
        self.shed.fetch_add(clicks, Ordering::Relaxed) + clicks
    }

    /// Stops taking clicks and waits for the storing task to store what is queued, for at
    /// most `within`; what it could not store by then is counted as shed.
    pub(crate) async fn drain(&self, within: Duration) {
        let deadline = Instant::now() + within;
        self.drain.send_replace(Some(deadline));
        let mut stopped = self.stopped.subscribe();
        // The task gives up by itself at the deadline; the margin is for its bookkeeping.
        let waited = tokio::time::timeout_at(
            deadline + Duration::from_secs(1),
            stopped.wait_for(|stopped| *stopped),
        )
        .await;
        if !matches!(waited, Ok(Ok(_))) {
            tracing::error!("the click recorder did not stop by the shutdown deadline");
        }
    }
}

/// Tells the shutdown that the storing task stopped, however it stopped.
struct StoppedOnDrop<'a>(&'a watch::Sender<bool>);

impl Drop for StoppedOnDrop<'_> {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Stores what the redirect route records, once the tables exist, until the shutdown's
/// drain is done (or the channel closes).
pub(crate) async fn store_until_drained(
    state: crate::State,
    mut receiver: mpsc::Receiver<ClickEvent>,
    migrated: Migrated,
) {
    let recorder = &state.inner.recorder;
    let _stopped = StoppedOnDrop(&recorder.stopped);
    let mut drain = Drain(recorder.drain.subscribe());
    tokio::select! {
        () = migrated.wait() => {}
        () = drain.started() => {
            shed_the_rest(recorder, &mut receiver, 0);
            return;
        }
    }
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if drain.is_started() {
            // From now on a click is shed at once; those queued are stored.
            receiver.close();
            if receiver.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
        } else {
            tokio::select! {
                biased;
                () = drain.started() => continue,
                received = receiver.recv_many(&mut batch, BATCH) => if received == 0 {
                    return;
                },
            }
            linger(&mut receiver, &mut batch, &mut drain).await;
        }
        if let Err(Unstored(unstored)) = store_isolating(&state, &batch, &mut drain).await {
            shed_the_rest(recorder, &mut receiver, unstored);
            return;
        }
        batch.clear();
    }
}

/// Waits up to [`LINGER`] for the batch to fill, less if shutdown begins.
async fn linger(
    receiver: &mut mpsc::Receiver<ClickEvent>,
    batch: &mut Vec<ClickEvent>,
    drain: &mut Drain,
) {
    let until = Instant::now() + LINGER;
    while batch.len() < BATCH {
        let room = BATCH - batch.len();
        tokio::select! {
            biased;
            () = drain.started() => return,
            () = tokio::time::sleep_until(until) => return,
            received = receiver.recv_many(batch, room) => if received == 0 {
                return;
            },
        }
    }
}

/// The shutdown's deadline passed: `unstored` clicks of the batch at hand and every click
/// still queued are counted as shed.
fn shed_the_rest(recorder: &Recorder, receiver: &mut mpsc::Receiver<ClickEvent>, unstored: usize) {
    receiver.close();
    let mut shed = unstored as u64;
    while receiver.try_recv().is_ok() {
        shed += 1;
    }
    if shed > 0 {
        recorder.add_shed(shed);
        tracing::error!(
            shed,
            "shutdown: clicks that could not be stored in time are counted as shed"
        );
    }
}

/// How many clicks of a batch were not stored when the shutdown's deadline passed.
struct Unstored(usize);

/// Stores `events`, retrying while the database is unreachable. When it refuses them, the
/// halves are stored apart, down to single events, which are parked.
async fn store_isolating(
    state: &crate::State,
    events: &[ClickEvent],
    drain: &mut Drain,
) -> Result<(), Unstored> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let stored = tokio::select! {
            stored = state.store_clicks(events) => stored,
            () = drain.expired() => return Err(Unstored(events.len())),
        };
        let Err(err) = stored else {
            return Ok(());
        };
        if is_outage(&err) {
            tracing::warn!(error = %err, clicks = events.len(), retry_in = ?backoff, "cannot store clicks");
            if drain.pause(backoff).await.is_err() {
                return Err(Unstored(events.len()));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        let [event] = events else {
            tracing::debug!(error = %err, clicks = events.len(), "clicks refused: storing them in halves");
            let (left, right) = events.split_at(events.len() / 2);
            if let Err(Unstored(unstored)) = Box::pin(store_isolating(state, left, drain)).await {
                return Err(Unstored(unstored + right.len()));
            }
            return Box::pin(store_isolating(state, right, drain)).await;
        };
        return park(state, event, &err, drain).await;
    }
}

/// Sets aside an event PostgreSQL refused, with the reason, where an operator sees it.
async fn park(
    state: &crate::State,
    event: &ClickEvent,
    refusal: &sqlx::Error,
    drain: &mut Drain,
) -> Result<(), Unstored> {
    let recorder = &state.inner.recorder;
    let json = match serde_json::to_string(event) {
        Ok(json) => json,
        Err(err) => {
            recorder.add_shed(1);
            tracing::error!(id = %event.id, code = %event.code, error = %refusal, json_error = %err, "the database refused a click, which cannot be parked: shed");
            return Ok(());
        }
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        let insert = sqlx::query("INSERT INTO clicks_parked (error, event) VALUES ($1, $2::json)")
            .bind(refusal.to_string())
            .bind(&json)
            .execute(state.db());
        let parked = tokio::select! {
            parked = insert => parked,
            () = drain.expired() => return Err(Unstored(1)),
        };
        match parked {
            Ok(_) => {
                recorder.parked.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %event.id, code = %event.code, error = %refusal, "the database refused a click: parked in clicks_parked");
                return Ok(());
            }
            Err(err) if is_outage(&err) => {
                if drain.pause(backoff).await.is_err() {
                    return Err(Unstored(1));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(err) => {
                recorder.add_shed(1);
                tracing::error!(id = %event.id, code = %event.code, error = %refusal, parking_error = %err, "the database refused a click and cannot park it: shed");
                return Ok(());
            }
        }
    }
}

/// Whether a failure says nothing about the events: see [`OUTAGE_CLASSES`].
fn is_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_outage_code(&code)),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

fn is_outage_code(sqlstate: &str) -> bool {
    OUTAGE_CLASSES
        .iter()
        .any(|class| sqlstate.starts_with(class))
}

/// The storing task's view of the shutdown.
struct Drain(watch::Receiver<Option<Instant>>);

/// The shutdown's deadline passed.
struct Expired;

impl Drain {
    fn is_started(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Completes once shutdown began.
    async fn started(&mut self) {
        if self.0.wait_for(Option::is_some).await.is_err() {
            // The recorder is gone, and with it any shutdown.
            std::future::pending::<()>().await;
        }
    }

    /// Completes once the shutdown's deadline passed.
    async fn expired(&mut self) {
        self.started().await;
        let deadline = *self.0.borrow();
        if let Some(deadline) = deadline {
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Waits `delay`, unless the shutdown's deadline passes first.
    async fn pause(&mut self, delay: Duration) -> Result<(), Expired> {
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            () = self.expired() => Err(Expired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_retried_and_refusals_isolated() {
        let cases: [(&str, bool); 8] = [
            ("08006", true),  // connection_failure
            ("40001", true),  // serialization_failure
            ("53300", true),  // too_many_connections
            ("57P01", true),  // admin_shutdown
            ("22021", false), // character_not_in_repertoire (a NUL byte)
            ("23514", false), // check_violation
            ("54000", false), // program_limit_exceeded (an index row too large)
            ("42P01", false), // undefined_table
        ];
        for (code, outage) in cases {
            assert_eq!(is_outage_code(code), outage, "{code}");
        }
        assert!(is_outage(&sqlx::Error::PoolTimedOut));
        assert!(!is_outage(&sqlx::Error::RowNotFound));
    }
}
