// Package apikeys holds the rules of a team's API keys: who may mint which
// scopes, how rotation hands over from one secret to the next, and why the
// last key able to manage keys cannot be revoked.
package apikeys

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

// MaxGracePeriod is the longest an old secret may outlive its rotation.
const MaxGracePeriod = 7 * 24 * time.Hour

// Service carries out the API key mutations and reads.
type Service struct {
	store *store.Store
}

// NewService returns a Service on s.
func NewService(s *store.Store) *Service { return &Service{store: s} }

// Issued is a key together with its secret, which exists only here, once.
type Issued struct {
	Key    *store.APIKey
	Secret string
}

// CreateInput is what a new key should be.
type CreateInput struct {
	Name         string
	Description  *string
	Scopes       []scope.Scope
	ExpiresAt    *time.Time
	AllowedCIDRs []string
	// OwnerID makes the key a member's personal key.
	OwnerID *uuid.UUID
}

// NewKey builds a key row and its secret for a team, without storing it: the
// one place where a key's secret is made. createdBy is nil for the command line.
func NewKey(teamID uuid.UUID, name string, scopes scope.Set, createdBy *uuid.UUID) (Issued, error) {
	id := ids.New()
	cred, err := credential.Generate(credential.APIKey, id)
	if err != nil {
		return Issued{}, err
	}
	now := store.Now()
	k := &store.APIKey{
		ID: id, TeamID: teamID, Name: name, Scopes: scopes.Stored(), SecretHash: cred.Hash[:],
		CreatedByID: createdBy, Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	return Issued{Key: k, Secret: cred.Token}, nil
}

// requested turns a list of scopes into a set; none means every scope.
func requested(scopes []scope.Scope) scope.Set {
	if len(scopes) == 0 {
		return scope.Wildcard
	}
	return scope.Of(scopes...)
}

// Create mints a key whose scopes are a subset of the caller's own, within
// the caller's networks and lifetime. A member's personal key mints keys of
// the same member, so that they are capped and revoked with the member.
func (s *Service) Create(ctx context.Context, actor *auth.Principal, in CreateInput) (Issued, error) {
	if err := actor.Need(scope.APIKeysWrite); err != nil {
		return Issued{}, err
	}
	if err := validate.Name("name", in.Name); err != nil {
		return Issued{}, err
	}
	if in.Description != nil {
		if err := validate.Description("description", *in.Description); err != nil {
			return Issued{}, err
		}
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(time.Now()) {
		return Issued{}, apperr.Input("expiresAt", "expiresAt must be in the future")
	}
	cidrs, err := validate.CIDRs("allowedCidrs", in.AllowedCIDRs)
	if err != nil {
		return Issued{}, err
	}
	want := requested(in.Scopes)
	creator := actor.KeyID
	issued, err := NewKey(actor.TeamID, in.Name, want, &creator)
	if err != nil {
		return Issued{}, err
	}
	k := issued.Key
	k.OwnerID = in.OwnerID
	if k.OwnerID == nil {
		k.OwnerID = actor.OwnerID
	}
	k.Description = emptyToNil(in.Description)
	k.AllowedCIDRs = store.JoinCIDRs(cidrs)
	if in.ExpiresAt != nil {
		at := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		k.ExpiresAt = &at
	}
	permit := func(p *auth.Principal) error {
		if err := p.Need(scope.APIKeysWrite); err != nil {
			return err
		}
		if in.OwnerID != nil {
			// Naming a member says whether they exist and what their role
			// allows: that is the members' to show.
			if err := p.Need(scope.MembersRead); err != nil {
				return err
			}
		}
		if err := p.Covers(want, "grant a scope"); err != nil {
			return err
		}
		if err := p.Owns(k.OwnerID); err != nil {
			return err
		}
		return p.Within(cidrs, k.ExpiresAt)
	}
	if err := permit(actor); err != nil {
		return Issued{}, err
	}
	_, err = auth.InTx(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) (*store.APIKey, error) {
		if err := permit(actor); err != nil {
			return nil, err
		}
		if k.OwnerID != nil {
			if err := checkOwner(ctx, tx, actor.TeamID, *k.OwnerID, want); err != nil {
				return nil, err
			}
		}
		if err := tx.CreateAPIKey(ctx, k); err != nil {
			return nil, err
		}
		return k, audit.Record(ctx, tx, actor.TeamID, actor, audit.APIKeyCreate, ids.Encode(ids.APIKey, k.ID))
	})
	if err != nil {
		return Issued{}, err
	}
	return issued, nil
}

// checkOwner makes sure a personal key's owner is a current member of the
// team whose role allows the scopes listed. A key without scopes is fine for
// any role: it does what the role allows, whatever that becomes.
func checkOwner(ctx context.Context, tx *store.Store, teamID, ownerID uuid.UUID, want scope.Set) error {
	// The lock keeps a removal of the owner from committing in between:
	// removeMember revokes every key of the member, and must see this one.
	m, err := tx.LockMember(ctx, teamID, ownerID)
	if err != nil {
		return err
	}
	role := scope.Role(m.Role)
	if missing, ok := role.Cap().Covers(want); !ok && want&scope.Wildcard == 0 {
		return apperr.Input("scopes", "a %s's personal key cannot hold %s", m.Role, missing)
	}
	return nil
}

// UpdateInput holds the changes to a key; nil fields stay as they are.
type UpdateInput struct {
	ID           uuid.UUID
	Name         *string
	Description  *string
	AllowedCIDRs []string
	// SetCIDRs tells an absent list from an empty one, which allows any address.
	SetCIDRs bool
}

// Update changes a key's name, description or allowed networks.
func (s *Service) Update(ctx context.Context, actor *auth.Principal, in UpdateInput) (*store.APIKey, error) {
	columns := map[string]any{}
	if in.Name != nil {
		if err := validate.Name("name", *in.Name); err != nil {
			return nil, err
		}
		columns["name"] = *in.Name
	}
	if in.Description != nil {
		if err := validate.Description("description", *in.Description); err != nil {
			return nil, err
		}
		columns["description"] = emptyToNil(in.Description)
	}
	var cidrs []string
	if in.SetCIDRs {
		var err error
		if cidrs, err = validate.CIDRs("allowedCidrs", in.AllowedCIDRs); err != nil {
			return nil, err
		}
		columns["allowed_cidrs"] = store.JoinCIDRs(cidrs)
	}
	return audit.Change(ctx, s.store, actor, audit.APIKeyUpdate, ids.Encode(ids.APIKey, in.ID),
		func(tx *store.Store, actor *auth.Principal) (bool, error) {
			if _, err := managed(ctx, tx, actor, in.ID, effective); err != nil {
				return false, err
			}
			if in.SetCIDRs {
				if err := actor.WithinNetworks(cidrs); err != nil {
					return false, err
				}
			}
			if len(columns) == 0 {
				return false, nil
			}
			return true, tx.UpdateAPIKey(ctx, actor.TeamID, in.ID, columns, store.Now())
		},
		func(tx *store.Store) (*store.APIKey, error) { return tx.APIKey(ctx, actor.TeamID, in.ID) })
}

// managed reads a key the caller is about to change, inside the change's
// transaction, and applies ManageKey to what reach says the key holds.
func managed(ctx context.Context, tx *store.Store, actor *auth.Principal, id uuid.UUID,
	reach func(ctx context.Context, tx *store.Store, k *store.APIKey) (scope.Set, error)) (*store.APIKey, error) {
	if err := actor.Need(scope.APIKeysWrite); err != nil {
		return nil, err
	}
	k, err := tx.APIKey(ctx, actor.TeamID, id)
	if err != nil {
		return nil, err
	}
	held, err := reach(ctx, tx, k)
	if err != nil {
		return nil, err
	}
	return k, actor.ManageKey(k.ID, held)
}

// effective is what a key may do now: its scopes, capped for a personal key
// by its owner's current role (nothing once the owner is removed).
func effective(ctx context.Context, tx *store.Store, k *store.APIKey) (scope.Set, error) {
	if k.OwnerID == nil {
		return scope.ParseStored(k.Scopes), nil
	}
	var role string
	m, err := store.OrNil(tx.Member(ctx, k.TeamID, *k.OwnerID))
	if err != nil {
		return 0, err
	}
	if m != nil {
		role = m.Role
	}
	return scope.KeyScopes(k.Scopes, true, role), nil
}

// potential is the most a key's secret may ever do: its stored scopes. A
// personal key's role cap narrows them today, but a promotion of its owner
// lifts the cap, so whoever learns the secret must cover them all.
func potential(_ context.Context, _ *store.Store, k *store.APIKey) (scope.Set, error) {
	return scope.ParseStored(k.Scopes), nil
}

// Rotate gives a key a new secret. The old secret keeps working for grace
// (0 refuses it at once, at most seven days). Two concurrent rotations never
// leave two live successors: one of them gets CONFLICT.
func (s *Service) Rotate(ctx context.Context, actor *auth.Principal, id uuid.UUID, grace time.Duration) (Issued, error) {
	if grace < 0 || grace > MaxGracePeriod {
		return Issued{}, apperr.Input("gracePeriodSeconds", "gracePeriodSeconds must be between 0 and %d", int(MaxGracePeriod/time.Second))
	}
	cred, err := credential.Generate(credential.APIKey, id)
	if err != nil {
		return Issued{}, err
	}
	out, err := auth.InTx(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) (*store.APIKey, error) {
		// Rotating hands over a secret: the caller must cover all the key
		// may ever do, not only what its owner's role allows today, and be
		// allowed where and until when the key is.
		k, err := managed(ctx, tx, actor, id, potential)
		if err != nil {
			return nil, err
		}
		if k.ID != actor.KeyID {
			// A personal key takes over only keys of its own member, as it
			// mints only those: otherwise it could rotate a team key and
			// keep a secret that outlives the member.
			if err := actor.Owns(k.OwnerID); err != nil {
				return nil, err
			}
			if err := actor.Within(k.CIDRs(), k.ExpiresAt); err != nil {
				return nil, err
			}
		}
		now := store.Now()
		if st := k.StatusAt(now); st != store.KeyActive {
			return nil, apperr.New(apperr.FailedPrecondition, "only an active key can be rotated; this one is %s", st)
		}
		change := store.SecretChange{SecretHash: cred.Hash[:], RotatedAt: now}
		if grace > 0 {
			until := now.Add(grace)
			change.PreviousSecretHash, change.PreviousSecretExpiresAt = k.SecretHash, &until
		}
		err = tx.RotateAPIKeySecret(ctx, k, change)
		if errors.Is(err, store.ErrStale) {
			return nil, apperr.New(apperr.Conflict, "the key changed while it was being rotated; read it again and retry")
		}
		if err != nil {
			return nil, err
		}
		if err := audit.Record(ctx, tx, actor.TeamID, actor, audit.APIKeyRotate, ids.Encode(ids.APIKey, id)); err != nil {
			return nil, err
		}
		return tx.APIKey(ctx, actor.TeamID, id)
	})
	if err != nil {
		return Issued{}, err
	}
	return Issued{Key: out, Secret: cred.Token}, nil
}

