-- no-transaction
-- The list's search (`q`) also looks in notes: a trigram index like those of codes and
-- destinations (0001, 0005), over the live links, so a search stays an index scan as the table
-- grows. Built CONCURRENTLY, so redirects and link writes go on meanwhile; after an
-- interrupted start, `DROP INDEX links_live_note_trgm;` and start again (IF NOT EXISTS would
-- skip the invalid index an interrupted build leaves).
CREATE INDEX CONCURRENTLY IF NOT EXISTS links_live_note_trgm ON links USING gin (note gin_trgm_ops)
    WHERE deleted_at IS NULL
