-- +goose Up
-- presence is the device's state as last recorded in the audit log
-- ('ONLINE' or 'OFFLINE'), kept apart from the status derived from
-- last_seen_at so that each transition is written once, by whichever
-- replica changes this column first. NULL: nothing recorded yet (a new
-- device, a revoked one, or a row older than this column); its next
-- heartbeat records it ONLINE, so existing rows are left NULL.
ALTER TABLE devices ADD COLUMN presence TEXT;

-- The sweeper looks only for devices recorded ONLINE that have gone silent.
-- Partial, so that it holds the online fleet alone (revoking sets presence
-- to NULL), and on last_seen_at, so that the silent ones are a range scan
-- at its low end however many devices are fresh.
CREATE INDEX devices_online_seen ON devices (last_seen_at) WHERE presence = 'ONLINE';

-- +goose Down
DROP INDEX devices_online_seen;
ALTER TABLE devices DROP COLUMN presence;
