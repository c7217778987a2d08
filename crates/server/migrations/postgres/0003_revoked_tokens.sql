-- Revoked tokens: refused by every agent until they would have expired.
CREATE TABLE revoked_tokens (
    tenant     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    -- ms since the epoch; the row can go once the token has expired anyway.
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, jti)
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
