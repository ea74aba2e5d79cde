-- An append-only history of what happened to each upload: who did it and from
-- where. Rows are never updated or deleted (the triggers refuse it), so the log
-- outlives the uploads it describes.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,                -- UTC ISO 8601, milliseconds
    upload_id TEXT NOT NULL,
    kind      TEXT NOT NULL,                -- created, resumed, completed, failed, interrupted, expired, deleted, lost, repaired
    actor     TEXT NOT NULL,                -- worker:<pid>, master:<pid>, admin:<user>
    client    TEXT,                         -- client address, when a client caused it
    detail    TEXT
);

CREATE INDEX events_by_upload ON events (upload_id, seq);
CREATE INDEX events_by_time ON events (at);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
