-- The webserver count the accepted spec asked for (its initial count). The live count in `spec` belongs to
-- the autoscaler; a redeploy whose initial count is unchanged keeps the live one (clamped to the bounds).
ALTER TABLE regions ADD COLUMN initial_webservers BIGINT;
