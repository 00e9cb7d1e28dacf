-- `Idempotency-Key` on link creation (#14): the first answer to a create, kept for a day, so
-- that the same request sent again (a client that lost the answer) gets that answer instead of
-- a second link.
--
-- A row is written in the transaction that creates the link, and only then: a create that fails
-- leaves nothing, and a retry of it is a new attempt. Two requests with the same key at once
-- meet on the primary key: the second waits for the first's transaction, then finds its answer.
--
-- `actor` is who sent it ('key:<id>' or 'user:<id>'): one caller's keys never answer another's.
-- `fingerprint` is an HMAC of the request body under a deployment secret (the body may hold a
-- link's password: a plain hash of it could be guessed offline).
CREATE TABLE idempotency_keys (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    actor TEXT NOT NULL,
    key TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint BYTEA NOT NULL,
    -- The link as first answered (201, its Location made from its code). Written by the
    -- transaction that claims the key, so no other ever sees it NULL.
    response JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, actor, key)
);

-- The hourly clean-up deletes by age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
