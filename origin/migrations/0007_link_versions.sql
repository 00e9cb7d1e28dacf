-- Link versions: every change of a link, its soft delete included, gives the row a new number
-- from one sequence, so any two states of a code compare. The edge keeps the higher of the
-- record (or tombstone) it holds and one being written, which makes late writes harmless:
-- a slow sync or a miss fill that read the link before a change cannot undo it in KV.
--
-- One sequence for all links rather than a counter per link: a code freed by a delete and
-- taken by a new link keeps growing, so the new link's record beats the old one's tombstone.

CREATE SEQUENCE link_version_seq AS BIGINT;

-- The volatile default numbers the existing rows as the column is added (one table rewrite);
-- it is dropped again because the trigger below sets the version on every write.
ALTER TABLE links ADD COLUMN version BIGINT NOT NULL DEFAULT nextval('link_version_seq');
ALTER TABLE links ALTER COLUMN version DROP DEFAULT;

-- A trigger rather than a rule for each query to remember: no writer (the API, a script, an
-- operator's psql) can change a link without a new version, nor choose one. On UPDATE it
-- runs after the row lock is taken, so changes of one row get versions in commit order.
-- (An INSERT takes its version before it waits for a concurrent delete of the code's old
-- link, so a new link can end up below that delete's tombstone: delivery to the edge checks
-- for that and re-versions the new link; see origin/src/outbox.rs.)
CREATE FUNCTION links_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := nextval('link_version_seq');
    RETURN NEW;
END
$$;

CREATE TRIGGER links_version BEFORE INSERT OR UPDATE ON links
    FOR EACH ROW EXECUTE FUNCTION links_next_version();

-- Delivery looks up every row of a code (live and deleted) to find the version of a delete.
-- The live-code index covers only live rows.
CREATE INDEX links_code ON links (code);

-- Outbox rows of codes the edge refused for good, each time it was sent alone (a 4xx such as
-- 400 or 413, which no retry can change): moved here by delivery so that they no longer
-- hold up the changes behind them, and logged. Once the cause is fixed (usually a worker
-- older than this origin) an operator sends them again with
--   WITH parked AS (DELETE FROM edge_outbox_dead RETURNING code)
--   INSERT INTO edge_outbox (code) SELECT code FROM parked;
CREATE TABLE edge_outbox_dead (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code      TEXT COLLATE "C" NOT NULL,
    -- What the edge answered.
    error     TEXT NOT NULL,
    parked_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
