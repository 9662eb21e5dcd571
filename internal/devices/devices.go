// Package devices holds the rules of a team's devices: registering them one
// by one or in bulk, their tokens (shown once, refused at once after a
// rotation or revocation), heartbeats, and enrollment keys that let devices
// join by themselves.
package devices

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/audit"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/validate"
)

// MaxBatch is the most devices one createDevices call registers.
const MaxBatch = 1000

// Service carries out the device mutations and reads.
type Service struct {
	store *store.Store
	// Window is how recently a device must have been seen to be ONLINE.
	Window time.Duration
}

// NewService returns a Service on s. window is how recently a device must
// have been seen to be ONLINE; it is taken as given and must be positive
// (internal/config holds its default).
func NewService(s *store.Store, window time.Duration) *Service {
	return &Service{store: s, Window: window}
}

// Issued is a device together with its token, which exists only here, once.
type Issued struct {
	Device *store.Device
	Token  string
}

// Spec is what a new device should be.
type Spec struct {
	Name         string
	SerialNumber string
	Model        *string
	Tags         []string
}

// newDevice checks a spec and builds its row, without a token. field
// prefixes the input path in errors, for a device inside a batch.
func newDevice(teamID uuid.UUID, field string, spec Spec, now time.Time) (store.Device, error) {
	if err := validate.Name(field+"serialNumber", spec.SerialNumber); err != nil {
		return store.Device{}, err
	}
	if err := validate.Name(field+"name", spec.Name); err != nil {
		return store.Device{}, err
	}
	if err := validate.Optional(field+"model", spec.Model); err != nil {
		return store.Device{}, err
	}
	tags, err := validate.Tags(field+"tags", spec.Tags)
	if err != nil {
		return store.Device{}, err
	}
	return store.Device{
		ID: ids.New(), TeamID: teamID, Name: spec.Name, SerialNumber: spec.SerialNumber, Model: spec.Model,
		Tags: store.JoinTags(tags), Version: 1, CreatedAt: now, UpdatedAt: now,
	}, nil
}

// withToken gives a device a fresh token: the one place a device token is made.
func withToken(d *store.Device) (string, error) {
	cred, err := credential.Generate(credential.DeviceToken, d.ID)
	if err != nil {
		return "", err
	}
	d.TokenHash = cred.Hash[:]
	return cred.Token, nil
}

// Create registers one device and returns its token.
func (s *Service) Create(ctx context.Context, actor *auth.Principal, spec Spec) (Issued, error) {
	if err := actor.Need(scope.DevicesWrite); err != nil {
		return Issued{}, err
	}
	d, err := newDevice(actor.TeamID, "", spec, store.Now())
	if err != nil {
		return Issued{}, err
	}
	token, err := withToken(&d)
	if err != nil {
		return Issued{}, err
	}
	err = auth.Do(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) error {
		if err := actor.Need(scope.DevicesWrite); err != nil {
			return err
		}
		if err := tx.CreateDevices(ctx, []store.Device{d}); err != nil {
			return err
		}
		return audit.Record(ctx, tx, actor.TeamID, actor, audit.DeviceCreate, ids.Encode(ids.Device, d.ID))
	})
	if err != nil {
		return Issued{}, err
	}
	return Issued{Device: &d, Token: token}, nil
}

