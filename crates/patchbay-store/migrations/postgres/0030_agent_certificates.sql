-- 0030 Agent mutual TLS: the client certificate issued to an agent last (the
-- SHA-256 of its DER, hex) and the end of its validity (milliseconds since
-- the epoch). A request of the agent must present that certificate when the
-- server requires agent client certificates; NULL: none issued.
ALTER TABLE agents ADD COLUMN cert_sha256 TEXT;
ALTER TABLE agents ADD COLUMN cert_not_after BIGINT;
