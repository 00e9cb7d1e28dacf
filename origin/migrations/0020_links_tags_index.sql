-- no-transaction
-- The list's filter by tag (`tags @> ARRAY[$tag]`), over the live links (built like 0015's:
-- CONCURRENTLY, so redirects and link writes go on meanwhile). IF NOT EXISTS: an interrupted
-- build leaves an invalid index of this name that this would skip, so after an interrupted
-- start `DROP INDEX links_live_tags;` and start again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS links_live_tags ON links USING gin (tags)
    WHERE deleted_at IS NULL
