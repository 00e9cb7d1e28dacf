-- no-transaction
-- A link by its id alone (the click limits, the edge's deliveries, the abuse tools), once the
-- primary key leads with the workspace (0040). Not unique: ids come from one sequence. Built
-- CONCURRENTLY (if interrupted: `DROP INDEX links_id;` and start again).
CREATE INDEX CONCURRENTLY links_id ON links (id)
