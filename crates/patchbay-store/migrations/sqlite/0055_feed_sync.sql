-- 0055 feed sync (issue 16): the state of each configured feed source the
-- feed-sync duty fetches — the validators of its last good copy (ETag,
-- Last-Modified, SHA-256), when it was last attempted and with what result,
-- and when the server last held the source's current data (the freshness
-- the metrics and `feed.stale` are computed from). One row per source name.
CREATE TABLE feed_sync (
    name             TEXT   PRIMARY KEY,
    kind             TEXT   NOT NULL,
    origin           TEXT   NOT NULL,
    etag             TEXT,
    last_modified    TEXT,
    sha256           TEXT,
    first_attempt_at BIGINT NOT NULL,
    last_attempt_at  BIGINT NOT NULL,
    last_result      TEXT   NOT NULL,
    last_error       TEXT,
    last_good_at     BIGINT,
    last_changed_at  BIGINT
);
