-- 0001 foundation (SQLite). Append-only: never edit a released migration; add a new one.
-- Times are INTEGER milliseconds since the Unix epoch (UTC).

CREATE TABLE assets (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    kind                TEXT    NOT NULL,
    owner               TEXT    NOT NULL DEFAULT '',
    business_impact     TEXT    NOT NULL DEFAULT 'medium',
    exposure            TEXT    NOT NULL DEFAULT 'internal',
    environment         TEXT    NOT NULL DEFAULT '',
    tags                TEXT    NOT NULL DEFAULT '[]',
    has_agent           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    last_seen_at        INTEGER,
    hostname            TEXT    NOT NULL DEFAULT '',
    machine_id          TEXT    NOT NULL DEFAULT '',
    os_id               TEXT    NOT NULL DEFAULT '',
    os_version_id       TEXT    NOT NULL DEFAULT '',
    os_codename         TEXT    NOT NULL DEFAULT '',
    os_pretty_name      TEXT    NOT NULL DEFAULT '',
    os_id_like          TEXT    NOT NULL DEFAULT '',
    kernel              TEXT    NOT NULL DEFAULT '',
    arch                TEXT    NOT NULL DEFAULT '',
    ip_addresses        TEXT    NOT NULL DEFAULT '[]',
    reboot_required     BOOLEAN NOT NULL DEFAULT FALSE,
    services_restart    TEXT    NOT NULL DEFAULT '[]',
    package_format      TEXT,
    inventory_hash      TEXT,
    pending_updates     TEXT    NOT NULL DEFAULT '[]',
    package_count       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX assets_machine_id ON assets (machine_id) WHERE machine_id <> '';

CREATE TABLE asset_packages (
    asset_id        INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    arch            TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    source          TEXT,
    source_version  TEXT,
    PRIMARY KEY (asset_id, name, arch, version)
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE enroll_tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    prefix      TEXT    NOT NULL,
    uses_total  INTEGER NOT NULL,
    uses_left   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE agents (
    id               TEXT    PRIMARY KEY,
    asset_id         INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    secret_hash      TEXT    NOT NULL UNIQUE,
    enroll_token_id  INTEGER REFERENCES enroll_tokens (id),
    enrolled_at      INTEGER NOT NULL,
    last_checkin_at  INTEGER,
    revoked_at       INTEGER
);

-- Audit events. Designed for the hash chain of the evidence issue: `seq` orders the
-- chain, `prev_hash`/`hash` will hold each entry's commitment (NULL until then).
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    detail     TEXT    NOT NULL DEFAULT '{}',
    prev_hash  TEXT,
    hash       TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
