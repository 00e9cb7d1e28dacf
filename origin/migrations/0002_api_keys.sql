-- API keys for scripts: `Authorization: Bearer <key>` on every /api/v1 route.
CREATE TABLE api_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What the key is for, chosen by whoever created it.
    name       TEXT NOT NULL,
    -- SHA-256 of the key, never the key. Keys are 192 random bits, so a fast hash is safe (there
    -- is no small space to search, unlike passwords) and a lookup is one index probe.
    key_hash   BYTEA NOT NULL UNIQUE,
    -- The first characters of the key, so a person can tell keys apart without seeing them.
    prefix     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
