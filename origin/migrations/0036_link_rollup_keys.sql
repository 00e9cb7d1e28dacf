-- The last keys of the rollups that did not fit distributing on Citus (docs/scaling.md,
-- "Every table against the plan", 0032 and 0033): a link's hourly stats, its breakdowns and
-- its visitors of the day are keyed by the link's workspace first, so that they live on the
-- shard of their workspace, beside its links, totals and workspace rollups. A link never
-- changes workspace, and no link is ever deleted (only marked), so the workspace of a row
-- is fixed.
--
-- Each table is written again in its new shape (workspace first; one pass, no dead rows),
-- and its rows of a link that does not exist are left out: nothing could read them.

-- No counter or overflow writer of the links' half (of an older origin still running) is at
-- work while the tables are written again (its advisory lock, rollup.rs): it would hold rows
-- of one table while waiting for another this migration holds.
SELECT pg_advisory_xact_lock(hashtext('kurz rollups: links'));

-- Pending clicks carry their link's workspace in both halves now (`link_workspace_id`): the
-- counter of the links' half keys every row by it, without a join to `links` (rollup.rs).
-- `workspace_id` still tells the halves apart (NULL for the link's). A link half with no
-- link counted for nothing anyone could read, and goes; a workspace half keeps its
-- workspace (that of the whole account's made-up link 0, 0012).
ALTER TABLE clicks_pending ADD COLUMN link_workspace_id BIGINT;
UPDATE clicks_pending p
SET link_workspace_id = coalesce((SELECT l.workspace_id FROM links l WHERE l.id = p.link_id),
                                 p.workspace_id);
DELETE FROM clicks_pending WHERE link_workspace_id IS NULL;
ALTER TABLE clicks_pending ALTER COLUMN link_workspace_id SET NOT NULL;

-- An origin of the release before, still running beside a new one during an upgrade, queues
-- clicks without the new column. Refusing them would park its clicks as bad data
-- (isolate.rs), so they are completed here: the link's workspace, and no row for a link
-- that does not exist, as ingest does now. The `WHEN` is checked in PostgreSQL's C code
-- for each row; the function runs only for such an older origin's rows.
CREATE FUNCTION clicks_pending_link_workspace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.link_workspace_id := (SELECT workspace_id FROM links WHERE id = NEW.link_id);
    IF NEW.link_workspace_id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER clicks_pending_link_workspace BEFORE INSERT ON clicks_pending
    FOR EACH ROW WHEN (NEW.link_workspace_id IS NULL)
    EXECUTE FUNCTION clicks_pending_link_workspace();

CREATE TABLE link_stats_hourly_new (
    workspace_id BIGINT NOT NULL,
    link_id      BIGINT NOT NULL,
    hour         TIMESTAMPTZ NOT NULL,
    clicks       BIGINT NOT NULL,
    qr_scans     BIGINT NOT NULL,
    bots         BIGINT NOT NULL,
    uniques      BIGINT NOT NULL,
    details_shed BIGINT NOT NULL DEFAULT 0
);
INSERT INTO link_stats_hourly_new
SELECT l.workspace_id, s.link_id, s.hour, s.clicks, s.qr_scans, s.bots, s.uniques,
       s.details_shed
FROM link_stats_hourly s JOIN links l ON l.id = s.link_id
ORDER BY 1, 2, 3;
DROP TABLE link_stats_hourly;
ALTER TABLE link_stats_hourly_new RENAME TO link_stats_hourly;
ALTER TABLE link_stats_hourly ADD CONSTRAINT link_stats_hourly_pkey
    PRIMARY KEY (workspace_id, link_id, hour);
-- The hours leaving the links' 7-day window, and retention (as before).
CREATE INDEX link_stats_hourly_hour ON link_stats_hourly (hour, link_id);

CREATE TABLE link_breakdown_hourly_new (
    workspace_id BIGINT NOT NULL,
    link_id      BIGINT NOT NULL,
    dimension    TEXT NOT NULL,
    hour         TIMESTAMPTZ NOT NULL,
    value        TEXT NOT NULL,
    hits         BIGINT NOT NULL,
    bots         BIGINT NOT NULL
);
INSERT INTO link_breakdown_hourly_new
SELECT l.workspace_id, b.link_id, b.dimension, b.hour, b.value, b.hits, b.bots
FROM link_breakdown_hourly b JOIN links l ON l.id = b.link_id
ORDER BY 1, 2, 4, 3, 5;
DROP TABLE link_breakdown_hourly;
ALTER TABLE link_breakdown_hourly_new RENAME TO link_breakdown_hourly;
-- Time before dimension: every query reads a time range of one link.
ALTER TABLE link_breakdown_hourly ADD CONSTRAINT link_breakdown_hourly_pkey
    PRIMARY KEY (workspace_id, link_id, hour, dimension, value);

CREATE TABLE link_breakdown_daily_new (
    workspace_id BIGINT NOT NULL,
    link_id      BIGINT NOT NULL,
    dimension    TEXT NOT NULL,
    day          DATE NOT NULL,
    value        TEXT NOT NULL,
    hits         BIGINT NOT NULL,
    bots         BIGINT NOT NULL
);
INSERT INTO link_breakdown_daily_new
SELECT l.workspace_id, b.link_id, b.dimension, b.day, b.value, b.hits, b.bots
FROM link_breakdown_daily b JOIN links l ON l.id = b.link_id
ORDER BY 1, 2, 4, 3, 5;
DROP TABLE link_breakdown_daily;
ALTER TABLE link_breakdown_daily_new RENAME TO link_breakdown_daily;
ALTER TABLE link_breakdown_daily ADD CONSTRAINT link_breakdown_daily_pkey
    PRIMARY KEY (workspace_id, link_id, day, dimension, value);

CREATE TABLE visitors_daily_new (
    workspace_id BIGINT NOT NULL,
    link_id      BIGINT NOT NULL,
    day          DATE NOT NULL,
    visitor      TEXT NOT NULL
);
INSERT INTO visitors_daily_new
SELECT l.workspace_id, v.link_id, v.day, v.visitor
FROM visitors_daily v JOIN links l ON l.id = v.link_id
ORDER BY 1, 2, 3, 4;
DROP TABLE visitors_daily;
ALTER TABLE visitors_daily_new RENAME TO visitors_daily;
ALTER TABLE visitors_daily ADD CONSTRAINT visitors_daily_pkey
    PRIMARY KEY (workspace_id, link_id, day, visitor);
-- Retention drops whole days.
CREATE INDEX visitors_daily_day ON visitors_daily (day);

-- The planner's statistics of the tables written again, before the counters' first batch.
ANALYZE link_stats_hourly, link_breakdown_hourly, link_breakdown_daily, visitors_daily;
