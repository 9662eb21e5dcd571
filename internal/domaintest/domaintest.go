// Package domaintest holds the fixtures the domain services' tests share: a
// bootstrapped team on a real database, keys, members and devices made
// through the services themselves, principals derived from the database as
// authentication derives them, and the assertions every authorization table
// makes. Only tests import it.
package domaintest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/apikeys"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/audit"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/devices"
	"github.com/keyplane/keyplane/internal/members"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
)

// Fixture is one bootstrapped team on a fresh database of its own, with
// every domain service on it.
type Fixture struct {
	DB      *testdb.Database
	Store   *store.Store
	Teams   *teams.Service
	APIKeys *apikeys.Service
	Members *members.Service
	Devices *devices.Service
	Audit   *audit.Log
	Team    *store.Team
	// Admin is the principal of the bootstrap key, which holds the wildcard.
	// The fixture makes everything else through it.
	Admin *auth.Principal

	serial atomic.Int64
}

// Team bootstraps a team on a fresh database of dialect d, as the command
// line does, and returns it with the services and its admin principal.
func Team(t testing.TB, d db.Dialect) *Fixture {
	t.Helper()
	database := testdb.New(t, d)
	s := database.Store
	fx := &Fixture{
		DB: database, Store: s,
		Teams: teams.NewService(s), APIKeys: apikeys.NewService(s), Members: members.NewService(s),
		Devices: devices.NewService(s, 0), Audit: audit.NewLog(s),
	}
	team, issued, err := fx.Teams.Bootstrap(context.Background(), "Acme", "admin")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	fx.Team = team
	fx.Admin = fx.Principal(t, issued.Key.ID)
	return fx
}

// Each runs fn on a fresh Team on every dialect testdb tests, in parallel.
func Each(t *testing.T, fn func(t *testing.T, fx *Fixture)) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) { fn(t, Team(t, d)) })
}

// Other bootstraps a second team on the same database and returns it with
// its admin principal, to check that one team never reaches another's.
func (fx *Fixture) Other(t testing.TB) (*store.Team, *auth.Principal) {
	t.Helper()
	team, issued, err := fx.Teams.Bootstrap(context.Background(), fx.Unique("Other"), "admin")
	if err != nil {
		t.Fatalf("bootstrap another team: %v", err)
	}
	return team, fx.Principal(t, issued.Key.ID)
}

// Unique returns a name no other call on the fixture returns, for emails,
// serial numbers and key names.
func (fx *Fixture) Unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, fx.serial.Add(1))
}

// Create mints a key as the admin; a missing name is filled in.
func (fx *Fixture) Create(t testing.TB, in apikeys.CreateInput) *store.APIKey {
	t.Helper()
	if in.Name == "" {
		in.Name = fx.Unique("key")
	}
	issued, err := fx.APIKeys.Create(context.Background(), fx.Admin, in)
	if err != nil {
		t.Fatalf("create key %+v: %v", in, err)
	}
	return issued.Key
}

// Key mints a team key holding scopes; none makes a wildcard key.
func (fx *Fixture) Key(t testing.TB, scopes ...scope.Scope) *store.APIKey {
	t.Helper()
	return fx.Create(t, apikeys.CreateInput{Scopes: scopes})
}

// PersonalKey mints a personal key of the member ownerID holding scopes;
// none makes a wildcard key, which does what the owner's role allows.
func (fx *Fixture) PersonalKey(t testing.TB, ownerID uuid.UUID, scopes ...scope.Scope) *store.APIKey {
	t.Helper()
	return fx.Create(t, apikeys.CreateInput{Scopes: scopes, OwnerID: &ownerID})
}

// Member adds a member with role, as the admin.
func (fx *Fixture) Member(t testing.TB, role scope.Role) *store.Member {
	t.Helper()
	m, err := fx.Members.Add(context.Background(), fx.Admin, members.AddInput{Email: fx.Unique("member") + "@example.com", Role: role})
	if err != nil {
		t.Fatalf("add %s member: %v", role, err)
	}
	return m
}

// Principal is the principal authentication makes of the key keyID now:
// read with the same query, its scopes capped by its owner's current role.
// The key must still authenticate.
func (fx *Fixture) Principal(t testing.TB, keyID uuid.UUID) *auth.Principal {
	t.Helper()
	k, err := fx.Store.APIKeyForAuth(context.Background(), keyID)
	if err != nil {
		t.Fatalf("read key %s: %v", keyID, err)
	}
	if st := k.StatusAt(store.Now()); st != store.KeyActive {
		t.Fatalf("key %s is %s: it would not authenticate", keyID, st)
	}
	// The stored hash is the hash of the secret, which is what a client
	// holding the secret authenticates with.
	return auth.KeyPrincipal(k, credential.Hash(k.SecretHash))
}

