-- Abuse protection: the destination blocklist, and reports of links by visitors.
--
-- Neither table references `links` by a foreign key: adding one would take a lock on `links`
-- that waits behind its writers and holds up redirects behind it. Link rows are never
-- removed (soft-deleted), so an id stays meaningful without it.

-- Domains (blocking their subdomains too) and URL patterns, normalised by
-- `shortlink::abuse::BlockRule`. Checked on every link create and edit (domains by the unique
-- index below, patterns all read: their number is capped), and swept over existing links when
-- added: `swept_to` is the highest link id checked so far, so a sweep that stopped (the
-- origin restarted) continues where it was, on any instance.
CREATE TABLE abuse_blocklist (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule           TEXT COLLATE "C" NOT NULL UNIQUE CHECK (length(rule) BETWEEN 1 AND 500),
    kind           TEXT NOT NULL CHECK (kind IN ('domain', 'pattern')),
    reason         TEXT NOT NULL CHECK (length(reason) <= 2000),
    -- Who added it, as the audit log names them.
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    links_disabled BIGINT NOT NULL DEFAULT 0,
    swept_to       BIGINT NOT NULL DEFAULT 0,
    sweep_done     BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX abuse_blocklist_patterns ON abuse_blocklist (id) WHERE kind = 'pattern';
CREATE INDEX abuse_blocklist_sweeping ON abuse_blocklist (id) WHERE NOT sweep_done;

-- What visitors reported at /report. The reporter's address is kept only as an HMAC under a
-- subkey of the code key (`reporter`), to count their reports per hour across instances;
-- never the address itself. Open reports are capped (`abuse::reports::MAX_OPEN`), so strangers
-- cannot grow this table without an admin resolving what they sent.
CREATE TABLE abuse_reports (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reported    TEXT NOT NULL CHECK (length(reported) BETWEEN 1 AND 300),
    -- The live link the report named when it came, if any.
    link_id     BIGINT,
    code        TEXT,
    category    TEXT NOT NULL
                CHECK (category IN ('phishing', 'malware', 'spam', 'illegal', 'other')),
    details     TEXT NOT NULL CHECK (length(details) <= 2000),
    contact     TEXT CHECK (length(contact) <= 254),
    reporter    BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at TIMESTAMPTZ,
    resolved_by TEXT
);
CREATE INDEX abuse_reports_open ON abuse_reports (id) WHERE resolved_at IS NULL;
CREATE INDEX abuse_reports_resolved ON abuse_reports (id) WHERE resolved_at IS NOT NULL;
CREATE INDEX abuse_reports_reporter ON abuse_reports (reporter, created_at);

-- `report` is now a reserved word (the form is at /report, in any case as codes are
-- compared with reserved words). A live link with that code could no longer be read as a
-- link (its code breaks the rules), and its address now shows the form: it is deleted
-- (soft: the row stays) with an audit entry in its workspace. Found by the live-code index,
-- each of the 64 spellings, so this reads no other row.
WITH deleted AS (
    UPDATE links SET deleted_at = now(), updated_at = now()
    WHERE domain_id = 1 AND deleted_at IS NULL AND code = ANY (ARRAY(
        SELECT string_agg(
                   CASE WHEN (n >> (i - 1)) & 1 = 1 THEN upper(substr('report', i, 1))
                        ELSE substr('report', i, 1) END,
                   '' ORDER BY i)
        FROM generate_series(0, 63) AS n, generate_series(1, 6) AS i
        GROUP BY n))
    RETURNING id, workspace_id, code, destination
)
INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_name, action,
                       target_kind, target_id, before, after)
SELECT workspace_id, 'operator', 0, 'upgrade (the code "report" became reserved)',
       'link.deleted', 'link', id,
       jsonb_build_object('code', code, 'destination', destination), NULL
FROM deleted;