// Revoke revokes a key for good. Revoking a revoked key changes nothing.
func (s *Service) Revoke(ctx context.Context, actor *auth.Principal, id uuid.UUID) (*store.APIKey, error) {
	return audit.Change(ctx, s.store, actor, audit.APIKeyRevoke, ids.Encode(ids.APIKey, id),
		func(tx *store.Store, actor *auth.Principal) (bool, error) {
			if _, err := managed(ctx, tx, actor, id, effective); err != nil {
				return false, err
			}
			revoked, err := tx.RevokeAPIKey(ctx, actor.TeamID, id, store.Now())
			if err != nil || !revoked {
				return false, err
			}
			return true, EnsureKeyManager(ctx, tx, actor.TeamID)
		},
		func(tx *store.Store) (*store.APIKey, error) { return tx.APIKey(ctx, actor.TeamID, id) })
}

// EnsureKeyManager is the no-lock-out rule: after a change, inside its
// transaction and with the team locked (store.LockTeam), the team must
// still have an active key that may use API_KEYS_WRITE. Revoking a key,
// demoting or removing a member all end with it, and a change that breaks
// it is rolled back with FAILED_PRECONDITION.
func EnsureKeyManager(ctx context.Context, tx *store.Store, teamID uuid.UUID) error {
	n, err := tx.CountKeysHolding(ctx, teamID, scope.APIKeysWrite, store.Now())
	if err != nil {
		return err
	}
	if n == 0 {
		return apperr.New(apperr.FailedPrecondition, "the team would be left without an active key holding API_KEYS_WRITE; create another first")
	}
	return nil
}

