-- 0006 exceptions (postgres): the exception register.

-- A deferred finding or patch: what (advisory and/or package; '' = any) and
-- where (one asset or one policy group), with owner, reason, compensating
-- control and approver. In force from created_at until expires_at or
-- revoked_at. expired_noted_at is set when the expiry event was raised.
CREATE TABLE exceptions (
    id                    TEXT    PRIMARY KEY,
    advisory              TEXT    NOT NULL DEFAULT '',
    package               TEXT    NOT NULL DEFAULT '',
    asset                 TEXT    NOT NULL DEFAULT '',
    group_name            TEXT    NOT NULL DEFAULT '',
    owner                 TEXT    NOT NULL,
    reason                TEXT    NOT NULL,
    compensating_control  TEXT    NOT NULL,
    approver              TEXT    NOT NULL,
    created_at            BIGINT  NOT NULL,
    created_by            TEXT    NOT NULL,
    expires_at            BIGINT  NOT NULL,
    revoked_at            BIGINT,
    revoked_by            TEXT,
    revoke_reason         TEXT,
    expired_noted_at      BIGINT,
    CHECK (expires_at > created_at),
    CHECK ((asset = '') <> (group_name = '')),
    CHECK (advisory <> '' OR package <> '')
);
