-- Rate limits are taken in grants: a process takes several hits of a window at once and gives
-- back what it did not use. `last_grant` carries what the last statement took to RETURNING.
ALTER TABLE rate_limits ADD COLUMN last_grant BIGINT NOT NULL DEFAULT 0;

-- Bumped in the transaction of every change to honeycomb settings or keys: api processes
-- sharing the file compare it with the version their cached settings were read at.
-- (Postgres tells its api processes with NOTIFY instead.)
CREATE TABLE settings_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO settings_version (id, version) VALUES (1, 0);
