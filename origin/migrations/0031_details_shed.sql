-- Visits the origin counted without storing their details (its recorder's queue was full:
-- `analytics/overflow.rs`), per link and per workspace and hour. They are in clicks,
-- qr_scans and bots too; the stats API shows them as `details_shed`, so that a reader of
-- the breakdowns knows by how much they fall short of the totals. (A column with a constant
-- default: no table rewrite.)
ALTER TABLE link_stats_hourly ADD COLUMN details_shed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspace_stats_hourly ADD COLUMN details_shed BIGINT NOT NULL DEFAULT 0;
