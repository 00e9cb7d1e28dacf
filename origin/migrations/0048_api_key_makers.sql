-- A key can make keys (POST /api/v1/keys with `workspace:admin`). Such a key was stored with
-- no maker at all (`created_by` NULL), so removing or lowering the person behind the key that
-- made it (`keys::revoke_made_by`, by `created_by`) did not reach it, nor did revoking that
-- key: a removed admin could keep the workspace through a key made by their own key. From
-- now on a key made by a key carries the person behind its maker in `created_by` (on whose
-- authority it was made) and its maker in `made_by_key`, and revoking a key revokes the keys
-- made from it, to any depth. Keys made so before this migration have no known maker.
ALTER TABLE api_keys ADD COLUMN made_by_key BIGINT REFERENCES api_keys (id) ON DELETE SET NULL;
CREATE INDEX api_keys_made_by_key ON api_keys (made_by_key) WHERE made_by_key IS NOT NULL;