// Viewer reads the caller's own key. A key may always read itself, whatever
// its scopes; what it points to needs the read scope of each type.
func (s *Service) Viewer(ctx context.Context, actor *auth.Principal) (*store.APIKey, error) {
	if err := actor.Need(); err != nil {
		return nil, err
	}
	return s.store.APIKey(ctx, actor.TeamID, actor.KeyID)
}

// ByID reads several of the caller's team's keys, for the edges that point
// to keys (createdBy, actor). With no ids it only checks the caller may read
// keys, so that an edge is refused whatever it points to.
func (s *Service) ByID(ctx context.Context, actor *auth.Principal, ids []uuid.UUID) ([]store.APIKey, error) {
	return auth.ByID(ctx, actor, scope.APIKeysRead, ids, s.store.APIKeysByID)
}

// Scopes returns what each of the given keys, which the caller already
// holds, may do now: for a personal key, its scopes capped by its owner's
// current role. Any key may read this of itself (viewer), so it needs no
// scope beyond a team key; it reveals no member, only the keys' own scopes,
// and keys of another team hold nothing. Members themselves are read only
// through members.Service, which needs MEMBERS_READ.
func (s *Service) Scopes(ctx context.Context, actor *auth.Principal, keys []*store.APIKey) ([]scope.Set, error) {
	if err := actor.Need(); err != nil {
		return nil, err
	}
	var owners []uuid.UUID
	for _, k := range keys {
		if k.OwnerID != nil && k.TeamID == actor.TeamID {
			owners = append(owners, *k.OwnerID)
		}
	}
	roles := map[uuid.UUID]string{}
	if len(owners) > 0 {
		var err error
		if roles, err = s.store.MemberRoles(ctx, actor.TeamID, owners); err != nil {
			return nil, err
		}
	}
	out := make([]scope.Set, len(keys))
	for i, k := range keys {
		if k.TeamID != actor.TeamID {
			continue
		}
		var role string
		if k.OwnerID != nil {
			role = roles[*k.OwnerID]
		}
		out[i] = scope.KeyScopes(k.Scopes, k.OwnerID != nil, role)
	}
	return out, nil
}

