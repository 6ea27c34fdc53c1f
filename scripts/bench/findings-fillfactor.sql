-- The findings table's fill factor on PostgreSQL (migration 0135): the same
-- mass resolve and reopen on a copy of the findings' shape at the default fill
-- (100) and at 80, timed by psql, then how many updates were HOT. The baseline
-- (f100) runs in the same session. Run:
--   scripts/with-postgres bash -c 'psql "$PATCHBAY_TEST_PG_URL" -q -f scripts/bench/findings-fillfactor.sql'
-- docs/benchmarks.md (mass flips) has the figures.
\timing on
CREATE TABLE f100 (id bigserial PRIMARY KEY, asset_id bigint, advisory_id text, package text,
    arch text, source_package text, installed_version text, fixed_version text,
    first_seen bigint, last_seen bigint, resolved_at bigint,
    UNIQUE (asset_id, advisory_id, package, arch));
CREATE INDEX f100_pkg ON f100 (asset_id, package, arch);
CREATE INDEX f100_adv ON f100 (advisory_id);
CREATE TABLE f80 (LIKE f100 INCLUDING ALL) WITH (fillfactor = 80);
-- 300 assets × 5,000 findings; 2,500 of each asset's are of one package.
INSERT INTO f100 (asset_id, advisory_id, package, arch, source_package, installed_version,
    fixed_version, first_seen, last_seen)
  SELECT a, 'DEBIAN-CVE-2024-' || i,
         CASE WHEN i % 2 = 0 THEN 'linux-libc-dev' ELSE 'pkg' || (i % 700) END,
         'amd64', 'linux', '6.1.187-1', '6.1.190-1', 1, 1
  FROM generate_series(1, 300) a, generate_series(1, 5000) i;
INSERT INTO f80 SELECT * FROM f100;
VACUUM ANALYZE f100;
VACUUM ANALYZE f80;
-- Each statement its own transaction, as a check-in's is; f100 then f80.
UPDATE f100 SET resolved_at = 5 WHERE asset_id = 150 AND package = 'linux-libc-dev' AND resolved_at IS NULL;
UPDATE f80  SET resolved_at = 5 WHERE asset_id = 150 AND package = 'linux-libc-dev' AND resolved_at IS NULL;
UPDATE f100 SET resolved_at = NULL WHERE asset_id = 150 AND package = 'linux-libc-dev';
UPDATE f80  SET resolved_at = NULL WHERE asset_id = 150 AND package = 'linux-libc-dev';
UPDATE f100 SET resolved_at = 6 WHERE asset_id = 151 AND package = 'linux-libc-dev' AND resolved_at IS NULL;
UPDATE f80  SET resolved_at = 6 WHERE asset_id = 151 AND package = 'linux-libc-dev' AND resolved_at IS NULL;
\timing off
SELECT pg_stat_force_next_flush();
SELECT relname, n_tup_upd AS updates, n_tup_hot_upd AS hot_updates,
       pg_size_pretty(pg_relation_size(relid)) AS size
  FROM pg_stat_user_tables WHERE relname IN ('f100', 'f80') ORDER BY relname;
