//! Where a click is stored: raw click events, inserted in batches, idempotent on the event id.

use shortlink::edge::{ClickEvent, ClickSource};
use sqlx::PgExecutor;
use time::OffsetDateTime;

/// Inserts the events that are new and returns how many were; events already stored (a
/// retried batch, or a duplicate within the batch) are skipped.
pub(crate) async fn store(
    db: impl PgExecutor<'_>,
    events: &[ClickEvent],
) -> Result<u64, sqlx::Error> {
    let mut ids = Vec::with_capacity(events.len());
    let mut link_ids = Vec::with_capacity(events.len());
    let mut codes = Vec::with_capacity(events.len());
    let mut ats: Vec<OffsetDateTime> = Vec::with_capacity(events.len());
    let mut countries = Vec::with_capacity(events.len());
    let mut referrers = Vec::with_capacity(events.len());
    let mut user_agents = Vec::with_capacity(events.len());
    let mut qrs = Vec::with_capacity(events.len());
    let mut heads = Vec::with_capacity(events.len());
    let mut sources = Vec::with_capacity(events.len());
    for event in events {
        ids.push(event.id.as_str());
        link_ids.push(event.link_id);
        codes.push(event.code.as_str());
        ats.push(event.at);
        countries.push(event.country.as_deref());
        referrers.push(event.referrer.as_deref());
        user_agents.push(event.user_agent.as_deref());
        qrs.push(event.qr);
        heads.push(event.head);
        sources.push(match event.source {
            ClickSource::Edge => "edge",
            ClickSource::Origin => "origin",
        });
    }
    let result = sqlx::query(
        "INSERT INTO clicks (id, link_id, code, at, country, referrer, user_agent, qr, head, source)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[],
                              $6::text[], $7::text[], $8::bool[], $9::bool[], $10::text[])
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&link_ids)
    .bind(&codes)
    .bind(&ats)
    .bind(&countries)
    .bind(&referrers)
    .bind(&user_agents)
    .bind(&qrs)
    .bind(&heads)
    .bind(&sources)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}
