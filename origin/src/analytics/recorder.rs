//! Clicks on the origin's own redirect route: handed to a bounded channel without waiting,
//! and stored in batches by a background task. Under overload the channel fills up and
//! clicks are shed (and counted); a redirect never waits for analytics.
//!
//! A batch is retried for as long as the database fails it for a reason other than its
//! values. A batch it refuses (a value or a constraint it rejects) is stored in halves until
//! the refused events are found: those are parked in `clicks_parked`, the others stored, so
//! one bad event never blocks the ones behind it (`isolate.rs`). On shutdown the task takes
//! no new clicks, stores those queued, and counts what is still unstored at the deadline as
//! shed; a store still unanswered then is not cut off at once but given a moment to answer
//! (else its clicks are counted as in doubt), so no click is counted both stored and shed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shortlink::edge::ClickEvent;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::isolate::{IN_FLIGHT_GRACE, OnOutage, Unsettled, store_isolating};
use crate::db::Migrated;

/// Clicks waiting to be stored; beyond this they are shed.
const QUEUE: usize = 50_000;
/// Most clicks in one insert.
const BATCH: usize = 1_000;
/// How long the first click of a batch waits for company.
const LINGER: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct Recorder {
    sender: mpsc::Sender<ClickEvent>,
    /// Clicks that were not stored and never will be: the queue was full, the origin was
    /// shutting down, or the shutdown's deadline passed before they were stored.
    shed: AtomicU64,
    /// Clicks PostgreSQL refused, set aside in `clicks_parked`.
    parked: AtomicU64,
    /// Clicks whose store was under way and unanswered at the shutdown's deadline (plus
    /// [`IN_FLIGHT_GRACE`]): PostgreSQL may have committed them or not.
    in_doubt: AtomicU64,
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
                in_doubt: AtomicU64::new(0),
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

    /// Clicks in doubt since start: see [`Recorder::in_doubt`]'s field.
    pub(crate) fn in_doubt(&self) -> u64 {
        self.in_doubt.load(Ordering::Relaxed)
    }

    /// Counts `clicks` more as shed; returns the new total.
    pub(crate) fn add_shed(&self, clicks: u64) -> u64 {
        metrics::counter!("kurz_clicks_shed_total").increment(clicks);
        self.shed.fetch_add(clicks, Ordering::Relaxed) + clicks
    }

    /// Stops taking clicks and waits for the storing task to store what is queued, for at
    /// most `within`; what it could not store by then is counted as shed.
    pub(crate) async fn drain(&self, within: Duration) {
        let deadline = Instant::now() + within;
        self.drain.send_replace(Some(deadline));
        let mut stopped = self.stopped.subscribe();
        // The task gives up by itself at the deadline, or after the grace of a store under
        // way; the margin is for its bookkeeping.
        let waited = tokio::time::timeout_at(
            deadline + IN_FLIGHT_GRACE + Duration::from_secs(1),
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
        match store_isolating(&state, &batch, &mut OnOutage::RetryUntil(&mut drain)).await {
            Ok(isolated) => {
                recorder
                    .parked
                    .fetch_add(isolated.parked, Ordering::Relaxed);
                metrics::counter!("kurz_clicks_parked_total").increment(isolated.parked);
                recorder.add_shed(isolated.unparkable);
            }
            Err(Unsettled::Deadline { unstored, in_doubt }) => {
                recorder.in_doubt.fetch_add(in_doubt, Ordering::Relaxed);
                shed_the_rest(recorder, &mut receiver, unstored);
                return;
            }
            // Not given back while retrying until the deadline.
            Err(Unsettled::Outage(err)) => {
                tracing::error!(error = %err, clicks = batch.len(), "clicks not stored: shed");
                recorder.add_shed(batch.len() as u64);
            }
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
fn shed_the_rest(recorder: &Recorder, receiver: &mut mpsc::Receiver<ClickEvent>, unstored: u64) {
    receiver.close();
    let mut shed = unstored;
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

/// The storing task's view of the shutdown.
pub(crate) struct Drain(watch::Receiver<Option<Instant>>);

/// The shutdown's deadline passed.
pub(crate) struct Expired;

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

    /// Completes once the shutdown's deadline passed; returns the deadline.
    pub(crate) async fn expired(&mut self) -> Instant {
        self.started().await;
        let deadline = (*self.0.borrow()).unwrap_or_else(Instant::now);
        tokio::time::sleep_until(deadline).await;
        deadline
    }

    /// Whether the shutdown's deadline passed already.
    pub(crate) fn has_expired(&self) -> bool {
        self.0
            .borrow()
            .is_some_and(|deadline| deadline <= Instant::now())
    }

    /// Waits `delay`, unless the shutdown's deadline passes first.
    pub(crate) async fn pause(&mut self, delay: Duration) -> Result<(), Expired> {
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            _ = self.expired() => Err(Expired),
        }
    }
}
