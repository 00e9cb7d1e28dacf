-- The daily breakdowns (`link_breakdown_daily`, `workspace_breakdown_daily`) of a UTC day are
-- summed from its hourly rows once the day is over, instead of being added to by every batch
-- of the counters (`analytics/rollup.rs`): the clicks of the current day write hourly rows
-- only, which halves the breakdown rows a batch writes. One row per half of the rollups;
-- only the holder of that half's counting lock changes it.
CREATE TABLE daily_breakdown_progress (
    part          TEXT PRIMARY KEY CHECK (part IN ('links', 'workspaces')),
    -- Batches add to the daily rows of the days before this one (late clicks of a day that
    -- is over), and write only hourly rows for this day and later ones.
    open_from     DATE NOT NULL,
    -- The stats read the daily rows of the days before this one, and the hourly rows of the
    -- days from here on. The days between it and `open_from` are being summed.
    summed_before DATE NOT NULL,
    -- The first link or workspace id of the day `summed_before` not summed yet.
    next_id       BIGINT NOT NULL DEFAULT 0,
    CHECK (summed_before <= open_from)
);

-- Until now every batch added to the daily rows, so every day before today is whole. Today's
-- rows hold its clicks so far; the stats read today from the hourly rows, and the day is
-- summed again (its daily rows replaced) once it is over.
INSERT INTO daily_breakdown_progress (part, open_from, summed_before)
SELECT part, (now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date
FROM (VALUES ('links'), ('workspaces')) AS p (part);

-- The links with clicks on a day, in the order of their ids, for the steps that sum the day.
CREATE INDEX workspace_link_daily_day ON workspace_link_daily (day, link_id);
