-- no-transaction
-- The key `links` takes in 0040, `(workspace_id, id)`: on Citus every unique key of a table
-- distributed by workspace must contain it. Built CONCURRENTLY, so redirects and link writes
-- go on meanwhile (built like 0015's; if interrupted: `DROP INDEX links_workspace_key;` and
-- start again).
CREATE UNIQUE INDEX CONCURRENTLY links_workspace_key ON links (workspace_id, id)
