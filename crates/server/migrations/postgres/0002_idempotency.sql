-- Idempotency keys: recorded in the transaction that commits the records,
-- so a retried request is answered with the first response.
CREATE TABLE idempotency_keys (
    tenant      TEXT NOT NULL,
    topic_id    UUID NOT NULL,
    idem_key    TEXT NOT NULL,
    -- SHA-256 of what the request sent; the same key with another body is refused.
    fingerprint TEXT NOT NULL,
    -- The first answer: [[partition, offset], ...] per record.
    response    TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, topic_id, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
