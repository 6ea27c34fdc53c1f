-- 0065 CVSS and severity enrichment (issue 16, item 7; ADR 0013).
--
-- An advisory's distribution severity (Debian urgency, Ubuntu priority, Red
-- Hat severity) and whose it is, read from the OSV record; used by the risk
-- model when no CVSS score is known.
ALTER TABLE advisories ADD COLUMN severity TEXT;
ALTER TABLE advisories ADD COLUMN severity_source TEXT;

-- CVSS scores per CVE with their source, imported from NVD API 2.0 and CVE
-- JSON 5 records (`patchbay feeds import`, kind `cvss`). An import replaces
-- every stored score of the CVEs it carries, so a score withdrawn upstream
-- goes away. The score is the one computed from the vector.
CREATE TABLE cvss_scores (
    cve          TEXT    NOT NULL,
    source_kind  TEXT    NOT NULL,          -- nvd | cna | adp | other
    source       TEXT    NOT NULL,          -- nvd@nist.gov, the CNA, CISA-ADP, …
    version      TEXT    NOT NULL,          -- 2.0 | 3.0 | 3.1 | 4.0
    vector       TEXT    NOT NULL,
    base_score   REAL NOT NULL,
    modified     TEXT    NOT NULL DEFAULT '', -- the record's lastModified / dateUpdated
    PRIMARY KEY (cve, source_kind, source, version)
);
