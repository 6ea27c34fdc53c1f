-- 0070 discovery (issue 19): machines seen by network scans, DHCP leases,
-- cloud inventories and the agents' neighbour tables.
-- An import replaces the observations of its source (a re-scan is
-- idempotent); the import rows stay as the history. An observation's body
-- is the JSON of patchbay_core::discovery::Observation.
CREATE TABLE discovery_imports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    external     BOOLEAN NOT NULL DEFAULT FALSE,
    imported_at  BIGINT  NOT NULL,
    imported_by  TEXT    NOT NULL,
    observations BIGINT  NOT NULL
);
CREATE INDEX discovery_imports_source ON discovery_imports (source, id);
CREATE TABLE discovery_observations (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    import_id BIGINT  NOT NULL REFERENCES discovery_imports(id) ON DELETE CASCADE,
    source    TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    seen_at   BIGINT  NOT NULL,
    body      TEXT    NOT NULL
);
CREATE INDEX discovery_observations_source ON discovery_observations (source);
-- The last time any discovery source matched an asset (ghost detection).
CREATE TABLE discovery_sightings (
    asset_id BIGINT NOT NULL PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
    seen_at  BIGINT NOT NULL,
    source   TEXT   NOT NULL,
    rule     TEXT   NOT NULL
);
-- Shadow candidates an operator dismissed, by their stable key.
CREATE TABLE discovery_dismissals (
    key          TEXT   NOT NULL PRIMARY KEY,
    reason       TEXT   NOT NULL,
    dismissed_by TEXT   NOT NULL,
    dismissed_at BIGINT NOT NULL
);
-- Identifiers of an asset beyond its agent's facts: an adopted shadow's
-- MACs, addresses and cloud instance id. kind: mac, ip or cloud.
CREATE TABLE asset_identifiers (
    asset_id    BIGINT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    kind        TEXT   NOT NULL,
    value       TEXT   NOT NULL,
    source      TEXT   NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (asset_id, kind, value)
);
