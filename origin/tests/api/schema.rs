//! The schema against the plan for distributing it on Citus (docs/scaling.md, "Every table
//! against the plan"): every table has its role there, and a table distributed by a column
//! has that column in each of its unique keys (Citus refuses any other). A new table, or a
//! key that would not fit, fails here before it reaches a migration.

use std::collections::BTreeMap;

use crate::support::spawn_app;

/// Distributed by `workspace_id`: a workspace's links, rollups and logs, on its shard.
const BY_WORKSPACE: &[&str] = &[
    "links",
    "link_click_totals",
    "link_click_counts",
    "link_stats_hourly",
    "link_breakdown_hourly",
    "link_breakdown_daily",
    "visitors_daily",
    "workspace_stats_hourly",
    "workspace_link_daily",
    "workspace_tag_hourly",
    "workspace_tag_daily",
    "link_tag_moves",
    "workspace_breakdown_hourly",
    "workspace_breakdown_daily",
    "workspace_visitors_daily",
    "audit_log",
    "idempotency_keys",
    "webhook_clicks_pending",
];

/// Distributed by another column: raw clicks by their event id.
const BY_OTHER: &[(&str, &str)] = &[("clicks", "id")];

/// Reference tables (a copy on every node) and local ones (on the coordinator): any key.
const REFERENCE_OR_LOCAL: &[&str] = &[
    "workspaces",
    "domains",
    "abuse_blocklist",
    "link_clicks_window",
    "daily_breakdown_progress",
    "admin_users",
    "admin_sessions",
    "sign_in_attempts",
    "sign_in_known_addresses",
    "workspace_members",
    "workspace_invitations",
    "api_keys",
    "clicks_pending",
    "edge_outbox",
    "edge_outbox_dead",
    "edge_request_nonces",
    "clicks_parked",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "abuse_reports",
    "_sqlx_migrations",
];

/// Distributed by `workspace_id` in the plan, with a key that does not contain it yet
/// (docs/scaling.md, "change": `links` keeps its code unique per domain until `link_codes`).
const NOT_YET: &[&str] = &["links"];

#[tokio::test]
async fn every_table_has_its_place_in_the_plan_and_its_keys_fit_it() {
    let app = spawn_app().await;
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
    )
    .fetch_all(&app.db)
    .await
    .expect("tables");
    tables.sort_unstable();
    let mut planned: Vec<&str> = BY_WORKSPACE
        .iter()
        .copied()
        .chain(BY_OTHER.iter().map(|(table, _)| *table))
        .chain(REFERENCE_OR_LOCAL.iter().copied())
        .collect();
    planned.sort_unstable();
    assert_eq!(tables, planned, "each table once in the plan, and no other");

    // Each unique index (primary keys included) of each table, with its columns (an
    // expression's column is named "").
    let keys: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, x.relname::text,
                ARRAY(SELECT coalesce(a.attname::text, '')
                      FROM unnest(i.indkey) WITH ORDINALITY AS k (attnum, n)
                           LEFT JOIN pg_attribute a
                               ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                      ORDER BY k.n)
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
              JOIN pg_class x ON x.oid = i.indexrelid
              JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = current_schema() AND i.indisunique AND NOT t.relispartition
         ORDER BY 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .expect("keys");
    let distribution: BTreeMap<&str, &str> = BY_WORKSPACE
        .iter()
        .map(|table| (*table, "workspace_id"))
        .chain(BY_OTHER.iter().copied())
        .collect();
    let mut misfit_tables: Vec<&str> = keys
        .iter()
        .filter(|(table, _, columns)| {
            distribution
                .get(table.as_str())
                .is_some_and(|column| !columns.iter().any(|c| c == column))
        })
        .map(|(table, _, _)| table.as_str())
        .collect();
    misfit_tables.dedup();
    assert_eq!(
        misfit_tables, NOT_YET,
        "unique keys without their distribution column: {keys:?}"
    );
}
