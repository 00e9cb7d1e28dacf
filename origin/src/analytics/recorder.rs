//! Clicks on the origin's own redirect route: handed to a bounded channel without waiting,
//! and stored in batches by a background task. Under overload the channel fills up and
//! clicks are shed (and counted); a redirect never waits for analytics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shortlink::edge::ClickEvent;
use tokio::sync::mpsc;

/// Clicks waiting to be stored; beyond this they are shed.
const QUEUE: usize = 50_000;
/// Most clicks in one insert.
const BATCH: usize = 1_000;
/// How long the first click of a batch waits for company.
const LINGER: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Recorder {
    sender: mpsc::Sender<ClickEvent>,
    shed: AtomicU64,
}

impl Recorder {
    pub(crate) fn new() -> (Arc<Self>, mpsc::Receiver<ClickEvent>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (
            Arc::new(Self {
                sender,
                shed: AtomicU64::new(0),
            }),
            receiver,
        )
    }

    /// Never waits: a full queue sheds the click.
    pub(crate) fn record(&self, event: ClickEvent) {
        if self.sender.try_send(event).is_err() {
            let shed = self.shed.fetch_add(1, Ordering::Relaxed) + 1;
            if shed.is_power_of_two() {
                tracing::warn!(
                    shed,
                    "click queue full: clicks are being shed, redirects are not affected"
                );
            }
        }
    }

    /// Clicks shed since start.
    pub(crate) fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

/// Stores what the redirect route records until the channel closes. A batch that cannot be
/// stored (database down) is retried with backoff; meanwhile the channel buffers, then sheds.
pub(crate) async fn store_forever(state: crate::State, mut receiver: mpsc::Receiver<ClickEvent>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if receiver.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        if batch.len() < BATCH {
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                let room = BATCH - batch.len();
                match tokio::time::timeout_at(deadline, receiver.recv_many(&mut batch, room)).await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match state.store_clicks(&batch).await {
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, clicks = batch.len(), retry_in = ?backoff, "cannot store clicks");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        batch.clear();
    }
}
