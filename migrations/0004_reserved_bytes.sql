-- The bytes that uploads in progress may still write (size - received of every
-- `receiving` or `interrupted` upload), kept as a running total by triggers, so
-- that admitting an upload reads one row instead of summing them all: the sum
-- cost 0.11 ms per upload with 1,000 interrupted uploads and 1.1 ms with 10,000.
CREATE TABLE reserved_bytes (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    total INTEGER NOT NULL
);
INSERT INTO reserved_bytes (id, total)
SELECT 1, coalesce(sum(size - received), 0) FROM uploads WHERE state IN ('receiving', 'interrupted');

CREATE TRIGGER reserved_on_insert AFTER INSERT ON uploads
WHEN new.state IN ('receiving', 'interrupted')
BEGIN
    UPDATE reserved_bytes SET total = total + (new.size - new.received) WHERE id = 1;
END;

CREATE TRIGGER reserved_on_update AFTER UPDATE OF state, size, received ON uploads
WHEN old.state IN ('receiving', 'interrupted') OR new.state IN ('receiving', 'interrupted')
BEGIN
    UPDATE reserved_bytes
    SET total = total
        - (CASE WHEN old.state IN ('receiving', 'interrupted') THEN old.size - old.received ELSE 0 END)
        + (CASE WHEN new.state IN ('receiving', 'interrupted') THEN new.size - new.received ELSE 0 END)
    WHERE id = 1;
END;

CREATE TRIGGER reserved_on_delete AFTER DELETE ON uploads
WHEN old.state IN ('receiving', 'interrupted')
BEGIN
    UPDATE reserved_bytes SET total = total - (old.size - old.received) WHERE id = 1;
END;
