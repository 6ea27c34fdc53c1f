-- 0125 findings flips (issue 14, deliverable 5): the findings of an advisory
-- through a plain index on advisory_id instead of 0110's partial one
-- (WHERE resolved_at IS NULL). A partial index whose predicate names
-- resolved_at is maintained on every resolve and reopen — an index entry
-- deleted or inserted per flipped finding on SQLite, and on PostgreSQL no
-- HOT update at all (a column of an index predicate counts as indexed), so a
-- kernel upgrade that flips 4,000 findings wrote 4,000 new entries into each
-- of the table's four indexes. The plain index serves triage of one CVE the
-- same way; it also reads that advisory's resolved findings, which the query
-- filters out.
DROP INDEX findings_open_advisory;
CREATE INDEX findings_advisory ON findings (advisory_id);
