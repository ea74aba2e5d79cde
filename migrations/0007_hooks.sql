-- The hook dispatcher's place in the event log (docs/HOOKS.md): every event up
-- to and including `seq` has been delivered to its hook, or had none. One row,
-- written by the dispatcher when it first runs (at the end of the log then, so
-- turning hooks on does not deliver the whole history) and after each delivery;
-- `spoold admin hooks --replay-from` moves it back.
CREATE TABLE hook_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

-- Deliveries that failed and were tried again: what `spoold admin hooks` shows.
-- Only the most recent are kept (the dispatcher trims the rest).
CREATE TABLE hook_failures (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    seq     INTEGER NOT NULL,               -- the event
    hook    TEXT NOT NULL,                  -- post-finish, post-fail, post-expire, post-delete
    attempt INTEGER NOT NULL,               -- 1 for the first try
    outcome TEXT NOT NULL                   -- exit 3: <its first line of stderr>, timed out after 60s, cannot run: …
);
