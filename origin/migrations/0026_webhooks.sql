-- Webhooks: the endpoints a workspace subscribes to events, and the messages for them.
--
-- A message is written in the transaction of the change it announces (a transactional
-- outbox), one row per subscribed endpoint, and delivered after the commit with retries;
-- its `message_id` is the `webhook-id` header on every attempt, so a receiver can drop
-- repeats. Messages of one link go to one endpoint in order (`link_id`).

CREATE TABLE webhook_endpoints (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id    BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url             TEXT NOT NULL CHECK (length(url) <= 2048),
    description     TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- link.created, link.updated, link.deleted, link.clicked, link.limit_reached
    events          TEXT[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 10),
    -- The signing secret (`whsec_` + base64), shown once. Kept as is: signing needs it.
    secret          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL DEFAULT true,
    -- Why kurz switched the endpoint off (a 410, or failing for a day); NULL when a person did.
    disabled_reason TEXT,
    disabled_at     TIMESTAMPTZ,
    -- The first failed attempt since the last success: an endpoint failing for 24 h is disabled.
    failing_since   TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    -- When the clicks of its workspace were last batched into `link.clicked` messages (for it
    -- or, over its backlog, not): a workspace's clicks are batched once per few seconds.
    clicks_batched_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id);

-- Whether an endpoint gets messages of `event`: the one definition every statement uses
-- (inlined by the planner, so it costs what the expression costs).
CREATE FUNCTION webhook_wants(enabled BOOLEAN, events TEXT[], event TEXT) RETURNS BOOLEAN
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT enabled AND event = ANY(events) $$;

-- A message's id (`webhook-id`): `msg_` + a random part (32 hex characters drawn per message)
-- + the endpoint's id in hex, so one draw makes an id unique per endpoint.
CREATE FUNCTION webhook_message_id(base TEXT, endpoint BIGINT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 'msg_' || base || to_hex(endpoint) $$;

CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- `webhook-id`: the same on every attempt and on a redelivery, for deduplication.
    message_id      TEXT NOT NULL UNIQUE,
    endpoint_id     BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    -- Messages about one link are delivered in order; NULL (a test event, a batch of clicks
    -- of several links) is ordered on its own.
    link_id         BIGINT,
    -- The body sent: {"type", "timestamp", "data"} as Standard Webhooks suggests.
    payload         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- An origin working on it until then (several origins share the deliveries).
    locked_until    TIMESTAMPTZ,
    last_status     SMALLINT,
    last_error      TEXT,
    last_attempt_at TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_link_order ON webhook_deliveries (endpoint_id, link_id, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id DESC);
-- The hourly retention deletes delivered and failed messages by age: without this, a scan.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at)
    WHERE state <> 'pending';

-- Every attempt of a delivery: the endpoint's log.
CREATE TABLE webhook_attempts (
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The receiver's answer; NULL when none came (timeout, connection refused).
    status      SMALLINT,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Clicks waiting to go out as `link.clicked`, written with the click (in the transaction that
-- stores it) for workspaces with such an endpoint, and taken in batches into deliveries. What
-- the message shows is copied here, so batching reads no partition of `clicks`.
CREATE TABLE webhook_clicks_pending (
    workspace_id  BIGINT NOT NULL,
    click_id      TEXT NOT NULL,
    link_id       BIGINT NOT NULL,
    code          TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    country       TEXT,
    referrer_host TEXT NOT NULL,
    device        TEXT NOT NULL,
    browser       TEXT NOT NULL,
    os            TEXT NOT NULL,
    variant       SMALLINT,
    qr            BOOLEAN NOT NULL,
    bot           BOOLEAN NOT NULL
);
CREATE INDEX webhook_clicks_pending_workspace ON webhook_clicks_pending (workspace_id, at);
