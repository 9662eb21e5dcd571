package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The attacks an adversarial review found, sent over HTTP as an attacker
// would. The tables over every pair of scopes and roles are the domain
// packages' tests; these prove the edge answers them as the contract says.

const (
	escRotate = `mutation($id: ID!) { rotateApiKey(input: {id: $id, gracePeriodSeconds: 604800}) { secret apiKey { id } } }`
	escUpdate = `mutation($id: ID!) { updateApiKey(input: {id: $id, allowedCidrs: []}) { apiKey { allowedCidrs } } }`
	escRevoke = `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { status } } }`
)

func TestNarrowKeyCannotTakeOverAStrongerKey(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")
		strong := e.ok(e.admin, createKey, map[string]any{"in": map[string]any{
			"name": "strong", "scopes": []string{"DEVICES_WRITE", "API_KEYS_WRITE"}, "allowedCidrs": []string{"127.0.0.0/8"},
		}}).str("createApiKey.apiKey.id")
		_, narrow := e.newKey(e.admin, "narrow", "API_KEYS_WRITE")
		before := len(e.events(e.admin, nil))
		for _, tc := range []struct{ name, query, target, scope string }{
			{"rotate the admin key", escRotate, adminID, "DEVICES_READ"},
			{"clear a stronger key's allowlist", escUpdate, strong, "DEVICES_WRITE"},
			{"revoke a stronger key", escRevoke, strong, "DEVICES_WRITE"},
		} {
			r := e.fails(narrow, tc.query, map[string]any{"id": tc.target}, "FORBIDDEN")
			if got := r.Errors[0].Extensions["scope"]; got != tc.scope {
				t.Errorf("%s: scope %v, want %s", tc.name, got, tc.scope)
			}
			if r.str("rotateApiKey.secret") != "" {
				t.Fatalf("%s: a secret came back: %s", tc.name, r.Raw)
			}
		}
		if status, _ := e.authStatus(e.admin); status != http.StatusOK {
			t.Fatalf("the admin key stopped working: %d", status)
		}
		r := e.ok(e.admin, `query($id: ID!) { node(id: $id) { ... on ApiKey { allowedCidrs status rotatedAt } } }`, map[string]any{"id": strong})
		if cidrs := strs(r.get("node.allowedCidrs")); len(cidrs) != 1 || r.str("node.status") != "ACTIVE" || r.get("node.rotatedAt") != nil {
			t.Fatalf("the stronger key changed: %s", r.Raw)
		}
		if after := len(e.events(e.admin, nil)); after != before {
			t.Fatalf("refused changes wrote %d audit events", after-before)
		}
		// What the narrow key holds, it may manage: itself included.
		narrowID := e.ok(narrow, `{ viewer { id } }`, nil).str("viewer.id")
		_, peer := e.newKey(e.admin, "peer", "API_KEYS_WRITE")
		peerID := e.ok(peer, `{ viewer { id } }`, nil).str("viewer.id")
		e.ok(narrow, escRotate, map[string]any{"id": peerID})
		e.ok(narrow, escRotate, map[string]any{"id": narrowID})
	})
}

func TestMembersWriteCannotPromoteBeyondItself(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		viewer := e.ok(e.admin, `mutation { addMember(input: {email: "v@example.com", role: VIEWER}) { member { id } } }`, nil).str("addMember.member.id")
		r := e.ok(e.admin, createKey, map[string]any{"in": map[string]any{"name": "v", "ownerId": viewer}})
		personal := r.str("createApiKey.secret")
		_, writer := e.newKey(e.admin, "members", "MEMBERS_WRITE")
		promote := `mutation($id: ID!, $role: MemberRole!) { updateMember(input: {id: $id, role: $role}) { member { role } } }`
		for _, role := range []string{"OWNER", "ADMIN", "DEVELOPER"} {
			r := e.fails(writer, promote, map[string]any{"id": viewer, "role": role}, "FORBIDDEN")
			if r.Errors[0].Extensions["scope"] == nil {
				t.Errorf("promotion to %s: no scope named: %s", role, r.Raw)
			}
		}
		e.fails(writer, `mutation { addMember(input: {email: "o@example.com", role: OWNER}) { member { id } } }`, nil, "FORBIDDEN")
		e.fails(writer, `mutation($id: ID!) { removeMember(input: {id: $id}) { member { id } } }`, map[string]any{"id": viewer}, "FORBIDDEN")
		got := strs(e.ok(personal, `{ viewer { scopes } }`, nil).get("viewer.scopes"))
		if want := []string{"API_KEYS_READ", "DEVICES_READ", "MEMBERS_READ", "AUDIT_READ"}; !slices.Equal(got, want) {
			t.Fatalf("the viewer's personal key holds %v, want %v", got, want)
		}
	})
}

