-- Every change of a link tells every origin at once, so each drops its cached copy within a
-- moment instead of serving it until the cache TTL (origin/src/invalidation.rs LISTENs).
--
-- A trigger rather than a NOTIFY in the application: every writer (the API, a migration, an
-- operator's psql) notifies, and the notification is sent at commit, only if the change
-- commits. The payload is the code; a transaction that changes the same code twice notifies
-- once (PostgreSQL folds identical notifications of one transaction).
CREATE FUNCTION links_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('kurz_links', OLD.code);
    END IF;
    -- An update may have changed the code: the new one is stale too (a cached "no such code").
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.code IS DISTINCT FROM OLD.code) THEN
        PERFORM pg_notify('kurz_links', NEW.code);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER links_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION links_notify_change();

-- TRUNCATE has no rows to name: '*' tells every origin to drop its whole cache.
CREATE FUNCTION links_notify_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kurz_links', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER links_notify_truncate
    AFTER TRUNCATE ON links
    FOR EACH STATEMENT EXECUTE FUNCTION links_notify_truncate();

-- Clicks of the origin's own redirects that PostgreSQL refused one by one (a value it rejects,
-- a constraint): parked here, so that one bad event neither blocks the events behind it nor
-- disappears unseen. `event` is the click as JSON (the ingest format); `json`, not `jsonb`,
-- because jsonb refuses a \u0000 escape, one of the values that gets an event refused.
CREATE TABLE clicks_parked (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- PostgreSQL's error for the event, for the operator who decides what to do with it.
    error     TEXT NOT NULL,
    event     JSON NOT NULL
);
