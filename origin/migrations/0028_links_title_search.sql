-- no-transaction
-- The list's search (`q`) also looks in titles (0027): a trigram index like the notes' (0022),
-- over the live links, so a search stays an index scan as the table grows. Built
-- CONCURRENTLY, so redirects and link writes go on meanwhile; that needs a migration of its
-- own, run outside a transaction (the first line tells sqlx) and of this one statement (several
-- would run as one implicit transaction). After an interrupted start,
-- `DROP INDEX links_live_title_trgm;` and start again (IF NOT EXISTS would skip the invalid
-- index an interrupted build leaves).
CREATE INDEX CONCURRENTLY IF NOT EXISTS links_live_title_trgm ON links USING gin (title gin_trgm_ops)
    WHERE deleted_at IS NULL
