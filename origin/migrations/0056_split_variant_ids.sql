-- A/B variants keep their clicks through edits. A click stored the variant's index in the
-- link's split, and the dashboard named each index by the split of the moment, so removing or
-- reordering a variant relabelled the clicks of the others ("Variant 1: B" showed A's). A
-- variant now has an id (`shortlink::rules::Variant::id`), given by the origin when a split
-- is written and kept through edits, which the clicks store instead (the `variant` columns
-- keep their type). This column is how many ids the link's splits have had, so that a
-- removed variant's id, and its clicks, go to no later variant.
--
-- A split stored before has no ids: its variants' ids are their positions, which is what
-- its clicks stored, and the origin counts them as used (the larger of this column and the
-- split's own) when the split next changes, so no row is rewritten here. The worker reads
-- either form; deploy it before the origin, as with every release, since a worker of an
-- earlier release refuses the `id` field in a record.
ALTER TABLE links ADD COLUMN split_ids_used SMALLINT NOT NULL DEFAULT 0
    CHECK (split_ids_used BETWEEN 0 AND 256);
