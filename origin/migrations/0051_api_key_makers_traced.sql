-- Keys made by keys before 0048 were stored with no maker at all (`created_by` and
-- `made_by_key` NULL), so no revocation of the key that made them, nor of the person behind
-- it, reached them: a removed admin could keep the workspace through one. Their makers are
-- traced here from the audit log (a key's `key.created` entry names the key that made it), the
-- person behind each chain is carried down it, and the live keys so traced whose person is no
-- longer a member of the workspace are revoked with everything made from them, each with an
-- audit entry, as the person's removal would have. A traced key whose maker was revoked stays:
-- revoking a key did not revoke what it made then, and keys were rotated so (the first start's
-- key making a script's, then revoked). A key whose entry is gone (past the audit retention),
-- or whose chain starts at an operator's key, stays as it is: nobody is behind it to check.
UPDATE api_keys k SET made_by_key = a.actor_id
FROM audit_log a
WHERE k.created_by IS NULL AND k.made_by_key IS NULL
  AND a.workspace_id = k.workspace_id AND a.target_kind = 'key' AND a.target_id = k.id
  AND a.action = 'key.created' AND a.actor_kind = 'key'
  AND EXISTS (SELECT 1 FROM api_keys m
              WHERE m.id = a.actor_id AND m.workspace_id = k.workspace_id AND m.id < k.id);

CREATE TEMPORARY TABLE traced ON COMMIT DROP AS
WITH RECURSIVE chain (id, created_by) AS (
    SELECT id, created_by FROM api_keys WHERE created_by IS NOT NULL
    UNION ALL
    SELECT k.id, chain.created_by FROM api_keys k JOIN chain ON k.made_by_key = chain.id
    WHERE k.created_by IS NULL
)
SELECT id, created_by FROM chain
WHERE id IN (SELECT id FROM api_keys WHERE created_by IS NULL);

UPDATE api_keys k SET created_by = traced.created_by FROM traced WHERE k.id = traced.id;

WITH RECURSIVE gone (id) AS (
    SELECT k.id FROM api_keys k JOIN traced ON traced.id = k.id
    WHERE k.revoked_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM workspace_members w
                      WHERE w.workspace_id = k.workspace_id AND w.user_id = k.created_by)
    UNION
    SELECT k.id FROM api_keys k JOIN gone ON k.made_by_key = gone.id
), revoked AS (
    UPDATE api_keys SET revoked_at = now()
    WHERE id IN (SELECT id FROM gone) AND revoked_at IS NULL
    RETURNING id, workspace_id, name, prefix, scopes, created_by, created_at, expires_at,
              last_used_at
)
INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                       target_kind, target_id, before, after)
SELECT r.workspace_id, 'operator', 0,
       'upgrade (keys made by keys before 0048, traced to their makers)', 'key.revoked', 'key',
       r.id,
       jsonb_build_object('id', r.id, 'name', r.name, 'prefix', r.prefix, 'scopes', r.scopes,
                          'created_by', u.username, 'created_at', r.created_at,
                          'expires_at', r.expires_at, 'last_used_at', r.last_used_at),
       NULL
FROM revoked r LEFT JOIN admin_users u ON u.id = r.created_by;
