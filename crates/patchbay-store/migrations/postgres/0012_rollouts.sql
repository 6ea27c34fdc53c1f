-- 0012 rollouts: the rollout engine's state and the jobs it leases to agents.
-- A rollout's state (patchbay_core::rollout::Rollout as JSON) and the jobs its
-- step produced are written in one transaction before anything is sent, so a
-- crash re-sends and never skips or doubles. One result per job key.
CREATE TABLE rollouts (
    deployment TEXT   PRIMARY KEY,
    state      TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX rollouts_status ON rollouts (status);
CREATE TABLE agent_jobs (
    key          TEXT   PRIMARY KEY,
    deployment   TEXT   NOT NULL,
    asset        TEXT   NOT NULL,
    job          TEXT   NOT NULL,
    leased_at    BIGINT NOT NULL,
    delivered_at BIGINT,
    result       TEXT,
    result_at    BIGINT,
    consumed_at  BIGINT
);
CREATE INDEX agent_jobs_asset ON agent_jobs (asset, result_at);
CREATE INDEX agent_jobs_unconsumed ON agent_jobs (deployment, consumed_at);
