//! Answers streamed page by page long after their handler returned (the exports of links and
//! of clicks): a task of their own reads and encodes the pages, one at a time, and hands them
//! to the answer a piece at a time, holding a place of a capped gate (see `Gate` in `lib.rs`)
//! until the answer took the last.
//!
//! A client that stops reading while its connection stays open must not hold a place for
//! ever (four such would shut the exports of every workspace): the task gives up when a piece
//! waits [`STALL`] for it. Nor may one that reads a trickle (a piece every 29 s is 2 KB/s: a
//! large export would hold its place for days): over the time its pieces wait for it, a
//! client must read [`MIN_RATE`] on average, after a first [`STALL`] of grace. What such a
//! client still holds is a piece, not a page of tens of MB. An answer ends cleanly only after the last page: an error (a failed page, a task that
//! gave up) cuts it short, so the client sees a broken download, not a complete-looking file
//! with rows missing.
//!
//! Nor may the slow clients of one workspace hold them all: one workspace holds at most half
//! of the places ([`crate::places::Places`]), so it never takes every one.

use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::places::Place;

/// How long a piece may wait for its client before the task gives up. Tests shorten it
/// (`State::set_export_stall`).
pub(crate) const STALL: Duration = Duration::from_secs(30);

/// Bytes handed to the answer at a time, each its own allocation.
const PIECE: usize = 64 * 1024;

/// The least rate, in bytes a second, a client must read an export at, counted over the time
/// pieces wait for it (not the time pages take to read): 256 kbit/s, so a 300 MB export holds
/// its place at most about 2.5 hours.
const MIN_RATE: u64 = 32 * 1024;

/// How long pieces may still wait for the client: a piece taken earns the time it takes to
/// read at [`MIN_RATE`], never more than a stall in all (so a client that read fast cannot
/// bank hours for a pause).
struct Slack {
    left: Duration,
    stall: Duration,
}

impl Slack {
    fn new(stall: Duration) -> Self {
        Self { left: stall, stall }
    }

    /// `bytes` were taken after waiting `waited`.
    fn took(&mut self, bytes: usize, waited: Duration) {
        let earned = Duration::from_secs_f64(bytes as f64 / MIN_RATE as f64);
        self.left = (self.left.saturating_sub(waited) + earned).min(self.stall);
    }
}

/// What the task hands to its answer.
#[derive(Debug)]
enum Piece {
    Bytes(Bytes),
    /// Every page was handed over.
    End,
    Failed(Error),
}

/// The body of an answer whose pages `page` reads, from `start` on: it returns a page's bytes
/// and the cursor of the next page, None after the last. `place` is held until the answer
/// took the last piece, the client went away, or it left a piece untaken for `stall` or read
/// under [`MIN_RATE`] (see [`Slack`]).
pub(crate) fn pages<C, F, Fut>(place: Place, stall: Duration, start: C, page: F) -> Body
where
    C: Send + 'static,
    F: Fn(C) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Vec<u8>, Option<C>), Error>> + Send + 'static,
{
    let (answer, mut pieces) = mpsc::channel(1);
    tokio::spawn(tracing::Instrument::in_current_span(send_pages(
        place, stall, start, page, answer,
    )));
    let mut complete = false;
    Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        loop {
            let piece = match std::task::ready!(pieces.poll_recv(cx)) {
                Some(Piece::Bytes(bytes)) => Ok(bytes),
                Some(Piece::End) => {
                    complete = true;
                    continue;
                }
                Some(Piece::Failed(err)) => Err(std::io::Error::other(err.to_string())),
                None if complete => return Poll::Ready(None),
                None => Err(std::io::Error::other(
                    "the export gave up: its client stopped reading",
                )),
            };
            return Poll::Ready(Some(piece));
        }
    }))
}

async fn send_pages<C, F, Fut>(
    place: Place,
    stall: Duration,
    start: C,
    page: F,
    answer: mpsc::Sender<Piece>,
) where
    F: Fn(C) -> Fut,
    Fut: Future<Output = Result<(Vec<u8>, Option<C>), Error>>,
{
    let mut cursor = start;
    let mut slack = Slack::new(stall);
    loop {
        let read = tokio::select! {
            read = page(cursor) => read,
            () = answer.closed() => return,
        };
        let (bytes, next) = match read {
            Ok(read) => read,
            Err(err) => {
                // No error answer (which logs a 5xx) can be sent any more: the log is here.
                tracing::error!(error = ?err, "export cut short");
                hand_over(&answer, Piece::Failed(err), stall).await;
                return;
            }
        };
        for piece in bytes.chunks(PIECE) {
            let handed = tokio::time::Instant::now();
            if !hand_over(
                &answer,
                Piece::Bytes(Bytes::copy_from_slice(piece)),
                slack.left,
            )
            .await
            {
                return;
            }
            slack.took(piece.len(), handed.elapsed());
        }
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    // The end holds no bytes: it waits a whole stall, so the last piece is taken in that.
    if hand_over(&answer, Piece::End, stall).await {
        // Before `answer` goes: an answer read to its end has freed its place.
        drop(place);
    }
}

/// Whether the answer took `piece` within `slack` (false: the client went away, or stopped
/// reading or read too slowly).
async fn hand_over(answer: &mpsc::Sender<Piece>, piece: Piece, slack: Duration) -> bool {
    match tokio::time::timeout(slack, answer.send(piece)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::info!(
                ?slack,
                "export given up: its client stopped reading, or read under {MIN_RATE} bytes/s"
            );
            false
        }
    }
}
