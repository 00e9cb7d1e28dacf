-- Every link belongs to a workspace and is served on a domain (0012_workspaces.sql). A
-- constant default is stored once in the catalogue, not written into every row, and the
-- foreign keys are added unchecked: this holds `links`' exclusive lock for a moment only,
-- however many links there are. They are checked in the next migration, which does not block
-- reads or writes. The API always names the workspace; the defaults are for rows written
-- around it (operators' SQL).
ALTER TABLE links
    ADD COLUMN workspace_id BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN domain_id BIGINT NOT NULL DEFAULT 1,
    ADD CONSTRAINT links_workspace FOREIGN KEY (workspace_id) REFERENCES workspaces (id) NOT VALID,
    ADD CONSTRAINT links_domain FOREIGN KEY (domain_id) REFERENCES domains (id) NOT VALID;
