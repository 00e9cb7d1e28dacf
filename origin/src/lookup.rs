//! The redirect route's cache misses, looked up together: the codes that miss while a
//! look-up is under way wait for the next one, which reads them all in one query
//! (`links::store::find_records`). Under load this turns a query per visit into a query per
//! batch: sqlx's own cost per query (its connection is pinged on every return to the pool, a
//! round trip of its own) and PostgreSQL's are paid once for many codes. An idle origin
//! looks a code up at once, as before: nothing waits for company.
//!
//! At most [`RUNNERS`] look-ups run at once, each of at most [`MOST`] codes. A look-up runs
//! in a task of its own, so a visit that goes away (the client closed, the request timed out)
//! never cuts a query short; its answer is just not read.
//!
//! While the database is slow or gone, visits do not pile up without bound: at most
//! [`MOST_WAITING`] codes wait (a visit beyond is answered 503 at once), and none waits
//! longer than [`WAIT`] (then 503), as a visit waiting for a connection of its own would.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use shortlink::ShortCode;
use shortlink::redirect::LinkRecord;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::links;

/// Look-ups under way at once (each holds a database connection while it runs). Fewer
/// runners make bigger batches: under the origin bench's cache-off load (64 connections,
/// 10,000 links) 2 served 26,956 and 25,948 req/s where 4 served 22,897–23,752 (six runs);
/// 1 served 28,257, but then one slow query would hold up every miss.
const RUNNERS: usize = 2;
/// Most codes in one look-up.
const MOST: usize = 256;
/// Most codes waiting for a look-up at once.
const MOST_WAITING: usize = 4_096;
/// How long a visit waits for its code's look-up: a connection's wait (2 s) and a query.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long one look-up's query may take once it has a connection, far past a healthy one's
/// milliseconds. A server
/// that vanished without closing the connection (a fail-over, a host gone) never answers:
/// the runner would wait until TCP gives up (some 15 minutes), and every miss with it. Cut
/// off, the query counts as a lost connection (a replica rests, and the primary is read),
/// within the visit's [`WAIT`].
const QUERY: std::time::Duration = std::time::Duration::from_secs(2);

type Found = Result<Option<LinkRecord>, Error>;

/// The codes waiting for a look-up, and the look-ups under way.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    codes: Vec<(ShortCode, oneshot::Sender<Found>)>,
    runners: usize,
}

/// The live link of `code` on the default domain, read as `redirect::find_record` reads
/// it (the read replica when there is one, the primary for what it does not find).
pub(crate) async fn find(state: &crate::State, code: &ShortCode) -> Found {
    let lookups = &state.inner.redirects.lookups;
    let (answer, answered) = oneshot::channel();
    let start_runner = {
        let mut waiting = lookups.lock();
        if waiting.codes.len() >= MOST_WAITING {
            return Err(Error::Unavailable(sqlx::Error::PoolTimedOut));
        }
        waiting.codes.push((code.clone(), answer));
        let start = waiting.runners < RUNNERS;
        waiting.runners += usize::from(start);
        start
    };
    if start_runner {
        tokio::spawn(run(state.clone()));
    }
    match tokio::time::timeout(WAIT, answered).await {
        Ok(Ok(found)) => found,
        Ok(Err(_)) => Err(Error::Internal(anyhow::anyhow!(
            "the look-up of a code ended without an answer"
        ))),
        // Its place in the queue is dropped by the next look-up (a closed answer).
        Err(_) => Err(Error::Unavailable(sqlx::Error::PoolTimedOut)),
    }
}

impl Lookups {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts a runner out however it ends (a panic included), so that a later code starts
/// another.
struct Runner<'a> {
    lookups: &'a Lookups,
    counted_out: bool,
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        if !self.counted_out {
            let mut waiting = self.lookups.lock();
            waiting.runners = waiting.runners.saturating_sub(1);
        }
    }
}

/// Looks up what waits, a batch at a time, until nothing does.
async fn run(state: crate::State) {
    let lookups = &state.inner.redirects.lookups;
    let mut runner = Runner {
        lookups,
        counted_out: false,
    };
    loop {
        let batch: Vec<_> = {
            let mut waiting = lookups.lock();
            // Visits that went away need no answer.
            waiting.codes.retain(|(_, answer)| !answer.is_closed());
            if waiting.codes.is_empty() {
                // Counted out under the lock a code is pushed under: a code pushed after
                // this finds one runner fewer, and starts one when none is left.
                waiting.runners = waiting.runners.saturating_sub(1);
                runner.counted_out = true;
                return;
            }
            let take = waiting.codes.len().min(MOST);
            waiting.codes.drain(..take).collect()
        };
        answer(&state, batch).await;
    }
}

/// Reads the batch's codes and answers each waiter.
async fn answer(state: &crate::State, batch: Vec<(ShortCode, oneshot::Sender<Found>)>) {
    let mut codes: Vec<&str> = batch.iter().map(|(code, _)| code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    let reads = state.reads();
    let (found, from_replica) = reads.read_saying(|db| find_records(db, &codes)).await;
    let found = match found {
        Ok(found) if from_replica && found.len() < codes.len() => {
            // What the replica does not have may be too new for it: the primary says.
            let have: HashSet<&str> = found.iter().map(|(code, _)| code.as_str()).collect();
            let missing: Vec<&str> = codes
                .iter()
                .copied()
                .filter(|code| !have.contains(code))
                .collect();
            find_records(reads.primary(), &missing)
                .await
                .map(|more| found.into_iter().chain(more).collect())
        }
        other => other,
    };
    let found: HashMap<String, Result<LinkRecord, Error>> = match found {
        Ok(found) => found.into_iter().collect(),
        Err(err) => {
            let mut waiters = batch.into_iter();
            let first = waiters.next();
            for (_, answer) in waiters {
                answer.send(Err(copy(&err))).ok();
            }
            if let Some((_, answer)) = first {
                answer.send(Err(err)).ok();
            }
            return;
        }
    };
    for (code, answer) in batch {
        let this = match found.get(code.as_str()) {
            None => Ok(None),
            Some(Ok(record)) => Ok(Some(record.clone())),
            Some(Err(err)) => Err(copy(err)),
        };
        answer.send(this).ok();
    }
}

/// [`links::store::find_records`], the query within [`QUERY`] once it has a connection
/// (the pool bounds the wait for one).
async fn find_records(
    db: &sqlx::PgPool,
    codes: &[&str],
) -> Result<Vec<(String, Result<LinkRecord, Error>)>, Error> {
    let mut conn = db.acquire().await?;
    tokio::time::timeout(QUERY, links::store::find_records(&mut *conn, codes))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("a look-up got no answer within {QUERY:?}"),
            ))))
        })
}

/// An error of a look-up, for each of the visits that waited on it.
fn copy(err: &Error) -> Error {
    match err {
        Error::Unavailable(_) => Error::Unavailable(sqlx::Error::PoolTimedOut),
        other => Error::Internal(anyhow::anyhow!("looking up a link failed: {other}")),
    }
}
