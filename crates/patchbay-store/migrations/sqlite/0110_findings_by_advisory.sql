-- 0110 open findings by advisory (issue 17's page benchmark): triage of one
-- CVE reads only the open findings of the advisories naming it, not every
-- open finding of the fleet.
CREATE INDEX findings_open_advisory ON findings (advisory_id) WHERE resolved_at IS NULL;
