-- Clicks stored but not yet counted into the rollups. Ingest writes two rows here in the
-- same transaction as the raw click: one with its link_id and one with link_id 0, which
-- counts for the whole account. Two counters (one for link_id 0, one for the rest; one of
-- each at a time across origins) move batches of them into the rollups and delete them, in
-- one transaction. So at every moment the rollups plus
-- this table equal a GROUP BY over every raw click ever stored, and no click is counted
-- twice or lost. Concurrent ingests share no rows this way, so they never wait on each other.
--
-- The columns are what the rollups need, so counting reads no partition of `clicks`. No index:
-- rows are appended by ingest and taken by physical position (ctid) by the counter.
CREATE TABLE clicks_pending (
    link_id       BIGINT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    country       TEXT,
    referrer_host TEXT NOT NULL,
    device        TEXT NOT NULL,
    browser       TEXT NOT NULL,
    os            TEXT NOT NULL,
    bot           BOOLEAN NOT NULL,
    qr            BOOLEAN NOT NULL,
    visitor       TEXT
);
