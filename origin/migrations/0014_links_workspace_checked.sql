-- Checks the foreign keys of 0013 against every link. VALIDATE takes a lock that lets reads
-- and writes of `links` go on while it scans.
ALTER TABLE links VALIDATE CONSTRAINT links_workspace;
ALTER TABLE links VALIDATE CONSTRAINT links_domain;
