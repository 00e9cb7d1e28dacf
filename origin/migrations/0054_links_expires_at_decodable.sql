-- A link's expiry is a time the origin can read: finite, and before the year 10000. The API
-- refuses any other, but a row written around it (`expires_at = 'infinity'` for "never", a
-- migration from another shortener) could hold one, and reading it (sqlx's `time` decoding)
-- panicked: in the edge's sync, which then stopped for every link, and in the redirects'
-- look-ups batched with it. Such rows are read as they were meant first: `infinity` and years
-- past 9999 as no expiry, `-infinity` as long expired. Each is a change (a new version, by the
-- trigger of 0007) the edge must hear of.
WITH fixed AS (
    UPDATE links
    SET expires_at = CASE WHEN expires_at = '-infinity' THEN TIMESTAMPTZ '1970-01-01 00:00:00+00'
                          ELSE NULL END
    WHERE NOT isfinite(expires_at) OR expires_at >= TIMESTAMPTZ '10000-01-01 00:00:00+00'
    RETURNING code, deleted_at
)
INSERT INTO edge_outbox (code) SELECT code FROM fixed WHERE deleted_at IS NULL;

ALTER TABLE links ADD CONSTRAINT links_expires_at_readable
    CHECK (isfinite(expires_at) AND expires_at < TIMESTAMPTZ '10000-01-01 00:00:00+00');
