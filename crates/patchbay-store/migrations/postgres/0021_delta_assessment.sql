-- 0021 delta assessment (PostgreSQL): what a feed import changed, and the
-- indexes that find the hosts and findings it touches without scanning the fleet.

-- (ecosystem, package, advisory) entries an import changed, waiting for
-- `App::assess_pending` to re-match them on the hosts that have the package
-- (only those advisories: the others' findings cannot have changed). Written in
-- the import's transaction, deleted (up to the highest id read) once they are
-- re-assessed: a crash in between re-assesses them again, never loses them.
CREATE TABLE assess_pending (
    id         BIGSERIAL PRIMARY KEY,
    ecosystem  TEXT      NOT NULL,
    package    TEXT      NOT NULL,
    advisory   TEXT      NOT NULL
);

-- The hosts that have a package, by binary name and by source name (advisories
-- of Debian and Ubuntu name source packages, the others binary ones).
CREATE INDEX asset_packages_name ON asset_packages (name);
CREATE INDEX asset_packages_source ON asset_packages (source) WHERE source IS NOT NULL;

-- The findings of one (asset, package, arch): the unique index starts with
-- (asset_id, advisory_id), so without this a per-package lookup scans all the
-- asset's findings. Its columns never change on a resolve or reopen, so those
-- stay HOT updates.
CREATE INDEX findings_package ON findings (asset_id, package, arch);
