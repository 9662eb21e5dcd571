package apikeys_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apikeys"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/domaintest"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
)

// party is a key of the lattice: a team key holding scopes (none: the
// wildcard), or a personal key when owner names its owner's role.
// effective is what it may do, written out rather than computed.
type party struct {
	name      string
	scopes    []scope.Scope
	owner     scope.Role
	effective scope.Set
}

// stored is what the key holds before any role cap: what its secret may
// ever do if its owner is promoted.
func (p party) stored() scope.Set {
	if len(p.scopes) == 0 {
		return scope.Wildcard
	}
	return scope.Of(p.scopes...)
}

const (
	akr = scope.APIKeysRead
	akw = scope.APIKeysWrite
	dr  = scope.DevicesRead
	dw  = scope.DevicesWrite
	mr  = scope.MembersRead
	ar  = scope.AuditRead
)

var (
	reads = scope.Of(akr, dr, mr, ar)
	// teamKeys is the lattice of team keys, each able to manage keys.
	teamKeys = []party{
		{"{API_KEYS_WRITE}", []scope.Scope{akw}, "", scope.Of(akw)},
		{"{API_KEYS_WRITE DEVICES_READ}", []scope.Scope{akw, dr}, "", scope.Of(akw, dr)},
		{"{API_KEYS_WRITE DEVICES_WRITE MEMBERS_READ}", []scope.Scope{akw, dw, mr}, "", scope.Of(akw, dw, mr)},
		{"{all seven}", scope.All, "", scope.Of(scope.All...)},
		{"{*}", nil, "", scope.Wildcard},
	}
	// noWrite are callers that may not manage keys at all: one by its
	// scopes, one by its owner's role.
	noWrite = []party{
		{"{API_KEYS_READ DEVICES_WRITE}", []scope.Scope{akr, dw}, "", scope.Of(akr, dw)},
		{"DEVELOPER's {*}", nil, scope.Developer, reads | scope.Of(dw)},
	}
	// personal are personal keys whose owner's role narrows them.
	personal = []party{
		{"VIEWER's {*}", nil, scope.Viewer, reads},
		{"DEVELOPER's {*}", nil, scope.Developer, reads | scope.Of(dw)},
		{"ADMIN's {*}", nil, scope.Admin, scope.Wildcard},
		{"OWNER's {DEVICES_READ}", []scope.Scope{dr}, scope.Owner, scope.Of(dr)},
	}
	// itself stands for the caller's own key as the target.
	itself = party{name: "itself"}
)

// lattice is a team with one member of each role, minting the keys of the
// lattice.
type lattice struct {
	*domaintest.Fixture
	owners map[scope.Role]uuid.UUID
}

func newLattice(t *testing.T, fx *domaintest.Fixture) *lattice {
	l := &lattice{Fixture: fx, owners: map[scope.Role]uuid.UUID{}}
	for _, r := range scope.Roles {
		l.owners[r] = l.Member(t, r).ID
	}
	return l
}

// mint creates p's key, allowed only on 10.0.0.0/8 so that narrowing the
// list is a change, and returns it with its principal, whose scopes it
// checks against p's.
func (l *lattice) mint(t *testing.T, p party) (*store.APIKey, *auth.Principal) {
	t.Helper()
	in := apikeys.CreateInput{Scopes: p.scopes, AllowedCIDRs: []string{"10.0.0.0/8"}}
	if p.owner != "" {
		id := l.owners[p.owner]
		in.OwnerID = &id
	}
	k := l.Create(t, in)
	actor := l.Principal(t, k.ID)
	if actor.Scopes != p.effective {
		t.Fatalf("%s authenticates with %s, want %s", p.name, actor.Scopes.Stored(), p.effective.Stored())
	}
	return k, actor
}

// row reads a key as it is stored, for Step to compare.
func (l *lattice) row(t *testing.T, id uuid.UUID) func() any {
	return func() any {
		k, err := l.Store.APIKey(context.Background(), l.Team.ID, id)
		if err != nil {
			t.Fatalf("read key: %v", err)
		}
		return *k
	}
}

