-- Sign-in attempts, counted in PostgreSQL so every origin instance sees the same counts.
--
-- One row per (scope, key, window): `scope` is 'pair' (source IP and username: strict),
-- 'ip' (source IP across usernames: stops username spraying) or 'user' (username across IPs:
-- loose). An attempt is counted BEFORE its password is hashed, by one conditional upsert per
-- scope in one transaction, so parallel guesses all count and none slips past the limit.
-- Unknown usernames are counted exactly like known ones.
CREATE TABLE sign_in_attempts (
    scope        TEXT NOT NULL CHECK (scope IN ('pair', 'ip', 'user')),
    -- SHA-256 of the IP (an IPv6 address by its /64) and/or the username, so names typed into
    -- the form (a password in the wrong field) are not kept in clear.
    key          BYTEA NOT NULL,
    -- Start of the fixed window the attempts fall into (`date_bin` of the database's clock,
    -- the same for every instance).
    window_start TIMESTAMPTZ NOT NULL,
    attempts     INT NOT NULL,
    PRIMARY KEY (scope, key, window_start)
);
-- Rows of past windows are deleted every minute: the table holds at most one window's worth.
CREATE INDEX sign_in_attempts_window ON sign_in_attempts (window_start);

-- Where each user signed in successfully lately. A sign-in from such an address is not held to
-- the per-user limit, so strangers who use it up from elsewhere cannot lock the real user out
-- of the places they usually sign in from (the strict per-pair limit still applies there).
CREATE TABLE sign_in_known_addresses (
    user_id         BIGINT NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    -- SHA-256 of the IP (an IPv6 address by its /64), as in sign_in_attempts.
    address         BYTEA NOT NULL,
    last_success_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, address)
);
CREATE INDEX sign_in_known_addresses_age ON sign_in_known_addresses (last_success_at);

-- admin_users.failed_signins and last_failed_at (0005) are no longer read or written: the
-- counts above replace them. They are left in place so instances of the previous release keep
-- working during a rolling upgrade.
