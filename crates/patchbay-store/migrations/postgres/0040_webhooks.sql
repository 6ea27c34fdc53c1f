-- 0040 webhooks: subscriptions and their deliveries (issue 15).
-- A subscription keeps a cursor into the events outbox: fanning out moves it
-- and inserts one delivery row per matching event in the same transaction, so
-- each event becomes exactly one delivery per subscriber. The secret is kept
-- as is (the server must compute the HMAC with it; docs/webhooks.md says why
-- it is not hashed).
CREATE TABLE webhook_subscriptions (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    url          TEXT    NOT NULL,
    template     TEXT    NOT NULL,
    filter       TEXT    NOT NULL,
    options      TEXT    NOT NULL,
    secret       TEXT    NOT NULL,
    max_attempts INTEGER NOT NULL,
    cursor       BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    created_by   TEXT    NOT NULL
);
-- state: pending (due at next_at), delivered (a 2xx), dead (attempts ran
-- out; replayable), skipped (the template carries no such event).
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    subscription_id BIGINT  NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    event_id        BIGINT  NOT NULL,
    delivery_id     TEXT    NOT NULL UNIQUE,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_at         BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    last_at         BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (subscription_id, state, next_at);