// As mints a team key holding scopes (none: the wildcard) and returns its
// principal.
func (fx *Fixture) As(t testing.TB, scopes ...scope.Scope) *auth.Principal {
	t.Helper()
	return fx.Principal(t, fx.Key(t, scopes...).ID)
}

// Device registers a device as the admin and returns it with the principal
// its token authenticates as.
func (fx *Fixture) Device(t testing.TB) (*store.Device, *auth.Principal) {
	t.Helper()
	issued, err := fx.Devices.Create(context.Background(), fx.Admin, devices.Spec{Name: "sensor", SerialNumber: fx.Unique("SN")})
	if err != nil {
		t.Fatalf("create device: %v", err)
	}
	d := issued.Device
	return d, &auth.Principal{Kind: auth.KindDevice, TeamID: d.TeamID, DeviceID: d.ID, DeviceTokenHash: d.TokenHash}
}

// Events counts the team's audit events.
func (fx *Fixture) Events(t testing.TB) int64 {
	t.Helper()
	return fx.DB.Count(t, "audit_events", "team_id = ?", fx.Team.ID)
}

// codes are the codes Code recognises in an error without a message, such
// as apperr.ErrNotFound wrapped on its way up.
var codes = []apperr.Code{apperr.Unauthenticated, apperr.Forbidden, apperr.NotFound, apperr.BadUserInput,
	apperr.Conflict, apperr.FailedPrecondition, apperr.RateLimited, apperr.QueryTooComplex}

// Code returns the contract code of err: "" for nil, INTERNAL for an error
// that carries none. It reads the client-safe error inside err, recognises
// apperr's sentinels, and maps the store's sentinels, which a service may
// pass on for the GraphQL edge to map, as the edge does: ErrNotFound to
// NOT_FOUND, ErrConflict and ErrStale to CONFLICT.
func Code(err error) apperr.Code {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, store.ErrNotFound):
		return apperr.NotFound
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrStale):
		return apperr.Conflict
	}
	if e, ok := apperr.As(err); ok {
		return e.Code
	}
	for _, c := range codes {
		if errors.Is(err, &apperr.Error{Code: c}) {
			return c
		}
	}
	return apperr.Internal
}

// WantCode fails the test unless err has the code want ("" for nil).
func WantCode(t testing.TB, err error, want apperr.Code) {
	t.Helper()
	if got := Code(err); got != want {
		t.Fatalf("got %q (%v), want %q", got, err, want)
	}
}

// WantForbidden fails the test unless err is FORBIDDEN naming a scope that
// blame accepts; a nil blame wants no scope named (a device token where a
// team key is needed).
func WantForbidden(t testing.TB, err error, blame func(name string) bool) {
	t.Helper()
	WantCode(t, err, apperr.Forbidden)
	e, ok := apperr.As(err)
	if !ok {
		t.Fatalf("FORBIDDEN without a message: %v", err)
	}
	if blame == nil && e.Scope != "" || blame != nil && (e.Scope == "" || !blame(e.Scope)) {
		t.Fatalf("FORBIDDEN names scope %q: %v", e.Scope, err)
	}
}

// implied is what each WRITE scope grants beyond itself, written out here
// so that the tests do not judge the scope package by itself.
var implied = map[scope.Scope]scope.Scope{
	scope.APIKeysWrite: scope.APIKeysRead, scope.DevicesWrite: scope.DevicesRead, scope.MembersWrite: scope.MembersRead,
}

// grants reports whether set grants s: directly, through a WRITE, or
// through the wildcard.
func grants(set scope.Set, s scope.Scope) bool {
	if set&scope.Wildcard != 0 || set&scope.Set(s) != 0 {
		return true
	}
	for w, r := range implied {
		if r == s && set&scope.Set(w) != 0 {
			return true
		}
	}
	return false
}

// Covers is the contract's rule, stated independently of the code under
// test: held covers want when held is the wildcard, or when want is not the
// wildcard and held grants every scope of want. Only the wildcard covers
// the wildcard, since it includes the scopes a later version adds.
func Covers(held, want scope.Set) bool {
	if held&scope.Wildcard != 0 {
		return true
	}
	if want&scope.Wildcard != 0 {
		return false
	}
	for _, s := range scope.All {
		if want&scope.Set(s) != 0 && !grants(held, s) {
			return false
		}
	}
	return true
}

// Blame returns the scopes a refusal of held asking for want may name: "*"
// when want is the wildcard, or a scope held lacks and want grants.
func Blame(held, want scope.Set) func(name string) bool {
	return func(name string) bool {
		if name == "*" {
			return want&scope.Wildcard != 0
		}
		s, ok := scope.Parse(name)
		return ok && !grants(held, s) && grants(want, s)
	}
}

