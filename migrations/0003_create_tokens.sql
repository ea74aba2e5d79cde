-- Upload tokens. Only a SHA-256 of each secret is kept; the secret itself is
-- shown once, when the token is created. A revoked token stays, for the record.
CREATE TABLE tokens (
    name        TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,        -- SHA-256 of the secret, lowercase hex
    admin       INTEGER NOT NULL DEFAULT 0,  -- 1: sees every upload, not only its own
    quota_bytes INTEGER,                     -- NULL: no limit
    quota_files INTEGER,                     -- NULL: no limit
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Which token uploaded each upload (NULL: anonymous).
ALTER TABLE uploads ADD COLUMN token TEXT;
CREATE INDEX uploads_by_token ON uploads (token, state);
