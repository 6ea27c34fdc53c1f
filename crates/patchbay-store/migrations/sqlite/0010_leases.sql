-- 0010 leases: leader leases for background duties. One row per lease name;
-- a replica holds it until expires_at (milliseconds since the epoch) and
-- renews it while alive, so each duty runs on exactly one replica.
CREATE TABLE leases (
    name        TEXT   PRIMARY KEY,
    holder      TEXT   NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
