-- no-transaction
-- A live code is unique per domain (it was per deployment: with one domain the same). Built
-- CONCURRENTLY, so redirects and link writes go on meanwhile; that cannot run in a
-- transaction, hence one statement per migration. If this was interrupted, PostgreSQL keeps
-- an invalid index of this name and the migration fails with "already exists" at the next
-- start: `DROP INDEX links_live_domain_code;` and start again.
CREATE UNIQUE INDEX CONCURRENTLY links_live_domain_code ON links (domain_id, code)
    WHERE deleted_at IS NULL
