-- Every machine the provisioner has created or is creating. A row is written *before* the cloud is asked
-- to create the machine (state 'create-pending', with our resource id, which the machine carries as a tag),
-- so that after a crash the machine is looked up by that tag instead of being created twice.
CREATE TABLE machines (
    resource_id  TEXT    NOT NULL PRIMARY KEY,
    deployment   TEXT    NOT NULL,
    region       TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    size         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    provider     TEXT    NOT NULL,
    provider_id  TEXT,
    state        TEXT    NOT NULL,
    public_ipv4  TEXT,
    private_ipv4 TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);
CREATE INDEX machines_region ON machines (deployment, region);
