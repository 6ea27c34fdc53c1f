-- 0004 schedule (sqlite): maintenance windows, blackouts (change freezes) and the
-- approvals that let an out-of-band deployment enter a blackout.

-- A recurring maintenance window: an RFC 5545 RRULE from a local DTSTART in an
-- IANA zone, lasting duration_s seconds, shifted by offset_days, with no new job
-- in the last cutoff_s seconds. Assigned to groups and/or assets (JSON lists).
CREATE TABLE windows (
    name         TEXT    PRIMARY KEY,
    rrule        TEXT    NOT NULL,
    dtstart      TEXT    NOT NULL,
    tz           TEXT    NOT NULL,
    duration_s   INTEGER  NOT NULL,
    offset_days  INTEGER  NOT NULL DEFAULT 0,
    cutoff_s     INTEGER  NOT NULL DEFAULT 0,
    groups       TEXT    NOT NULL DEFAULT '[]',
    assets       TEXT    NOT NULL DEFAULT '[]',
    description  TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER  NOT NULL,
    created_by   TEXT    NOT NULL
);

-- A change freeze over [starts_at, ends_at). No groups and no assets = everything.
CREATE TABLE blackouts (
    name         TEXT    PRIMARY KEY,
    starts_at    INTEGER  NOT NULL,
    ends_at      INTEGER  NOT NULL,
    reason       TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    groups       TEXT    NOT NULL DEFAULT '[]',
    assets       TEXT    NOT NULL DEFAULT '[]',
    created_at   INTEGER  NOT NULL,
    created_by   TEXT    NOT NULL,
    CHECK (ends_at > starts_at)
);

-- An approver's permission for one out-of-band deployment to enter one blackout.
CREATE TABLE blackout_approvals (
    blackout     TEXT    NOT NULL REFERENCES blackouts(name) ON DELETE CASCADE,
    deployment   TEXT    NOT NULL,
    approver     TEXT    NOT NULL,
    note         TEXT    NOT NULL DEFAULT '',
    approved_at  INTEGER  NOT NULL,
    PRIMARY KEY (blackout, deployment)
);
