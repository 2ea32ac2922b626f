-- Attachments: one image per bichito. A row is written when an upload URL is handed out
-- (pending) and settles as uploaded (uploaded_at) or rejected (rejected_at, rejection).
-- The unused JSON column of the first migration gives way to it.
ALTER TABLE bichitos DROP COLUMN attachment;
CREATE TABLE attachments (
    bichito_id         BIGINT PRIMARY KEY REFERENCES bichitos (id) ON DELETE CASCADE,
    object_key         TEXT NOT NULL UNIQUE,
    filename           TEXT NOT NULL,
    content_type       TEXT NOT NULL,
    content_length     BIGINT NOT NULL,
    created_at         TEXT NOT NULL,
    upload_expires_at  TEXT NOT NULL,
    uploaded_at        TEXT,
    rejected_at        TEXT,
    rejection          TEXT
);
CREATE INDEX attachments_pending_idx ON attachments (upload_expires_at)
    WHERE uploaded_at IS NULL AND rejected_at IS NULL;

-- Storage objects to delete once not_before has passed, written in the same transaction as
-- the change that orphans them (a deleted bichito, a refused or replaced upload).
CREATE TABLE object_deletions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    object      TEXT NOT NULL,
    not_before  TEXT NOT NULL
);
CREATE INDEX object_deletions_due_idx ON object_deletions (not_before);
