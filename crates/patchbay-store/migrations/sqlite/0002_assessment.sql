-- 0002 assessment (SQLite): advisory feeds, KEV, EPSS, findings with their lifecycle.

-- One row per imported source (file or directory); a re-import updates it.
CREATE TABLE feeds (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,          -- osv | kev | epss
    source       TEXT    NOT NULL,          -- the path given to `feeds import`
    version      TEXT    NOT NULL DEFAULT '', -- KEV catalogVersion, EPSS score date, OSV newest modified
    records      INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    imported_at  INTEGER NOT NULL,
    imported_by  TEXT    NOT NULL DEFAULT '',
    UNIQUE (kind, source)
);

CREATE TABLE advisories (
    id           TEXT    PRIMARY KEY,
    summary      TEXT    NOT NULL DEFAULT '',
    cves         TEXT    NOT NULL DEFAULT '[]',
    cvss_score   REAL,
    cvss_vector  TEXT,
    published    INTEGER,
    modified     INTEGER,
    affected     TEXT    NOT NULL DEFAULT '[]',  -- [{ecosystem, package, ranges, versions}]
    ecosystems   TEXT    NOT NULL DEFAULT ''     -- space-separated, for listing
);

CREATE TABLE kev (
    cve              TEXT    PRIMARY KEY,
    vendor           TEXT    NOT NULL DEFAULT '',
    product          TEXT    NOT NULL DEFAULT '',
    name             TEXT    NOT NULL DEFAULT '',
    date_added       TEXT    NOT NULL,          -- YYYY-MM-DD
    due_date         TEXT    NOT NULL,          -- YYYY-MM-DD
    ransomware       BOOLEAN NOT NULL DEFAULT FALSE,
    catalog_version  TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE epss (
    cve         TEXT PRIMARY KEY,
    epss        REAL NOT NULL,
    percentile  REAL NOT NULL,
    score_date  TEXT NOT NULL DEFAULT ''
);

-- A finding: asset × advisory × installed package. Never deleted: resolved_at
-- closes it (the basis of time-to-patch), a later match reopens it.
CREATE TABLE findings (
    id                 INTEGER PRIMARY KEY,
    asset_id           INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    advisory_id        TEXT    NOT NULL,
    package            TEXT    NOT NULL,
    arch               TEXT    NOT NULL,
    source_package     TEXT    NOT NULL,
    installed_version  TEXT    NOT NULL,
    fixed_version      TEXT,
    first_seen         INTEGER NOT NULL,
    last_seen          INTEGER NOT NULL,
    resolved_at        INTEGER,
    UNIQUE (asset_id, advisory_id, package, arch)
);
CREATE INDEX findings_open ON findings (asset_id) WHERE resolved_at IS NULL;
