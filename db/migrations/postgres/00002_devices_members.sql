-- +goose Up
-- Members are removed softly (removed_at): their personal keys keep pointing
-- at them, and an email becomes free again once its member is removed.
CREATE TABLE members (
    id         uuid PRIMARY KEY,
    team_id    uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    email      text NOT NULL,
    email_key  text NOT NULL,
    name       text,
    role       text NOT NULL,
    status     text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    removed_at timestamptz
);
CREATE UNIQUE INDEX members_team_email ON members (team_id, email_key) WHERE removed_at IS NULL;
CREATE INDEX members_team_id_id ON members (team_id, id);

ALTER TABLE api_keys ADD COLUMN owner_id uuid REFERENCES members (id);
CREATE INDEX api_keys_team_owner ON api_keys (team_id, owner_id, id);

-- tags are stored as ",a,b," so that one tag matches with LIKE '%,a,%'.
-- token_hash is NULL for a device made in bulk until it enrolls or rotates.
CREATE TABLE devices (
    id               uuid PRIMARY KEY,
    team_id          uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name             text NOT NULL,
    serial_number    text NOT NULL,
    model            text,
    tags             text NOT NULL DEFAULT '',
    token_hash       bytea,
    firmware_version text,
    last_seen_at     timestamptz,
    revoked_at       timestamptz,
    version          bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE UNIQUE INDEX devices_team_serial ON devices (team_id, serial_number);
CREATE INDEX devices_team_id_id ON devices (team_id, id);

CREATE TABLE enrollment_keys (
    id          uuid PRIMARY KEY,
    team_id     uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    description text,
    tags        text NOT NULL DEFAULT '',
    reusable    boolean NOT NULL,
    max_uses    integer,
    uses_count  integer NOT NULL DEFAULT 0,
    secret_hash bytea NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX enrollment_keys_team_id_id ON enrollment_keys (team_id, id);

ALTER TABLE audit_events ADD COLUMN actor_device_id uuid;
CREATE INDEX audit_events_team_actor_device ON audit_events (team_id, actor_device_id, id);

-- +goose Down
DROP INDEX audit_events_team_actor_device;
ALTER TABLE audit_events DROP COLUMN actor_device_id;
DROP TABLE enrollment_keys;
DROP TABLE devices;
DROP INDEX api_keys_team_owner;
ALTER TABLE api_keys DROP COLUMN owner_id;
DROP TABLE members;
