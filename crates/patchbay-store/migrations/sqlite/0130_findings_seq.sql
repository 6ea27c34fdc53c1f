-- 0130 findings change sequence (issue 14, item 6; ADR 0023): every statement
-- that inserts, refreshes or resolves findings stamps the rows it touches with
-- a new value of the one counter row (`UPDATE findings_seq SET n = n + 1
-- RETURNING n`, in the writer's transaction), so the in-process ranked
-- projection of open findings reads only the rows changed since it last looked
-- (`findings_changed_since`, served by `findings_seq_idx`). Rows written before
-- this migration carry 0 and are read by the projection's first build.
CREATE TABLE findings_seq (
    one  INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
    n    BIGINT  NOT NULL
);
INSERT INTO findings_seq (one, n) VALUES (1, 0);
ALTER TABLE findings ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX findings_seq_idx ON findings (seq);
