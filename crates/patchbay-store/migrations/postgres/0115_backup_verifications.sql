-- 0115 backup verifications (issue 18, item 6; ADR 0020): per deployment, the
-- hosts sampled to verify the snapshot their apply took, the verify_snapshot
-- job asked of each (`key`), and its verdict when the agent reported.
CREATE TABLE backup_verifications (
    job_key      TEXT   PRIMARY KEY,
    deployment   TEXT   NOT NULL,
    ring         TEXT   NOT NULL,
    host         TEXT   NOT NULL,
    snapshot     TEXT   NOT NULL,
    requested_at BIGINT NOT NULL,
    verdict      TEXT   NOT NULL,
    excerpt      TEXT   NOT NULL,
    result_at    BIGINT
);
CREATE INDEX backup_verifications_by_deployment ON backup_verifications (deployment);
CREATE INDEX backup_verifications_by_time ON backup_verifications (requested_at);
