package devices

import (
	"context"
	"errors"
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

// MaxEnrollmentUses bounds maxUses, so that a typo cannot make a key
// practically unlimited by accident.
const MaxEnrollmentUses = 1_000_000

// IssuedKey is an enrollment key together with its secret, shown once.
type IssuedKey struct {
	Key    *store.EnrollmentKey
	Secret string
}

// KeySpec is what a new enrollment key should be.
type KeySpec struct {
	Description *string
	Tags        []string
	Reusable    bool
	MaxUses     *int
	ExpiresAt   *time.Time
}

// CreateKey makes an enrollment key. A key that is not reusable enrolls one
// device; a reusable one enrolls up to maxUses, or any number without it.
func (s *Service) CreateKey(ctx context.Context, actor *auth.Principal, spec KeySpec) (IssuedKey, error) {
	if err := actor.Need(scope.DevicesWrite); err != nil {
		return IssuedKey{}, err
	}
	if spec.Description != nil {
		if err := validate.Description("description", *spec.Description); err != nil {
			return IssuedKey{}, err
		}
	}
	tags, err := validate.Tags("tags", spec.Tags)
	if err != nil {
		return IssuedKey{}, err
	}
	maxUses := spec.MaxUses
	switch {
	case maxUses != nil && (*maxUses < 1 || *maxUses > MaxEnrollmentUses):
		return IssuedKey{}, apperr.Input("maxUses", "maxUses must be between 1 and %d", MaxEnrollmentUses)
	case !spec.Reusable && maxUses != nil && *maxUses != 1:
		return IssuedKey{}, apperr.Input("maxUses", "a key that is not reusable enrolls one device; set reusable to allow more")
	case !spec.Reusable:
		one := 1
		maxUses = &one
	}
	if spec.ExpiresAt != nil && !spec.ExpiresAt.After(time.Now()) {
		return IssuedKey{}, apperr.Input("expiresAt", "expiresAt must be in the future")
	}
	now := store.Now()
	k := &store.EnrollmentKey{
		ID: ids.New(), TeamID: actor.TeamID, Description: spec.Description, Tags: store.JoinTags(tags),
		Reusable: spec.Reusable, MaxUses: maxUses, CreatedAt: now, UpdatedAt: now,
	}
	if spec.Description != nil && *spec.Description == "" {
		k.Description = nil
	}
	if spec.ExpiresAt != nil {
		at := spec.ExpiresAt.UTC().Truncate(time.Microsecond)
		k.ExpiresAt = &at
	}
	cred, err := credential.Generate(credential.EnrollmentKey, k.ID)
	if err != nil {
		return IssuedKey{}, err
	}
	k.SecretHash = cred.Hash[:]
	err = auth.Do(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) error {
		if err := actor.Need(scope.DevicesWrite); err != nil {
			return err
		}
		if err := tx.CreateEnrollmentKey(ctx, k); err != nil {
			return err
		}
		return audit.Record(ctx, tx, actor.TeamID, actor, audit.EnrollmentKeyCreate, ids.Encode(ids.EnrollmentKey, k.ID))
	})
	if err != nil {
		return IssuedKey{}, err
	}
	return IssuedKey{Key: k, Secret: cred.Token}, nil
}

// RevokeKey revokes an enrollment key: it enrolls nothing more. Devices it
// enrolled keep their tokens.
func (s *Service) RevokeKey(ctx context.Context, actor *auth.Principal, id uuid.UUID) (*store.EnrollmentKey, error) {
	if err := actor.Need(scope.DevicesWrite); err != nil {
		return nil, err
	}
	return audit.Change(ctx, s.store, actor, audit.EnrollmentKeyRevoke, ids.Encode(ids.EnrollmentKey, id),
		func(tx *store.Store, actor *auth.Principal) (bool, error) {
			if err := actor.Need(scope.DevicesWrite); err != nil {
				return false, err
			}
			return tx.RevokeEnrollmentKey(ctx, actor.TeamID, id, store.Now())
		},
		func(tx *store.Store) (*store.EnrollmentKey, error) { return tx.EnrollmentKey(ctx, actor.TeamID, id) })
}

// EnrollInput is what a device sends to join a team.
type EnrollInput struct {
	EnrollmentKey string
	SerialNumber  string
	Name          *string
	Model         *string
}

// Reasons an enrollment key does not enroll, beyond auth's.
const reasonUsedUp = "USED_UP"

