//! Clicks on the origin's own redirect route: handed to a bounded channel without waiting,
//! and stored in batches by a background task; a redirect never waits for analytics. When
//! the channel is full (and once the shutdown closed it), a click is counted instead in a
//! bounded map of per-link, per-hour counters (`overflow.rs`), which the same task adds to
//! the rollups every second: click totals are exact at any load, and only the raw details of
//! such clicks are shed (counted as `clicks_details_shed` once written). A click is lost (and
//! counted as shed) only when that map is full of other links' buckets, or at the shutdown.
//!
//! A batch is retried for as long as the database fails it for a reason other than its
//! values. A batch it refuses (a value or a constraint it rejects) is stored in halves until
//! the refused events are found: those are parked in `clicks_parked`, the others stored, so
//! one bad event never blocks the ones behind it (`isolate.rs`). The overflow's counts are
//! written back into the map when a write fails, and tried again a second later. On shutdown
//! the task takes no new clicks into the channel, stores those queued, then writes the map a
//! last time (closing it), and counts what is still unstored and unwritten at the deadline as
//! shed; a store or write still unanswered then is not cut off at once but given a moment to
//! answer (else its clicks are counted as in doubt), so no click is counted both stored and
//! shed.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use shortlink::edge::ClickEvent;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::isolate::{IN_FLIGHT_GRACE, Isolated, OnOutage, Unsettled, store_isolating};
use super::overflow::{Click, Overflow, Taken, Unwritten};
use crate::db::Migrated;

