-- 0011 events: the outbox of domain events. Every audited state change writes
-- its event here in the same transaction (App::change), so an event exists
-- exactly when its change committed; integrations read it from here.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    version   INTEGER NOT NULL,
    actor     TEXT   NOT NULL,
    subject   TEXT   NOT NULL,
    payload   TEXT   NOT NULL,
    audit_seq BIGINT NOT NULL
);
