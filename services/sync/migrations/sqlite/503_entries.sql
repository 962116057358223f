-- Bases kept per key, so that a pass reads and writes them a page at a time (memory flat whatever the
-- number of objects) and writes only the keys whose base changed. One row per replicated pair (with the
-- stamps its base is exact at), one row per key of its base (each side's entry, NULL where the side had
-- none). Keys are compared byte by byte, the order of S3 listings. `sync_base` rows (one JSON manifest per
-- side) are converted on first read.
CREATE TABLE sync_pair (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL,
    bucket     TEXT NOT NULL,
    side_a     TEXT NOT NULL,
    side_b     TEXT NOT NULL,
    stamp_a    TEXT,
    stamp_b    TEXT,
    passed_ms  BIGINT NOT NULL,
    -- Whether a pass ever listed every key: until then the base is no base (a first pass merges).
    complete   BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (deployment, bucket, side_a, side_b)
);
CREATE TABLE sync_entry (
    pair_id       BIGINT NOT NULL REFERENCES sync_pair (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    a_size        BIGINT,
    a_modified_ns BIGINT,
    a_checksum    TEXT,
    b_size        BIGINT,
    b_modified_ns BIGINT,
    b_checksum    TEXT,
    PRIMARY KEY (pair_id, key)
);