// refused is the error of an enrollment key that does not enroll. Only a
// caller holding the real secret learns more than INVALID.
func refused(reason string) error {
	msg := "this enrollment key is not valid"
	switch reason {
	case string(auth.ReasonRevoked):
		msg = "this enrollment key has been revoked"
	case string(auth.ReasonExpired):
		msg = "this enrollment key has expired"
	case reasonUsedUp:
		msg = "this enrollment key has enrolled all the devices it may"
	}
	return &apperr.Error{Code: apperr.Unauthenticated, Message: msg, Reason: reason}
}

// Enroll creates a device with the enrollment key's tags and returns its
// token. The key is the credential: no Bearer is needed. Counting the use
// and creating the device commit together, and the use is counted only while
// the key is live and under its limit, so with maxUses N exactly N
// concurrent enrollments succeed.
func (s *Service) Enroll(ctx context.Context, in EnrollInput) (Issued, error) {
	guard := auth.GuardFrom(ctx)
	if wait, blocked := guard.Blocked(ctx); blocked {
		return Issued{}, apperr.New(apperr.RateLimited, "too many failed credentials from this address; retry in %d s", int(wait.Seconds()+0.999))
	}
	parsed, err := credential.ParseKind(in.EnrollmentKey, credential.EnrollmentKey)
	if err != nil {
		guard.Failed(ctx)
		return Issued{}, refused(string(auth.ReasonInvalid))
	}
	key, err := s.store.EnrollmentKeyForAuth(ctx, parsed.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !parsed.Matches(key.SecretHash)) {
		guard.Failed(ctx)
		return Issued{}, refused(string(auth.ReasonInvalid))
	}
	if err != nil {
		return Issued{}, err
	}
	spec := Spec{SerialNumber: in.SerialNumber, Name: in.SerialNumber, Model: in.Model, Tags: store.SplitTags(key.Tags)}
	if in.Name != nil {
		spec.Name = *in.Name
	}
	d, err := newDevice(key.TeamID, "", spec, store.Now())
	if err != nil {
		return Issued{}, err
	}
	token, err := withToken(&d)
	if err != nil {
		return Issued{}, err
	}
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		// The team's lock first, as every change of the team takes it:
		// the audit event below needs it, and the key's row after it
		// would let a concurrent revokeEnrollmentKey wait on this.
		if err := tx.LockTeam(ctx, key.TeamID); err != nil {
			return err
		}
		now := store.Now()
		used, err := tx.UseEnrollmentKey(ctx, key.ID, now)
		if err != nil {
			return err
		}
		if !used {
			return refused(whyNot(key, now))
		}
		if err := tx.CreateDevices(ctx, []store.Device{d}); err != nil {
			return err
		}
		device := &auth.Principal{Kind: auth.KindDevice, TeamID: key.TeamID, DeviceID: d.ID}
		return audit.Record(ctx, tx, key.TeamID, device, audit.DeviceEnroll, ids.Encode(ids.Device, d.ID))
	})
	if err != nil {
		return Issued{}, err
	}
	return Issued{Device: &d, Token: token}, nil
}

// whyNot tells why a key whose use was refused is not live. The key was read
// before the refusal, so a limit reached meanwhile shows as USED_UP.
func whyNot(k *store.EnrollmentKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return string(auth.ReasonRevoked)
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return string(auth.ReasonExpired)
	default:
		return reasonUsedUp
	}
}

// KeysByID reads several of the caller's team's enrollment keys, for
// nodes(ids:). With no ids it only checks the caller may read enrollment
// keys, so that a refusal does not depend on what the ids name.
func (s *Service) KeysByID(ctx context.Context, actor *auth.Principal, ids []uuid.UUID) ([]store.EnrollmentKey, error) {
	return auth.ByID(ctx, actor, scope.DevicesRead, ids, s.store.EnrollmentKeysByID)
}

// ListKeys reads one page of the caller's team's enrollment keys.
func (s *Service) ListKeys(ctx context.Context, actor *auth.Principal, args store.PageArgs) (store.Page[store.EnrollmentKey], error) {
	if err := actor.Need(scope.DevicesRead); err != nil {
		return store.Page[store.EnrollmentKey]{}, err
	}
	return s.store.ListEnrollmentKeys(ctx, actor.TeamID, args)
}

// CountKeys counts the caller's team's enrollment keys.
func (s *Service) CountKeys(ctx context.Context, actor *auth.Principal) (int64, error) {
	if err := actor.Need(scope.DevicesRead); err != nil {
		return 0, err
	}
	return s.store.CountEnrollmentKeys(ctx, actor.TeamID)
}
