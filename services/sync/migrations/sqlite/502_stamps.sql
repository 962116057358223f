-- For each side of a replicated pair, the id of the bucket's stamp (the sync service's KV bucket
-- `flotilla_sync_stamps`) at which the recorded base is exactly what the side holds; NULL when it is not
-- (something failed, was held back or kept under a new name). A pass that finds the stamp unchanged uses
-- the base as that side's manifest instead of listing it.
ALTER TABLE sync_base ADD COLUMN stamp_a TEXT;
ALTER TABLE sync_base ADD COLUMN stamp_b TEXT;
