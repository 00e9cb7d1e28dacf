-- A/B variants keep their clicks through edits. A click stored the variant's index in the
-- link's split, and the dashboard named each index by the split of the moment, so removing or
-- reordering a variant relabelled the clicks of the others ("Variant 1: B" showed A's). A
-- variant now has an id (`shortlink::rules::Variant::id`), given by the origin when a split
-- is written and kept through edits, which the clicks store instead (the `variant` columns
-- keep their type). This column is how many ids the link's splits have had, so that a
-- removed variant's id, and its clicks, go to no later variant.
--
-- A split stored before has no ids: its variants' ids are their positions, which is what
-- its clicks stored (the API shows them so). Its link's column is NULL, not rewritten here:
-- when its split next changes, the origin counts as used every id its counted clicks name
-- (`variant_ids_counted`: the link's own breakdown rows), so the ids of variants removed
-- before this release are not given again either.
--
-- Upgrade: the worker first, as with every release (a worker of an earlier release refuses
-- the `id` field in a record), then stop every origin of an earlier release before the first
-- of this one starts: an earlier origin cannot read a split with ids (its links' answers and
-- redirects fail), and one that writes a split stores it without ids, under positions again.
ALTER TABLE links ADD COLUMN split_ids_used SMALLINT
    CHECK (split_ids_used BETWEEN 0 AND 256);
