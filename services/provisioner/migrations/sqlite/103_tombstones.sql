-- When each region was last destroyed: an apply issued before that (a stale retry delivered late) must not
-- rebuild it.
CREATE TABLE region_tombstones (
    deployment   TEXT NOT NULL,
    region       TEXT NOT NULL,
    destroyed_ms INTEGER NOT NULL,
    PRIMARY KEY (deployment, region)
);
