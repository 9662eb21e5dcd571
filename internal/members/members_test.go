package members_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apikeys"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/domaintest"
	"github.com/keyplane/keyplane/internal/members"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
)

var (
	mw    = scope.MembersWrite
	reads = []scope.Scope{scope.APIKeysRead, scope.DevicesRead, scope.MembersRead, scope.AuditRead}
	// caps are the roles' caps as the contract states them: a personal
	// key of a VIEWER reads, of a DEVELOPER also writes devices, of an
	// ADMIN or OWNER does anything, scopes added later included.
	caps = map[scope.Role]scope.Set{
		scope.Viewer:    scope.Of(reads...),
		scope.Developer: scope.Of(reads...) | scope.Of(scope.DevicesWrite),
		scope.Admin:     scope.Wildcard,
		scope.Owner:     scope.Wildcard,
	}
)

// caller is a key that changes members: a team key holding scopes (none:
// the wildcard), or a personal key when owner names its owner's role.
type caller struct {
	name   string
	scopes []scope.Scope
	owner  scope.Role
}

var callers = []caller{
	{"{MEMBERS_WRITE}", []scope.Scope{mw}, ""},
	{"{MEMBERS_WRITE, *_READ}", append([]scope.Scope{mw}, reads...), ""},
	{"{MEMBERS_WRITE, *_READ, DEVICES_WRITE}", append([]scope.Scope{mw, scope.DevicesWrite}, reads...), ""},
	{"{all seven}", scope.All, ""},
	{"{*}", nil, ""},
	{"{MEMBERS_READ API_KEYS_WRITE}", []scope.Scope{scope.MembersRead, scope.APIKeysWrite}, ""},
	{"DEVELOPER's {*}", nil, scope.Developer},
}

// principal mints c's key and returns its principal.
func (c caller) principal(t *testing.T, fx *domaintest.Fixture) *auth.Principal {
	t.Helper()
	if c.owner == "" {
		return fx.As(t, c.scopes...)
	}
	return fx.Principal(t, fx.PersonalKey(t, fx.Member(t, c.owner).ID, c.scopes...).ID)
}

// rule is what a caller holding held may do with the roles involved: it
// needs MEMBERS_WRITE, then every scope of each role's cap. It returns
// whether the change is allowed and what a refusal may name.
func rule(held scope.Set, roles ...scope.Role) (bool, func(string) bool) {
	if !domaintest.Covers(held, scope.Of(mw)) {
		return false, domaintest.Blame(held, scope.Of(mw))
	}
	var want scope.Set
	for _, r := range roles {
		want |= caps[r]
	}
	return domaintest.Covers(held, want), domaintest.Blame(held, want)
}

// TestRolesLattice adds, changes and removes members of every role, and
// changes every role into every other, as callers holding more and more.
// Each needs MEMBERS_WRITE and every scope of the old and the new role's
// cap. A second OWNER and the bootstrap key stay, so that the no-lock-out
// rules never answer instead.
func TestRolesLattice(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		fx.Member(t, scope.Owner)
		// member reads a member as stored; a removed one reads as zero.
		member := func(t *testing.T, id uuid.UUID) func() any {
			return func() any {
				m, err := store.OrNil(fx.Store.Member(context.Background(), fx.Team.ID, id))
				if err != nil {
					t.Fatalf("read member: %v", err)
				}
				if m == nil {
					return store.Member{}
				}
				return *m
			}
		}
		count := func() any { return fx.DB.Count(t, "members", "team_id = ?", fx.Team.ID) }
		for _, c := range callers {
			t.Run(c.name, func(t *testing.T) {
				actor := c.principal(t, fx)
				for _, r := range scope.Roles {
					t.Run("add "+string(r), func(t *testing.T) {
						ok, blame := rule(actor.Scopes, r)
						fx.Step(t, ok, blame, count, func() error {
							_, err := fx.Members.Add(t.Context(), actor, members.AddInput{Email: fx.Unique("new") + "@example.com", Role: r})
							return err
						})
					})
					t.Run("remove "+string(r), func(t *testing.T) {
						m := fx.Member(t, r)
						ok, blame := rule(actor.Scopes, r)
						fx.Step(t, ok, blame, member(t, m.ID), func() error {
							_, err := fx.Members.Remove(t.Context(), actor, m.ID)
							return err
						})
					})
					for _, to := range scope.Roles {
						t.Run("update "+string(r)+" to "+string(to), func(t *testing.T) {
							m := fx.Member(t, r)
							ok, blame := rule(actor.Scopes, r, to)
							fx.Step(t, ok, blame, member(t, m.ID), func() error {
								_, err := fx.Members.Update(t.Context(), actor, members.UpdateInput{ID: m.ID, Role: &to})
								return err
							})
						})
					}
				}
			})
		}
	})
}

// TestReadsNeedMembersRead checks every read of members, ByID even with
// no ids.
func TestReadsNeedMembersRead(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		id := fx.Member(t, scope.Viewer).ID
		fx.Guard(t, []scope.Scope{scope.MembersRead}, nil, []domaintest.Call{
			{Name: "ByID unknown", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Members.ByID(ctx, p, []uuid.UUID{uuid.New()})
			}},
			{Name: "ByID no ids", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Members.ByID(ctx, p, nil) }},
			{Name: "ByID", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Members.ByID(ctx, p, []uuid.UUID{id})
			}},
			{Name: "List", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Members.List(ctx, p, store.MemberFilter{}, store.PageArgs{Limit: 10})
			}},
			{Name: "Count", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Members.Count(ctx, p, store.MemberFilter{})
			}},
		})
	})
}

// TestRemoveRacesPersonalKey removes a member while a personal key is
// made for them, 30 times. Whichever commits first, no active key may be
// left to a removed member: either the key is made first and the removal
// revokes it, or the removal is first and the key is refused NOT_FOUND.
func TestRemoveRacesPersonalKey(t *testing.T) {
	const rounds = 30
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		ctx := t.Context()
		made := 0
		for range rounds {
			m := fx.Member(t, scope.Developer)
			start := make(chan struct{})
			var wg sync.WaitGroup
			var removeErr, createErr error
			wg.Go(func() {
				<-start
				_, removeErr = fx.Members.Remove(ctx, fx.Admin, m.ID)
			})
			wg.Go(func() {
				<-start
				_, createErr = fx.APIKeys.Create(ctx, fx.Admin, apikeys.CreateInput{Name: "laptop", OwnerID: &m.ID})
			})
			close(start)
			wg.Wait()
			domaintest.WantCode(t, removeErr, "")
			if createErr == nil {
				made++
			} else {
				domaintest.WantCode(t, createErr, apperr.NotFound)
			}
		}
		live := fx.DB.Count(t, "api_keys",
			"revoked_at IS NULL AND owner_id IN (SELECT id FROM members WHERE removed_at IS NOT NULL)")
		if live != 0 {
			t.Fatalf("%d active keys belong to removed members", live)
		}
		t.Logf("%d of %d keys were made before their owner's removal", made, rounds)
	})
}
