//! The workspace's most visited links in a range, found without summing every link.
//!
//! `workspace_link_daily` holds each link's visits per UTC day, and its index
//! `workspace_link_daily_rank` (0035) lists each day's links most visited first. A link's
//! count in the range is the sum of its whole days plus its hours at either end
//! ([`super::range::UtcDays`]). The lists of the days the range touches are read to a depth;
//! a link no list showed yet has at most, on each day, the last value its list showed, so
//! once that sum is below what the top links seen surely have, no link further down can rank.
//! The hours at either end of the links seen are counted exactly, so a range without a whole
//! day (the last 24 hours) stops as early. Only the links that still may rank are counted
//! exactly in full. Where visits are skewed, as they are,
//! this reads a few dozen rows a day however many links the workspace has (the threshold
//! algorithm without random access of Fagin, Lotem and Naor). Where they are flat (thousands of
//! links with about the same visits each day: a campaign's links per recipient), no depth
//! stops it: past [`MAX_DEPTH`] the range's rows are summed in PostgreSQL instead
//! ([`summed`]), which sends the origin the top links only.

use std::collections::HashMap;

use shortlink::stats::TopLink;
use sqlx::PgPool;
use time::Date;

use super::range::{Range, UtcDays};
use crate::caller::WorkspaceId;
use crate::error::Error;

/// How deep the first reading of each day's list goes, at least; each further reading goes
/// [`DEEPER`] times deeper, and past [`MAX_DEPTH`] the links are [`summed`] instead. Before,
/// the lists were then read whole: every row of a flat month (31 days of thousands of links)
/// went to the origin, every link seen was counted again exactly, at every poll.
const FIRST_DEPTH: i64 = 40;
const DEEPER: i64 = 8;
const MAX_DEPTH: i64 = 400;

/// What the lists say of one link.
#[derive(Debug, Default, Clone, Copy)]
struct Bounds {
    /// The visits of the whole days it was shown on and of the hours at either end (counted
    /// exactly): it has at least these.
    lower: i64,
    /// Those, plus each other day's last value shown: it has at most these.
    upper: i64,
}

/// The workspace's `range.top` most visited live links in `range`, most first (ties by code),
/// each with a count above zero. Deleted links are left out (their clicks still count in the
/// totals and tags): they can no longer be opened, and their code may name another link now.
pub(crate) async fn top_links(
    db: &PgPool,
    workspace: WorkspaceId,
    range: &Range,
) -> Result<Vec<TopLink>, Error> {
    let days = range.utc_days();
    let whole = days.whole_days();
    let partial_days = days.partial_days();
    let mut touched = whole.clone();
    touched.extend(&partial_days);
    let score = |hits: i64, bots: i64| hits + if range.bots { bots } else { 0 };
    let top = usize::try_from(range.top).unwrap_or(usize::MAX);
    let mut depth = FIRST_DEPTH.max(4 * range.top);
    loop {
        // The top of each day's list, by hits + bots (an upper bound of the count without
        // bots too).
        let rows: Vec<(Date, i64, i64, i64)> = sqlx::query_as(
            "SELECT d.day, x.link_id, x.hits, x.bots
             FROM unnest($2::date[]) AS d (day),
                  LATERAL (SELECT link_id, hits, bots FROM workspace_link_daily w
                           WHERE w.workspace_id = $1 AND w.day = d.day
                           ORDER BY w.hits + w.bots DESC LIMIT $3) AS x",
        )
        .bind(workspace.get())
        .bind(&touched)
        .bind(depth)
        .fetch_all(db)
        .await?;
        // Each day's last value shown, or 0 once the list is read to its end.
        let mut shown: HashMap<Date, (i64, i64)> = HashMap::new();
        for (day, _, hits, bots) in &rows {
            let entry = shown.entry(*day).or_insert((0, i64::MAX));
            entry.0 += 1;
            entry.1 = entry.1.min(hits + bots);
        }
        let below = |day: &Date| match shown.get(day) {
            Some((count, last)) if *count >= depth => *last,
            _ => 0,
        };
        let unseen: i64 = touched.iter().map(below).sum();
        let mut links: HashMap<i64, Bounds> = HashMap::new();
        let mut seen_days: HashMap<i64, i64> = HashMap::new();
        for (day, link_id, hits, bots) in &rows {
            let link = links.entry(*link_id).or_default();
            // A partial day's hours are counted exactly below.
            if whole.contains(day) {
                link.lower += score(*hits, *bots);
                link.upper += score(*hits, *bots);
            }
            // The other days' share of `unseen` is added below.
            *seen_days.entry(*link_id).or_default() += below(day);
        }
        let ids: Vec<i64> = links.keys().copied().collect();
        // The hours at either end of the links seen, exactly: with a day's list as their
        // bound, no link seen would have more than nothing for sure in a range without a
        // whole day (the last 24 hours), and every list would be read to its end.
        let partial = if partial_days.is_empty() {
            HashMap::new()
        } else {
            counts(db, workspace, range, &days, &[], &ids).await?
        };
        for (link_id, bounds) in &mut links {
            let partial = partial.get(link_id).copied().unwrap_or(0);
            bounds.lower += partial;
            bounds.upper += partial + unseen - seen_days.get(link_id).copied().unwrap_or(0);
        }
        let live: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, code FROM links
             WHERE workspace_id = $1 AND id = ANY($2) AND deleted_at IS NULL",
        )
        .bind(workspace.get())
        .bind(&ids)
        .fetch_all(db)
        .await?;
        // What the `top`-th live link seen has at least.
        let bounds = |id: &i64| links.get(id).copied().unwrap_or_default();
        let mut lowers: Vec<i64> = live.iter().map(|(id, _)| bounds(id).lower).collect();
        lowers.sort_unstable_by(|a, b| b.cmp(a));
        let floor = lowers
            .get(top.saturating_sub(1))
            .copied()
            .unwrap_or(0)
            .max(1);
        if unseen < floor {
            // No link unseen can rank; of those seen, the ones that still may are counted.
            let candidates: Vec<(i64, String)> = live
                .into_iter()
                .filter(|(id, _)| bounds(id).upper >= floor)
                .collect();
            return exact(db, workspace, range, &days, &whole, candidates, top).await;
        }
        depth *= DEEPER;
        if depth > MAX_DEPTH {
            return summed(db, workspace, range, &days, &whole, &partial_days, top).await;
        }
    }
}

