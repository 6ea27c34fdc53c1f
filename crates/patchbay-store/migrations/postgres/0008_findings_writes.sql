-- 0008 findings writes (postgres): drop the partial index of open findings (the
-- unique index (asset_id, advisory_id, package, arch) serves every per-asset
-- lookup) so that resolving or reopening a finding - which changes only
-- unindexed columns - can be a HOT update, and leave room on each page for
-- those new row versions.
DROP INDEX findings_open;
ALTER TABLE findings SET (fillfactor = 80);
