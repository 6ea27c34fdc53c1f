-- 0009 enrolment approvals (sqlite): an operator's one-shot, time-limited
-- permission for the next agent enrolment to take over an asset that already
-- has an agent, or to adopt an imported (agentless) asset by host name.
CREATE TABLE enrollment_approvals (
    id           INTEGER PRIMARY KEY,
    asset_id     INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    approved_by  TEXT    NOT NULL,
    approved_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    note         TEXT    NOT NULL DEFAULT '',
    used_at      INTEGER
);
CREATE INDEX enrollment_approvals_open ON enrollment_approvals (asset_id) WHERE used_at IS NULL;
