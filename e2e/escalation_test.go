package e2e

import (
	"net/http"
	"slices"
	"testing"

	"github.com/keyplane/keyplane/db"
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
