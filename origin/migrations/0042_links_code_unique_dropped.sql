-- no-transaction
-- A live code's uniqueness is `link_codes`' key since 0037; the index on `links` that held it
-- goes (it could not exist on `links` distributed by workspace). A link's code is still found
-- in its workspace by `links_live_workspace_code`, and across rows by `links_code`.
DROP INDEX CONCURRENTLY IF EXISTS links_live_domain_code
