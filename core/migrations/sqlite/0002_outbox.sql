-- Team events, written in the same transaction as the change they describe (outbox).
-- The relay publishes unsent rows to the bus and stamps published_at.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id       TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    published_at  TEXT
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX bichito_labels_label_idx ON bichito_labels (label, bichito_id);
