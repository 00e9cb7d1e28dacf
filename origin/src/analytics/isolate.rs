//! Storing a batch of clicks so that one event PostgreSQL refuses never holds up the others:
//! a refused batch is stored in halves until the refused events are found, and those are
//! parked in `clicks_parked`. Shared by the recorder of the origin's own clicks (which retries
//! an outage until the shutdown's deadline) and the edge's ingest (which hands an outage back
//! to the edge, whose queue retries the batch).
//!
//! Which failures blame an event is an allow-list (see [`REFUSAL_CLASSES`]): a failure this
//! module does not know, such as a failover's read-only standby (`25006`), is an outage and
//! retried, so no click is parked or shed for a fault of the database.

use std::time::Duration;

use shortlink::edge::ClickEvent;

use super::recorder::Drain;

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long a store or park already sent to PostgreSQL may still take once the shutdown's
/// deadline passed: cancelling it leaves unknown whether it committed, so it gets this long
/// to answer before its clicks are counted as in doubt.
pub(crate) const IN_FLIGHT_GRACE: Duration = Duration::from_secs(2);

/// SQLSTATE classes that blame the data sent: a value PostgreSQL rejects (22, data exception:
/// a NUL byte, a bad encoding), a constraint it breaks (23), a limit a value exceeds (54:
/// an index row too large; "statement too complex" is also in 54, and halving the batch
/// cures that too, so splitting is right for the whole class). Only these split a batch and
/// park an event. Every other failure (the connection, a read-only standby after a failover,
/// the server shutting down, locks, a missing table or privilege, an internal error) says
/// nothing about the events: parking them would set aside good clicks for a fault the
/// operator fixes, so they are retried instead.
const REFUSAL_CLASSES: [&str; 3] = ["22", "23", "54"];

/// What to do when the database cannot take a store now.
pub(crate) enum OnOutage<'a> {
    /// Give the error back at once: the caller retries the whole batch (the edge's queue),
    /// and storing is idempotent.
    GiveUp,
    /// Retry with backoff, giving up at the shutdown's deadline (the recorder).
    RetryUntil(&'a mut Drain),
}

/// What storing a batch came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Isolated {
    /// Events new to the database.
    pub(crate) inserted: u64,
    /// Events PostgreSQL refused alone, newly in `clicks_parked` (not one parked before).
    pub(crate) parked: u64,
    /// Events PostgreSQL refused alone that could not be parked either (logged).
    pub(crate) unparkable: u64,
}

/// Why a batch was not settled. Events stored or parked before it are kept, and counted in
/// the caller's [`Isolated`].
#[derive(Debug)]
pub(crate) enum Unsettled {
    /// The database could not take the store ([`OnOutage::GiveUp`]).
    Outage(sqlx::Error),
    /// The shutdown's deadline passed: `unstored` events were certainly not stored;
    /// `in_doubt` were being stored when it passed and got no answer within
    /// [`IN_FLIGHT_GRACE`], so they may have been.
    Deadline { unstored: u64, in_doubt: u64 },
}

impl Unsettled {
    /// The same, with `more` events behind it that were never tried.
    fn and_untried(self, more: usize) -> Self {
        match self {
            Self::Deadline { unstored, in_doubt } => Self::Deadline {
                unstored: unstored + more as u64,
                in_doubt,
            },
            outage @ Self::Outage(_) => outage,
        }
    }
}

/// Stores `events` (idempotently). When PostgreSQL refuses them, the halves are stored apart,
/// down to single events, which are parked. What it settles is added to `settled` as it goes,
/// so that what was stored or parked before an outage or the deadline is counted too (a
/// park is counted once: the edge's retry of the batch finds it parked already).
pub(crate) async fn store_isolating(
    state: &crate::State,
    events: &[ClickEvent],
    on_outage: &mut OnOutage<'_>,
    settled: &mut Isolated,
) -> Result<(), Unsettled> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let stored = settle(state.store_clicks(events), on_outage, events.len()).await?;
        let err = match stored {
            Ok(inserted) => {
                settled.inserted += inserted;
                return Ok(());
            }
            Err(err) => err,
        };
        if is_outage(&err) {
            wait_out(err, &mut backoff, on_outage, events.len()).await?;
            continue;
        }
        let [event] = events else {
            tracing::debug!(error = %err, clicks = events.len(), "clicks refused: storing them in halves");
            let (left, right) = events.split_at(events.len() / 2);
            Box::pin(store_isolating(state, left, on_outage, settled))
                .await
                .map_err(|unsettled| unsettled.and_untried(right.len()))?;
            return Box::pin(store_isolating(state, right, on_outage, settled)).await;
        };
        return park(state, event, &err, on_outage, settled).await;
    }
}

