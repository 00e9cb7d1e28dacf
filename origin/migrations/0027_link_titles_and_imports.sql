-- Import fields (#15): a link's title, and the clicks it had at the shortener it was imported
-- from. (Its creation date at that shortener goes into the existing `created_at`.)
--
-- A nullable column and one with a constant default only change the catalogue: no rewrite of
-- the table and no scan under its exclusive lock, which is held for a moment only (redirects
-- and link writes wait that long). The check is added NOT VALID for the same reason: every
-- existing row has the default 0, so there is nothing to check, and PostgreSQL enforces it on
-- every insert and update from now on.
--
-- The list's search (`q`) does not look in titles: that needs a trigram index like the notes'
-- (0022), built CONCURRENTLY, which a migration cannot do together with these changes (a
-- CONCURRENTLY build must run alone, outside any transaction block).
ALTER TABLE links
    -- For people reading the list (often the destination page's title, kept by an import):
    -- `shortlink::rules::Title`, on one line. NULL: no title.
    ADD COLUMN title           TEXT,
    -- Clicks counted by the shortener the link came from, which kurz cannot put in its hourly
    -- statistics (they have no time); an export adds them to the clicks kurz counted.
    ADD COLUMN imported_clicks BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT links_imported_clicks_not_negative CHECK (imported_clicks >= 0) NOT VALID;
