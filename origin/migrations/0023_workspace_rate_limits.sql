-- Per-workspace overrides of the API's rate limits (requests per minute, per caller), set by
-- the operator (`origin set-rate-limits`), never through the API: a workspace's members must
-- not raise their own limits. NULL: the deployment's default (KURZ_RATE_*_PER_MIN).
--
-- Nullable columns without a default: adding them rewrites nothing and holds the table's
-- lock only for a moment. The checks repeat the command's ranges so no other writer can
-- store a figure the limiter cannot use: the `api` budget is never off (every answer tells
-- the caller its budget), `create` and `stats` may be 0 (only the `api` budget applies).
ALTER TABLE workspaces
    ADD COLUMN rate_api_per_min    INTEGER CHECK (rate_api_per_min BETWEEN 1 AND 1000000),
    ADD COLUMN rate_create_per_min INTEGER CHECK (rate_create_per_min BETWEEN 0 AND 1000000),
    ADD COLUMN rate_stats_per_min  INTEGER CHECK (rate_stats_per_min BETWEEN 0 AND 1000000);
