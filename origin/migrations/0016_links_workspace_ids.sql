-- no-transaction
-- The list's newest/oldest order, per workspace (built like 0015's; if interrupted:
-- `DROP INDEX links_live_workspace_id;` and start again).
CREATE INDEX CONCURRENTLY links_live_workspace_id ON links (workspace_id, id)
    WHERE deleted_at IS NULL