// The second review's findings: a credential's power is what it is when a
// change commits, not when the request began, and no derived key escapes
// its maker's owner, networks or lifetime.

func TestKeysMintedByAPersonalKeyLeaveWithTheirMember(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		ada := mbrAdd(e, e.admin, "ada@example.com", "Ada", "ADMIN")
		_, personal := mbrPersonalKey(e, e.admin, ada, "ada laptop")
		_, minted := e.newKey(personal, "ci")
		other := mbrAdd(e, e.admin, "bob@example.com", "Bob", "OWNER")
		e.fails(personal, createKey, map[string]any{"in": map[string]any{"name": "for bob", "ownerId": other}}, "FORBIDDEN")

		mbrSetRole(e, e.admin, ada, "VIEWER")
		r := e.ok(minted, `{ viewer { scopes } }`, nil)
		if got := strs(r.get("viewer.scopes")); slices.Contains(got, "MEMBERS_WRITE") {
			t.Fatalf("the minted key kept MEMBERS_WRITE after its member's demotion: %v", got)
		}
		e.ok(e.admin, mbrRemoveQ, map[string]any{"id": ada})
		if status, reason := e.authStatus(minted); status != http.StatusUnauthorized || reason != "REVOKED" {
			t.Fatalf("the minted key answers %d %s after its member's removal", status, reason)
		}
	})
}

func TestAChangeSeesTheCallerAsItIsWhenItCommits(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		ada := mbrAdd(e, e.admin, "ada@example.com", "Ada", "ADMIN")
		_, personal := mbrPersonalKey(e, e.admin, ada, "ada laptop")
		// One request: the first alias removes the key's own member, the
		// second would mint with the power the request began with.
		r := e.gql(personal, `mutation($id: ID!) {
  a: removeMember(input: {id: $id}) { member { id } }
  b: createApiKey(input: {name: "after"}) { secret }
}`, map[string]any{"id": ada})
		if r.str("a.member.id") != ada || r.str("b.secret") != "" {
			t.Fatalf("a key minted after its member's removal: %s", r.Raw)
		}
		if len(r.Errors) != 1 || r.Errors[0].code() != "UNAUTHENTICATED" || r.Errors[0].Extensions["reason"] != "REVOKED" {
			t.Fatalf("want UNAUTHENTICATED REVOKED for the second alias: %s", r.Raw)
		}
		// The same with a team key revoking itself.
		selfID, self := e.newKey(e.admin, "self", "API_KEYS_WRITE")
		r = e.gql(self, `mutation($id: ID!) {
  a: revokeApiKey(input: {id: $id}) { apiKey { status } }
  b: createApiKey(input: {name: "after", scopes: [API_KEYS_WRITE]}) { secret }
}`, map[string]any{"id": selfID})
		if r.str("a.apiKey.status") != "REVOKED" || r.str("b.secret") != "" {
			t.Fatalf("a revoked key minted in the same request: %s", r.Raw)
		}
		if n := e.db.Count(t, "api_keys", "name = ?", "after"); n != 0 {
			t.Fatalf("%d keys made after their maker was revoked or removed", n)
		}
	})
}

func TestConcurrentRevocationStopsAnInFlightMinter(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, key := e.newKey(e.admin, "minter", "API_KEYS_WRITE")
		aliases := ""
		for i := range 25 {
			aliases += fmt.Sprintf("k%d: createApiKey(input: {name: \"burst\", scopes: [API_KEYS_WRITE]}) { apiKey { id } }\n", i)
		}
		rs := e.race(2, func(i int) *response {
			if i == 0 {
				return e.gql(key, "mutation {\n"+aliases+"}", nil)
			}
			return e.gql(e.admin, escRevoke, map[string]any{"id": id})
		})
		if rs[1].code() != "" {
			t.Fatalf("revoke: %s", rs[1].Raw)
		}
		// Every key the minter made committed before its revocation did:
		// each change records its event after taking its locks, so no
		// creation by the minter is recorded after the revocation.
		late := e.db.Count(t, "audit_events", `action = 'apiKey.create' AND actor_key_id = ?
			AND created_at > (SELECT created_at FROM audit_events WHERE action = 'apiKey.revoke' AND target_id = ?)`,
			uuidOf(t, ids.APIKey, id), id)
		if late != 0 {
			t.Fatalf("%d keys created after the minter's revocation committed", late)
		}
		made := e.db.Count(t, "api_keys", "name = ?", "burst")
		if events := e.db.Count(t, "audit_events", "action = 'apiKey.create' AND actor_key_id = ?", uuidOf(t, ids.APIKey, id)); made != events {
			t.Fatalf("%d keys made, %d recorded", made, events)
		}
	})
}

