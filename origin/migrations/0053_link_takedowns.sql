-- Links taken down by the resolution of an abuse report: such a link stays disabled, without
-- a fallback, and is not deleted, whatever its workspace sends, until the operator lifts the
-- takedown (`DELETE /api/v1/abuse/reports/{id}/takedown`, `abuse/takedown.rs`). Before it, a
-- phishing link's owner could enable it again with one PATCH. A table of its own, not a column
-- of `links`: marking a link or lifting the mark changes nothing the link shows, so it must
-- not give the link a new version (its ETag, its edge record). The retention of resolved
-- reports keeps a report while it holds a link down (`report_id`'s index).
CREATE TABLE link_takedowns (
    workspace_id BIGINT NOT NULL,
    link_id      BIGINT NOT NULL,
    report_id    BIGINT NOT NULL,
    taken_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, link_id),
    FOREIGN KEY (workspace_id, link_id) REFERENCES links (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX link_takedowns_report ON link_takedowns (report_id);
