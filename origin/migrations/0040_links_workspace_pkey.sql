-- `links` is keyed by `(workspace_id, id)`, as every table distributed by workspace must be
-- on Citus (docs/scaling.md), and the tables that refer to a link refer to it by that key.
-- The index is there already (0038), so this holds `links`' exclusive lock for a moment
-- only; the new foreign keys are added unchecked and checked in 0041, which blocks no one.
ALTER TABLE link_click_counts DROP CONSTRAINT link_click_counts_link_id_fkey;
ALTER TABLE link_click_totals DROP CONSTRAINT link_click_totals_link_id_fkey;

ALTER TABLE links
    DROP CONSTRAINT links_pkey,
    ADD CONSTRAINT links_pkey PRIMARY KEY USING INDEX links_workspace_key;

ALTER TABLE link_click_counts
    ADD CONSTRAINT link_click_counts_link FOREIGN KEY (workspace_id, link_id)
        REFERENCES links (workspace_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE link_click_totals
    ADD CONSTRAINT link_click_totals_link FOREIGN KEY (workspace_id, link_id)
        REFERENCES links (workspace_id, id) ON DELETE CASCADE NOT VALID;
