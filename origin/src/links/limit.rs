//! The click limit, exact at the origin: every counted click of a limited link adds one to
//! `link_click_counts` in PostgreSQL (`0019_link_rules.sql`), whichever origin served it, and
//! the click that reaches the limit marks the link used up (`links.exhausted_at`) in the same
//! transaction, which is a link change like any other: a new version, an invalidation of
//! every cache, and (with an edge) an outbox row, so the edge learns it by the sync.
//!
//! A click "counts" when `decide` redirects to the link's own destinations, the method is GET
//! and the visitor is not a bot (`shortlink::agent::classify`). The origin's own redirects
//! take their click before they answer ([`take_click`]); the edge lets its clicks through and
//! they are added when its events are stored ([`add_edge_clicks`]), so the edge can overshoot
//! a little, the origin never.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgConnection;

use crate::config::PublicUrl;
use crate::error::Error;

use crate::outbox;

/// How many locks the clicks of limited links are spread over (by link id), per process: a
/// stripe takes one click at a time, so a hot link's queue holds up the few others of its
/// stripe (one in 1,024; with 64, a viral coupon link's visitors held up those of unrelated
/// workspaces' links).
pub(crate) const STRIPES: usize = 1_024;
/// How long a click's commit may take once sent. Its visit is awaited past the request's
/// deadline (see [`take_click`]), so without this a commit whose answer never comes (a
/// failover, a host gone without closing the socket) held the stripe for TCP's ~15 minutes.
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What taking a limited link's click came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Taken: the visit is redirected.
    Taken,
    /// None left (another visit took the last one): the visit is answered as used up.
    UsedUp,
    /// The link was disabled or deleted since the visit read it (while it waited for its
    /// turn): nothing taken, the visit is asked to come again.
    Changed,
}

/// Takes one of a limited link's clicks for a visit about to be redirected. `committing` is set
/// as the click's commit is sent: from then on the visit is answered whatever its deadline
/// (`redirect::within_deadline`), so a click taken is a visitor sent on; the commit itself has
/// [`COMMIT_WAIT`] (past it the visit gets 503, and the click may or may not be used).
pub(crate) async fn take_click(
    state: &crate::State,
    link_id: i64,
    committing: &AtomicBool,
) -> Result<Take, Error> {
    // One click of a stripe's links at a time in this process: visits of one hot link wait
    // here, not each with a database connection on the link's row.
    let stripes = &state.inner.redirects.click_stripes;
    let stripe = usize::try_from(link_id.rem_euclid(STRIPES as i64)).unwrap_or(0);
    let _turn = match stripes.get(stripe) {
        Some(lock) => Some(lock.lock().await),
        None => None,
    };
    // Never closed: an error would only mean no permit was needed.
    let _taker = state.inner.redirects.click_takers.acquire().await.ok();
    let mut tx = state.db().begin().await?;
    // The row lock serialises the clicks of one link: no two can take the last one. The limit
    // is the database's, not the cached record's: an edit that changed it moments ago (its
    // invalidation still on the way) is already obeyed, and so is a link switched off or
    // deleted while the visit waited its turn.
    let row: Option<(i64, i64)> = sqlx::query_as(
        "INSERT INTO link_click_counts (workspace_id, link_id, used)
         SELECT workspace_id, id, 1 FROM links
         WHERE id = $1 AND max_clicks >= 1 AND deleted_at IS NULL AND NOT disabled
         ON CONFLICT (workspace_id, link_id) DO UPDATE SET used = link_click_counts.used + 1
         WHERE link_click_counts.used < (SELECT max_clicks FROM links
                                         WHERE id = $1 AND deleted_at IS NULL AND NOT disabled)
         RETURNING used, (SELECT max_clicks FROM links WHERE id = $1)",
    )
    .bind(link_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((used, max)) = row else {
        let link: Option<(Option<i64>, bool)> = sqlx::query_as(
            "SELECT max_clicks, deleted_at IS NULL AND NOT disabled FROM links WHERE id = $1",
        )
        .bind(link_id)
        .fetch_optional(&mut *tx)
        .await?;
        let limited = match link {
            Some((max_clicks, true)) => max_clicks.is_some(),
            // Switched off or deleted since the visit read it: its next visit reads that.
            _ => return Ok(Take::Changed),
        };
        if !limited {
            // An edit removed the limit since the record was read: nothing to take, the
            // visit goes on as the record says.
            return Ok(Take::Taken);
        }
        // None left. The link is normally marked used up already; not when an edit lowered
        // its limit to the count while a click was being taken (the edit reads the count
        // without locking it): mark it now, so the edge learns it too.
        let exhausted = exhaust(
            &mut tx,
            &[link_id],
            state.inner.edge.sync.is_some(),
            &state.inner.public_url,
        )
        .await?;
        tx.commit().await?;
        announce(state, &exhausted).await;
        return Ok(Take::UsedUp);
    };
    let exhausted = if used >= max {
        exhaust(
            &mut tx,
            &[link_id],
            state.inner.edge.sync.is_some(),
            &state.inner.public_url,
        )
        .await?
    } else {
        Vec::new()
    };
    committing.store(true, Ordering::Release);
    tokio::time::timeout(COMMIT_WAIT, tx.commit())
        .await
        .map_err(|_| {
            Error::Unavailable(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("a click's commit got no answer within {COMMIT_WAIT:?}"),
            )))
        })??;
    announce(state, &exhausted).await;
    Ok(Take::Taken)
}