/// Sets aside an event PostgreSQL refused, with the reason, where an operator sees it.
///
/// An ingest that parked some events and then met an outage is retried whole by the edge, so
/// an event may be parked again: `clicks_parked` keeps it once (`0011_clicks_parked_once.sql`),
/// and only a new row counts as parked.
async fn park(
    state: &crate::State,
    event: &ClickEvent,
    refusal: &sqlx::Error,
    on_outage: &mut OnOutage<'_>,
    settled: &mut Isolated,
) -> Result<(), Unsettled> {
    let json = match serde_json::to_string(event) {
        Ok(json) => json,
        Err(err) => {
            tracing::error!(id = %event.id, code = %event.code, error = %refusal, json_error = %err, "the database refused a click, which cannot be parked");
            settled.unparkable += 1;
            return Ok(());
        }
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        let insert = sqlx::query(
            "INSERT INTO clicks_parked (error, event) VALUES ($1, $2::json)
             ON CONFLICT (md5(event::text)) DO NOTHING",
        )
        .bind(refusal.to_string())
        .bind(&json)
        .execute(state.db());
        match settle(insert, on_outage, 1).await? {
            Ok(done) => {
                tracing::warn!(id = %event.id, code = %event.code, error = %refusal, "the database refused a click: parked in clicks_parked");
                settled.parked += done.rows_affected();
                return Ok(());
            }
            Err(err) if is_outage(&err) => wait_out(err, &mut backoff, on_outage, 1).await?,
            Err(err) => {
                tracing::error!(id = %event.id, code = %event.code, error = %refusal, parking_error = %err, "the database refused a click and cannot park it");
                settled.unparkable += 1;
                return Ok(());
            }
        }
    }
}

/// Runs one statement for `events` clicks. Before the shutdown's deadline it runs to its end;
/// none is started after it; one under way when it passes gets [`IN_FLIGHT_GRACE`] more,
/// after which its clicks are in doubt (it may have committed).
async fn settle<T>(
    statement: impl Future<Output = Result<T, sqlx::Error>>,
    on_outage: &mut OnOutage<'_>,
    events: usize,
) -> Result<Result<T, sqlx::Error>, Unsettled> {
    let OnOutage::RetryUntil(drain) = on_outage else {
        return Ok(statement.await);
    };
    if drain.has_expired() {
        return Err(Unsettled::Deadline {
            unstored: events as u64,
            in_doubt: 0,
        });
    }
    let mut statement = std::pin::pin!(statement);
    tokio::select! {
        done = &mut statement => Ok(done),
        deadline = drain.expired() => {
            match tokio::time::timeout_at(deadline + IN_FLIGHT_GRACE, statement).await {
                Ok(done) => Ok(done),
                Err(_) => Err(Unsettled::Deadline { unstored: 0, in_doubt: events as u64 }),
            }
        }
    }
}

/// Waits before the next try after an outage, or gives up: at once for
/// [`OnOutage::GiveUp`], at the shutdown's deadline for the recorder.
async fn wait_out(
    err: sqlx::Error,
    backoff: &mut Duration,
    on_outage: &mut OnOutage<'_>,
    events: usize,
) -> Result<(), Unsettled> {
    let OnOutage::RetryUntil(drain) = on_outage else {
        return Err(Unsettled::Outage(err));
    };
    tracing::warn!(error = %err, clicks = events, retry_in = ?backoff, "cannot store clicks");
    if drain.pause(*backoff).await.is_err() {
        return Err(Unsettled::Deadline {
            unstored: events as u64,
            in_doubt: 0,
        });
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    Ok(())
}

/// Whether a failure says nothing about the events (see [`REFUSAL_CLASSES`]): everything but
/// a refusal of their values, including errors this code does not know.
pub(crate) fn is_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => !db.code().is_some_and(|code| is_refusal_code(&code)),
        // A value of an event that cannot even be sent.
        sqlx::Error::Encode(_) => false,
        _ => true,
    }
}

fn is_refusal_code(sqlstate: &str) -> bool {
    REFUSAL_CLASSES
        .iter()
        .any(|class| sqlstate.starts_with(class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_values_blame_the_events() {
        let cases: [(&str, bool); 16] = [
            ("08006", true),  // connection_failure
            ("08P01", true),  // protocol_violation
            ("25006", true),  // read_only_sql_transaction: a failover to a standby
            ("25P02", true),  // in_failed_sql_transaction
            ("40001", true),  // serialization_failure
            ("40P01", true),  // deadlock_detected
            ("42P01", true),  // undefined_table: the operator's to fix, not the events'
            ("42501", true),  // insufficient_privilege
            ("53300", true),  // too_many_connections
            ("55P03", true),  // lock_not_available
            ("57014", true),  // query_canceled (statement_timeout)
            ("57P01", true),  // admin_shutdown
            ("XX000", true),  // internal_error
            ("22021", false), // character_not_in_repertoire (a NUL byte)
            ("23514", false), // check_violation
            ("54000", false), // program_limit_exceeded (an index row too large)
        ];
        for (code, outage) in cases {
            assert_eq!(!is_refusal_code(code), outage, "{code}");
        }
        assert!(is_outage(&sqlx::Error::PoolTimedOut));
        assert!(is_outage(&sqlx::Error::PoolClosed));
        assert!(is_outage(&sqlx::Error::Io(std::io::Error::other("reset"))));
        assert!(is_outage(&sqlx::Error::Protocol("unexpected".to_owned())));
        assert!(!is_outage(&sqlx::Error::Encode("not encodable".into())));
    }
}