/// How many (link, hour) buckets of overflowing clicks the map holds per click the queue
/// holds: a bucket costs some 50 bytes, a queued event some 500, so the map adds at most a
/// fifth to the queue's memory.
const BUCKETS_PER_QUEUED: usize = 2;
/// How often the overflowing clicks' counts are written into the rollups.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most clicks in one insert. One insert runs at a time, so under load its size sets how
/// many raw events are stored before the channel fills: under the origin bench's recording
/// load (10,000 links, 64 connections) 4,000 stored 257,236 and 273,146 raw events of ~500,000
/// where 1,000 stored 211,685 and 220,681 (two runs each, the rest counted without details).
const BATCH: usize = 4_000;
/// How long the first click of a batch waits for company.
const LINGER: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct Recorder {
    sender: mpsc::Sender<ClickEvent>,
    /// Clicks that found the channel full or closed: counted, to be written into the rollups.
    overflow: Overflow,
    /// Clicks that went to `overflow` since start, for the log's warnings.
    overflowed: AtomicU64,
    /// Clicks counted into the rollups without their raw event (from `overflow`).
    details_shed: AtomicU64,
    /// Clicks that were neither stored nor counted and never will be: the overflow's map was
    /// full of other buckets or closed, or the shutdown's deadline passed before they were
    /// stored or written.
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
    /// A recorder whose channel holds `queue` clicks (`KURZ_CLICK_QUEUE`).
    pub(crate) fn new(queue: usize) -> (Arc<Self>, mpsc::Receiver<ClickEvent>) {
        let queue = queue.max(1);
        let (sender, receiver) = mpsc::channel(queue);
        (
            Arc::new(Self {
                sender,
                overflow: Overflow::new(queue.saturating_mul(BUCKETS_PER_QUEUED)),
                overflowed: AtomicU64::new(0),
                details_shed: AtomicU64::new(0),
                shed: AtomicU64::new(0),
                parked: AtomicU64::new(0),
                in_doubt: AtomicU64::new(0),
                drain: watch::Sender::new(None),
                stopped: watch::Sender::new(false),
            }),
            receiver,
        )
    }

    /// Never waits: a click the channel cannot take (full, or closed by the shutdown) is
    /// counted in the overflow's map, or shed when that cannot take it either.
    pub(crate) fn record(&self, event: ClickEvent) {
        match self.sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event) | TrySendError::Closed(event)) => {
                self.overflowed(&Click::of(&event));
            }
        }
    }

    /// [`Self::record`] for a click whose raw event costs something to make (its visitor
    /// key's HMAC, its id, copies of the headers): `make` is called only when the channel has
    /// room for the event. A click it cannot take is counted from `click` alone: under a load
    /// that fills the channel, most clicks are, and they need none of that.
    pub(crate) fn record_made(&self, click: &Click<'_>, make: impl FnOnce() -> ClickEvent) {
        match self.sender.try_reserve() {
            Ok(room) => room.send(make()),
            Err(_) => self.overflowed(click),
        }
    }

    /// Counts a click the channel could not take in the overflow's map, or as shed.
    fn overflowed(&self, click: &Click<'_>) {
        if self.overflow.add(click) {
            let overflowed = self.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
            if overflowed.is_power_of_two() {
                tracing::warn!(
                    overflowed,
                    "click queue full: clicks are counted without their details, redirects \
                     are not affected"
                );
            }
        } else {
            // The shutdown logs the total once it closed the map.
            let shed = self.add_shed(1);
            if shed.is_power_of_two() && !self.sender.is_closed() {
                tracing::warn!(
                    shed,
                    buckets = self.overflow.buckets(),
                    "click queue and overflow map full: clicks are being lost"
                );
            }
        }
    }

    /// Clicks counted into the rollups without their raw event, since start.
    pub(crate) fn details_shed(&self) -> u64 {
        self.details_shed.load(Ordering::Relaxed)
    }

    /// Clicks counted in the overflow's map, not yet written into the rollups.
    pub(crate) fn overflow_waiting(&self) -> u64 {
        self.overflow.waiting()
    }

    /// (Link, hour) buckets in the overflow's map.
    pub(crate) fn overflow_buckets(&self) -> usize {
        self.overflow.buckets()
    }

    /// Counts what the overflow's map holds as shed and closes it: no task will write it.
    pub(crate) fn shed_overflow(&self) {
        let lost = self.overflow.close();
        self.overflow.settled(&lost);
        if lost.clicks > 0 {
            self.add_shed(lost.clicks);
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

    /// `taken` is written into the rollups.
    fn add_details_shed(&self, taken: &Taken) {
        metrics::counter!("kurz_clicks_details_shed_total").increment(taken.clicks);
        // Counted before the map lets go of them, so a reader never misses them in both.
        self.details_shed.fetch_add(taken.clicks, Ordering::Relaxed);
        self.overflow.settled(taken);
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

/// Stores what the redirect route records, once the tables exist, and writes the overflow's
/// counts every second, until the shutdown's drain is done (or the channel closes).
pub(crate) async fn store_until_drained(
    state: crate::State,
    mut receiver: mpsc::Receiver<ClickEvent>,
    migrated: Migrated,
) {
    let recorder = &state.inner.clicks.recorder;
    let _stopped = StoppedOnDrop(&recorder.stopped);
    let mut drain = Drain(recorder.drain.subscribe());
    tokio::select! {
        () = migrated.wait() => {}
        () = drain.started() => {
            shed_the_rest(recorder, &mut receiver, 0);
            recorder.shed_overflow();
            return;
        }
    }
    // One write of the overflow's counts at a time: the last one, at shutdown, waits for a
    // periodic one under way, so that none is cut off (and its counts lost) when this ends.
    let flushing = tokio::sync::Mutex::new(());
    tokio::select! {
        () = async {
            store_queued(&state, &mut receiver, &mut drain).await;
            // A periodic write still unanswered past the deadline's grace is given up on
            // (dropped with this task), like a store.
            let turn = tokio::select! {
                turn = flushing.lock() => Some(turn),
                () = drain.expired_with_grace() => None,
            };
            match turn {
                Some(_turn) => flush_at_shutdown(&state, &mut drain).await,
                None => give_up_overflow(recorder),
            }
        } => {}
        never = flush_every_second(&state, &flushing) => match never {},
    }
}

/// Stores batches of queued clicks until the channel is closed and empty, or the shutdown's
/// deadline passed.
async fn store_queued(
    state: &crate::State,
    receiver: &mut mpsc::Receiver<ClickEvent>,
    drain: &mut Drain,
) {
    let recorder = &state.inner.clicks.recorder;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if drain.is_started() {
            // From now on a click goes to the overflow's map at once; those queued are
            // stored.
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
            linger(receiver, &mut batch, drain).await;
        }
        let mut isolated = Isolated::default();
        let stored = store_isolating(
            state,
            &batch,
            &mut OnOutage::RetryUntil(drain),
            &mut isolated,
        )
        .await;
        // What was settled before a deadline counts as much as a batch's whole.
        recorder
            .parked
            .fetch_add(isolated.parked, Ordering::Relaxed);
        metrics::counter!("kurz_clicks_parked_total").increment(isolated.parked);
        recorder.add_shed(isolated.unparkable);
        match stored {
            Ok(()) => {}
            Err(Unsettled::Deadline { unstored, in_doubt }) => {
                recorder.in_doubt.fetch_add(in_doubt, Ordering::Relaxed);
                shed_the_rest(recorder, receiver, unstored);
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

/// Writes the overflow's counts into the rollups every [`FLUSH_EVERY`]; what a write fails
/// goes back into the map for the next one.
async fn flush_every_second(state: &crate::State, flushing: &tokio::sync::Mutex<()>) -> Infallible {
    let recorder = &state.inner.clicks.recorder;
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let _turn = flushing.lock().await;
        let taken = recorder.overflow.take();
        if taken.is_empty() {
            continue;
        }
        let committing = AtomicBool::new(false);
        match super::overflow::write(state.db(), &taken, &committing).await {
            Ok(()) => recorder.add_details_shed(&taken),
            Err(Unwritten::NotWritten(err)) => {
                tracing::warn!(
                    error = %err,
                    clicks = taken.clicks,
                    "cannot count overflowing clicks into the rollups: retrying"
                );
                recorder.overflow.merge_back(taken);
            }
            Err(Unwritten::InDoubt(err)) => in_doubt(recorder, &taken, &err),
        }
    }
}

/// The shutdown's last write of the overflow's counts (the map takes nothing after it),
/// retried until the deadline; one under way then gets [`IN_FLIGHT_GRACE`] more.
async fn flush_at_shutdown(state: &crate::State, drain: &mut Drain) {
    let recorder = &state.inner.clicks.recorder;
    let taken = recorder.overflow.close();
    if taken.is_empty() {
        return;
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        let committing = AtomicBool::new(false);
        let outcome = if drain.has_expired() {
            None
        } else {
            let mut write = std::pin::pin!(super::overflow::write(state.db(), &taken, &committing));
            tokio::select! {
                done = &mut write => Some(done),
                deadline = drain.expired() => {
                    tokio::time::timeout_at(deadline + IN_FLIGHT_GRACE, write).await.ok()
                }
            }
        };
        match outcome {
            Some(Ok(())) => {
                recorder.add_details_shed(&taken);
                return;
            }
            Some(Err(Unwritten::InDoubt(err))) => {
                in_doubt(recorder, &taken, &err);
                return;
            }
            Some(Err(Unwritten::NotWritten(err))) => {
                tracing::warn!(error = %err, clicks = taken.clicks, retry_in = ?backoff,
                               "shutdown: cannot count overflowing clicks into the rollups");
                if drain.pause(backoff).await.is_err() {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            // Cut off at the deadline (or its grace).
            None if committing.load(Ordering::Relaxed) => {
                recorder.overflow.settled(&taken);
                recorder.in_doubt.fetch_add(taken.clicks, Ordering::Relaxed);
                tracing::error!(
                    clicks = taken.clicks,
                    "shutdown: overflowing clicks' counts unanswered at the deadline: in doubt"
                );
                return;
            }
            None => break,
        }
    }
    recorder.overflow.settled(&taken);
    recorder.add_shed(taken.clicks);
    tracing::error!(
        shed = taken.clicks,
        "shutdown: overflowing clicks that could not be counted in time are counted as shed"
    );
}

/// The shutdown's deadline and grace passed with a periodic write of the overflow's counts
/// unanswered: those are in doubt, and what the map holds is lost.
fn give_up_overflow(recorder: &Recorder) {
    let in_doubt = recorder.overflow.abandon_writing();
    recorder.in_doubt.fetch_add(in_doubt, Ordering::Relaxed);
    let lost = recorder.overflow.close();
    recorder.overflow.settled(&lost);
    recorder.add_shed(lost.clicks);
    tracing::error!(
        in_doubt,
        shed = lost.clicks,
        "shutdown: a write of overflowing clicks' counts was unanswered at the deadline"
    );
}

fn in_doubt(recorder: &Recorder, taken: &Taken, err: &sqlx::Error) {
    recorder.overflow.settled(taken);
    recorder.in_doubt.fetch_add(taken.clicks, Ordering::Relaxed);
    tracing::error!(
        error = %err,
        clicks = taken.clicks,
        "overflowing clicks' counts: the commit got no answer, they are counted in doubt"
    );
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

    /// Completes once the shutdown's deadline and [`IN_FLIGHT_GRACE`] after it passed.
    async fn expired_with_grace(&mut self) {
        let deadline = self.expired().await;
        tokio::time::sleep_until(deadline + IN_FLIGHT_GRACE).await;
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
