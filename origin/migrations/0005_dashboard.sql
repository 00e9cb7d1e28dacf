-- People who sign in to the dashboard. Scripts keep using API keys.
CREATE TABLE admin_users (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    -- Argon2id, as a PHC string (algorithm, parameters and salt included).
    password_hash  TEXT NOT NULL,
    -- Failed sign-ins in a row and when the last one was: after a few, sign-ins for this user
    -- must wait, longer after each failure (reset by a success).
    failed_signins INT NOT NULL DEFAULT 0,
    last_failed_at TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A signed-in browser. The cookie holds a random token; only its SHA-256 is stored.
CREATE TABLE admin_sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    -- Sent back by the dashboard in `X-CSRF-Token` on every request that changes something.
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- The dashboard's search matches any part of a code, like destinations (see 0001).
CREATE INDEX links_live_code_trgm ON links USING gin (code gin_trgm_ops) WHERE deleted_at IS NULL;
