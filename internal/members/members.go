// Package members holds the rules of a team's people: their roles, which cap
// their personal keys; the last owner, who stays; and removal, which takes
// the member's personal keys with them in the same transaction.
package members

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apikeys"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/audit"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/validate"
)

// Statuses of a member.
const (
	Invited = "INVITED"
	Active  = "ACTIVE"
)

// Service carries out the member mutations and reads.
type Service struct {
	store *store.Store
}

// NewService returns a Service on s.
func NewService(s *store.Store) *Service { return &Service{store: s} }

// AddInput is who joins the team.
type AddInput struct {
	Email string
	Name  *string
	Role  scope.Role
}

func checkRole(r scope.Role) error {
	if !r.Valid() {
		return apperr.Input("role", "role must be OWNER, ADMIN, DEVELOPER or VIEWER")
	}
	return nil
}

func checkName(name *string) error {
	if name == nil || *name == "" {
		return nil
	}
	return validate.Name("name", *name)
}

// Add invites a member. An email is one member per team, whatever its case:
// a second is a CONFLICT, also under concurrent adds.
func (s *Service) Add(ctx context.Context, actor *auth.Principal, in AddInput) (*store.Member, error) {
	if err := actor.Need(scope.MembersWrite); err != nil {
		return nil, err
	}
	emailKey, err := validate.Email("email", in.Email)
	if err != nil {
		return nil, err
	}
	if err := checkName(in.Name); err != nil {
		return nil, err
	}
	if err := checkRole(in.Role); err != nil {
		return nil, err
	}
	if err := actor.GrantRoles(in.Role); err != nil {
		return nil, err
	}
	now := store.Now()
	m := &store.Member{
		ID: ids.New(), TeamID: actor.TeamID, Email: in.Email, EmailKey: emailKey, Name: nonEmpty(in.Name),
		Role: string(in.Role), Status: Invited, CreatedAt: now, UpdatedAt: now,
	}
	return auth.InTx(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) (*store.Member, error) {
		if err := actor.GrantRoles(in.Role); err != nil {
			return nil, err
		}
		if err := tx.CreateMember(ctx, m); err != nil {
			return nil, err
		}
		return m, audit.Record(ctx, tx, actor.TeamID, actor, audit.MemberAdd, ids.Encode(ids.Member, m.ID))
	})
}

// UpdateInput holds the changes to a member; nil fields stay as they are.
type UpdateInput struct {
	ID     uuid.UUID
	Name   *string
	Role   *scope.Role
	Status *string
}

// Update changes a member's name, role or status. A demotion narrows the
// member's personal keys at once; it is refused if it would leave the team
// without an owner or without a key able to manage keys.
func (s *Service) Update(ctx context.Context, actor *auth.Principal, in UpdateInput) (*store.Member, error) {
	if err := actor.Need(scope.MembersWrite); err != nil {
		return nil, err
	}
	columns := map[string]any{}
	if in.Name != nil {
		if err := checkName(in.Name); err != nil {
			return nil, err
		}
		columns["name"] = nonEmpty(in.Name)
	}
	if in.Role != nil {
		if err := checkRole(*in.Role); err != nil {
			return nil, err
		}
		columns["role"] = string(*in.Role)
	}
	if in.Status != nil {
		if *in.Status != Invited && *in.Status != Active {
			return nil, apperr.Input("status", "status must be INVITED or ACTIVE")
		}
		columns["status"] = *in.Status
	}
	return auth.InTx(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) (*store.Member, error) {
		m, err := s.managed(ctx, tx, actor, in.ID, in.Role)
		if err != nil {
			return nil, err
		}
		if len(columns) > 0 {
			if err := s.change(ctx, tx, actor, in.ID, audit.MemberUpdate, func(now time.Time) error {
				return tx.UpdateMember(ctx, actor.TeamID, in.ID, columns, now)
			}); err != nil {
				return nil, err
			}
			m, err = tx.Member(ctx, actor.TeamID, in.ID)
		}
		return m, err
	})
}

// Remove removes a member and revokes their personal keys, together. The
// last owner cannot be removed.
func (s *Service) Remove(ctx context.Context, actor *auth.Principal, id uuid.UUID) (*store.Member, error) {
	if err := actor.Need(scope.MembersWrite); err != nil {
		return nil, err
	}
	return auth.InTx(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) (*store.Member, error) {
		m, err := s.managed(ctx, tx, actor, id, nil)
		if err != nil {
			return nil, err
		}
		return m, s.change(ctx, tx, actor, id, audit.MemberRemove, func(now time.Time) error {
			m.RemovedAt = &now
			return tx.RemoveMember(ctx, actor.TeamID, id, now)
		})
	})
}

// managed reads, with its row locked, a member the caller is about to
// change, and applies GrantRoles to the member's role and to the new one
// (nil when the role stays). The lock keeps the role read here current
// until the change commits.
func (s *Service) managed(ctx context.Context, tx *store.Store, actor *auth.Principal, id uuid.UUID, role *scope.Role) (*store.Member, error) {
	m, err := tx.LockMember(ctx, actor.TeamID, id)
	if err != nil {
		return nil, err
	}
	roles := []scope.Role{scope.Role(m.Role)}
	if role != nil {
		roles = append(roles, *role)
	}
	return m, actor.GrantRoles(roles...)
}

// change applies a change to a member inside tx, with the team locked by
// auth.InTx, then holds the team to its rules: an owner stays if there was
// one, and a key able to manage keys stays. It records the change's audit
// event.
func (s *Service) change(ctx context.Context, tx *store.Store, actor *auth.Principal, id uuid.UUID, action string, apply func(now time.Time) error) error {
	owners, err := tx.CountMembersWithRole(ctx, actor.TeamID, string(scope.Owner))
	if err != nil {
		return err
	}
	if err := apply(store.Now()); err != nil {
		return err
	}
	if owners > 0 {
		left, err := tx.CountMembersWithRole(ctx, actor.TeamID, string(scope.Owner))
		if err != nil {
			return err
		}
		if left == 0 {
			return apperr.New(apperr.FailedPrecondition, "this is the team's last owner; make another member OWNER first")
		}
	}
	if err := apikeys.EnsureKeyManager(ctx, tx, actor.TeamID); err != nil {
		return err
	}
	return audit.Record(ctx, tx, actor.TeamID, actor, action, ids.Encode(ids.Member, id))
}

// ByID reads several of the caller's team's current members, for the edges
// that point to members (ApiKey.owner). With no ids it only checks the
// caller may read members, so that an edge is refused whatever it points to.
func (s *Service) ByID(ctx context.Context, actor *auth.Principal, ids []uuid.UUID) ([]store.Member, error) {
	return auth.ByID(ctx, actor, scope.MembersRead, ids, s.store.MembersByID)
}

// List reads one page of the caller's team's current members.
func (s *Service) List(ctx context.Context, actor *auth.Principal, f store.MemberFilter, args store.PageArgs) (store.Page[store.Member], error) {
	if err := actor.Need(scope.MembersRead); err != nil {
		return store.Page[store.Member]{}, err
	}
	return s.store.ListMembers(ctx, actor.TeamID, f, args)
}

// Count counts the caller's team's current members matching f.
func (s *Service) Count(ctx context.Context, actor *auth.Principal, f store.MemberFilter) (int64, error) {
	if err := actor.Need(scope.MembersRead); err != nil {
		return 0, err
	}
	return s.store.CountMembers(ctx, actor.TeamID, f)
}

func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}
