-- bichito schema, Postgres. Keep in step with ../sqlite/0001_init.sql.

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE honeycombs (
    id                  BIGSERIAL PRIMARY KEY,
    namespace           TEXT NOT NULL,
    name                TEXT NOT NULL,
    team_id             TEXT NOT NULL REFERENCES teams (id),
    display_name        TEXT NOT NULL DEFAULT '',
    plan                TEXT NOT NULL CHECK (plan IN ('free', 'pro')),
    -- quotas; NULL means the server default
    reports_per_minute  BIGINT CHECK (reports_per_minute > 0),
    monthly_reports     BIGINT CHECK (monthly_reports > 0),
    allowed_origins     TEXT NOT NULL DEFAULT '[]',   -- JSON array of origins
    deletion_policy     TEXT NOT NULL DEFAULT 'Retain' CHECK (deletion_policy IN ('Retain', 'Delete')),
    key_rotation        TEXT,                         -- spec.apiKey.rotate last acted on
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (namespace, name)
);
CREATE INDEX honeycombs_team_idx ON honeycombs (team_id);

-- Keys are stored as a SHA-256 hash; the prefix is what a request is looked up by.
CREATE TABLE api_keys (
    id            BIGSERIAL PRIMARY KEY,
    honeycomb_id  BIGINT NOT NULL REFERENCES honeycombs (id) ON DELETE CASCADE,
    prefix        TEXT NOT NULL UNIQUE,
    hash          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ
);
CREATE INDEX api_keys_honeycomb_idx ON api_keys (honeycomb_id);

CREATE TABLE blocklist_rules (
    honeycomb_id  BIGINT NOT NULL REFERENCES honeycombs (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    field         TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('pattern', 'contains')),
    value         TEXT NOT NULL,
    PRIMARY KEY (honeycomb_id, position)
);

CREATE TABLE bichitos (
    id                   BIGSERIAL PRIMARY KEY,
    honeycomb_id         BIGINT NOT NULL REFERENCES honeycombs (id) ON DELETE CASCADE,
    team_id              TEXT NOT NULL,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL,
    status               TEXT NOT NULL,
    severity             TEXT NOT NULL,
    environment          TEXT,
    app_version          TEXT,
    stack_trace          TEXT,
    url                  TEXT,
    user_agent           TEXT,
    reporter_email       TEXT,
    reporter_identifier  TEXT,
    extra                TEXT,          -- the reporter's JSON object, verbatim
    assignee             TEXT,
    duplicate_of         BIGINT REFERENCES bichitos (id) ON DELETE SET NULL,
    attachment           TEXT,          -- JSON
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX bichitos_team_idx ON bichitos (team_id, id DESC);
CREATE INDEX bichitos_honeycomb_idx ON bichitos (honeycomb_id, id DESC);

CREATE TABLE bichito_labels (
    bichito_id  BIGINT NOT NULL REFERENCES bichitos (id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    label       TEXT NOT NULL,
    PRIMARY KEY (bichito_id, label)
);

CREATE TABLE comments (
    id          BIGSERIAL PRIMARY KEY,
    bichito_id  BIGINT NOT NULL REFERENCES bichitos (id) ON DELETE CASCADE,
    author_id   TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX comments_bichito_idx ON comments (bichito_id, id);

-- Reports charged per honeycomb per calendar month (UTC), for the free plan's cap.
CREATE TABLE usage_counters (
    honeycomb_id  BIGINT NOT NULL REFERENCES honeycombs (id) ON DELETE CASCADE,
    period        TEXT NOT NULL,      -- YYYY-MM
    reports       BIGINT NOT NULL,
    PRIMARY KEY (honeycomb_id, period)
);

CREATE TABLE idempotency_keys (
    honeycomb_id  BIGINT NOT NULL REFERENCES honeycombs (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT NOT NULL,
    response      TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (honeycomb_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- One fixed window per API key, shared by every api process.
CREATE TABLE rate_limits (
    bucket             TEXT PRIMARY KEY,
    window_started_ms  BIGINT NOT NULL,
    hits               BIGINT NOT NULL
);
