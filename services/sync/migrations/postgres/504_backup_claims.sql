-- Who builds a backup's archive: the first delivery of its command to claim the id (an insert that only one
-- delivery wins, whichever replica it reaches). A claim older than the staleness window (its builder died)
-- can be taken over. Without it two deliveries at once each built and wrote an archive of their own.
CREATE TABLE sync_backup_claim (
    deployment TEXT NOT NULL,
    id         TEXT NOT NULL,
    claimed_ms BIGINT NOT NULL,
    PRIMARY KEY (deployment, id)
);
