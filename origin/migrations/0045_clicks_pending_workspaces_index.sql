-- no-transaction
-- The workspaces' counter's index, as 0044 (if interrupted: `DROP INDEX
-- clicks_pending_workspaces;` and start again).
CREATE INDEX CONCURRENTLY clicks_pending_workspaces ON clicks_pending (at)
    WHERE workspace_id IS NOT NULL
