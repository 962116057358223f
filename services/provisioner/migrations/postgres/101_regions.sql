-- The last spec applied to each region (JSON), so that a destroy knows the provider account and the
-- provider region of what it removes.
CREATE TABLE regions (
    deployment TEXT NOT NULL,
    region     TEXT NOT NULL,
    spec       TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (deployment, region)
);
