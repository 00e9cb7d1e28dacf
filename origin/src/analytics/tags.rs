//! The workspace's visits per tag (0035: `workspace_tag_hourly`, `workspace_tag_daily`), which
//! its stats rank the top tags by without summing every link.
//!
//! A link's tags count for its earlier clicks too, so a change of tags must move its counts.
//! The edit only notes it (`link_tag_moves`, with the tags the link's clicks are counted under,
//! [`note_change`]); the holder of the links' rollup lock moves them ([`move_step`]) and, until
//! then, counts the link's new clicks under those same tags ([`count_sql`]). So the tags'
//! rollups always equal a sum of each link's hourly stats under its counted tags, and once no
//! move is left, under its tags.

use sqlx::{PgConnection, PgPool};

use super::rollup::{Busy, Part, take_lock};
use crate::caller::WorkspaceId;

/// Most links one [`move_step`] moves: a link's move reads each of its hourly rows (8,760 a
/// year for a link clicked every hour) and writes one row per tag and hour.
pub(crate) const MOVE_LINKS: i64 = 500;

/// The statement's parts (CTEs, comma-separated, none first) that add the visits of `source`
/// to the tags' rollups. `source` is a relation with the columns `workspace_id`, `link_id`,
/// `hour` (UTC), `hits` and `bots`, each (link, hour) once; a link counts under its counted tags
/// (`link_tag_moves.counted`, else `links.tags`), a link that does not exist under none. Only
/// the holder of the links' rollup lock may run it.
pub(crate) fn count_sql(source: &str) -> String {
    format!(
        "tag_counts AS MATERIALIZED (
    SELECT l.workspace_id, s.hour, t.tag, sum(s.hits)::bigint AS hits, sum(s.bots)::bigint AS bots
    FROM {source} s
         JOIN links l ON (l.workspace_id, l.id) = (s.workspace_id, s.link_id)
         LEFT JOIN link_tag_moves m ON (m.workspace_id, m.link_id) = (l.workspace_id, l.id),
         unnest(coalesce(m.counted, l.tags)) AS t (tag)
    GROUP BY 1, 2, 3
), {adds}",
        adds = add_sql("tag_counts"),
    )
}

/// The statement's parts (CTEs) that add `changes`, a relation of (workspace_id, hour, tag,
/// hits, bots), each (workspace, hour, tag) once, to both tables.
fn add_sql(changes: &str) -> String {
    format!(
        "tag_hours AS (
    INSERT INTO workspace_tag_hourly (workspace_id, hour, tag, hits, bots)
    SELECT workspace_id, hour, tag, hits, bots FROM {changes} ORDER BY 1, 2, 3
    ON CONFLICT (workspace_id, hour, tag) DO UPDATE SET
        hits = workspace_tag_hourly.hits + EXCLUDED.hits,
        bots = workspace_tag_hourly.bots + EXCLUDED.bots
), tag_days AS (
    INSERT INTO workspace_tag_daily (workspace_id, day, tag, hits, bots)
    SELECT workspace_id, (hour AT TIME ZONE 'UTC')::date, tag, sum(hits), sum(bots)
    FROM {changes} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (workspace_id, day, tag) DO UPDATE SET
        hits = workspace_tag_daily.hits + EXCLUDED.hits,
        bots = workspace_tag_daily.bots + EXCLUDED.bots
)"
    )
}

/// Notes, in the transaction that changes a link's tags from `counted` (what they were; the
/// row locked by that transaction), that its counts must move. A link already waiting for a
/// move keeps the tags its clicks are counted under.
pub(crate) async fn note_change(
    tx: &mut PgConnection,
    workspace: WorkspaceId,
    link_id: i64,
    counted: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO link_tag_moves (workspace_id, link_id, counted) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id, link_id) DO NOTHING",
    )
    .bind(workspace.get())
    .bind(link_id)
    .bind(counted)
    .execute(tx)
    .await?;
    Ok(())
}

/// Moves the counts of up to [`MOVE_LINKS`] links whose tags changed from the tags they are
/// counted under to their tags now, in a transaction of its own under the links' rollup lock.
/// A link being edited right now is left for a later step (`SKIP LOCKED`), and a link moved
/// here cannot be edited until the move commits (`FOR SHARE`): what the step reads as its tags
/// stays its tags. Returns how many links were moved, or `None` when a counter is at work
/// and `busy` says to give way.
pub(crate) async fn move_step(db: &PgPool, busy: Busy) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = db.begin().await?;
    if !take_lock(&mut tx, Part::Links, busy).await? {
        return Ok(None);
    }
    let moved: i64 = sqlx::query_scalar(&format!(
        "WITH moving AS MATERIALIZED (
             SELECT m.workspace_id, m.link_id, m.counted, l.tags
             FROM link_tag_moves m JOIN links l ON (l.workspace_id, l.id) = (m.workspace_id, m.link_id)
             ORDER BY m.workspace_id, m.link_id
             LIMIT $1
             FOR SHARE OF l SKIP LOCKED
         ), done AS (
             DELETE FROM link_tag_moves d USING moving m
             WHERE (d.workspace_id, d.link_id) = (m.workspace_id, m.link_id)
         ), changes AS MATERIALIZED (
             -- Each hour of the link's clicks: taken off each old tag, added to each new one
             -- (a tag it keeps nets to nothing).
             SELECT m.workspace_id, s.hour, t.tag, sum(t.sign * (s.clicks + s.qr_scans)) AS hits,
                    sum(t.sign * s.bots) AS bots
             FROM moving m
                  JOIN link_stats_hourly s
                      ON (s.workspace_id, s.link_id) = (m.workspace_id, m.link_id),
                  LATERAL (SELECT tag, -1 AS sign FROM unnest(m.counted) AS o (tag)
                           UNION ALL
                           SELECT tag, 1 FROM unnest(m.tags) AS n (tag)) AS t
             GROUP BY 1, 2, 3
             HAVING sum(t.sign * (s.clicks + s.qr_scans)) <> 0 OR sum(t.sign * s.bots) <> 0
         ), {adds}
         SELECT count(*) FROM moving",
        adds = add_sql("changes"),
    ))
    .bind(MOVE_LINKS)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(moved.unsigned_abs()))
}

/// Moves the counts of every link whose tags changed, waiting for any counter at work (the
/// tests' and the CLI's way to settle the rollups). Returns how many links were moved.
pub(crate) async fn move_all(db: &PgPool) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    while let Some(moved) = move_step(db, Busy::Wait).await? {
        total += moved;
        if moved < MOVE_LINKS as u64 {
            break;
        }
    }
    Ok(total)
}
