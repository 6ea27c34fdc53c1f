-- 0020 API token expiry and scopes: an optional expiry (milliseconds since the
-- epoch; NULL: never) and an optional restriction below the role
-- (comma-separated scope names; NULL: everything the role permits).
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN scopes TEXT;
