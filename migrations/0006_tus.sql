-- tus (docs/HTTP.md): the Upload-Metadata header a creation sent, returned as
-- it came on every HEAD; and whether the upload's length is still to be
-- declared by a later PATCH (creation-defer-length). Until then its size is
-- what has been reserved so far, as for a chunked HTTP body.
ALTER TABLE uploads ADD COLUMN tus_metadata TEXT;
ALTER TABLE uploads ADD COLUMN length_deferred INTEGER NOT NULL DEFAULT 0;
