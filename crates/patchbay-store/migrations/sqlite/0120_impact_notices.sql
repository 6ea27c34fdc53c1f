-- 0120 impact notices (issue 18, item 8; ADR 0021): the expected-impact
-- notice before a deployment's window and the summary after it, raised once
-- per deployment, owner and kind (`notice`, `summary`). The insert that
-- succeeds raises the event (`deployment.impact_notice` /
-- `deployment.impact_summary`) in the same transaction; a restarted or
-- second replica finds the row and raises nothing.
CREATE TABLE impact_notices (
    deployment TEXT   NOT NULL,
    owner      TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    contact    TEXT   NOT NULL,
    assets     TEXT   NOT NULL,
    PRIMARY KEY (deployment, owner, kind)
);
