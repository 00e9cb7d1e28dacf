-- Clicks in the links list (#17): each live link's clicks in all and in the last 7 days, and
-- the list sorted by either, at the cost of any other keyset page however many links a
-- workspace has. Summing `link_stats_hourly` per link at read time cannot be sorted by an
-- index: sorting 1,000,000 links by it would read every rollup row of the workspace.
--
-- So one row per live link, kept by the links' rollup counter (`analytics/rollup.rs`) in the
-- transaction that adds a batch to `link_stats_hourly`: one UPDATE per link per batch, never
-- one per click. The columns:
--   total:  people's clicks and QR scans counted (bots not), plus the clicks imported with
--           the link (`links.imported_clicks`): what the links export calls `clicks`;
--   recent: people's clicks and QR scans in the hours from `link_clicks_window.start` on, the
--           last 7 days in whole UTC hours (7 days to 7 days and an hour back).
-- A row is made with its link (the trigger below, in the link's insert) and removed with it
-- (the soft delete's trigger; the foreign key for a row that is really deleted), so the list
-- joins no row of a deleted link and the sorts' indexes hold live links only.
--
-- An origin older than this migration still counting clicks (during a rolling upgrade) adds
-- them to the rollups but not here: stop the old origins' counters first, or such clicks are
-- missing from these totals (the stats API still has them). No CHECK on the counts, so that
-- such a gap can never stop the counter (the 7-day count is kept at 0 or more where it sets
-- it).
CREATE TABLE link_click_totals (
    link_id      BIGINT PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
    workspace_id BIGINT NOT NULL,
    total        BIGINT NOT NULL,
    recent       BIGINT NOT NULL
);

-- Where `recent` starts: one row. Each run of the links' counter first moves it to 7 days
-- before the current UTC hour, taking off every link's clicks of the hours it passed (read
-- from `link_stats_hourly` by its (hour, link_id) index): the hours that leave the window
-- cost what counting them cost once, so the 7-day sort costs no more than the total's.
CREATE TABLE link_clicks_window (
    one   BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    start TIMESTAMPTZ NOT NULL
);

-- A new link's row, with its imported clicks. One statement per insert (a bulk create of
-- 1,000 links makes its 1,000 rows in one INSERT).
CREATE FUNCTION links_click_totals_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_click_totals (link_id, workspace_id, total, recent)
    SELECT id, workspace_id, imported_clicks, 0 FROM new_links WHERE deleted_at IS NULL
    ORDER BY id;
    RETURN NULL;
END
$$;

-- A deleted link's row goes: its clicks stay in the rollups (and in the workspace's), but it
-- is in no list any more.
CREATE FUNCTION links_click_totals_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM link_click_totals WHERE link_id = NEW.id;
    RETURN NULL;
END
$$;

-- Nothing writes `links` while its rows are made (redirects read on), and no counter adds a
-- batch meanwhile (its advisory lock, `rollup.rs`): every live link gets its row, with what
-- the rollups hold at this moment. On 1,000,000 links this takes seconds, during which link
-- writes wait.
LOCK TABLE links IN SHARE ROW EXCLUSIVE MODE;
SELECT pg_advisory_xact_lock(hashtext('kurz rollups: links'));

INSERT INTO link_clicks_window (start) VALUES (date_trunc('hour', now(), 'UTC') - interval '7 days');

INSERT INTO link_click_totals (link_id, workspace_id, total, recent)
SELECT l.id, l.workspace_id, l.imported_clicks + coalesce(s.total, 0), coalesce(s.recent, 0)
FROM links l
LEFT JOIN (
    SELECT link_id, sum(clicks + qr_scans) AS total,
           coalesce(sum(clicks + qr_scans) FILTER (
               WHERE hour >= (SELECT start FROM link_clicks_window)), 0) AS recent
    FROM link_stats_hourly GROUP BY link_id
) s ON s.link_id = l.id
WHERE l.deleted_at IS NULL;

CREATE TRIGGER links_click_totals_insert AFTER INSERT ON links
    REFERENCING NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION links_click_totals_insert();
CREATE TRIGGER links_click_totals_delete AFTER UPDATE OF deleted_at ON links
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION links_click_totals_delete();

-- The sorts: most first, ties by the newer link first; scanned backwards, with the keyset's
-- row comparison `(total, link_id) < (cursor)` as the index condition. Built after the rows
-- are in (one sort, not a million inserts into a b-tree).
CREATE INDEX link_click_totals_by_total ON link_click_totals (workspace_id, total, link_id);
CREATE INDEX link_click_totals_by_recent ON link_click_totals (workspace_id, recent, link_id);