/// Adds clicks the edge let through, stored in `tx` just now, to the counts of the limited
/// links among them: `clicks` holds (link id, counted clicks) once per link. Links that
/// reached their limit are exhausted in `tx` (with their outbox rows when `edge_outbox`, and
/// their webhooks, whose links show `public_url`); returns their codes, for [`announce`] after
/// the commit.
pub(crate) async fn add_edge_clicks(
    tx: &mut PgConnection,
    clicks: &[(i64, i64)],
    edge_outbox: bool,
    public_url: &PublicUrl,
) -> Result<Vec<String>, sqlx::Error> {
    if clicks.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, counts): (Vec<i64>, Vec<i64>) = clicks.iter().copied().unzip();
    // The edge's clicks happened: they are added whatever the count, so `used` can pass the
    // limit by the edge's overshoot. Rows in the order of their ids, like every writer of
    // them, so two ingests cannot deadlock on each other's rows.
    let full: Vec<i64> = sqlx::query_scalar(
        "WITH counted AS (
             INSERT INTO link_click_counts (workspace_id, link_id, used)
             SELECT l.workspace_id, c.link_id, c.clicks
             FROM UNNEST($1::bigint[], $2::bigint[]) AS c (link_id, clicks)
             JOIN links l ON l.id = c.link_id AND l.max_clicks IS NOT NULL
             ORDER BY c.link_id
             ON CONFLICT (workspace_id, link_id) DO UPDATE
                 SET used = link_click_counts.used + EXCLUDED.used
             RETURNING link_id, used
         )
         SELECT counted.link_id FROM counted JOIN links l ON l.id = counted.link_id
         WHERE counted.used >= l.max_clicks AND l.exhausted_at IS NULL
         ORDER BY 1",
    )
    .bind(&ids)
    .bind(&counts)
    .fetch_all(&mut *tx)
    .await?;
    exhaust(tx, &full, edge_outbox, public_url).await
}

/// Marks these live links used up (those not yet), with their outbox rows when there is an
/// edge and their `link.limit_reached` webhooks; returns their codes.
async fn exhaust(
    tx: &mut PgConnection,
    link_ids: &[i64],
    edge_outbox: bool,
    public_url: &PublicUrl,
) -> Result<Vec<String>, sqlx::Error> {
    if link_ids.is_empty() {
        return Ok(Vec::new());
    }
    // Only links whose count (in the database) reached their limit (in the database): a
    // caller's view of the limit may be older than an edit that raised it.
    let (ids, codes): (Vec<i64>, Vec<String>) = sqlx::query_as::<_, (i64, String)>(
        "UPDATE links SET exhausted_at = now()
         WHERE id = ANY($1) AND exhausted_at IS NULL AND deleted_at IS NULL
           AND max_clicks <= (SELECT used FROM link_click_counts c
                               WHERE c.workspace_id = links.workspace_id AND c.link_id = links.id)
         RETURNING id, code",
    )
    .bind(link_ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .unzip();
    crate::webhooks::events::limit_reached(tx, &ids, public_url).await?;
    if edge_outbox {
        for code in &codes {
            outbox::record_change(tx, code).await?;
        }
    }
    Ok(codes)
}

/// After the commit of an exhaustion: this instance's cache forgets the codes at once (every
/// other instance by the `links` trigger's notification), and delivery to the edge is woken.
pub(crate) async fn announce(state: &crate::State, exhausted: &[String]) {
    if exhausted.is_empty() {
        return;
    }
    for code in exhausted {
        state.inner.redirects.cache.invalidate(code).await;
    }
    if let Some(edge) = &state.inner.edge.sync {
        edge.wake.notify_one();
    }
    crate::webhooks::wake(state);
}
