-- 0050 webhook auth headers (issue 15): per-subscription headers carrying a
-- receiver's credential (Jira's `Authorization: Basic …` or a Bearer PAT,
-- ServiceNow's Basic or OAuth bearer), a JSON list of [name, value] pairs.
-- Kept as is, like the signing secret beside it: the server must send them;
-- only their names are ever shown (docs/webhooks.md).
ALTER TABLE webhook_subscriptions ADD COLUMN auth_headers TEXT NOT NULL DEFAULT '[]';
