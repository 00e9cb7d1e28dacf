-- Two of the keys that did not fit distributing on Citus (docs/scaling.md, "Every table
-- against the plan"): there a distributed table's primary key must contain its distribution
-- column, `workspace_id`. Both tables stay small next to the clicks: the key's index is
-- built again once, here.

-- The audit log is read per workspace only, newest first (audit.rs): the new key is the index
-- those reads walk, and `audit_log_workspace` (the same columns) goes.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey, ADD PRIMARY KEY (workspace_id, id);
DROP INDEX audit_log_workspace;

-- A limited link's count of clicks carries its link's workspace (a link never changes
-- workspace); every reader and writer names both (`links/limit.rs`, `links/store.rs`).
ALTER TABLE link_click_counts ADD COLUMN workspace_id BIGINT;
UPDATE link_click_counts c SET workspace_id = l.workspace_id FROM links l WHERE l.id = c.link_id;
ALTER TABLE link_click_counts
    ALTER COLUMN workspace_id SET NOT NULL,
    DROP CONSTRAINT link_click_counts_pkey,
    ADD PRIMARY KEY (workspace_id, link_id);
