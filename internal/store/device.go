package store

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/keyplane/keyplane/db"
)

// Device is one of a team's devices. Only a hash of its token is stored; a
// device made in bulk has none until it gets one.
type Device struct {
	ID              uuid.UUID
	TeamID          uuid.UUID
	Name            string
	SerialNumber    string
	Model           *string
	Tags            string
	TokenHash       []byte
	FirmwareVersion *string
	LastSeenAt      *time.Time
	RevokedAt       *time.Time
	Version         int64
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// deviceColumns are the columns of devices, in the order fields scans them.
var deviceColumns = []string{"id", "team_id", "name", "serial_number", "model", "tags", "token_hash",
	"firmware_version", "last_seen_at", "revoked_at", "version", "created_at", "updated_at"}

func (d *Device) columns() []string { return deviceColumns }

func (d *Device) fields() []any {
	return []any{&d.ID, &d.TeamID, &d.Name, &d.SerialNumber, &d.Model, &d.Tags, &d.TokenHash,
		&d.FirmwareVersion, &d.LastSeenAt, &d.RevokedAt, &d.Version, &d.CreatedAt, &d.UpdatedAt}
}

// DeviceStatus is a device's state at an instant.
type DeviceStatus string

// The states of a device.
const (
	DevicePending DeviceStatus = "PENDING"
	DeviceOnline  DeviceStatus = "ONLINE"
	DeviceOffline DeviceStatus = "OFFLINE"
	DeviceRevoked DeviceStatus = "REVOKED"
)

// StatusAt returns the device's state at now: online when seen within
// window, pending when never seen.
func (d *Device) StatusAt(now time.Time, window time.Duration) DeviceStatus {
	switch {
	case d.RevokedAt != nil:
		return DeviceRevoked
	case d.LastSeenAt == nil:
		return DevicePending
	case now.Sub(*d.LastSeenAt) < window:
		return DeviceOnline
	default:
		return DeviceOffline
	}
}

// DeviceFilter narrows a list of devices; zero fields match everything.
type DeviceFilter struct {
	Status DeviceStatus
	Tag    string
	Search string
}

// DeviceForAuth reads the device a token names. Like APIKeyForAuth, it is
// not scoped to a team: the team is what it finds out.
func (s *Store) DeviceForAuth(ctx context.Context, id uuid.UUID) (*Device, error) {
	var d Device
	if err := s.with(ctx).Where("id = ?", id).Take(&d).Error; err != nil {
		return nil, translate(err, "device")
	}
	return &d, nil
}

// Device reads one of a team's devices.
func (s *Store) Device(ctx context.Context, teamID, id uuid.UUID) (*Device, error) {
	var d Device
	if err := s.with(ctx).Where("id = ? AND team_id = ?", id, teamID).Take(&d).Error; err != nil {
		return nil, translate(err, "device")
	}
	return &d, nil
}

// DevicesByID reads several of a team's devices in one query.
func (s *Store) DevicesByID(ctx context.Context, teamID uuid.UUID, ids []uuid.UUID) ([]Device, error) {
	var out []Device
	err := s.with(ctx).Where("team_id = ? AND id IN ?", teamID, ids).Find(&out).Error
	return out, translate(err, "device")
}

// CreateDevices inserts devices in batches; a serial number already used in
// the team is ErrConflict, and the caller's transaction then keeps none.
func (s *Store) CreateDevices(ctx context.Context, devices []Device) error {
	err := s.with(ctx).CreateInBatches(devices, 200).Error
	return translate(err, "a device with this serial number")
}

// UpdateDevice writes the given columns of one of a team's devices.
func (s *Store) UpdateDevice(ctx context.Context, teamID, id uuid.UUID, columns map[string]any, now time.Time) error {
	columns["updated_at"] = now
	columns["version"] = gorm.Expr("version + 1")
	res := s.with(ctx).Model(&Device{}).Where("id = ? AND team_id = ?", id, teamID).Updates(columns)
	if res.Error == nil && res.RowsAffected == 0 {
		return notFound("device")
	}
	return translate(res.Error, "device")
}

// ReplaceDeviceToken sets a device's token hash, only if the device is still
// at the version the caller read and not revoked: of two concurrent
// rotations, the loser gets ErrStale.
func (s *Store) ReplaceDeviceToken(ctx context.Context, d *Device, hash []byte, now time.Time) error {
	res := s.with(ctx).Model(&Device{}).
		Where("id = ? AND team_id = ? AND version = ? AND revoked_at IS NULL", d.ID, d.TeamID, d.Version).
		Updates(map[string]any{"token_hash": hash, "updated_at": now, "version": gorm.Expr("version + 1")})
	if res.Error != nil {
		return translate(res.Error, "device")
	}
	if res.RowsAffected == 0 {
		return stale("device")
	}
	return nil
}

// RevokeDevice marks a device revoked, once; it reports false when it was
// revoked already. It forgets the device's presence, which takes it out of
// the sweeper's index: a revoked device is never recorded OFFLINE.
func (s *Store) RevokeDevice(ctx context.Context, teamID, id uuid.UUID, now time.Time) (bool, error) {
	res := s.with(ctx).Model(&Device{}).
		Where("id = ? AND team_id = ? AND revoked_at IS NULL", id, teamID).
		Updates(map[string]any{"revoked_at": now, "updated_at": now, "version": gorm.Expr("version + 1"), "presence": nil})
	return res.RowsAffected > 0, translate(res.Error, "device")
}

// RecordHeartbeat marks a device seen, but only while the token that
// authenticated the heartbeat is still the device's: a heartbeat racing a
// rotation or a revocation writes nothing once those have committed, and
// answers nil. The same statement reads back the device as written, and
// its recorded presence ("" when none), so that a device already recorded
// ONLINE costs one statement.
func (s *Store) RecordHeartbeat(ctx context.Context, d *Device, firmware *string, now time.Time) (*Device, DeviceStatus, error) {
	columns := map[string]any{"last_seen_at": now}
	if firmware != nil {
		columns["firmware_version"] = *firmware
	}
	var row heartbeatRow
	res := s.with(ctx).Model(&row).Clauses(clause.Returning{}).
		Where("id = ? AND team_id = ? AND revoked_at IS NULL AND token_hash = ?", d.ID, d.TeamID, d.TokenHash).
		UpdateColumns(columns)
	if res.Error != nil || res.RowsAffected == 0 {
		return nil, "", translate(res.Error, "device")
	}
	var presence DeviceStatus
	if row.Presence != nil {
		presence = DeviceStatus(*row.Presence)
	}
	return &row.Device, presence, nil
}

// heartbeatRow is a device as a heartbeat reads it back, with its
// recorded presence.
type heartbeatRow struct {
	Device   `gorm:"embedded"`
	Presence *string
}

func (heartbeatRow) TableName() string { return "devices" }

// devicePresence is what the presence statements read back of a device.
// The presence column records the last transition written to the audit
// log, ONLINE or OFFLINE (NULL: none); Device.StatusAt stays derived from
// last_seen_at.
type devicePresence struct {
	ID       uuid.UUID
	TeamID   uuid.UUID
	Presence *string
}

func (devicePresence) TableName() string { return "devices" }

// RecordDeviceOnline records a device ONLINE unless it is so recorded
// already or revoked, and reports whether it changed the row. Call it in a
// transaction that holds the team's lock and writes the event when it
// did: of replicas that all saw the device recorded otherwise, exactly
// one changes the row.
func (s *Store) RecordDeviceOnline(ctx context.Context, teamID, id uuid.UUID) (bool, error) {
	res := s.with(ctx).Model(&Device{}).
		Where("id = ? AND team_id = ? AND revoked_at IS NULL AND (presence IS NULL OR presence <> ?)", id, teamID, string(DeviceOnline)).
		UpdateColumn("presence", string(DeviceOnline))
	return res.RowsAffected > 0, translate(res.Error, "device")
}

// DeviceRef names one device of one team.
type DeviceRef struct {
	TeamID, ID uuid.UUID
}

// silentDevicesSQL finds devices recorded ONLINE and not seen since a
// cutoff through the partial index devices_online_seen: 'ONLINE' is written
// out, not a parameter, since a generic plan of a prepared statement could
// not prove the index's predicate from one. Revoked devices have no
// presence; the revoked_at test only guards against a row written before.
var silentDevicesSQL = newRawSQL(`SELECT team_id, id FROM devices ` +
	`WHERE presence = 'ONLINE' AND revoked_at IS NULL AND last_seen_at <= ? ` +
	`ORDER BY last_seen_at LIMIT ?`)

// SilentOnlineDevices lists up to limit devices recorded ONLINE, not
// revoked, and last seen at or before cutoff, longest silent first. Like
// DeviceForAuth it is not scoped to a team: the presence sweeper reads
// every team's devices, and changes each team's in a transaction of its
// own (RecordDevicesOffline).
func (s *Store) SilentOnlineDevices(ctx context.Context, cutoff time.Time, limit int) ([]DeviceRef, error) {
	r, err := s.queryRaw(ctx, silentDevicesSQL, cutoff, limit)
	if err != nil {
		return nil, translate(err, "device")
	}
	defer r.Close()
	var out []DeviceRef
	for r.Next() {
		var ref DeviceRef
		if err := r.Scan(&ref.TeamID, &ref.ID); err != nil {
			return nil, translate(err, "device")
		}
		out = append(out, ref)
	}
	return out, translate(r.Err(), "device")
}

// RecordDevicesOffline records OFFLINE those of a team's devices ids that
// are still recorded ONLINE and still not seen since cutoff, and returns
// the ids it changed, read back by the same statement. A heartbeat that
// committed in between moved last_seen_at past cutoff, so its device is
// left as it is. Call it in a transaction that holds the team's lock and
// writes an event for each id returned.
func (s *Store) RecordDevicesOffline(ctx context.Context, teamID uuid.UUID, ids []uuid.UUID, cutoff time.Time) ([]uuid.UUID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var rows []devicePresence
	res := s.with(ctx).Model(&rows).Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}}}).
		Where("team_id = ? AND id IN ? AND presence = ? AND last_seen_at <= ?", teamID, ids, string(DeviceOnline), cutoff).
		UpdateColumn("presence", string(DeviceOffline))
	if res.Error != nil {
		return nil, translate(res.Error, "device")
	}
	out := make([]uuid.UUID, len(rows))
	for i, row := range rows {
		out[i] = row.ID
	}
	// RETURNING follows no order; ids (UUIDv7) sort by creation.
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out, nil
}

