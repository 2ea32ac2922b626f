-- Dashboard sessions. The cookie carries a random secret; only its SHA-256 is kept here, so
-- a copy of the database signs no one in.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    teams       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Sign-ins in flight, each used once: a development link (`/login?code=`: who it signs in)
-- or an OpenID Connect login between the redirect and the callback (its PKCE verifier and
-- nonce). Keyed by the SHA-256 of the link's code or of the login's `state`.
CREATE TABLE sign_ins (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT,
    teams       TEXT,
    verifier    TEXT,
    nonce       TEXT,
    return_to   TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX sign_ins_by_expiry ON sign_ins (expires_at);
