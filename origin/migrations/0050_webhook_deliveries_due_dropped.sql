-- no-transaction
-- The due messages of all endpoints in one index: nothing reads it since 0049's index
-- (every query of due messages names its endpoint), and each delivery wrote to it.
DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_due
