-- The wider network a report came from (an IPv6 address's /48, an IPv4 address's /24), keyed
-- as `reporter` is: one network may hold only so many open reports, so that a /48's 65,536
-- /64s, each within its 5 reports an hour, cannot fill the cap of open reports and shut the
-- form for everyone (`abuse/reports.rs`). Reports from before it have none.
ALTER TABLE abuse_reports ADD COLUMN network BYTEA;
CREATE INDEX abuse_reports_open_network ON abuse_reports (network) WHERE resolved_at IS NULL;
