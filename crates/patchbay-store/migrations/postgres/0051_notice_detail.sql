-- 0051 notice detail (issue 15): what a raised notice needs when it ends.
-- An `sla.breached` notice keeps its finding's group and tier, so the
-- `sla.resolved` event written when the breach ends (the finding fixed, an
-- exception granted) carries the same filterable fields and reaches every
-- subscription that got the breach. The index finds the open breaches.
ALTER TABLE notices ADD COLUMN detail TEXT;
CREATE INDEX notices_state ON notices (state);
