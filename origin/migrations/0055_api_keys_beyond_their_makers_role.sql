-- 0051 traced the keys made by keys before 0048 to the people behind them, and revoked those
-- of people no longer members. It left the live ones of people still members whose role was
-- lowered before it ran: the demotion had revoked only the keys they made themselves, not
-- what those had made. So an editor could hold a live `workspace:admin` key, and with it make
-- themselves admin again. Every live key whose person's role may not do what it may (an
-- editor's with `workspace:admin`; a viewer's with `links:write` or `workspace:admin`) is
-- revoked here with everything made from it, each with an audit entry, as the demotion does
-- now (`members::revoke_beyond`). Keys made since 0048 never match: a demotion revokes them.
WITH RECURSIVE beyond (id) AS (
    SELECT k.id FROM api_keys k
    JOIN workspace_members w ON w.workspace_id = k.workspace_id AND w.user_id = k.created_by
    WHERE k.revoked_at IS NULL
      AND ((w.role = 'editor' AND k.scopes && '{workspace:admin}'::text[])
        OR (w.role = 'viewer' AND k.scopes && '{links:write,workspace:admin}'::text[]))
    UNION
    SELECT k.id FROM api_keys k JOIN beyond ON k.made_by_key = beyond.id
), revoked AS (
    UPDATE api_keys SET revoked_at = now()
    WHERE id IN (SELECT id FROM beyond) AND revoked_at IS NULL
    RETURNING id, workspace_id, name, prefix, scopes, created_by, created_at, expires_at,
              last_used_at
)
INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                       target_kind, target_id, before, after)
SELECT r.workspace_id, 'operator', 0,
       'upgrade (keys beyond their maker''s role, traced before 0048)', 'key.revoked', 'key',
       r.id,
       jsonb_build_object('id', r.id, 'name', r.name, 'prefix', r.prefix, 'scopes', r.scopes,
                          'created_by', u.username, 'created_at', r.created_at,
                          'expires_at', r.expires_at, 'last_used_at', r.last_used_at),
       NULL
FROM revoked r LEFT JOIN admin_users u ON u.id = r.created_by;
