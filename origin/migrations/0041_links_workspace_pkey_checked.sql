-- 0040's foreign keys, checked without blocking reads or writes of either table.
ALTER TABLE link_click_counts VALIDATE CONSTRAINT link_click_counts_link;
ALTER TABLE link_click_totals VALIDATE CONSTRAINT link_click_totals_link;
