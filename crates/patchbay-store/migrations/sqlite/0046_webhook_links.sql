-- 0046 webhook links (issue 15): the id a ticketing system gave the record a
-- subscription created for a deployment (the Jira issue key, the ServiceNow
-- change's sys_id), so later events of that deployment comment on / update
-- and close the same record. One per (subscription, deployment).
CREATE TABLE webhook_links (
    subscription_id BIGINT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    deployment      TEXT   NOT NULL,
    external_id     TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, deployment)
);
