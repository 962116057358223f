-- What the firewall service last wrote to each target (a deployment's DBaaS allow-list, each role's
-- firewall rules), so that a target found otherwise on the next run is known to have been changed behind
-- our back (and put back, with an event saying so) rather than merely out of date. Versions start at 400
-- (the provisioner's are 1xx, the dns service's 3xx) so that services sharing one database never collide.
CREATE TABLE firewall_applied (
    deployment TEXT NOT NULL,
    target     TEXT NOT NULL,
    entries    TEXT NOT NULL,
    applied_ms BIGINT NOT NULL,
    PRIMARY KEY (deployment, target)
);
