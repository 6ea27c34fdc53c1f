-- 0135 findings change stamps per asset (issue 14, items 5 and 6; ADR 0023):
-- 0130 stamped every finding a write touched with the change sequence, in an
-- indexed column (findings.seq), so every resolve and reopen also rewrote an
-- entry of findings_seq_idx — and on PostgreSQL was never a HOT update (a
-- kernel upgrade flipping 4,000 findings wrote 4,000 new entries into each of
-- the table's indexes). Now a findings write stamps the *assets* whose findings
-- it changed, one row each here, with a new value of the same counter
-- (findings_seq, unchanged); the ranked projection re-reads the open findings
-- of the assets stamped since it last looked. A flip then changes no indexed
-- column of findings.
CREATE TABLE findings_asset_seq (
    asset_id  BIGINT NOT NULL PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL
);
INSERT INTO findings_asset_seq (asset_id, seq)
    SELECT asset_id, MAX(seq) FROM findings GROUP BY asset_id;
CREATE INDEX findings_asset_seq_seq ON findings_asset_seq (seq);
DROP INDEX findings_seq_idx;
ALTER TABLE findings DROP COLUMN seq;
-- A flip is now a HOT update when the row's page has room for its new version:
-- leave a fifth of each page free (new pages only; existing pages keep their
-- fill until the table is rewritten, e.g. by VACUUM FULL). Measured on 2,500
-- rows of one asset: a resolve 30–34 ms at the default fill, 16–21 ms at 80.
ALTER TABLE findings SET (fillfactor = 80);