/// The `top` most visited live links of `range`, most first (ties by code, as [`exact`]
/// orders them), each with a count above zero, summed in PostgreSQL from every row of the
/// range's whole days and, for the links of its partial days, their hours at either end.
async fn summed(
    db: &PgPool,
    workspace: WorkspaceId,
    range: &Range,
    days: &UtcDays,
    whole: &[Date],
    partial_days: &[Date],
    top: usize,
) -> Result<Vec<TopLink>, Error> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT l.id, l.code, c.count
         FROM (
             SELECT link_id, sum(n)::int8 AS count
             FROM (
                 SELECT link_id, hits + CASE WHEN $3 THEN bots ELSE 0 END AS n
                 FROM workspace_link_daily WHERE workspace_id = $1 AND day = ANY($2)
                 UNION ALL
                 SELECT w.link_id,
                        (SELECT sum(clicks + qr_scans + CASE WHEN $3 THEN bots ELSE 0 END)
                         FROM link_stats_hourly h
                         WHERE h.workspace_id = $1 AND h.link_id = w.link_id
                           AND (h.hour >= $5 AND h.hour < $6 OR h.hour >= $7 AND h.hour < $8))
                 FROM (SELECT DISTINCT link_id FROM workspace_link_daily
                       WHERE workspace_id = $1 AND day = ANY($4)) AS w
             ) AS v
             GROUP BY link_id
         ) AS c
         JOIN links l ON l.id = c.link_id
         WHERE l.workspace_id = $1 AND l.deleted_at IS NULL AND c.count > 0
         ORDER BY c.count DESC, l.code COLLATE \"C\" LIMIT $9",
    )
    .bind(workspace.get())
    .bind(whole)
    .bind(range.bots)
    .bind(partial_days)
    .bind(days.head.0)
    .bind(days.head.1)
    .bind(days.tail.0)
    .bind(days.tail.1)
    .bind(i64::try_from(top).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(link_id, code, count)| TopLink {
            link_id,
            code,
            count,
        })
        .collect())
}

/// The counts in `range` of `candidates` (id, code), the `top` most visited with a count above
/// zero, most first.
async fn exact(
    db: &PgPool,
    workspace: WorkspaceId,
    range: &Range,
    days: &UtcDays,
    whole: &[Date],
    candidates: Vec<(i64, String)>,
    top: usize,
) -> Result<Vec<TopLink>, Error> {
    let ids: Vec<i64> = candidates.iter().map(|(id, _)| *id).collect();
    let counts = counts(db, workspace, range, days, whole, &ids).await?;
    let mut links: Vec<TopLink> = candidates
        .into_iter()
        .map(|(link_id, code)| TopLink {
            count: counts.get(&link_id).copied().unwrap_or(0),
            code,
            link_id,
        })
        .filter(|link| link.count > 0)
        .collect();
    links.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    links.truncate(top);
    Ok(links)
}

/// The counts of links `ids` on the days `whole` and in the hours at either end of `days`.
async fn counts(
    db: &PgPool,
    workspace: WorkspaceId,
    range: &Range,
    days: &UtcDays,
    whole: &[Date],
    ids: &[i64],
) -> Result<HashMap<i64, i64>, Error> {
    // Whole days: one probe of the primary key per link and day (`day = ANY`); the hours at
    // either end: one range of the link's hourly rows each.
    let counts: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT k.id,
                coalesce((SELECT sum(hits + CASE WHEN $4 THEN bots ELSE 0 END)
                          FROM workspace_link_daily
                          WHERE workspace_id = $1 AND day = ANY($3) AND link_id = k.id), 0)::int8
              + coalesce((SELECT sum(clicks + qr_scans + CASE WHEN $4 THEN bots ELSE 0 END)
                          FROM link_stats_hourly
                          WHERE workspace_id = $1 AND link_id = k.id
                            AND (hour >= $5 AND hour < $6 OR hour >= $7 AND hour < $8)), 0)::int8
         FROM unnest($2::int8[]) AS k (id)",
    )
    .bind(workspace.get())
    .bind(ids)
    .bind(whole)
    .bind(range.bots)
    .bind(days.head.0)
    .bind(days.head.1)
    .bind(days.tail.0)
    .bind(days.tail.1)
    .fetch_all(db)
    .await?;
    Ok(counts.into_iter().collect())
}
