-- no-transaction
-- The claim of due webhook messages takes each endpoint's first ones through this index
-- (webhooks/deliver.rs): it reads about what it claims, not every due message (a bulk
-- import's thousands of `link.created`). Built CONCURRENTLY, so deliveries go on meanwhile
-- (if interrupted: `DROP INDEX webhook_deliveries_endpoint_due;` and start again).
CREATE INDEX CONCURRENTLY webhook_deliveries_endpoint_due
    ON webhook_deliveries (endpoint_id, next_attempt_at, id) WHERE state = 'pending'
