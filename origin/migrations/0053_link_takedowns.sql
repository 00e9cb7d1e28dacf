-- The abuse report whose resolution took a link down: the link stays disabled, without a
-- fallback, and is not deleted, whatever its workspace sends, until the operator lifts the
-- takedown (`DELETE /api/v1/abuse/reports/{id}/takedown`). Before it, a phishing link's owner
-- could enable it again with one PATCH. The retention of resolved reports keeps a report
-- while it holds its link down (`abuse/reports.rs`). NULL (every link before it): none.
ALTER TABLE links ADD COLUMN taken_down_by BIGINT;
