-- 0005 audit chain (sqlite): the head of the hash chain, entry signatures, and the
-- server's public keys.

-- The chain's head: the last sequence number handed out and its hash. Every
-- append takes it with an UPDATE (a row lock on PostgreSQL; SQLite has one
-- writer), so sequence numbers are dense and each entry commits to the previous
-- entry's hash even under concurrent writers.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The server's ed25519 signature over (seq, hash), hex; NULL for entries written
-- without the key (offline tools). Entries written before this migration are
-- sealed into the chain by the server at start-up.
ALTER TABLE audit_events ADD COLUMN sig TEXT;

-- Public keys the server has signed with (hex), for offline verification.
CREATE TABLE server_keys (
    public_key  TEXT    PRIMARY KEY,
    created_at  INTEGER  NOT NULL
);
