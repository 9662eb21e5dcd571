-- +goose Up
CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL
);

-- An API key's secret is never stored: secret_hash is SHA-256 of the token.
-- version guards concurrent rotations (conditional UPDATE ... WHERE version = ?).
CREATE TABLE api_keys (
    id                         TEXT PRIMARY KEY,
    team_id                    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name                       TEXT NOT NULL,
    description                TEXT,
    scopes                     TEXT NOT NULL,
    secret_hash                BLOB NOT NULL,
    previous_secret_hash       BLOB,
    previous_secret_expires_at DATETIME,
    rotated_at                 DATETIME,
    expires_at                 DATETIME,
    revoked_at                 DATETIME,
    last_used_at               DATETIME,
    last_used_ip               TEXT,
    allowed_cidrs              TEXT NOT NULL DEFAULT '',
    created_by_id              TEXT REFERENCES api_keys (id),
    version                    INTEGER NOT NULL DEFAULT 1,
    created_at                 DATETIME NOT NULL,
    updated_at                 DATETIME NOT NULL
);
CREATE INDEX api_keys_team_id_id ON api_keys (team_id, id);

CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    team_id      TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    action       TEXT NOT NULL,
    actor_key_id TEXT,
    target_id    TEXT,
    ip           TEXT,
    user_agent   TEXT,
    created_at   DATETIME NOT NULL
);
CREATE INDEX audit_events_team_id_id ON audit_events (team_id, id);
CREATE INDEX audit_events_team_action ON audit_events (team_id, action, id);
CREATE INDEX audit_events_team_target ON audit_events (team_id, target_id, id);
CREATE INDEX audit_events_team_actor ON audit_events (team_id, actor_key_id, id);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE api_keys;
DROP TABLE teams;
