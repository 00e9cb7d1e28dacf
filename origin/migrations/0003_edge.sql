-- The edge contract: the outbox that keeps the edge's KV current, and replay protection for
-- signed edge requests. (Click events are in 0004_analytics.sql.)

-- The transactional outbox: every link change writes a row here in the same transaction,
-- and a background task delivers the code's current state to the edge (POST /_edge/sync),
-- deleting the rows only once the edge has accepted them. A row only names the code: the
-- state sent is read at delivery, so several changes to one code collapse into one write.
CREATE TABLE edge_outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code       TEXT COLLATE "C" NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Signatures of signed edge requests already accepted. A signature covers its timestamp, so
-- it is unique per request: seeing one again within the signature window is a replay.
-- Rows older than the window are deleted by the origin.
CREATE TABLE edge_request_nonces (
    signature TEXT PRIMARY KEY,
    seen_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
