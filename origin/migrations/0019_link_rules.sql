-- Link rules (#13): what a link does beyond sending everyone to one destination. How they
-- decide a visit is `shortlink::redirect::decide`; the values' own rules are in
-- `shortlink/src/rules.rs` and `password.rs`, checked when the API parses a body.
--
-- Every new column of `links` is either nullable or has a constant default, so adding it
-- only changes the catalogue: no rewrite of the table and no scan under its exclusive lock
-- (redirects and link writes wait for a moment only). The check on `max_clicks` is added
-- NOT VALID for the same reason: every existing row has NULL there, so there is nothing to
-- check, and PostgreSQL enforces it on every insert and update from now on.
--
-- The `links_version` and `links_notify_change` triggers (0007, 0009) fire for every update
-- whatever its columns, so a change of any rule gives the link a new version and tells
-- every origin's cache.
ALTER TABLE links
    -- Switched off by its owner: answers like an unknown code (or goes to the fallback).
    ADD COLUMN disabled      BOOLEAN NOT NULL DEFAULT false,
    -- After this many counted clicks (people's GET redirects) the link is used up.
    ADD COLUMN max_clicks    BIGINT,
    ADD CONSTRAINT links_max_clicks_positive CHECK (max_clicks > 0) NOT VALID,
    -- Set in the transaction of the click that reached `max_clicks` (or of an edit that lowered
    -- it to what was used): a link change like any other, so the edge learns it by the sync.
    ADD COLUMN exhausted_at  TIMESTAMPTZ,
    -- Where a disabled, expired or used-up link sends visitors instead of a 404 or 410.
    ADD COLUMN fallback_url  TEXT,
    -- `pbkdf2-sha256$iterations$salt$hash` (shortlink::password::PasswordHash); never the
    -- password. NULL: no password.
    ADD COLUMN password_hash TEXT,
    -- JSON as `shortlink` serialises Targets, Split and Utm; read back through the same types.
    ADD COLUMN targets       JSONB NOT NULL DEFAULT '[]',
    ADD COLUMN split         JSONB NOT NULL DEFAULT '[]',
    ADD COLUMN utm           JSONB NOT NULL DEFAULT '{}',
    -- Normalised (shortlink::rules::Tag), each once; the list filters by them (GIN index,
    -- 0020).
    ADD COLUMN tags          TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN note          TEXT;

-- Clicks counted against `max_clicks`, one row per limited link that was clicked. A table of
-- its own rather than a column of `links`: counting a click must not give the link a new
-- version (a sync to the edge, an invalidation of every cache) on every visit; only reaching
-- the limit does (`exhausted_at`). A counted click adds 1 with
--   INSERT ... ON CONFLICT (link_id) DO UPDATE SET used = used + 1 WHERE used < max_clicks
-- so no two clicks can both take the last one. Rows stay when the limit is changed or
-- removed: clicks already counted stay counted.
CREATE TABLE link_click_counts (
    link_id BIGINT PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
    used    BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0)
);

-- `clicks` gains its `variant` in 0021, in a transaction of its own: this one holds `links`
-- exclusively, and waiting there also for an ingest's lock on `clicks` would hold up every
-- redirect that misses the cache.
