-- Each link's visits per UTC day, keyed by its workspace first (#16): what the workspace's
-- stats rank its top links and top tags by. Summing `link_stats_hourly` (a row per link per
-- hour) over the workspace's links took seconds at 1,000,000 links; whole UTC days of a range
-- are read from here instead, a row per link per day, and only the hours before the first and
-- after the last whole day from `link_stats_hourly` (as the breakdowns read their daily and
-- hourly tables). workspace_id first: the Citus plan (docs/scaling.md) distributes the
-- workspace's tables by it, so the workspace's ranking stays on one shard.
--   hits: visits by people (clicks + QR scans); bots: as in link_stats_hourly.
-- Kept by the links' rollup counter (`analytics/rollup.rs`) in the transaction that adds a
-- batch to `link_stats_hourly`, and by the writer of the overflow's counts
-- (`analytics/overflow.rs`), both under the links' rollup lock: a link's rows here always
-- sum its hourly rows of those days. Like the other rollups, never deleted (a deleted link's
-- rows stay: its clicks still count in the workspace's tags).
--
-- An origin older than this migration still counting clicks (during a rolling upgrade) adds
-- them to the hourly rollups but not here: stop the old origins' counters first.
CREATE TABLE workspace_link_daily (
    workspace_id BIGINT NOT NULL,
    day          DATE NOT NULL,
    link_id      BIGINT NOT NULL,
    hits         BIGINT NOT NULL,
    bots         BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, day, link_id)
);

-- No counter adds a batch while the rows are made (its advisory lock, `rollup.rs`); links
-- never change workspace. On 1,000,000 links with 4,000,000 clicks this reads every hourly
-- row once.
SELECT pg_advisory_xact_lock(hashtext('kurz rollups: links'));

INSERT INTO workspace_link_daily (workspace_id, day, link_id, hits, bots)
SELECT l.workspace_id, (s.hour AT TIME ZONE 'UTC')::date, s.link_id,
       sum(s.clicks + s.qr_scans), sum(s.bots)
FROM link_stats_hourly s JOIN links l ON l.id = s.link_id
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
