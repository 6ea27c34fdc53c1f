-- 0076 VEX (issue 20): an exception's kind — `deferred` (the risk is
-- accepted for a while; every exception before this) or `not_affected` (a
-- VEX statement: the finding does not apply, with a justification label) —
-- and its origin: empty for an operator's, `csaf:<tracking id>` for one a
-- CSAF document's `known_not_affected` statement created.
ALTER TABLE exceptions ADD COLUMN kind TEXT NOT NULL DEFAULT 'deferred';
ALTER TABLE exceptions ADD COLUMN justification TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN origin TEXT NOT NULL DEFAULT '';
