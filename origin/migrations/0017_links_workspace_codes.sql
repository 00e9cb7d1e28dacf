-- no-transaction
-- The list's order by code, per workspace (built like 0015's; if interrupted:
-- `DROP INDEX links_live_workspace_code;` and start again).
CREATE INDEX CONCURRENTLY links_live_workspace_code ON links (workspace_id, code)
    WHERE deleted_at IS NULL
