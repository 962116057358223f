-- Where each region's apply stands, and the VPC it found or created.
ALTER TABLE regions ADD COLUMN status TEXT NOT NULL DEFAULT 'applying';
ALTER TABLE regions ADD COLUMN detail TEXT;
ALTER TABLE regions ADD COLUMN vpc_id TEXT;
ALTER TABLE regions ADD COLUMN subnet_id TEXT;
ALTER TABLE regions ADD COLUMN vpc_created BIGINT NOT NULL DEFAULT 0;
-- The image its machines are built from (from the deployment's build OS), for changes made without a spec.
ALTER TABLE regions ADD COLUMN image TEXT NOT NULL DEFAULT '';

-- The managed database of a deployment's primary region. A row is written before the create call
-- (state 'create-pending', id unknown) so that a crash between the call and the answer is recognised:
-- the cluster is then found by its name and known to be ours.
CREATE TABLE dbaas (
    deployment TEXT NOT NULL,
    region     TEXT NOT NULL,
    provider   TEXT NOT NULL,
    id         TEXT,
    name       TEXT NOT NULL,
    engine     TEXT NOT NULL,
    state      TEXT NOT NULL,
    host       TEXT,
    port       BIGINT,
    created    BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (deployment, region)
);

-- Machine-level commands already applied to a region's wanted counts (a redelivery changes nothing).
CREATE TABLE region_changes (
    command_id TEXT PRIMARY KEY,
    deployment TEXT NOT NULL,
    region     TEXT NOT NULL,
    applied_ms BIGINT NOT NULL
);