func TestOwnerIDNeedsMembersRead(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		viewer := mbrAdd(e, e.admin, "v@example.com", "", "VIEWER")
		_, key := e.newKey(e.admin, "no members", "API_KEYS_WRITE", "AUDIT_READ")
		r := e.fails(key, createKey, map[string]any{"in": map[string]any{"name": "probe", "ownerId": viewer, "scopes": []string{"API_KEYS_WRITE"}}}, "FORBIDDEN")
		if r.Errors[0].Extensions["scope"] != "MEMBERS_READ" || strings.Contains(string(r.Raw), "VIEWER") {
			t.Fatalf("probing a member's role: %s", r.Raw)
		}
	})
}

func TestAuditActorFilterNeedsTheActorsReadScope(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")
		_, auditor := e.newKey(e.admin, "auditor", "AUDIT_READ")
		q := `query($f: AuditEventFilter) { team { auditEvents(filter: $f) { totalCount } } }`
		e.ok(auditor, q, nil)
		r := e.fails(auditor, q, map[string]any{"f": map[string]any{"actorId": adminID}}, "FORBIDDEN")
		if r.Errors[0].Extensions["scope"] != "API_KEYS_READ" {
			t.Fatalf("actorId filter: %s", r.Raw)
		}
	})
}

func TestDerivedKeysStayWithinTheirMakersNetworksAndLifetime(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		in := func(name string, cidrs []string, expires string) map[string]any {
			m := map[string]any{"name": name, "scopes": []string{"API_KEYS_WRITE", "DEVICES_READ"}, "allowedCidrs": cidrs}
			if expires != "" {
				m["expiresAt"] = expires
			}
			return map[string]any{"in": m}
		}
		fenced := e.ok(e.admin, createKey, in("fenced", []string{"127.0.0.0/8"}, "2099-01-01T00:00:00Z"))
		fencedID, key := fenced.str("createApiKey.apiKey.id"), fenced.str("createApiKey.secret")
		free := e.ok(e.admin, createKey, in("free", nil, "")).str("createApiKey.apiKey.id")
		for _, tc := range []struct {
			name, query string
			vars        map[string]any
		}{
			{"mint an unfenced key", createKey, in("x", nil, "2098-01-01T00:00:00Z")},
			{"mint a wider network", createKey, in("x", []string{"0.0.0.0/0"}, "2098-01-01T00:00:00Z")},
			{"mint a longer life", createKey, in("x", []string{"127.0.0.1/32"}, "")},
			{"rotate an unfenced key", escRotate, map[string]any{"id": free}},
			{"clear its own allowlist", escUpdate, map[string]any{"id": fencedID}},
		} {
			if r := e.gql(key, tc.query, tc.vars); r.code() != "FORBIDDEN" {
				t.Errorf("%s: want FORBIDDEN, got %s", tc.name, r.Raw)
			}
		}
		e.ok(key, createKey, in("inside", []string{"127.0.0.1/32"}, "2098-01-01T00:00:00Z"))
		e.ok(key, escRotate, map[string]any{"id": fencedID})
	})
}

func TestAPersonalKeyCannotTakeOverATeamKey(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")
		ada := mbrAdd(e, e.admin, "ada@example.com", "Ada", "ADMIN")
		_, personal := mbrPersonalKey(e, e.admin, ada, "ada laptop")
		rotate := `mutation($id: ID!) { rotateApiKey(input: {id: $id}) { secret } }`
		r := e.fails(personal, rotate, map[string]any{"id": adminID}, "FORBIDDEN")
		if r.str("rotateApiKey.secret") != "" {
			t.Fatalf("a personal key took over the admin key: %s", r.Raw)
		}
		if status, _ := e.authStatus(e.admin); status != http.StatusOK {
			t.Fatalf("the admin key stopped working: %d", status)
		}
		// Its own member's keys it may rotate, itself included.
		ownID, _ := e.newKey(personal, "own")
		e.ok(personal, rotate, map[string]any{"id": ownID})
	})
}
