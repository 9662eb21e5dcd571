-- +goose Up
CREATE TABLE teams (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- An API key's secret is never stored: secret_hash is SHA-256 of the token.
-- version guards concurrent rotations (conditional UPDATE ... WHERE version = ?).
CREATE TABLE api_keys (
    id                         uuid PRIMARY KEY,
    team_id                    uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name                       text NOT NULL,
    description                text,
    scopes                     text NOT NULL,
    secret_hash                bytea NOT NULL,
    previous_secret_hash       bytea,
    previous_secret_expires_at timestamptz,
    rotated_at                 timestamptz,
    expires_at                 timestamptz,
    revoked_at                 timestamptz,
    last_used_at               timestamptz,
    last_used_ip               text,
    allowed_cidrs              text NOT NULL DEFAULT '',
    created_by_id              uuid REFERENCES api_keys (id),
    version                    bigint NOT NULL DEFAULT 1,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL
);
CREATE INDEX api_keys_team_id_id ON api_keys (team_id, id);

CREATE TABLE audit_events (
    id           uuid PRIMARY KEY,
    team_id      uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    action       text NOT NULL,
    actor_key_id uuid,
    target_id    text,
    ip           text,
    user_agent   text,
    created_at   timestamptz NOT NULL
);
CREATE INDEX audit_events_team_id_id ON audit_events (team_id, id);
CREATE INDEX audit_events_team_action ON audit_events (team_id, action, id);
CREATE INDEX audit_events_team_target ON audit_events (team_id, target_id, id);
CREATE INDEX audit_events_team_actor ON audit_events (team_id, actor_key_id, id);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE api_keys;
DROP TABLE teams;
