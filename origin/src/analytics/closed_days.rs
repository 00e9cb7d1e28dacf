//! Summing the daily breakdowns of a UTC day once it is over (0034,
//! `daily_breakdown_progress`): the counters (`rollup.rs`) write the current day's clicks to
//! the hourly breakdowns only, and a step before each of their batches sums the days that are
//! over into `link_breakdown_daily` and `workspace_breakdown_daily`.

use shortlink::stats::OTHER_VALUES;
use sqlx::PgPool;

use super::rollup::{Busy, Part, Tables, key_of, take_lock};

/// How many links or workspaces one step of [`sum_closed_days`] sums the day of: on a day of
/// ~40 values per link and hour (10,000 links, 24 hours), 2,000 links took 1.8 s in psql,
/// which the part's counter waits.
const SUM_IDS: i64 = 2_000;

/// One step of summing the daily breakdowns of the UTC days that are over
/// (`daily_breakdown_progress`, 0034), run by the holder of the part's lock before a batch:
/// - while a day is being summed (`summed_before` < `open_from`): the daily rows of the
///   next [`SUM_IDS`] links with clicks that day, or workspaces, in the order of their ids,
///   are replaced by the sums of their hourly rows (at most
///   `max_values` values per dimension, the most visited, plus [`OTHER_VALUES`]); after the
///   last one, `summed_before` moves on a day, and the stats read the day from the daily
///   rows. Replacing, not adding, is what makes the late clicks of the day, which batches
///   add to the daily rows meanwhile, count once.
/// - else, when the day `open_from` is over (before `today`, PostgreSQL's UTC date when
///   `None`), `open_from` moves on a day: from then on batches add that day's late clicks to
///   its daily rows too, and the next steps sum it.
///
/// Returns whether there is more to do.
pub(crate) async fn sum_closed_days(
    tx: &mut sqlx::PgConnection,
    part: Part,
    today: Option<time::Date>,
) -> Result<bool, sqlx::Error> {
    let (open_from, day, next_id, today): (time::Date, time::Date, i64, time::Date) =
        sqlx::query_as(
            "SELECT open_from, summed_before, next_id,
                    coalesce($2, (now() AT TIME ZONE 'UTC')::date)
             FROM daily_breakdown_progress WHERE part = $1",
        )
        .bind(part.name())
        .bind(today)
        .fetch_one(&mut *tx)
        .await?;
    if day == open_from {
        if open_from >= today {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE daily_breakdown_progress SET open_from = open_from + 1, next_id = 0
             WHERE part = $1",
        )
        .bind(part.name())
        .execute(&mut *tx)
        .await?;
        return Ok(true);
    }
    // The next ids, each with its workspace: for links, those with clicks that day (each has
    // its link-day row, written by the batch that counted them; `workspace_link_daily_day`);
    // for workspaces, fewer and each with many links, every one.
    let owners: Vec<(i64, i64)> = match part {
        Part::Links => sqlx::query_as(
            "SELECT workspace_id, link_id FROM workspace_link_daily
             WHERE day = $1 AND link_id >= $2
             ORDER BY link_id LIMIT $3",
        )
        .bind(day),
        Part::Workspaces => {
            sqlx::query_as("SELECT id, id FROM workspaces WHERE id >= $1 ORDER BY id LIMIT $2")
        }
    }
    .bind(next_id)
    .bind(SUM_IDS)
    .fetch_all(&mut *tx)
    .await?;
    let (workspaces, ids): (Vec<i64>, Vec<i64>) = owners.into_iter().unzip();
    let Tables {
        key,
        breakdown_hourly,
        breakdown_daily,
        ..
    } = part.tables();
    // The day's hourly rows of each id: one range of the primary key per id.
    let hours = format!(
        "SELECT {h_key}, h.dimension, h.value, h.hits, h.bots
         FROM unnest($5::int8[], $2::int8[]) AS k (workspace_id, id),
              LATERAL (SELECT {key}, dimension, value, hits, bots FROM {breakdown_hourly} r
                       WHERE {r_is}
                         AND r.hour >= $1::date::timestamp AT TIME ZONE 'UTC'
                         AND r.hour < ($1::date + 1)::timestamp AT TIME ZONE 'UTC' OFFSET 0) AS h",
        h_key = key_of(key, "h"),
        r_is = part.owner_is("r.", "k.workspace_id", "k.id"),
    );
    sqlx::query(&format!(
        "DELETE FROM {breakdown_daily} d USING unnest($3::int8[], $2::int8[]) AS k (workspace_id, id)
         WHERE {d_is} AND d.day = $1::date",
        d_is = part.owner_is("d.", "k.workspace_id", "k.id"),
    ))
    .bind(day)
    .bind(&ids)
    .bind(&workspaces)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {breakdown_daily} ({key}, dimension, day, value, hits, bots)
         SELECT {key}, dimension, $1, value, sum(hits)::bigint, sum(bots)::bigint
         FROM (
             SELECT {key}, dimension,
                    CASE WHEN value <> $4
                          AND row_number() OVER (PARTITION BY {key}, dimension, value = $4
                                                 ORDER BY hits + bots DESC, value) <= $3
                         THEN value ELSE $4 END AS value,
                    hits, bots
             FROM (SELECT {key}, dimension, value, sum(hits) AS hits, sum(bots) AS bots
                   FROM ({hours}) AS h GROUP BY {key}, dimension, value) AS s
         ) AS v
         GROUP BY {key}, dimension, value ORDER BY {key}, dimension, value"
    ))
    .bind(day)
    .bind(&ids)
    .bind(part.max_values())
    .bind(OTHER_VALUES)
    .bind(&workspaces)
    .execute(&mut *tx)
    .await?;
    // After the last id, the day is whole: the stats read it from the daily rows.
    let last = match ids.last() {
        Some(&last) if ids.len() as i64 == SUM_IDS => Some(last.saturating_add(1)),
        _ => None,
    };
    sqlx::query(
        "UPDATE daily_breakdown_progress
         SET (summed_before, next_id) = (CASE WHEN $2::int8 IS NULL THEN summed_before + 1
                                              ELSE summed_before END,
                                         coalesce($2, 0))
         WHERE part = $1",
    )
    .bind(part.name())
    .bind(last)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// One step of [`sum_closed_days`] for each part, as a counter takes before each batch, with
/// `today` as the current UTC day; waits for any counter at work. Returns whether there is
/// more to do.
pub(crate) async fn sum_closed_days_step(
    db: &PgPool,
    today: time::Date,
) -> Result<bool, sqlx::Error> {
    let mut more = false;
    for part in Part::ALL {
        more |= sum_step(db, part, Busy::Wait, Some(today)).await? == Some(true);
    }
    Ok(more)
}

/// One step of [`sum_closed_days`] in a transaction of its own, so that a failure of it
/// stops no counting; `None` when another counter of the part is at work and `busy` says to
/// give way.
pub(crate) async fn sum_step(
    db: &PgPool,
    part: Part,
    busy: Busy,
    today: Option<time::Date>,
) -> Result<Option<bool>, sqlx::Error> {
    let mut tx = db.begin().await?;
    if !take_lock(&mut tx, part, busy).await? {
        return Ok(None);
    }
    let more = sum_closed_days(&mut tx, part, today).await?;
    tx.commit().await?;
    Ok(Some(more))
}
