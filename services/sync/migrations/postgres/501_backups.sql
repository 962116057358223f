-- Webroot backups: one row per archive (bucket `<site>-<period>`, its SHA-256 and size), and one per copy
-- on a datastore endpoint. A copy not written yet is the durable retry queue: it is tried again until it
-- succeeds, from the local archive or from an endpoint that has it.
CREATE TABLE sync_backup (
    deployment TEXT NOT NULL,
    id         TEXT NOT NULL,
    period     TEXT NOT NULL,
    region     TEXT NOT NULL,
    bucket     TEXT NOT NULL,
    key        TEXT NOT NULL,
    taken_ms   BIGINT NOT NULL,
    checksum   TEXT NOT NULL,
    size       BIGINT NOT NULL,
    PRIMARY KEY (deployment, id)
);
CREATE TABLE sync_backup_copy (
    deployment TEXT NOT NULL,
    id         TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    written    BOOLEAN NOT NULL,
    error      TEXT,
    PRIMARY KEY (deployment, id, endpoint)
);
