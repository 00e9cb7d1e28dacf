-- The routing table: which link a live code names (docs/scaling.md, "Distributing on Citus").
-- A code is unique per domain across all workspaces, so this key cannot contain the workspace;
-- until now it was a unique index on `links`, which keeps `links` from being distributed by
-- workspace. Here it is a table of its own, keyed by `(domain_id, code)` (distributed by
-- `code` on Citus); `links` loses that unique index in 0042 and is keyed by workspace in 0040.
--
-- Only live codes have a row: deleting a link frees its code. The origin writes this table
-- itself in the statements that create and delete links (`links::store`), and its redirects
-- read it first (`find_record`). The triggers below keep it right for every other writer too
-- (an operator's SQL, an origin of the release before during an upgrade): a live link
-- inserted without its row gets it, a taken code is refused with a unique violation, and a
-- link deleted, restored, moved or renamed by hand takes its row along. On Citus, where a
-- trigger cannot write a table of another distribution column, they are dropped and the
-- origin's own writes remain.
CREATE TABLE link_codes (
    domain_id    BIGINT NOT NULL,
    code         TEXT COLLATE "C" NOT NULL,
    workspace_id BIGINT NOT NULL,
    link_id      BIGINT NOT NULL,
    PRIMARY KEY (domain_id, code)
);

-- Nothing writes `links` while the rows are copied (redirects read on). On 1,000,000 links
-- this takes seconds, during which link writes wait.
LOCK TABLE links IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO link_codes (domain_id, code, workspace_id, link_id)
SELECT domain_id, code, workspace_id, id FROM links WHERE deleted_at IS NULL
ORDER BY domain_id, code;

-- Inserted links: each live one without its row (the origin claims codes before it inserts)
-- gets it; a code another live link holds fails the insert.
CREATE FUNCTION links_codes_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_codes (domain_id, code, workspace_id, link_id)
    SELECT n.domain_id, n.code, n.workspace_id, n.id FROM new_links n
    WHERE n.deleted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM link_codes c
                      WHERE c.domain_id = n.domain_id AND c.code = n.code AND c.link_id = n.id)
    ORDER BY n.domain_id, n.code;
    RETURN NULL;
END
$$;

-- Updated or deleted links: the row follows the link's code, domain, workspace and life.
CREATE FUNCTION links_codes_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NULL THEN
        DELETE FROM link_codes
        WHERE domain_id = OLD.domain_id AND code = OLD.code AND link_id = OLD.id;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.deleted_at IS NULL THEN
        INSERT INTO link_codes (domain_id, code, workspace_id, link_id)
        VALUES (NEW.domain_id, NEW.code, NEW.workspace_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER links_codes_claim AFTER INSERT ON links
    REFERENCING NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION links_codes_claim();
CREATE TRIGGER links_codes_follow AFTER UPDATE OF domain_id, code, workspace_id, deleted_at
    ON links FOR EACH ROW
    WHEN ((OLD.domain_id, OLD.code, OLD.workspace_id, OLD.deleted_at IS NULL)
          IS DISTINCT FROM (NEW.domain_id, NEW.code, NEW.workspace_id, NEW.deleted_at IS NULL))
    EXECUTE FUNCTION links_codes_follow();
CREATE TRIGGER links_codes_delete AFTER DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION links_codes_follow();

ANALYZE link_codes;
