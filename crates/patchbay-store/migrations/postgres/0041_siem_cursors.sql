-- 0041 SIEM cursors (issue 15): each SIEM sink's position in the audit log
-- (the last audit sequence number written to its receiver), so a restart
-- resumes where the last run stopped.
CREATE TABLE siem_cursors (
    name       TEXT   PRIMARY KEY,
    after_seq  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