// List reads one page of the caller's team's keys.
func (s *Service) List(ctx context.Context, actor *auth.Principal, f store.APIKeyFilter, args store.PageArgs) (store.Page[store.APIKey], error) {
	if err := actor.Need(scope.APIKeysRead); err != nil {
		return store.Page[store.APIKey]{}, err
	}
	return s.store.ListAPIKeys(ctx, actor.TeamID, f, args, store.Now())
}

// Count counts the caller's team's keys matching f.
func (s *Service) Count(ctx context.Context, actor *auth.Principal, f store.APIKeyFilter) (int64, error) {
	if err := actor.Need(scope.APIKeysRead); err != nil {
		return 0, err
	}
	return s.store.CountAPIKeys(ctx, actor.TeamID, f, store.Now())
}

// ListByOwners reads the first page of several members' personal keys, and
// their counts when count is set, for Member.apiKeys.
func (s *Service) ListByOwners(ctx context.Context, actor *auth.Principal, owners []uuid.UUID, args store.PageArgs, count bool) (map[uuid.UUID]store.Page[store.APIKey], map[uuid.UUID]int64, error) {
	if err := actor.Need(scope.APIKeysRead); err != nil {
		return nil, nil, err
	}
	pages, err := s.store.ListAPIKeysByOwners(ctx, actor.TeamID, owners, args)
	if err != nil || !count {
		return pages, nil, err
	}
	counts, err := s.store.CountAPIKeysByOwners(ctx, actor.TeamID, owners)
	return pages, counts, err
}

func emptyToNil(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}
