-- The base of each replicated bucket: each side's manifest at the end of the last fully successful pass
-- (JSON: key → size, modification time, checksum), by deployment, bucket and the two sides' endpoints. A
-- pass plans against it and replaces it only when every action succeeded. Versions start at 500 (the
-- provisioner's are 1xx, the dns service's 3xx, the firewall service's 4xx).
CREATE TABLE sync_base (
    deployment TEXT NOT NULL,
    bucket     TEXT NOT NULL,
    side_a     TEXT NOT NULL,
    side_b     TEXT NOT NULL,
    manifest_a TEXT NOT NULL,
    manifest_b TEXT NOT NULL,
    passed_ms  BIGINT NOT NULL,
    PRIMARY KEY (deployment, bucket, side_a, side_b)
);
