-- The catalog on PostgreSQL: the same tables, columns, states and running totals
-- as SQLite's migrations 0001-0007 (migrations/*.sql) at the time this was
-- written, in one step, since no PostgreSQL catalog existed before it. The
-- catalog's statements are the same on both (Sources/SpoolStore/SQLCatalog.swift);
-- what differs is only how each engine spells a table: types, identity columns,
-- trigger functions, and three functions that SQLite has built in (instr, glob,
-- and lower as SQLite's works: ascii_lower).
-- Numbers are BIGINT and times TEXT (UTC ISO 8601, milliseconds), as on SQLite,
-- so the two compare and sort alike.

-- One row per upload. `rowid` is the order rows arrived in: it breaks ties
-- between uploads created in the same millisecond, as SQLite's rowid does.
CREATE TABLE uploads (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    size           BIGINT NOT NULL CHECK (size >= 0),
    received       BIGINT NOT NULL DEFAULT 0 CHECK (received >= 0),
    sha256         TEXT NOT NULL,
    client_ip      TEXT NOT NULL,
    client_port    BIGINT NOT NULL,
    state          TEXT NOT NULL,
    error          TEXT,
    worker_pid     BIGINT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    finished_at    TEXT,
    token          TEXT,
    tus_metadata   TEXT,
    length_deferred BIGINT NOT NULL DEFAULT 0,
    rowid          BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX uploads_by_state ON uploads (state);
CREATE INDEX uploads_by_sha256 ON uploads (sha256);
CREATE INDEX uploads_by_created ON uploads (created_at, rowid);
CREATE INDEX uploads_by_token ON uploads (token, state);

-- The append-only history. Write transactions take one advisory lock (the
-- catalog's engine), so events commit in `seq` order, as SQLite's single writer
-- makes them: the hook dispatcher's cursor can never pass one committed later.
CREATE TABLE events (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    client    TEXT,
    detail    TEXT
);
CREATE INDEX events_by_upload ON events (upload_id, seq);
CREATE INDEX events_by_time ON events (at);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END $$;
CREATE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON events
FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TABLE tokens (
    name        TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    admin       BIGINT NOT NULL DEFAULT 0,
    quota_bytes BIGINT,
    quota_files BIGINT,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Running totals (SQLite's 0004 and 0005 say why), kept by one trigger function.
CREATE TABLE reserved_bytes (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    total BIGINT NOT NULL
);
INSERT INTO reserved_bytes (id, total) VALUES (1, 0);

CREATE TABLE token_usage (
    token TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL,
    files BIGINT NOT NULL
);

CREATE FUNCTION uploads_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF OLD.state IN ('receiving', 'interrupted') THEN
            UPDATE reserved_bytes SET total = total - (OLD.size - OLD.received) WHERE id = 1;
        END IF;
        IF OLD.token IS NOT NULL AND OLD.state IN ('complete', 'receiving', 'interrupted') THEN
            UPDATE token_usage SET bytes = bytes - OLD.size, files = files - 1 WHERE token = OLD.token;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF NEW.state IN ('receiving', 'interrupted') THEN
            UPDATE reserved_bytes SET total = total + (NEW.size - NEW.received) WHERE id = 1;
        END IF;
        IF NEW.token IS NOT NULL AND NEW.state IN ('complete', 'receiving', 'interrupted') THEN
            INSERT INTO token_usage AS u (token, bytes, files) VALUES (NEW.token, NEW.size, 1)
            ON CONFLICT (token) DO UPDATE SET bytes = u.bytes + excluded.bytes, files = u.files + 1;
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER uploads_totals AFTER INSERT OR UPDATE OF state, size, received, token OR DELETE ON uploads
FOR EACH ROW EXECUTE FUNCTION uploads_totals();

-- The hook dispatcher's place in the event log, and failed deliveries (SQLite's 0007).
CREATE TABLE hook_cursor (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    seq        BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE hook_failures (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    hook    TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    outcome TEXT NOT NULL
);

-- SQLite's built-ins the catalog's statements use.
-- instr(haystack, needle): the 1-based position of needle, 0 when absent.
CREATE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS BIGINT LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT strpos(haystack, needle) $$;
-- ascii_lower(text): SQLite's lower, which changes A-Z only (PostgreSQL's own
-- follows the database's locale, and would make find match more than on SQLite).
CREATE FUNCTION ascii_lower(value TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT lower(value COLLATE "C") $$;
-- glob(pattern, value): SQLite's GLOB, case-sensitive: * any run, ? one character,
-- [...] a set ([^...] its complement); everything else stands for itself.
CREATE FUNCTION glob(pattern TEXT, value TEXT) RETURNS BOOLEAN LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    regex TEXT := '^';
    i INT := 1;
    n INT := length(pattern);
    c TEXT;
    close_at INT;
BEGIN
    WHILE i <= n LOOP
        c := substr(pattern, i, 1);
        IF c = '*' THEN
            regex := regex || '.*';
        ELSIF c = '?' THEN
            regex := regex || '.';
        ELSIF c = '[' THEN
            -- A ] right after [ or [^ belongs to the set.
            close_at := strpos(substr(pattern, i + 2 + (CASE WHEN substr(pattern, i + 1, 1) = '^' THEN 1 ELSE 0 END)), ']');
            IF close_at = 0 THEN
                regex := regex || '\[';
            ELSE
                close_at := i + 1 + (CASE WHEN substr(pattern, i + 1, 1) = '^' THEN 1 ELSE 0 END) + close_at;
                regex := regex || '[' || replace(replace(substr(pattern, i + 1, close_at - i - 1), '\', '\\'), '[', '\[') || ']';
                i := close_at;
            END IF;
        ELSE
            regex := regex || regexp_replace(c, '([.^$|()\[\]{}*+?\\])', '\\\1');
        END IF;
        i := i + 1;
    END LOOP;
    RETURN value ~ (regex || '$');
END $$;
