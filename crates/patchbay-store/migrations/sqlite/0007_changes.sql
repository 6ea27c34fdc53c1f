-- 0007 change records (sqlite): one CHG-<nnnn> per deployment, and the
-- lessons-learned log. Scope, risk, windows, back-out plan, approvals and
-- outcome are computed from the deployment when read.
CREATE TABLE change_records (
    id          TEXT    PRIMARY KEY,
    deployment  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER  NOT NULL,
    created_by  TEXT    NOT NULL
);

CREATE TABLE lessons (
    id         INTEGER PRIMARY KEY,
    change_id  TEXT    NOT NULL REFERENCES change_records(id),
    text       TEXT    NOT NULL,
    author     TEXT    NOT NULL,
    at         INTEGER  NOT NULL
);
CREATE INDEX lessons_change ON lessons (change_id);
