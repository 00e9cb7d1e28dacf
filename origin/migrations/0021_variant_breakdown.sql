-- A/B variants in the link statistics (#13): the counters (`analytics/rollup.rs`) add a
-- `variant` breakdown to `link_breakdown_hourly` and `_daily` (the dimension column is free
-- text, so those tables need no change), and they read only `clicks_pending`, never the raw
-- clicks: the pending row carries the variant too. Nullable without a default (NULL: the
-- link had no split), so only the catalogue changes.
--
-- `clicks` first, then `clicks_pending`: the order in which an ingest writes them, so this
-- cannot deadlock with one. The raw click's variant (its index in the link's split) is for
-- the export.
ALTER TABLE clicks ADD COLUMN variant SMALLINT;
ALTER TABLE clicks_pending ADD COLUMN variant SMALLINT;