// CreateMany registers up to MaxBatch devices, all or none: a serial number
// repeated in the batch, or already in the team, keeps every one out. The
// devices get no token; they enroll, or get one from RotateToken.
func (s *Service) CreateMany(ctx context.Context, actor *auth.Principal, specs []Spec) ([]store.Device, error) {
	if err := actor.Need(scope.DevicesWrite); err != nil {
		return nil, err
	}
	if len(specs) == 0 || len(specs) > MaxBatch {
		return nil, apperr.Input("devices", "devices takes 1 to %d devices", MaxBatch)
	}
	now := store.Now()
	out := make([]store.Device, len(specs))
	targets := make([]string, len(specs))
	seen := make(map[string]int, len(specs))
	for i, spec := range specs {
		d, err := newDevice(actor.TeamID, "devices."+strconv.Itoa(i)+".", spec, now)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[spec.SerialNumber]; dup {
			return nil, apperr.New(apperr.Conflict, "devices %d and %d share the serial number %q", j, i, spec.SerialNumber)
		}
		seen[spec.SerialNumber] = i
		out[i], targets[i] = d, ids.Encode(ids.Device, d.ID)
	}
	err := auth.Do(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) error {
		if err := actor.Need(scope.DevicesWrite); err != nil {
			return err
		}
		if err := tx.CreateDevices(ctx, out); err != nil {
			return err
		}
		return audit.RecordEach(ctx, tx, actor.TeamID, actor, audit.DeviceCreate, targets)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateInput holds the changes to a device; nil fields stay as they are.
type UpdateInput struct {
	ID   uuid.UUID
	Name *string
	Tags []string
	// SetTags tells an absent list from an empty one, which clears the tags.
	SetTags bool
}

// Update changes a device's name or tags.
func (s *Service) Update(ctx context.Context, actor *auth.Principal, in UpdateInput) (*store.Device, error) {
	if err := actor.Need(scope.DevicesWrite); err != nil {
		return nil, err
	}
	columns := map[string]any{}
	if in.Name != nil {
		if err := validate.Name("name", *in.Name); err != nil {
			return nil, err
		}
		columns["name"] = *in.Name
	}
	if in.SetTags {
		tags, err := validate.Tags("tags", in.Tags)
		if err != nil {
			return nil, err
		}
		columns["tags"] = store.JoinTags(tags)
	}
	return audit.Change(ctx, s.store, actor, audit.DeviceUpdate, ids.Encode(ids.Device, in.ID),
		audit.Columns(columns, needs(scope.DevicesWrite), func(tx *store.Store, columns map[string]any) error {
			return tx.UpdateDevice(ctx, actor.TeamID, in.ID, columns, store.Now())
		}),
		func(tx *store.Store) (*store.Device, error) { return tx.Device(ctx, actor.TeamID, in.ID) })
}

// RotateToken gives a device a new token; the old one is refused as soon as
// this returns. Of two concurrent rotations, one gets CONFLICT.
func (s *Service) RotateToken(ctx context.Context, actor *auth.Principal, id uuid.UUID) (Issued, error) {
	if err := actor.Need(scope.DevicesWrite); err != nil {
		return Issued{}, err
	}
	return auth.InTx(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) (Issued, error) {
		if err := actor.Need(scope.DevicesWrite); err != nil {
			return Issued{}, err
		}
		d, err := tx.Device(ctx, actor.TeamID, id)
		if err != nil {
			return Issued{}, err
		}
		if d.RevokedAt != nil {
			return Issued{}, apperr.New(apperr.FailedPrecondition, "a revoked device cannot get a token")
		}
		fresh := *d
		token, err := withToken(&fresh)
		if err != nil {
			return Issued{}, err
		}
		err = tx.ReplaceDeviceToken(ctx, d, fresh.TokenHash, store.Now())
		if errors.Is(err, store.ErrStale) {
			return Issued{}, apperr.New(apperr.Conflict, "the device changed while its token was being rotated; read it again and retry")
		}
		if err != nil {
			return Issued{}, err
		}
		if err := audit.Record(ctx, tx, actor.TeamID, actor, audit.DeviceRotateToken, ids.Encode(ids.Device, id)); err != nil {
			return Issued{}, err
		}
		out, err := tx.Device(ctx, actor.TeamID, id)
		return Issued{Device: out, Token: token}, err
	})
}

// Revoke revokes a device for good: its token is refused as soon as this
// returns. Revoking a revoked device changes nothing.
func (s *Service) Revoke(ctx context.Context, actor *auth.Principal, id uuid.UUID) (*store.Device, error) {
	if err := actor.Need(scope.DevicesWrite); err != nil {
		return nil, err
	}
	return audit.Change(ctx, s.store, actor, audit.DeviceRevoke, ids.Encode(ids.Device, id),
		func(tx *store.Store, actor *auth.Principal) (bool, error) {
			if err := actor.Need(scope.DevicesWrite); err != nil {
				return false, err
			}
			return tx.RevokeDevice(ctx, actor.TeamID, id, store.Now())
		},
		func(tx *store.Store) (*store.Device, error) { return tx.Device(ctx, actor.TeamID, id) })
}

// Heartbeat marks the calling device seen, with its firmware version. The
// heartbeat itself is not audited (devices beat every few seconds), but the
// first one after the device was recorded OFFLINE, or ever, records it
// ONLINE with a device.online event (see Sweeper). A heartbeat whose token
// was rotated away or revoked while it ran writes nothing and is refused.
func (s *Service) Heartbeat(ctx context.Context, device *auth.Principal, firmware *string) (*store.Device, error) {
	if err := device.NeedDevice(); err != nil {
		return nil, err
	}
	if err := validate.Optional("firmwareVersion", firmware); err != nil {
		return nil, err
	}
	d := &store.Device{ID: device.DeviceID, TeamID: device.TeamID, TokenHash: device.DeviceTokenHash}
	seen, presence, err := s.store.RecordHeartbeat(ctx, d, firmware, store.Now())
	if err != nil {
		return nil, err
	}
	if seen == nil {
		return nil, apperr.New(apperr.Unauthenticated, "this device token was rotated or revoked")
	}
	if presence != store.DeviceOnline {
		if err := s.recordOnline(ctx, device); err != nil {
			return nil, err
		}
	}
	return seen, nil
}

// recordOnline records the device ONLINE and writes its device.online
// event, in one transaction that takes the team's lock first, as every
// change of a team does. The update is conditional, so of the heartbeats
// (on any replica) that saw the device recorded otherwise, one writes the
// event. Should it fail, the heartbeat did count, and the next one
// tries again: the sweeper leaves alone a device not recorded ONLINE.
func (s *Service) recordOnline(ctx context.Context, device *auth.Principal) error {
	return s.store.InTx(ctx, func(tx *store.Store) error {
		if err := tx.LockTeam(ctx, device.TeamID); err != nil {
			return err
		}
		changed, err := tx.RecordDeviceOnline(ctx, device.TeamID, device.DeviceID)
		if err != nil || !changed {
			return err
		}
		return audit.Record(ctx, tx, device.TeamID, device, audit.DeviceOnline, ids.Encode(ids.Device, device.DeviceID))
	})
}

// ByID reads several of the caller's team's devices, for the edges that
// point to devices (AuditEvent.actorDevice). With no ids it only checks the
// caller may read devices, so that an edge is refused whatever it points to.
func (s *Service) ByID(ctx context.Context, actor *auth.Principal, ids []uuid.UUID) ([]store.Device, error) {
	return auth.ByID(ctx, actor, scope.DevicesRead, ids, s.store.DevicesByID)
}

// List reads one page of the caller's team's devices.
func (s *Service) List(ctx context.Context, actor *auth.Principal, f store.DeviceFilter, args store.PageArgs) (store.Page[store.Device], error) {
	if err := s.MayRead(actor, f); err != nil {
		return store.Page[store.Device]{}, err
	}
	return s.store.ListDevices(ctx, actor.TeamID, f, args, store.Now(), s.Window)
}

// MayRead checks the caller may read the team's devices with this filter,
// as List does; a live subscription asks it too, again whenever its key
// changes.
func (s *Service) MayRead(actor *auth.Principal, f store.DeviceFilter) error {
	if err := actor.Need(scope.DevicesRead); err != nil {
		return err
	}
	if f.Tag != "" {
		if _, err := validate.Tags("filter.tag", []string{f.Tag}); err != nil {
			return err
		}
	}
	return nil
}

// Count counts the caller's team's devices matching f.
func (s *Service) Count(ctx context.Context, actor *auth.Principal, f store.DeviceFilter) (int64, error) {
	if err := actor.Need(scope.DevicesRead); err != nil {
		return 0, err
	}
	return s.store.CountDevices(ctx, actor.TeamID, f, store.Now(), s.Window)
}

// Status is a device's state now.
func (s *Service) Status(d *store.Device) store.DeviceStatus {
	return d.StatusAt(time.Now(), s.Window)
}

// needs returns a check that the caller, as it is now, holds the scopes.
func needs(scopes ...scope.Scope) func(*auth.Principal) error {
	return func(p *auth.Principal) error { return p.Need(scopes...) }
}