// Step runs one change that the rules allow or refuse. Allowed, it must
// succeed, change state and write exactly one audit event. Refused, it must
// be FORBIDDEN naming a scope blame accepts, and write nothing: state and
// the audit log stay as they were. state returns a value compared with
// reflect.DeepEqual, such as the target's row.
func (fx *Fixture) Step(t testing.TB, allowed bool, blame func(string) bool, state func() any, change func() error) {
	t.Helper()
	before, events := state(), fx.Events(t)
	err := change()
	after, written := state(), fx.Events(t)-events
	if !allowed {
		WantForbidden(t, err, blame)
		if written != 0 || !reflect.DeepEqual(before, after) {
			t.Fatalf("a refused change wrote: %d audit events; state %+v became %+v", written, before, after)
		}
		return
	}
	WantCode(t, err, "")
	if written != 1 || reflect.DeepEqual(before, after) {
		t.Fatalf("an allowed change wrote %d audit events (want 1); state %+v became %+v", written, before, after)
	}
}

// Call is one service method bound to its arguments, for Guard. Do
// returns what the method returns, the error last.
type Call struct {
	Name string
	Do   func(ctx context.Context, p *auth.Principal) (any, error)
	// Holder is the code a caller holding the scopes gets ("" for success),
	// for a call that fails for another reason, such as an unknown id.
	Holder apperr.Code
}

// Guard checks that each call needs a team API key holding need (none: any
// team API key). With no credential it is UNAUTHENTICATED, with a device
// token FORBIDDEN naming no scope, with a key lacking one scope of need
// FORBIDDEN naming that scope; none of these writes anything (no audit
// event, state unchanged; state may be nil). A key holding exactly need
// then gets the call's Holder code.
func (fx *Fixture) Guard(t *testing.T, need []scope.Scope, state func() any, calls []Call) {
	t.Helper()
	if state == nil {
		state = func() any { return nil }
	}
	_, device := fx.Device(t)
	type refusal struct {
		name string
		p    *auth.Principal
		want func(t testing.TB, err error)
	}
	refusals := []refusal{
		{"no credential", nil, func(t testing.TB, err error) { WantCode(t, err, apperr.Unauthenticated) }},
		{"device token", device, func(t testing.TB, err error) { WantForbidden(t, err, nil) }},
	}
	for _, s := range need {
		refusals = append(refusals, refusal{"key lacking " + s.String(), fx.As(t, lacking(s)...),
			func(t testing.TB, err error) {
				WantForbidden(t, err, func(name string) bool { return name == s.String() })
			}})
	}
	holding := need
	if len(holding) == 0 {
		holding = []scope.Scope{scope.AuditRead} // any one scope: a key without scopes is the wildcard
	}
	holder := fx.As(t, holding...)
	for _, c := range calls {
		t.Run(c.Name, func(t *testing.T) {
			for _, r := range refusals {
				t.Run(r.name, func(t *testing.T) {
					before, events := state(), fx.Events(t)
					_, err := c.Do(t.Context(), r.p)
					r.want(t, err)
					if after := state(); fx.Events(t) != events || !reflect.DeepEqual(before, after) {
						t.Fatalf("the refused call wrote: state %+v became %+v", before, after)
					}
				})
			}
			t.Run("holder", func(t *testing.T) {
				_, err := c.Do(t.Context(), holder)
				WantCode(t, err, c.Holder)
			})
		})
	}
}

// Lookup is one row of a table of reads by id: who asks for which id, and
// whether the object is found, or the code of the error (Found unset).
type Lookup struct {
	Name  string
	P     *auth.Principal
	ID    uuid.UUID
	Found bool
	Code  apperr.Code
}

// Lookups runs a service's read by ids for each row's id. Another team's
// id must read as absent, exactly like an unknown one, never as an error.
func Lookups[T any](t *testing.T, byID func(ctx context.Context, p *auth.Principal, ids []uuid.UUID) ([]T, error), rows []Lookup) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.Name, func(t *testing.T) {
			got, err := byID(t.Context(), r.P, []uuid.UUID{r.ID})
			WantCode(t, err, r.Code)
			if found := len(got) > 0; found != r.Found {
				t.Fatalf("found %v, want %v", found, r.Found)
			}
		})
	}
}

// lacking lists every scope that does not grant s: a key holding them all
// lacks s and nothing else it could use in its place.
func lacking(s scope.Scope) []scope.Scope {
	var out []scope.Scope
	for _, o := range scope.All {
		if !grants(scope.Of(o), s) {
			out = append(out, o)
		}
	}
	return out
}
