-- no-transaction
-- The links' counter takes its batch of pending clicks, the oldest first, through this index
-- rather than by a sequential scan (rollup.rs): a queue's heap is as large as its longest
-- backlog and mostly deleted rows, which a scan reads every time. Built CONCURRENTLY, so
-- ingest goes on meanwhile (if interrupted: `DROP INDEX clicks_pending_links;` and start
-- again).
CREATE INDEX CONCURRENTLY clicks_pending_links ON clicks_pending (at) WHERE workspace_id IS NULL