func (s *Store) deviceQuery(ctx context.Context, teamID uuid.UUID, f DeviceFilter, now time.Time, window time.Duration) *gorm.DB {
	q := s.with(ctx).Model(&Device{})
	for _, c := range s.deviceConditions(teamID, f, now, window) {
		q = q.Where(c.sql, c.args...)
	}
	return q
}

// deviceConditions are the WHERE conditions of a team's devices that match
// a filter; their SQL depends only on deviceShape(f).
func (s *Store) deviceConditions(teamID uuid.UUID, f DeviceFilter, now time.Time, window time.Duration) []condition {
	conds := make([]condition, 1, 4)
	conds[0] = condition{"team_id = ?", []any{teamID}}
	seen := now.Add(-window)
	switch f.Status {
	case DevicePending:
		conds = append(conds, condition{"revoked_at IS NULL AND last_seen_at IS NULL", nil})
	case DeviceOnline:
		conds = append(conds, condition{"revoked_at IS NULL AND last_seen_at > ?", []any{seen}})
	case DeviceOffline:
		conds = append(conds, condition{"revoked_at IS NULL AND last_seen_at <= ?", []any{seen}})
	case DeviceRevoked:
		conds = append(conds, condition{"revoked_at IS NOT NULL", nil})
	}
	if f.Tag != "" {
		conds = append(conds, condition{db.Contains(s.dialect, "tags"), []any{JoinTags([]string{f.Tag})}})
	}
	if f.Search != "" {
		p, lower := likeContains(f.Search), db.UnicodeLower(s.dialect)
		conds = append(conds, condition{`(` + lower + `(name) LIKE ? ESCAPE '\' OR ` + lower + `(serial_number) LIKE ? ESCAPE '\')`, []any{p, p}})
	}
	return conds
}

// deviceShape is the shape of a device filter's conditions: which apply,
// not their values.
type deviceShape struct {
	status      DeviceStatus
	tag, search bool
}

// ListDevices reads one keyset page of a team's devices.
func (s *Store) ListDevices(ctx context.Context, teamID uuid.UUID, f DeviceFilter, args PageArgs, now time.Time, window time.Duration) (Page[Device], error) {
	shape := deviceShape{tag: f.Tag != "", search: f.Search != ""}
	switch f.Status {
	case DevicePending, DeviceOnline, DeviceOffline, DeviceRevoked:
		shape.status = f.Status
	}
	return listPage[Device](ctx, s, &Device{}, shape, s.deviceConditions(teamID, f, now, window), args, "device")
}

// CountDevices counts a team's devices that match a filter.
func (s *Store) CountDevices(ctx context.Context, teamID uuid.UUID, f DeviceFilter, now time.Time, window time.Duration) (int64, error) {
	var n int64
	err := s.deviceQuery(ctx, teamID, f, now, window).Count(&n).Error
	return n, translate(err, "device")
}