// TestManageKeyLattice runs update, rotate and revoke for every caller on
// every target. Update and revoke need API_KEYS_WRITE and every scope the
// target holds now; rotate, which hands over the secret, every scope it
// stores, which its owner's promotion would bring back. A key may always
// manage itself.
func TestManageKeyLattice(t *testing.T) {
	callers := slices.Concat(teamKeys, noWrite)
	targets := slices.Concat(teamKeys, personal, []party{itself})
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		l := newLattice(t, fx)
		for i, c := range callers {
			for _, tg := range targets {
				t.Run(c.name+" on "+tg.name, func(t *testing.T) {
					ctx := t.Context()
					caller, actor := l.mint(t, c)
					target, held := caller, c
					if tg.name != itself.name {
						target, _ = l.mint(t, tg)
						held = tg
					}
					write := domaintest.Covers(c.effective, scope.Of(akw))
					self := target.ID == caller.ID
					// What a refusal may name: API_KEYS_WRITE, else a scope at stake.
					manage, rotate := scope.Of(akw), scope.Of(akw)
					if write {
						manage, rotate = held.effective, held.stored()
					}
					canManage := write && (self || domaintest.Covers(c.effective, held.effective))
					canRotate := write && (self || domaintest.Covers(c.effective, held.stored()))
					row := l.row(t, target.ID)

					t.Run("update", func(t *testing.T) {
						l.Step(t, canManage, domaintest.Blame(c.effective, manage), row, func() error {
							_, err := l.APIKeys.Update(ctx, actor, apikeys.UpdateInput{ID: target.ID, SetCIDRs: true, AllowedCIDRs: []string{"10.1.0.0/16"}})
							return err
						})
					})
					grace := time.Duration(i%2) * time.Minute
					t.Run(fmt.Sprintf("rotate grace %s", grace), func(t *testing.T) {
						l.Step(t, canRotate, domaintest.Blame(c.effective, rotate), row, func() error {
							_, err := l.APIKeys.Rotate(ctx, actor, target.ID, grace)
							return err
						})
					})
					if self {
						// With no grace, the secret the principal holds is
						// gone: a client would use the new one.
						actor = l.Principal(t, target.ID)
					}
					t.Run("revoke", func(t *testing.T) {
						l.Step(t, canManage, domaintest.Blame(c.effective, manage), row, func() error {
							_, err := l.APIKeys.Revoke(ctx, actor, target.ID)
							return err
						})
					})
				})
			}
		}
	})
}

// TestCreateOnlySubsets checks that a key mints only keys whose scopes its
// own cover, and only with API_KEYS_WRITE.
func TestCreateOnlySubsets(t *testing.T) {
	asked := [][]scope.Scope{{akw}, {akw, dr}, {akw, dw, mr}, scope.All, nil, {ar}, {dr, scope.MembersWrite}}
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		l := newLattice(t, fx)
		keys := func() any { return l.DB.Count(t, "api_keys", "team_id = ?", l.Team.ID) }
		for _, c := range slices.Concat(teamKeys, noWrite) {
			for _, want := range asked {
				requested := party{scopes: want}.stored()
				t.Run(c.name+" mints {"+requested.Stored()+"}", func(t *testing.T) {
					_, actor := l.mint(t, c)
					write := domaintest.Covers(c.effective, scope.Of(akw))
					blame := scope.Of(akw)
					if write {
						blame = requested
					}
					l.Step(t, write && domaintest.Covers(c.effective, requested), domaintest.Blame(c.effective, blame), keys, func() error {
						_, err := l.APIKeys.Create(t.Context(), actor, apikeys.CreateInput{Name: "minted", Scopes: want, AllowedCIDRs: []string{"10.2.0.0/16"}})
						return err
					})
				})
			}
		}
	})
}

// TestReadsNeedAPIKeysRead checks every read of keys: API_KEYS_READ for the
// team's keys, even for ByID with no ids; nothing beyond a team API key for
// the caller's own key and its owner.
func TestReadsNeedAPIKeysRead(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		owner := fx.Member(t, scope.Developer).ID
		key := fx.PersonalKey(t, owner).ID
		page := store.PageArgs{Limit: 10}
		fx.Guard(t, []scope.Scope{akr}, nil, []domaintest.Call{
			{Name: "ByID unknown", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.APIKeys.ByID(ctx, p, []uuid.UUID{uuid.New()})
			}},
			{Name: "List", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.APIKeys.List(ctx, p, store.APIKeyFilter{}, page)
			}},
			{Name: "Count", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.APIKeys.Count(ctx, p, store.APIKeyFilter{})
			}},
			{Name: "ByID no ids", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.APIKeys.ByID(ctx, p, nil) }},
			{Name: "ByID", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.APIKeys.ByID(ctx, p, []uuid.UUID{key})
			}},
			{Name: "ListByOwners", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				pages, _, err := fx.APIKeys.ListByOwners(ctx, p, []uuid.UUID{owner}, page, true)
				return pages, err
			}},
		})
		fx.Guard(t, nil, nil, []domaintest.Call{
			{Name: "Viewer", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.APIKeys.Viewer(ctx, p) }},
			{Name: "Scopes", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				k, err := fx.APIKeys.Viewer(ctx, fx.Admin)
				if err != nil {
					return nil, err
				}
				return fx.APIKeys.Scopes(ctx, p, []*store.APIKey{k})
			}},
		})
	})
}
