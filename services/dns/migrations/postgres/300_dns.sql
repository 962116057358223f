-- The dns service's record of the records it owns, for providers that keep no mark on a record (and, beside
-- the mark, on Cloudflare). A row is written before the record is created (record_id unknown), so that a
-- crash between the provider's answer and our record is recognised: a record of that name and address is
-- then known to be ours, and bound to the row on the next run. Versions start at 300 (the provisioner's
-- are 1xx) so that services sharing one database never collide.
CREATE TABLE dns_owned (
    provider   TEXT NOT NULL,
    zone       TEXT NOT NULL,
    name       TEXT NOT NULL,
    content    TEXT NOT NULL,
    owner      TEXT NOT NULL,
    record_id  TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (provider, zone, name, content, owner)
);

-- The region whose authenticator each deployment's authenticator name points at, when it is not the
-- primary's (after a fail-over, by command or by health).
CREATE TABLE dns_authenticator (
    deployment TEXT PRIMARY KEY,
    region     TEXT NOT NULL,
    cause      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    since_ms   BIGINT NOT NULL
);
