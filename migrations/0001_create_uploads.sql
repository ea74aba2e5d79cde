-- One row per upload. The bytes live in the spool directory under a name the
-- server controls (objects/ab/cd/<sha256>), never under the client's name.
-- state is one of: receiving, complete, failed, interrupted (enforced in code so
-- that later migrations can add states without rebuilding the table).
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,                       -- ULID chosen by the server
    name        TEXT NOT NULL,                          -- the client's label, UTF-8
    size        INTEGER NOT NULL CHECK (size >= 0),     -- declared size in bytes
    received    INTEGER NOT NULL DEFAULT 0 CHECK (received >= 0),
    sha256      TEXT NOT NULL,                          -- declared SHA-256, lowercase hex
    client_ip   TEXT NOT NULL,
    client_port INTEGER NOT NULL,
    state       TEXT NOT NULL,
    error       TEXT,                                   -- why it failed or was interrupted
    worker_pid  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,                          -- UTC ISO 8601, milliseconds
    updated_at  TEXT NOT NULL,
    finished_at TEXT                                    -- when it became complete or failed
);

CREATE INDEX uploads_by_state ON uploads (state);
CREATE INDEX uploads_by_sha256 ON uploads (sha256);
CREATE INDEX uploads_by_created ON uploads (created_at);
