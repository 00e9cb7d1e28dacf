-- The stats API's top values of a link and of a workspace (`analytics::stats::breakdowns`),
-- as functions whose plan reads the rollups by ranges of their keys, whatever the rows.
--
-- Why functions: the query reads whole UTC days from the daily table and the hours at either
-- end from the hourly one, and where the days end depends on which are summed
-- (`daily_breakdown_progress`), which PostgreSQL learns only as the query runs. So it expects
-- a third of the owner's rows between the bounds. For a link that holds most of the hourly
-- rows (a deployment with one popular link), and for the workspace of a deployment of one
-- team (it holds them all), that is a large part of the table: planned for the range or for
-- any, as a prepared statement is, the query scanned the whole table for each end. Measured
-- with one link's 190,552 hourly rows (90 days) alone in the table: 57–112 ms for its 90
-- days, 46–69 ms for its last day, where these functions take 5–11 ms and ~2 ms; on the
-- analytics bench's data (other links' rows too) they run as fast as the statement did.
-- Settings on a function hold for its query only: a plan made once per connection (PL/pgSQL
-- keeps it for the session), with scans of key ranges; the daily part and the ends are each
-- one range of the primary key, which is always right here. The hashed grouping the plan
-- chose before is kept (its estimate of a third of the owner's rows is enough for it).
--
-- Every part of the query says whose rows it reads: a link's by its workspace and id, a
-- workspace's by its id. Any change to the one changes the other.
CREATE FUNCTION link_breakdowns(for_workspace BIGINT, for_link BIGINT, range_from TIMESTAMPTZ,
                                range_to TIMESTAMPTZ, with_bots BOOLEAN, top_n BIGINT)
RETURNS TABLE (dimension TEXT, value TEXT, count BIGINT)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH bounds AS (
        SELECT ceil_day, greatest(ceil_day, least(floor_day, summed)) AS floor_day
        FROM (SELECT date_trunc('day', range_from AT TIME ZONE 'UTC' + interval '1 day' - interval '1 microsecond') AT TIME ZONE 'UTC' AS ceil_day,
                     date_trunc('day', range_to AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS floor_day,
                     (SELECT summed_before FROM daily_breakdown_progress WHERE part = 'links')::timestamp AT TIME ZONE 'UTC' AS summed) AS d
    ), parts AS (
        SELECT dimension, value, hits, bots FROM link_breakdown_daily, bounds
        WHERE workspace_id = for_workspace AND link_id = for_link
          AND day >= (ceil_day AT TIME ZONE 'UTC')::date AND day < (floor_day AT TIME ZONE 'UTC')::date
        UNION ALL
        SELECT dimension, value, hits, bots FROM link_breakdown_hourly, bounds
        WHERE workspace_id = for_workspace AND link_id = for_link
          AND hour >= range_from AND hour < least(range_to, ceil_day)
        UNION ALL
        SELECT dimension, value, hits, bots FROM link_breakdown_hourly, bounds
        WHERE workspace_id = for_workspace AND link_id = for_link
          AND hour >= greatest(range_from, floor_day) AND hour < range_to
    ), ranked AS (
        SELECT dimension, value, sum(hits + CASE WHEN with_bots THEN bots ELSE 0 END)::int8 AS count,
               row_number() OVER (PARTITION BY dimension
                                  ORDER BY sum(hits + CASE WHEN with_bots THEN bots ELSE 0 END) DESC, value) AS rank
        FROM parts GROUP BY dimension, value
    )
    SELECT dimension, value, count FROM ranked
    WHERE rank <= top_n AND count > 0
    ORDER BY dimension, rank;
END
$$;

CREATE FUNCTION workspace_breakdowns(for_workspace BIGINT, range_from TIMESTAMPTZ,
                                     range_to TIMESTAMPTZ, with_bots BOOLEAN, top_n BIGINT)
RETURNS TABLE (dimension TEXT, value TEXT, count BIGINT)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH bounds AS (
        SELECT ceil_day, greatest(ceil_day, least(floor_day, summed)) AS floor_day
        FROM (SELECT date_trunc('day', range_from AT TIME ZONE 'UTC' + interval '1 day' - interval '1 microsecond') AT TIME ZONE 'UTC' AS ceil_day,
                     date_trunc('day', range_to AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS floor_day,
                     (SELECT summed_before FROM daily_breakdown_progress WHERE part = 'workspaces')::timestamp AT TIME ZONE 'UTC' AS summed) AS d
    ), parts AS (
        SELECT dimension, value, hits, bots FROM workspace_breakdown_daily, bounds
        WHERE workspace_id = for_workspace
          AND day >= (ceil_day AT TIME ZONE 'UTC')::date AND day < (floor_day AT TIME ZONE 'UTC')::date
        UNION ALL
        SELECT dimension, value, hits, bots FROM workspace_breakdown_hourly, bounds
        WHERE workspace_id = for_workspace
          AND hour >= range_from AND hour < least(range_to, ceil_day)
        UNION ALL
        SELECT dimension, value, hits, bots FROM workspace_breakdown_hourly, bounds
        WHERE workspace_id = for_workspace
          AND hour >= greatest(range_from, floor_day) AND hour < range_to
    ), ranked AS (
        SELECT dimension, value, sum(hits + CASE WHEN with_bots THEN bots ELSE 0 END)::int8 AS count,
               row_number() OVER (PARTITION BY dimension
                                  ORDER BY sum(hits + CASE WHEN with_bots THEN bots ELSE 0 END) DESC, value) AS rank
        FROM parts GROUP BY dimension, value
    )
    SELECT dimension, value, count FROM ranked
    WHERE rank <= top_n AND count > 0
    ORDER BY dimension, rank;
END
$$;
