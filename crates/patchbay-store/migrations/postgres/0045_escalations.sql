-- 0045 notifications: contacts (email recipients) with their outbox cursor and
-- email deliveries, escalation chains and running escalations (issue 15).
-- A contact, like a webhook subscription, keeps a cursor into the events
-- outbox: fanning out moves it and inserts one email delivery per matching
-- event in the same transaction, so each event is emailed exactly once per
-- recipient across restarts. A chain keeps its own cursor too: the events
-- that start (approval.requested, sla.*) or close (an approval decided) its
-- escalations are read once.
CREATE TABLE contacts (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    email      TEXT    NOT NULL,
    events     TEXT    NOT NULL,
    cursor     BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    created_by TEXT    NOT NULL
);
-- state: pending (due at next_at), sent (the SMTP server accepted it), dead
-- (attempts ran out).
CREATE TABLE email_deliveries (
    id           BIGSERIAL PRIMARY KEY,
    contact_id   BIGINT  NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    event_id     BIGINT  NOT NULL,
    message_id   TEXT    NOT NULL UNIQUE,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    next_at      BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    last_at      BIGINT,
    last_error   TEXT,
    delivered_at BIGINT,
    UNIQUE (contact_id, event_id)
);
CREATE INDEX email_deliveries_due ON email_deliveries (state, next_at);
CREATE TABLE escalation_chains (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    trigger_on TEXT    NOT NULL,
    steps      TEXT    NOT NULL,
    cursor     BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    created_by TEXT    NOT NULL
);
-- state: open (steps firing), acknowledged, resolved (the approval was
-- decided), exhausted (every step fired, nobody acknowledged).
-- history: JSON list of the fired steps {step, channel, to, due_at, at}.
CREATE TABLE escalations (
    id         BIGSERIAL PRIMARY KEY,
    chain_id   BIGINT  NOT NULL REFERENCES escalation_chains(id) ON DELETE CASCADE,
    event_id   BIGINT  NOT NULL,
    subject    TEXT    NOT NULL,
    summary    TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    started_at BIGINT  NOT NULL,
    fired      INTEGER NOT NULL,
    next_at    BIGINT,
    history    TEXT    NOT NULL,
    closed_at  BIGINT,
    closed_by  TEXT,
    comment    TEXT,
    UNIQUE (chain_id, event_id)
);
CREATE INDEX escalations_open ON escalations (state, next_at);
-- Things raised once: an SLA state of a finding (sla.at_risk, sla.breached),
-- a week's exception review. The insert that succeeds raises the event.
CREATE TABLE notices (
    subject TEXT NOT NULL,
    state   TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (subject, state)
);
