-- 0008 findings writes (sqlite): drop the partial index of open findings. The
-- unique index (asset_id, advisory_id, package, arch) already serves every
-- per-asset lookup, and the partial index made each resolve or reopen an extra
-- index write.
DROP INDEX findings_open;
