//! Dropping raw clicks older than the retention: whole monthly partitions, so it costs no
//! row-by-row delete, and never the rollups. Also forgets the visitor keys of days whose
//! clicks no longer count as new visitors (see `rollup::VISITOR_DAYS`).

use sqlx::PgPool;
use time::OffsetDateTime;

use super::rollup::VISITOR_DAYS;
use super::store::{self, Partitions, next_month, partition_name};

/// Visitor keys are kept a day longer than the counter still counts uniques for their day
/// ([`VISITOR_DAYS`]), so that this origin's clock being ahead of PostgreSQL's around
/// midnight cannot drop keys the counter still looks up.
const VISITOR_KEY_DAYS: i64 = VISITOR_DAYS as i64 + 1;

/// Drops the partitions whose whole month is older than `now - retention`, and than the
/// [`store::LATE_CLICKS`] a click is still taken for (so a late click always finds its month's
/// raw rows, and a second delivery of it is known); returns their names.
pub(crate) async fn drop_expired(
    db: &PgPool,
    partitions: &Partitions,
    retention: time::Duration,
    now: OffsetDateTime,
) -> Result<Vec<String>, sqlx::Error> {
    let cutoff = (now - retention.max(store::LATE_CLICKS)).date();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'clicks'::regclass ORDER BY 1",
    )
    .fetch_all(db)
    .await?;
    let mut dropped = Vec::new();
    for name in names {
        let Some(month) = parse_partition(&name) else {
            continue;
        };
        let (end_year, end_month) = next_month(month);
        let Ok(end) = time::Date::from_calendar_date(
            end_year,
            time::Month::try_from(end_month).unwrap_or(time::Month::January),
            1,
        ) else {
            continue;
        };
        if end <= cutoff {
            partitions.forget(month);
            let mut tx = db.begin().await?;
            // Dropping a partition locks the whole of `clicks`: queued behind a long reader
            // of it (a dump, a report), it would hold every store of clicks behind it. It
            // gives up instead, and is tried again later (`db::hourly`).
            sqlx::query("SET LOCAL lock_timeout = '2s'")
                .execute(&mut *tx)
                .await?;
            // The name was made by partition_name and checked by parse_partition.
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", partition_name(month)))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            dropped.push(name);
        }
    }
    let oldest_key =
        now.to_offset(time::UtcOffset::UTC).date() - time::Duration::days(VISITOR_KEY_DAYS);
    for table in super::rollup::Part::ALL.map(|part| part.tables().visitors) {
        sqlx::query(&format!("DELETE FROM {table} WHERE day < $1"))
            .bind(oldest_key)
            .execute(db)
            .await?;
    }
    Ok(dropped)
}

fn parse_partition(name: &str) -> Option<(i32, u8)> {
    let rest = name.strip_prefix("clicks_")?;
    let (year, month) = rest.split_once('_')?;
    let month: u8 = month.parse().ok()?;
    (year.len() == 4 && (1..=12).contains(&month)).then_some((year.parse().ok()?, month))
}

/// Keeps the monthly partitions of raw clicks, at start and every hour
/// ([`crate::db::hourly`]): makes this month's and the next one's ahead of their clicks
/// ([`store::make_ahead`]), and drops those past the retention ([`drop_expired`]).
pub(crate) async fn run_forever(state: crate::State) {
    crate::db::hourly("monthly partitions of raw clicks", || async {
        let now = OffsetDateTime::now_utc();
        let clicks = &state.inner.clicks;
        store::make_ahead(&state.inner.db, &clicks.partitions, now).await?;
        let dropped = state.drop_expired_clicks(now).await?;
        Ok(dropped.len() as u64)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        assert_eq!(
            parse_partition(&partition_name((2026, 11))),
            Some((2026, 11))
        );
        assert_eq!(parse_partition("clicks_2026_13"), None);
        assert_eq!(parse_partition("clicks_default"), None);
        assert_eq!(parse_partition("links"), None);
    }
}
