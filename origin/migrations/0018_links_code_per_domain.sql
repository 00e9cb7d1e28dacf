-- no-transaction
-- Codes are unique per domain now (0015); the index of one namespace for the deployment
-- goes, without blocking reads or writes while it does.
DROP INDEX CONCURRENTLY IF EXISTS links_live_code
