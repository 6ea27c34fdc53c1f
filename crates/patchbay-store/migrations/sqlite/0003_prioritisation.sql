-- 0003 prioritisation (SQLite): applied policies, out-of-band events, proposed deployments.

-- Every applied policy version; the newest row is in force. Never updated.
CREATE TABLE policies (
    id           INTEGER PRIMARY KEY,
    fingerprint  TEXT    NOT NULL,
    text         TEXT    NOT NULL,
    applied_by   TEXT    NOT NULL,
    applied_at   INTEGER NOT NULL,
    effect       TEXT    NOT NULL DEFAULT '{}'
);

-- Zero-day lane: a feed import that created or raised findings to P0.
CREATE TABLE oob_events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    cves        TEXT    NOT NULL DEFAULT '[]',
    findings    INTEGER NOT NULL DEFAULT 0,
    deployment  TEXT
);

-- Deployments: proposed here; executed by the rollout engine (a later migration
-- adds rings and jobs).
CREATE TABLE deployments (
    id          TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,          -- oob | baseline
    status      TEXT    NOT NULL,          -- proposed | ...
    reason      TEXT    NOT NULL DEFAULT '',
    patches     TEXT    NOT NULL DEFAULT '[]',
    assets      TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL
);
