-- Rate limits are taken in grants: a process takes several hits of a window at once and gives
-- back what it did not use. `last_grant` carries what the last statement took to RETURNING.
ALTER TABLE rate_limits ADD COLUMN last_grant BIGINT NOT NULL DEFAULT 0;
