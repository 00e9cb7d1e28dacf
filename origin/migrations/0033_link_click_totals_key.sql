-- One more key that fits distributing on Citus (docs/scaling.md, "Every table against the
-- plan", and 0032): the links list's counts are keyed by their workspace first. Every writer
-- names both (`analytics/rollup.rs`, `analytics/overflow.rs`, the delete trigger below); the
-- list reads them by workspace already.
ALTER TABLE link_click_totals
    DROP CONSTRAINT link_click_totals_pkey,
    ADD PRIMARY KEY (workspace_id, link_id);

CREATE OR REPLACE FUNCTION links_click_totals_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM link_click_totals WHERE workspace_id = NEW.workspace_id AND link_id = NEW.id;
    RETURN NULL;
END
$$;
