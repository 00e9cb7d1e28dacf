//! The schema against the plan for distributing it on Citus (docs/scaling.md, "Every table
//! against the plan"): every table has its role there, and a table distributed by a column
//! has that column in each of its unique keys (Citus refuses any other). A new table, or a
//! key that would not fit, fails here before it reaches a migration.

use std::collections::BTreeMap;

use crate::support::spawn_app;

/// Distributed by `workspace_id`: a workspace's links, rollups and logs, on its shard.
const BY_WORKSPACE: &[&str] = &[
    "links",
    "link_takedowns",
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

/// Distributed by another column: raw clicks by their event id, and the routing table of live
/// codes by code (a code names no workspace until it is looked up).
const BY_OTHER: &[(&str, &str)] = &[("clicks", "id"), ("link_codes", "code")];

/// Reference tables (a copy on every node): any key.
const REFERENCE: &[&str] = &[
    "workspaces",
    "domains",
    "abuse_blocklist",
    "link_clicks_window",
    "daily_breakdown_progress",
];

/// Local tables (on the coordinator): any key.
const LOCAL: &[&str] = &[
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
        .chain(REFERENCE.iter().copied())
        .chain(LOCAL.iter().copied())
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
        misfit_tables,
        Vec::<&str>::new(),
        "unique keys without their distribution column: {keys:?}"
    );
}

/// Where a table's rows live in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Distributed by this column.
    By(&'static str),
    Reference,
    Local,
}

fn role(table: &str) -> Role {
    if BY_WORKSPACE.contains(&table) {
        return Role::By("workspace_id");
    }
    if let Some((_, column)) = BY_OTHER.iter().find(|(t, _)| *t == table) {
        return Role::By(column);
    }
    if REFERENCE.contains(&table) {
        return Role::Reference;
    }
    assert!(LOCAL.contains(&table), "{table} has no place in the plan");
    Role::Local
}

/// Citus keeps a foreign key only where both rows are always on one node: from a distributed
/// table to a reference table, or to a table distributed by the same column with that column
/// paired with itself (co-located); from a local table to a reference or local one; from a
/// reference table to another reference table. Every foreign key of the schema is one of
/// those.
#[tokio::test]
async fn every_foreign_key_stays_within_one_node_in_the_plan() {
    let app = spawn_app().await;
    let keys: Vec<(String, String, Vec<String>, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, r.relname::text,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k (n, i)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                      ORDER BY k.i),
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k (n, i)
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
                      ORDER BY k.i)
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
              JOIN pg_class r ON r.oid = c.confrelid
              JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = current_schema() AND c.contype = 'f' AND NOT t.relispartition
         ORDER BY 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .expect("foreign keys");
    assert!(
        keys.iter()
            .any(|(table, _, _, _)| table == "link_click_totals"),
        "the query finds the foreign keys: {keys:?}"
    );
    let misfits: Vec<_> = keys
        .iter()
        .filter(|(table, referenced, columns, referenced_columns)| {
            match (role(table), role(referenced)) {
                (Role::By(column), Role::By(other)) => {
                    column != other
                        || !columns
                            .iter()
                            .zip(referenced_columns)
                            .any(|(a, b)| a == column && b == column)
                }
                (Role::By(_), Role::Reference)
                | (Role::Local, Role::Reference | Role::Local)
                | (Role::Reference, Role::Reference) => false,
                _ => true,
            }
        })
        .collect();
    assert!(misfits.is_empty(), "foreign keys across nodes: {misfits:?}");
}

/// A GIN index keeps new entries in a pending list that every search through it reads whole:
/// each one keeps that list small (migration 0046 says what the default cost), so a search
/// after many new links stays as fast as before them.
#[tokio::test]
async fn every_gin_index_keeps_its_pending_list_small() {
    let app = spawn_app().await;
    let indexes: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT x.relname::text, x.reloptions::text[]
         FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
              JOIN pg_am am ON am.oid = x.relam
              JOIN pg_namespace n ON n.oid = x.relnamespace
         WHERE n.nspname = current_schema() AND am.amname = 'gin'
         ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .expect("GIN indexes");
    assert!(
        indexes
            .iter()
            .any(|(name, _)| name == "links_live_destination_trgm"),
        "the query finds the GIN indexes: {indexes:?}"
    );
    let unbounded: Vec<_> = indexes
        .iter()
        .filter(|(_, options)| {
            !options.iter().flatten().any(|option| {
                option == "fastupdate=off"
                    || option
                        .strip_prefix("gin_pending_list_limit=")
                        .and_then(|kib| kib.parse::<u32>().ok())
                        .is_some_and(|kib| kib <= 256)
            })
        })
        .collect();
    assert!(
        unbounded.is_empty(),
        "GIN indexes with the default 4 MB pending list: {unbounded:?}"
    );
}
