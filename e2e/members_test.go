package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The member operations, each with every input as a variable.
const (
	mbrAddQ = `mutation($in: AddMemberInput!) {
  addMember(input: $in) { clientMutationId member { id email name role status createdAt } }
}`
	mbrUpdateQ = `mutation($in: UpdateMemberInput!) {
  updateMember(input: $in) { clientMutationId member { id email name role status } }
}`
	mbrRemoveQ = `mutation($id: ID!) {
  removeMember(input: {id: $id, clientMutationId: "rm"}) { clientMutationId member { id email role } }
}`
	mbrCreateKeyQ = `mutation($in: CreateApiKeyInput!) {
  createApiKey(input: $in) { secret apiKey { id name scopes status owner { id email } createdBy { id } } }
}`
	mbrListQ = `query($first: Int, $after: String, $last: Int, $before: String, $filter: MemberFilter) {
  team { members(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    totalCount
    nodes { id email name role status }
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  } }
}`
	mbrNodeQ = `query($id: ID!) {
  node(id: $id) { __typename id ... on Member { email name role status } ... on ApiKey { keyStatus: status owner { id email } } }
}`
	mbrMemberKeysQ = `query($id: ID!, $first: Int, $after: String) {
  node(id: $id) { ... on Member { apiKeys(first: $first, after: $after) {
    totalCount
    nodes { id owner { id } }
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  } } }
}`
	mbrCreateDeviceQ = `mutation($in: CreateDeviceInput!) { createDevice(input: $in) { token device { id } } }`
	mbrRevokeQ       = `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id status } } }`
)

// The four READ scopes, and every scope.
var (
	mbrReadScopes = []string{"API_KEYS_READ", "AUDIT_READ", "DEVICES_READ", "MEMBERS_READ"}
	mbrAllScopes  = []string{"API_KEYS_READ", "API_KEYS_WRITE", "AUDIT_READ", "DEVICES_READ", "DEVICES_WRITE", "MEMBERS_READ", "MEMBERS_WRITE"}
	mbrDevScopes  = []string{"API_KEYS_READ", "AUDIT_READ", "DEVICES_READ", "DEVICES_WRITE", "MEMBERS_READ"}
)

// mbrAdd adds a member through the API and returns its id.
func mbrAdd(e *env, key, email, name, role string) string {
	e.t.Helper()
	in := map[string]any{"email": email, "role": role}
	if name != "" {
		in["name"] = name
	}
	id := e.ok(key, mbrAddQ, map[string]any{"in": in}).str("addMember.member.id")
	if !strings.HasPrefix(id, "mem_") {
		e.t.Fatalf("addMember returned id %q", id)
	}
	return id
}

// mbrSetRole asks to change a member's role, and returns the answer.
func mbrSetRole(e *env, key, id, role string) *response {
	e.t.Helper()
	return e.gql(key, mbrUpdateQ, map[string]any{"in": map[string]any{"id": id, "role": role}})
}

// mbrPersonalKey creates a personal key of owner (no scopes: whatever the
// role allows) and returns its id and secret.
func mbrPersonalKey(e *env, by, owner, name string, scopes ...string) (id, secret string) {
	e.t.Helper()
	in := map[string]any{"name": name, "ownerId": owner}
	if len(scopes) > 0 {
		in["scopes"] = scopes
	}
	r := e.ok(by, mbrCreateKeyQ, map[string]any{"in": in})
	if got := r.str("createApiKey.apiKey.owner.id"); got != owner {
		e.t.Fatalf("personal key's owner is %q, want %s: %s", got, owner, r.Raw)
	}
	return r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
}

// mbrWant checks a response's first error: its code and, when given, one
// extension (field or scope).
func mbrWant(t *testing.T, r *response, code, ext, value string) {
	t.Helper()
	if r.code() != code {
		t.Fatalf("want %s, got HTTP %d: %s", code, r.Status, r.Raw)
	}
	if ext != "" && r.Errors[0].Extensions[ext] != value {
		t.Fatalf("want extensions.%s %q, got %v: %s", ext, value, r.Errors[0].Extensions[ext], r.Raw)
	}
}

// mbrStrings returns a list of strings (such as scopes), sorted.
func mbrStrings(r *response, path string) []string {
	out := strs(r.get(path))
	slices.Sort(out)
	return out
}

// mbrBatch sends up to 25 mutations of one field in one request, aliased
// m0, m1, …, each with its input as a variable; they run in order.
func mbrBatch(e *env, key, field, inputType, selection string, inputs []map[string]any) *response {
	e.t.Helper()
	var params, body []string
	vars := map[string]any{}
	for i, in := range inputs {
		params = append(params, fmt.Sprintf("$i%d: %s!", i, inputType))
		body = append(body, fmt.Sprintf("m%d: %s(input: $i%d) %s", i, field, i, selection))
		vars[fmt.Sprintf("i%d", i)] = in
	}
	q := "mutation(" + strings.Join(params, ", ") + ") {\n" + strings.Join(body, "\n") + "\n}"
	return e.ok(key, q, vars)
}

// mbrStatements sends a request that must succeed and returns how many SQL
// statements the server issued for it (its own authentication included).
func mbrStatements(e *env, key, query string, vars map[string]any) (int64, *response) {
	e.t.Helper()
	before := e.db.Statements()
	r := e.ok(key, query, vars)
	return e.db.Statements() - before, r
}

func TestMemberLifecycle(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")

		r := e.ok(e.admin, mbrAddQ, map[string]any{"in": map[string]any{
			"email": "Ada.Lovelace@Example.com", "name": "Ada", "role": "DEVELOPER", "clientMutationId": "add-1",
		}})
		id := r.str("addMember.member.id")
		if !strings.HasPrefix(id, "mem_") || r.str("addMember.clientMutationId") != "add-1" {
			t.Fatalf("payload: %s", r.Raw)
		}
		if r.str("addMember.member.email") != "Ada.Lovelace@Example.com" || r.str("addMember.member.name") != "Ada" ||
			r.str("addMember.member.role") != "DEVELOPER" || r.str("addMember.member.status") != "INVITED" || r.str("addMember.member.createdAt") == "" {
			t.Fatalf("a new member is INVITED with the email as given: %s", r.Raw)
		}
		other := mbrAdd(e, e.admin, "grace@example.com", "", "VIEWER")

		r = e.ok(e.admin, mbrUpdateQ, map[string]any{"in": map[string]any{
			"id": id, "name": "Ada Lovelace", "role": "ADMIN", "status": "ACTIVE", "clientMutationId": "upd-1",
		}})
		if r.str("updateMember.clientMutationId") != "upd-1" || r.str("updateMember.member.name") != "Ada Lovelace" ||
			r.str("updateMember.member.role") != "ADMIN" || r.str("updateMember.member.status") != "ACTIVE" ||
			r.str("updateMember.member.email") != "Ada.Lovelace@Example.com" {
			t.Fatalf("update payload: %s", r.Raw)
		}
		// Absent fields stay; an empty name clears it.
		r = e.ok(e.admin, mbrUpdateQ, map[string]any{"in": map[string]any{"id": id, "name": ""}})
		if r.get("updateMember.member.name") != nil || r.str("updateMember.member.role") != "ADMIN" || r.str("updateMember.member.status") != "ACTIVE" {
			t.Fatalf("partial update: %s", r.Raw)
		}
		r = e.ok(e.admin, mbrNodeQ, map[string]any{"id": id})
		if r.str("node.__typename") != "Member" || r.str("node.role") != "ADMIN" || r.str("node.status") != "ACTIVE" {
			t.Fatalf("node after update: %s", r.Raw)
		}

		list := readPage(t, e.ok(e.admin, mbrListQ, nil), "team.members")
		if list.total != 2 || !slices.Equal(list.ids, []string{id, other}) {
			t.Fatalf("team.members lists %v (total %d), want [%s %s]", list.ids, list.total, id, other)
		}

		r = e.ok(e.admin, mbrRemoveQ, map[string]any{"id": id})
		if r.str("removeMember.member.id") != id || r.str("removeMember.clientMutationId") != "rm" {
			t.Fatalf("remove payload: %s", r.Raw)
		}
		list = readPage(t, e.ok(e.admin, mbrListQ, nil), "team.members")
		if list.total != 1 || !slices.Equal(list.ids, []string{other}) {
			t.Fatalf("after removal team.members lists %v (total %d), want [%s]", list.ids, list.total, other)
		}
		if r := e.ok(e.admin, mbrNodeQ, map[string]any{"id": id}); r.get("node") != nil {
			t.Fatalf("node of a removed member: %s", r.Raw)
		}
		e.fails(e.admin, mbrRemoveQ, map[string]any{"id": id}, "NOT_FOUND")
		e.fails(e.admin, mbrUpdateQ, map[string]any{"in": map[string]any{"id": id, "name": "back"}}, "NOT_FOUND")

		// Every change is in the log, by the admin key, about the member.
		events := e.events(e.admin, map[string]any{"targetId": id})
		var actions []string
		for _, ev := range events {
			actions = append(actions, ev.Action)
			if ev.Actor != adminID || ev.Target != id {
				t.Errorf("event %s: actor %q target %q, want %s and %s", ev.Action, ev.Actor, ev.Target, adminID, id)
			}
		}
		if want := []string{"member.add", "member.update", "member.update", "member.remove"}; !slices.Equal(actions, want) {
			t.Fatalf("events about the member: %v, want %v", actions, want)
		}
		// Refusals store and record nothing.
		long := strings.Repeat("n", 201)
		for _, tc := range []struct {
			name, query string
			vars        map[string]any
			field       string
		}{
			{"add with a long name", mbrAddQ, map[string]any{"in": map[string]any{"email": "long@example.com", "name": long, "role": "VIEWER"}}, "name"},
			{"update with a long name", mbrUpdateQ, map[string]any{"in": map[string]any{"id": other, "name": long}}, "name"},
			{"update a malformed id", mbrUpdateQ, map[string]any{"in": map[string]any{"id": "mem_!!", "name": "x"}}, "id"},
			{"update an id of another type", mbrUpdateQ, map[string]any{"in": map[string]any{"id": adminID, "name": "x"}}, "id"},
			{"remove a malformed id", mbrRemoveQ, map[string]any{"id": "nope"}, "id"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := e.sub(t)
				mbrWant(t, e.gql(e.admin, tc.query, tc.vars), "BAD_USER_INPUT", "field", tc.field)
			})
		}
		if r := e.ok(e.admin, mbrNodeQ, map[string]any{"id": other}); r.get("node.name") != nil || r.str("node.role") != "VIEWER" {
			t.Fatalf("a refused update changed the member: %s", r.Raw)
		}
		for action, want := range map[string]int64{"member.add": 2, "member.update": 2, "member.remove": 1} {
			if n := e.db.Count(t, "audit_events", "action = ?", action); n != want {
				t.Errorf("%d %s events, want %d", n, action, want)
			}
		}
		if n := e.db.Count(t, "members", "removed_at IS NULL"); n != 1 {
			t.Fatalf("%d live members, want 1", n)
		}
	})
}

func TestMemberEmails(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		for _, tc := range []struct{ name, email string }{
			{"empty", ""},
			{"no at", "nope"},
			{"no domain", "a@"},
			{"no local part", "@b.c"},
			{"display name", "Ada <ada@example.com>"},
			{"255 characters", strings.Repeat("a", 243) + "@example.com"},
			{"space", "a b@example.com"},
			{"two ats", "a@b@example.com"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := e.sub(t)
				r := e.gql(e.admin, mbrAddQ, map[string]any{"in": map[string]any{"email": tc.email, "role": "VIEWER"}})
				mbrWant(t, r, "BAD_USER_INPUT", "field", "email")
			})
		}
		if n := e.db.Count(t, "members", ""); n != 0 {
			t.Fatalf("refused emails stored %d members", n)
		}

		first := mbrAdd(e, e.admin, "ada@example.com", "Ada", "VIEWER")
		for _, dup := range []string{"ada@example.com", "ADA@example.com", "Ada@Example.COM"} {
			r := e.gql(e.admin, mbrAddQ, map[string]any{"in": map[string]any{"email": dup, "role": "ADMIN"}})
			mbrWant(t, r, "CONFLICT", "", "")
		}
		if n := e.db.Count(t, "members", ""); n != 1 {
			t.Fatalf("%d members after duplicates, want 1", n)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "member.add"); n != 1 {
			t.Fatalf("%d member.add events after duplicates, want 1", n)
		}

		// Once removed, the email is free again; the old row stays.
		e.ok(e.admin, mbrRemoveQ, map[string]any{"id": first})
		again := mbrAdd(e, e.admin, "Ada@example.com", "", "DEVELOPER")
		if again == first {
			t.Fatal("re-adding a removed member's email returned the removed member")
		}
		if live, all := e.db.Count(t, "members", "removed_at IS NULL"), e.db.Count(t, "members", ""); live != 1 || all != 2 {
			t.Fatalf("%d live members of %d rows, want 1 of 2", live, all)
		}

		// Another team has its own emails.
		beta := e.bootstrap("Beta")
		mbrAdd(e, beta, "ada@example.com", "", "OWNER")

		// Concurrent adds of one address, in several spellings: one wins.
		const n = 10
		spellings := []string{"race@example.com", "RACE@example.com", "Race@Example.com", "race@EXAMPLE.COM", "rAcE@example.com"}
		codes := tally(e.race(n, func(i int) *response {
			return e.gql(e.admin, mbrAddQ, map[string]any{"in": map[string]any{"email": spellings[i%len(spellings)], "role": "VIEWER"}})
		}))
		if codes[""] != 1 || codes["CONFLICT"] != n-1 {
			t.Fatalf("outcomes %v, want exactly one success and %d CONFLICT", codes, n-1)
		}
		if got := e.db.Count(t, "members", "email_key = ? AND removed_at IS NULL", "race@example.com"); got != 1 {
			t.Fatalf("%d live rows for one address, want 1", got)
		}
		if got := e.db.Count(t, "audit_events", "action = ?", "member.add"); got != 4 {
			t.Fatalf("%d member.add events, want 4 (ada, ada again, beta's ada, race)", got)
		}
	})
}

func TestLastOwnerStays(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		owner1 := mbrAdd(e, e.admin, "owner1@example.com", "", "OWNER")
		dev := mbrAdd(e, e.admin, "dev@example.com", "", "DEVELOPER")

		mbrWant(t, mbrSetRole(e, e.admin, owner1, "ADMIN"), "FAILED_PRECONDITION", "", "")
		mbrWant(t, e.gql(e.admin, mbrRemoveQ, map[string]any{"id": owner1}), "FAILED_PRECONDITION", "", "")
		if r := e.ok(e.admin, mbrNodeQ, map[string]any{"id": owner1}); r.str("node.role") != "OWNER" {
			t.Fatalf("the refused changes touched the last owner: %s", r.Raw)
		}
		// Other changes to the last owner, and to other members, are fine.
		e.ok(e.admin, mbrUpdateQ, map[string]any{"in": map[string]any{"id": owner1, "name": "First Owner", "status": "ACTIVE", "role": "OWNER"}})
		e.ok(e.admin, mbrUpdateQ, map[string]any{"in": map[string]any{"id": dev, "role": "VIEWER"}})
		e.ok(e.admin, mbrRemoveQ, map[string]any{"id": dev})

		owner2 := mbrAdd(e, e.admin, "owner2@example.com", "", "OWNER")
		if r := mbrSetRole(e, e.admin, owner1, "ADMIN"); r.code() != "" || r.str("updateMember.member.role") != "ADMIN" {
			t.Fatalf("demoting one of two owners: %s", r.Raw)
		}
		mbrWant(t, e.gql(e.admin, mbrRemoveQ, map[string]any{"id": owner2}), "FAILED_PRECONDITION", "", "")
		mbrWant(t, mbrSetRole(e, e.admin, owner2, "VIEWER"), "FAILED_PRECONDITION", "", "")
		if n := e.db.Count(t, "members", "role = ? AND removed_at IS NULL", "OWNER"); n != 1 {
			t.Fatalf("%d owners left, want 1", n)
		}
		// Refusals record nothing: 1 name change, 1 role change, 1 demotion.
		if n := e.db.Count(t, "audit_events", "action = ?", "member.update"); n != 3 {
			t.Fatalf("%d member.update events, want 3", n)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "member.remove"); n != 1 {
			t.Fatalf("%d member.remove events, want 1", n)
		}

		// A team without any owner is not held to the rule.
		beta := e.bootstrap("Beta")
		admin := mbrAdd(e, beta, "admin@beta.example", "", "ADMIN")
		viewer := mbrAdd(e, beta, "viewer@beta.example", "", "VIEWER")
		if r := mbrSetRole(e, beta, admin, "DEVELOPER"); r.code() != "" {
			t.Fatalf("demotion in a team without owners: %s", r.Raw)
		}
		e.ok(beta, mbrRemoveQ, map[string]any{"id": viewer})
		e.ok(beta, mbrRemoveQ, map[string]any{"id": admin})

		// Two owners changed at once: at most one change wins, an owner stays.
		for round := range 6 {
			key := e.bootstrap(fmt.Sprintf("Race %d", round))
			a := mbrAdd(e, key, "a@race.example", "", "OWNER")
			b := mbrAdd(e, key, "b@race.example", "", "OWNER")
			codes := make([]string, 2)
			var wg sync.WaitGroup
			for i, id := range []string{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if round%2 == 0 {
						codes[i] = mbrSetRole(e, key, id, "ADMIN").code()
					} else {
						codes[i] = e.gql(key, mbrRemoveQ, map[string]any{"id": id}).code()
					}
				}()
			}
			wg.Wait()
			wins := 0
			for _, c := range codes {
				switch c {
				case "":
					wins++
				case "FAILED_PRECONDITION":
				default:
					t.Fatalf("round %d: unexpected outcomes %v", round, codes)
				}
			}
			owners := e.db.Count(t, "members", "role = ? AND removed_at IS NULL AND (id = ? OR id = ?)", "OWNER", uuidOf(t, ids.Member, a).String(), uuidOf(t, ids.Member, b).String())
			if wins > 1 || owners < 1 || owners != int64(2-wins) {
				t.Fatalf("round %d: outcomes %v left %d owners", round, codes, owners)
			}
		}
	})
}

func TestRemoveMemberRevokesPersonalKeys(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		member := mbrAdd(e, e.admin, "leaver@example.com", "Leaver", "DEVELOPER")
		stayer := mbrAdd(e, e.admin, "stayer@example.com", "Stayer", "DEVELOPER")
		k1, s1 := mbrPersonalKey(e, e.admin, member, "laptop")
		k2, s2 := mbrPersonalKey(e, e.admin, member, "ci", "DEVICES_READ")
		_, s3 := mbrPersonalKey(e, e.admin, stayer, "stayer's")
		_, team := e.newKey(e.admin, "team key")
		for _, s := range []string{s1, s2, s3, team} {
			if st, _ := e.authStatus(s); st != http.StatusOK {
				t.Fatalf("a key is refused before the removal: %d", st)
			}
		}
		r := e.ok(e.admin, mbrNodeQ, map[string]any{"id": k1})
		if r.str("node.owner.id") != member || r.str("node.owner.email") != "leaver@example.com" {
			t.Fatalf("owner before removal: %s", r.Raw)
		}

		e.ok(e.admin, mbrRemoveQ, map[string]any{"id": member})
		for _, s := range []string{s1, s2} {
			if st, reason := e.authStatus(s); st != http.StatusUnauthorized || reason != "REVOKED" {
				t.Fatalf("a removed member's key answers %d %s, want 401 REVOKED", st, reason)
			}
		}
		for _, s := range []string{e.admin, team, s3} {
			if st, _ := e.authStatus(s); st != http.StatusOK {
				t.Fatalf("a key of someone else was refused after the removal: %d", st)
			}
		}
		if n := e.db.Count(t, "api_keys", "owner_id IS NOT NULL AND revoked_at IS NOT NULL"); n != 2 {
			t.Fatalf("%d revoked personal keys, want 2", n)
		}
		if n := e.db.Count(t, "api_keys", "owner_id = ?", uuidOf(t, ids.Member, member).String()); n != 2 {
			t.Fatalf("%d key rows of the removed member, want the 2 kept", n)
		}
		if n := e.db.Count(t, "api_keys", "revoked_at IS NULL"); n != 3 {
			t.Fatalf("%d active keys, want 3 (admin, team key, stayer's)", n)
		}
		for _, k := range []string{k1, k2} {
			r := e.ok(e.admin, mbrNodeQ, map[string]any{"id": k})
			if r.get("node.owner") != nil || r.str("node.keyStatus") != "REVOKED" {
				t.Fatalf("a removed member's key: %s", r.Raw)
			}
		}
	})
}

func TestPersonalKeyScopesFollowRole(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		viewer := mbrAdd(e, e.admin, "viewer@example.com", "Vi", "VIEWER")
		dev := mbrAdd(e, e.admin, "dev@example.com", "Dev", "DEVELOPER")
		admin := mbrAdd(e, e.admin, "admin@example.com", "Ad", "ADMIN")

		// VIEWER: every READ scope, nothing more.
		r := e.ok(e.admin, mbrCreateKeyQ, map[string]any{"in": map[string]any{"name": "viewer key", "ownerId": viewer}})
		vKey, vSecret := r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
		if got := mbrStrings(r, "createApiKey.apiKey.scopes"); !slices.Equal(got, mbrReadScopes) {
			t.Fatalf("a VIEWER's key holds %v, want %v", got, mbrReadScopes)
		}
		if r.str("createApiKey.apiKey.owner.id") != viewer || r.str("createApiKey.apiKey.owner.email") != "viewer@example.com" {
			t.Fatalf("owner: %s", r.Raw)
		}
		if r := e.ok(vSecret, `{ team { apiKeys { totalCount } members { totalCount } } }`, nil); r.get("team.apiKeys.totalCount") == nil {
			t.Fatalf("a VIEWER's key reads: %s", r.Raw)
		}
		mbrWant(t, e.gql(vSecret, createKey, map[string]any{"in": map[string]any{"name": "x", "scopes": []string{"API_KEYS_READ"}}}), "FORBIDDEN", "scope", "API_KEYS_WRITE")
		mbrWant(t, e.gql(vSecret, mbrAddQ, map[string]any{"in": map[string]any{"email": "x@example.com", "role": "VIEWER"}}), "FORBIDDEN", "scope", "MEMBERS_WRITE")
		keysBefore := e.db.Count(t, "api_keys", "")
		r = e.gql(e.admin, mbrCreateKeyQ, map[string]any{"in": map[string]any{"name": "too much", "ownerId": viewer, "scopes": []string{"DEVICES_WRITE"}}})
		mbrWant(t, r, "BAD_USER_INPUT", "field", "scopes")
		if n := e.db.Count(t, "api_keys", ""); n != keysBefore {
			t.Fatalf("a refused personal key was stored")
		}
		// A subset of the role's cap is fine.
		r = e.ok(e.admin, mbrCreateKeyQ, map[string]any{"in": map[string]any{"name": "viewer devices", "ownerId": viewer, "scopes": []string{"DEVICES_READ"}}})
		vKey2 := r.str("createApiKey.apiKey.id")
		if got := mbrStrings(r, "createApiKey.apiKey.scopes"); !slices.Equal(got, []string{"DEVICES_READ"}) {
			t.Fatalf("a VIEWER's DEVICES_READ key holds %v", got)
		}

		// DEVELOPER: devices, and every READ scope.
		r = e.ok(e.admin, mbrCreateKeyQ, map[string]any{"in": map[string]any{"name": "dev key", "ownerId": dev}})
		dSecret := r.str("createApiKey.secret")
		if got := mbrStrings(r, "createApiKey.apiKey.scopes"); !slices.Equal(got, mbrDevScopes) {
			t.Fatalf("a DEVELOPER's key holds %v, want %v", got, mbrDevScopes)
		}
		e.ok(dSecret, mbrCreateDeviceQ, map[string]any{"in": map[string]any{"name": "cam", "serialNumber": "SN-DEV-1"}})
		mbrWant(t, e.gql(dSecret, mbrAddQ, map[string]any{"in": map[string]any{"email": "x@example.com", "role": "VIEWER"}}), "FORBIDDEN", "scope", "MEMBERS_WRITE")
		mbrWant(t, e.gql(dSecret, createKey, map[string]any{"in": map[string]any{"name": "x", "scopes": []string{"DEVICES_READ"}}}), "FORBIDDEN", "scope", "API_KEYS_WRITE")

		// ADMIN: everything.
		r = e.ok(e.admin, mbrCreateKeyQ, map[string]any{"in": map[string]any{"name": "admin key", "ownerId": admin}})
		aKey, aSecret := r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
		if got := mbrStrings(r, "createApiKey.apiKey.scopes"); !slices.Equal(got, mbrAllScopes) {
			t.Fatalf("an ADMIN's key holds %v, want %v", got, mbrAllScopes)
		}
		canAdmin := func(label string) {
			t.Helper()
			e.ok(aSecret, createKey, map[string]any{"in": map[string]any{"name": label}})
			mbrAdd(e, aSecret, label+"@example.com", "", "VIEWER")
			e.ok(aSecret, mbrCreateDeviceQ, map[string]any{"in": map[string]any{"name": "cam", "serialNumber": "SN-" + label}})
			e.ok(aSecret, `{ team { auditEvents { totalCount } devices { totalCount } } }`, nil)
			if got := mbrStrings(e.ok(aSecret, `{ viewer { scopes } }`, nil), "viewer.scopes"); !slices.Equal(got, mbrAllScopes) {
				t.Fatalf("%s: the ADMIN's key holds %v", label, got)
			}
		}
		canAdmin("first")

		// A demotion narrows the key at its very next request.
		if r := mbrSetRole(e, e.admin, admin, "VIEWER"); r.code() != "" {
			t.Fatalf("demotion: %s", r.Raw)
		}
		mbrWant(t, e.gql(aSecret, createKey, map[string]any{"in": map[string]any{"name": "after demotion", "scopes": []string{"API_KEYS_READ"}}}), "FORBIDDEN", "scope", "API_KEYS_WRITE")
		mbrWant(t, e.gql(aSecret, mbrAddQ, map[string]any{"in": map[string]any{"email": "late@example.com", "role": "VIEWER"}}), "FORBIDDEN", "scope", "MEMBERS_WRITE")
		if got := mbrStrings(e.ok(aSecret, `{ viewer { scopes } }`, nil), "viewer.scopes"); !slices.Equal(got, mbrReadScopes) {
			t.Fatalf("a demoted ADMIN's key holds %v, want %v", got, mbrReadScopes)
		}
		if got := mbrStrings(e.ok(e.admin, `query($id: ID!) { node(id: $id) { ... on ApiKey { scopes } } }`, map[string]any{"id": aKey}), "node.scopes"); !slices.Equal(got, mbrReadScopes) {
			t.Fatalf("ApiKey.scopes of a demoted ADMIN's key, read by another key: %v", got)
		}
		// Promoted back, it is whole again.
		if r := mbrSetRole(e, e.admin, admin, "ADMIN"); r.code() != "" {
			t.Fatalf("promotion: %s", r.Raw)
		}
		canAdmin("second")

		// Member.apiKeys lists exactly the member's keys, by pages.
		all := []string{vKey, vKey2}
		p := readPage(t, e.ok(e.admin, mbrMemberKeysQ, map[string]any{"id": viewer, "first": 1}), "node.apiKeys")
		if p.total != 2 || !slices.Equal(p.ids, all[:1]) || !p.hasNext || p.hasPrev {
			t.Fatalf("first page of the viewer's keys: %+v, want %v", p, all[:1])
		}
		p = readPage(t, e.ok(e.admin, mbrMemberKeysQ, map[string]any{"id": viewer, "first": 1, "after": p.end}), "node.apiKeys")
		if p.total != 2 || !slices.Equal(p.ids, all[1:]) || p.hasNext || !p.hasPrev {
			t.Fatalf("second page of the viewer's keys: %+v, want %v", p, all[1:])
		}
		p = readPage(t, e.ok(e.admin, mbrMemberKeysQ, map[string]any{"id": viewer}), "node.apiKeys")
		if p.total != 2 || !slices.Equal(p.ids, all) {
			t.Fatalf("the viewer's keys: %+v, want %v", p, all)
		}
		r = e.ok(e.admin, mbrMemberKeysQ, map[string]any{"id": viewer})
		for _, n := range r.list("node.apiKeys.nodes") {
			if owner, _ := n.(map[string]any)["owner"].(map[string]any); owner == nil || owner["id"] != viewer {
				t.Fatalf("a listed key's owner is not the member: %s", r.Raw)
			}
		}
		if p := readPage(t, e.ok(e.admin, mbrMemberKeysQ, map[string]any{"id": mbrAdd(e, e.admin, "nokeys@example.com", "", "ADMIN")}), "node.apiKeys"); p.total != 0 || len(p.ids) != 0 || p.hasNext {
			t.Fatalf("a member without keys: %+v", p)
		}

		// ownerId must name a current member of the caller's team.
		beta := e.bootstrap("Beta")
		foreign := mbrAdd(e, beta, "foreign@example.com", "", "ADMIN")
		gone := mbrAdd(e, e.admin, "gone@example.com", "", "ADMIN")
		e.ok(e.admin, mbrRemoveQ, map[string]any{"id": gone})
		keysBefore = e.db.Count(t, "api_keys", "")
		eventsBefore := e.db.Count(t, "audit_events", "action = ?", "apiKey.create")
		for _, tc := range []struct {
			name, owner, code, field string
		}{
			{"malformed", "mem_!!", "BAD_USER_INPUT", "ownerId"},
			{"not an id", "nobody", "BAD_USER_INPUT", "ownerId"},
			{"id of another type", aKey, "BAD_USER_INPUT", "ownerId"},
			{"another team's member", foreign, "NOT_FOUND", ""},
			{"unknown member", ids.Encode(ids.Member, ids.New()), "NOT_FOUND", ""},
			{"removed member", gone, "NOT_FOUND", ""},
		} {
			t.Run("ownerId "+tc.name, func(t *testing.T) {
				e := e.sub(t)
				r := e.gql(e.admin, mbrCreateKeyQ, map[string]any{"in": map[string]any{"name": "x", "ownerId": tc.owner}})
				if tc.field != "" {
					mbrWant(t, r, tc.code, "field", tc.field)
				} else {
					mbrWant(t, r, tc.code, "", "")
				}
			})
		}
		if n := e.db.Count(t, "api_keys", ""); n != keysBefore {
			t.Fatalf("refused personal keys were stored: %d keys, had %d", n, keysBefore)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "apiKey.create"); n != eventsBefore {
			t.Fatalf("refused personal keys were audited")
		}
	})
}

func TestNoLockOutThroughMembers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")
		mbrWant(t, e.gql(e.admin, mbrRevokeQ, map[string]any{"id": adminID}), "FAILED_PRECONDITION", "", "")

		boss := mbrAdd(e, e.admin, "boss@example.com", "Boss", "ADMIN")
		_, personal := mbrPersonalKey(e, e.admin, boss, "boss laptop")
		// The personal key holds API_KEYS_WRITE through ADMIN: the team key may go.
		e.ok(e.admin, mbrRevokeQ, map[string]any{"id": adminID})
		if st, _ := e.authStatus(personal); st != http.StatusOK {
			t.Fatalf("the remaining personal key is refused: %d", st)
		}

		// Demoting or removing its owner would leave no key able to manage keys.
		mbrWant(t, mbrSetRole(e, personal, boss, "VIEWER"), "FAILED_PRECONDITION", "", "")
		mbrWant(t, mbrSetRole(e, personal, boss, "DEVELOPER"), "FAILED_PRECONDITION", "", "")
		mbrWant(t, e.gql(personal, mbrRemoveQ, map[string]any{"id": boss}), "FAILED_PRECONDITION", "", "")
		if r := e.ok(personal, mbrNodeQ, map[string]any{"id": boss}); r.str("node.role") != "ADMIN" {
			t.Fatalf("a refused change touched the member: %s", r.Raw)
		}
		if st, _ := e.authStatus(personal); st != http.StatusOK {
			t.Fatalf("a refused removal revoked the personal key: %d", st)
		}
		if n := e.db.Count(t, "audit_events", "action IN (?, ?)", "member.update", "member.remove"); n != 0 {
			t.Fatalf("%d member events recorded for refused changes", n)
		}

		// A key the personal key mints is the boss's too, capped and revoked
		// with them: it is no other manager, so the demotion is still refused.
		mintedID, minted := e.newKey(personal, "minted", "API_KEYS_WRITE")
		r := e.ok(personal, `query($id: ID!) { node(id: $id) { ... on ApiKey { owner { id } } } }`, map[string]any{"id": mintedID})
		if r.str("node.owner.id") != boss {
			t.Fatalf("a key minted by a personal key is not its member's: %s", r.Raw)
		}
		mbrWant(t, mbrSetRole(e, personal, boss, "VIEWER"), "FAILED_PRECONDITION", "", "")
		if st, _ := e.authStatus(minted); st != http.StatusOK {
			t.Fatalf("the minted key is refused: %d", st)
		}
	})
}

func TestDemotionGoesThroughWithAnotherManager(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")
		boss := mbrAdd(e, e.admin, "boss@example.com", "Boss", "ADMIN")
		_, personal := mbrPersonalKey(e, e.admin, boss, "boss laptop")
		_, manager := e.newKey(e.admin, "manager", "API_KEYS_WRITE")
		e.ok(e.admin, mbrRevokeQ, map[string]any{"id": adminID})
		if r := mbrSetRole(e, personal, boss, "VIEWER"); r.code() != "" || r.str("updateMember.member.role") != "VIEWER" {
			t.Fatalf("demotion with another manager: %s", r.Raw)
		}
		mbrWant(t, e.gql(personal, createKey, map[string]any{"in": map[string]any{"name": "x", "scopes": []string{"API_KEYS_READ"}}}), "FORBIDDEN", "scope", "API_KEYS_WRITE")
		e.newKey(manager, "still possible", "API_KEYS_READ")
	})
}

func TestMembersListing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		roles := []string{"OWNER", "ADMIN", "DEVELOPER", "VIEWER"}
		var all []string
		for i := range 25 {
			email, name := fmt.Sprintf("user%02d@example.com", i), fmt.Sprintf("User %02d", i)
			switch i {
			case 7:
				name = "Željko Kovač"
			case 12:
				email, name = "Grace.Hopper@Example.ORG", "Grace"
			}
			all = append(all, mbrAdd(e, e.admin, email, name, roles[i%4]))
		}
		for i := 0; i < 25; i += 5 {
			e.ok(e.admin, mbrUpdateQ, map[string]any{"in": map[string]any{"id": all[i], "status": "ACTIVE"}})
		}
		// A removed member is neither listed nor counted.
		gone := mbrAdd(e, e.admin, "gone@example.com", "Željko Gone", "DEVELOPER")
		e.ok(e.admin, mbrRemoveQ, map[string]any{"id": gone})

		pick := func(idx ...int) []string {
			var out []string
			for _, i := range idx {
				out = append(out, all[i])
			}
			return out
		}
		var invited []int
		for i := range 25 {
			if i%5 != 0 {
				invited = append(invited, i)
			}
		}
		for _, tc := range []struct {
			name   string
			filter map[string]any
			want   []string
		}{
			{"no filter", nil, all},
			{"role", map[string]any{"role": "DEVELOPER"}, pick(2, 6, 10, 14, 18, 22)},
			{"status active", map[string]any{"status": "ACTIVE"}, pick(0, 5, 10, 15, 20)},
			{"status invited", map[string]any{"status": "INVITED"}, pick(invited...)},
			{"role and status", map[string]any{"role": "DEVELOPER", "status": "ACTIVE"}, pick(10)},
			{"non-ASCII name, lower case", map[string]any{"search": "želj"}, pick(7)},
			{"non-ASCII name, upper case", map[string]any{"search": "ŽELJKO"}, pick(7)},
			{"non-ASCII inside a name", map[string]any{"search": "KOVAČ"}, pick(7)},
			{"email in another case", map[string]any{"search": "hopper@EXAMPLE.org"}, pick(12)},
			{"name in another case", map[string]any{"search": "gRACE"}, pick(12)},
			{"email prefix", map[string]any{"search": "user1"}, pick(10, 11, 13, 14, 15, 16, 17, 18, 19)},
			{"search and role", map[string]any{"search": "user1", "role": "VIEWER"}, pick(11, 15, 19)},
			{"percent is literal", map[string]any{"search": "%"}, nil},
			{"underscore is literal", map[string]any{"search": "_"}, nil},
			{"nothing matches", map[string]any{"search": "nobody"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := e.sub(t)
				vars := map[string]any{"first": 100}
				if tc.filter != nil {
					vars["filter"] = tc.filter
				}
				p := readPage(t, e.ok(e.admin, mbrListQ, vars), "team.members")
				if !slices.Equal(p.ids, tc.want) || p.total != len(tc.want) {
					t.Fatalf("lists %v (totalCount %d), want %v", p.ids, p.total, tc.want)
				}
			})
		}

		// Forward by pages of 10.
		var forward []string
		var sizes []int
		vars := map[string]any{"first": 10}
		for page := 1; ; page++ {
			if page > 5 {
				t.Fatalf("still paging forward after %d pages", page-1)
			}
			p := readPage(t, e.ok(e.admin, mbrListQ, vars), "team.members")
			if p.total != 25 || p.hasPrev != (page > 1) {
				t.Fatalf("forward page %d: totalCount %d, hasPreviousPage %v", page, p.total, p.hasPrev)
			}
			sizes = append(sizes, len(p.ids))
			forward = append(forward, p.ids...)
			if !p.hasNext {
				break
			}
			vars = map[string]any{"first": 10, "after": p.end}
		}
		if !slices.Equal(sizes, []int{10, 10, 5}) || !slices.Equal(forward, all) {
			t.Fatalf("forward pages of %v list %v, want %v", sizes, forward, all)
		}
		// Backward from the end.
		vars = map[string]any{"last": 10}
		for i, want := range []struct {
			ids              []string
			hasPrev, hasNext bool
		}{
			{all[15:25], true, false},
			{all[5:15], true, true},
			{all[0:5], false, true},
		} {
			p := readPage(t, e.ok(e.admin, mbrListQ, vars), "team.members")
			if !slices.Equal(p.ids, want.ids) || p.hasPrev != want.hasPrev || p.hasNext != want.hasNext || p.total != 25 {
				t.Fatalf("backward page %d: %+v, want %v hasPrev %v hasNext %v", i+1, p, want.ids, want.hasPrev, want.hasNext)
			}
			vars = map[string]any{"last": 10, "before": p.start}
		}
		// A filtered list pages too.
		p := readPage(t, e.ok(e.admin, mbrListQ, map[string]any{"first": 2, "filter": map[string]any{"role": "DEVELOPER"}}), "team.members")
		p2 := readPage(t, e.ok(e.admin, mbrListQ, map[string]any{"first": 10, "after": p.end, "filter": map[string]any{"role": "DEVELOPER"}}), "team.members")
		if !slices.Equal(append(p.ids, p2.ids...), pick(2, 6, 10, 14, 18, 22)) || p.total != 6 || !p.hasNext || p2.hasNext {
			t.Fatalf("filtered pages %v then %v", p.ids, p2.ids)
		}

		for _, tc := range []struct {
			vars  map[string]any
			field string
		}{
			{map[string]any{"first": 101}, "first"},
			{map[string]any{"last": 101}, "last"},
			{map[string]any{"first": -1}, "first"},
			{map[string]any{"after": "garbage"}, "after"},
		} {
			r := e.gql(e.admin, mbrListQ, tc.vars)
			mbrWant(t, r, "BAD_USER_INPUT", "field", tc.field)
			if r.get("team.members") != nil {
				t.Fatalf("a page was returned for %v: %s", tc.vars, r.Raw)
			}
		}
	})
}

// TestNoNPlusOne is the statement count of the issue: a page of 100 members,
// each with their keys, their keys' creators and owners, costs the same
// number of SQL statements as a page of 5.
func TestNoNPlusOne(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		_, second := e.newKey(e.admin, "second admin")

		// Early audit events by a key and by devices, so that the first page
		// of the log, read oldest first, has both kinds of actor.
		enroll := e.ok(second, `mutation { createEnrollmentKey(input: {reusable: true, maxUses: 10}) { secret } }`, nil).str("createEnrollmentKey.secret")
		for i := range 3 {
			e.ok("", `mutation($in: EnrollDeviceInput!) { enrollDevice(input: $in) { token device { id } } }`,
				map[string]any{"in": map[string]any{"enrollmentKey": enroll, "serialNumber": fmt.Sprintf("SN-%d", i)}})
		}

		// 100 members, each with 2 personal keys, made alternately by two keys.
		const members = 100
		var memberIDs []string
		for batch := 0; batch < members; batch += 25 {
			var inputs []map[string]any
			for i := batch; i < batch+25; i++ {
				inputs = append(inputs, map[string]any{"email": fmt.Sprintf("m%03d@example.com", i), "name": fmt.Sprintf("Member %03d", i), "role": []string{"ADMIN", "DEVELOPER", "VIEWER"}[i%3]})
			}
			r := mbrBatch(e, e.admin, "addMember", "AddMemberInput", "{ member { id } }", inputs)
			for i := range inputs {
				memberIDs = append(memberIDs, r.str(fmt.Sprintf("m%d.member.id", i)))
			}
		}
		for batch := 0; batch < members; batch += 5 {
			by := e.admin
			if batch/5%2 == 1 {
				by = second
			}
			var inputs []map[string]any
			for _, m := range memberIDs[batch : batch+5] {
				for k := range 2 {
					inputs = append(inputs, map[string]any{"name": fmt.Sprintf("key %d", k), "ownerId": m})
				}
			}
			mbrBatch(e, by, "createApiKey", "CreateApiKeyInput", "{ apiKey { id } }", inputs)
		}
		if n := e.db.Count(t, "api_keys", "owner_id IS NOT NULL"); n != 2*members {
			t.Fatalf("%d personal keys, want %d", n, 2*members)
		}

		const membersQ = `query($n: Int!) { team { members(first: $n) { nodes { id email apiKeys(first: 5) { totalCount nodes { id name createdBy { id name } owner { id } } } } } } }`
		count := map[int]int64{}
		for _, n := range []int{5, members} {
			c, r := mbrStatements(e, e.admin, membersQ, map[string]any{"n": n})
			count[n] = c
			nodes := r.list("team.members.nodes")
			if len(nodes) != n {
				t.Fatalf("members(first: %d) returned %d members", n, len(nodes))
			}
			for i, node := range nodes {
				m := node.(map[string]any)
				if m["id"] != memberIDs[i] {
					t.Fatalf("member %d is %v, want %s", i, m["id"], memberIDs[i])
				}
				keys := m["apiKeys"].(map[string]any)
				list := keys["nodes"].([]any)
				if keys["totalCount"] != float64(2) || len(list) != 2 {
					t.Fatalf("member %d's keys: %v", i, keys)
				}
				for _, k := range list {
					key := k.(map[string]any)
					owner, _ := key["owner"].(map[string]any)
					creator, _ := key["createdBy"].(map[string]any)
					if owner == nil || owner["id"] != m["id"] || creator == nil || creator["id"] == "" {
						t.Fatalf("member %d's key %v", i, key)
					}
				}
			}
		}
		t.Logf("%s: members(first: 5) with keys: %d statements; members(first: 100): %d statements", d, count[5], count[members])
		if count[5] != count[members] {
			t.Errorf("a page of 100 members with their keys issues %d SQL statements, a page of 5 issues %d: N+1", count[members], count[5])
		}

		const keysQ = `query($n: Int!) { team { apiKeys(first: $n) { totalCount nodes { id name scopes createdBy { id name } owner { id email } } } } }`
		keyCount := map[int]int64{}
		for _, n := range []int{5, 100} {
			c, r := mbrStatements(e, e.admin, keysQ, map[string]any{"n": n})
			keyCount[n] = c
			nodes := r.list("team.apiKeys.nodes")
			owned := 0
			for _, k := range nodes {
				if k.(map[string]any)["owner"] != nil {
					owned++
				}
			}
			if len(nodes) != n || owned == 0 {
				t.Fatalf("apiKeys(first: %d): %d keys, %d with an owner", n, len(nodes), owned)
			}
		}
		t.Logf("%s: apiKeys(first: 5) with createdBy/owner: %d statements; apiKeys(first: 100): %d statements", d, keyCount[5], keyCount[100])
		if keyCount[5] != keyCount[100] {
			t.Errorf("a page of 100 keys issues %d SQL statements, a page of 5 issues %d: N+1", keyCount[100], keyCount[5])
		}

		const eventsQ = `query($n: Int!) { team { auditEvents(first: $n, order: OLDEST_FIRST) { totalCount nodes { id action actor { id name } actorDevice { id name } } } } }`
		eventCount := map[int]int64{}
		for _, n := range []int{5, 100} {
			c, r := mbrStatements(e, e.admin, eventsQ, map[string]any{"n": n})
			eventCount[n] = c
			nodes := r.list("team.auditEvents.nodes")
			byKey, byDevice := 0, 0
			for _, ev := range nodes {
				m := ev.(map[string]any)
				if m["actor"] != nil {
					byKey++
				}
				if m["actorDevice"] != nil {
					byDevice++
				}
			}
			if len(nodes) != n || byKey == 0 || byDevice == 0 {
				t.Fatalf("auditEvents(first: %d): %d events, %d by a key, %d by a device", n, len(nodes), byKey, byDevice)
			}
		}
		t.Logf("%s: auditEvents(first: 5) with actor/actorDevice: %d statements; auditEvents(first: 100): %d statements", d, eventCount[5], eventCount[100])
		if eventCount[5] != eventCount[100] {
			t.Errorf("a page of 100 events issues %d SQL statements, a page of 5 issues %d: N+1", eventCount[100], eventCount[5])
		}
	})
}

func TestMembersAcrossTeams(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		mine := mbrAdd(e, e.admin, "mine@example.com", "Mine", "ADMIN")
		beta := e.bootstrap("Beta")
		theirs := mbrAdd(e, beta, "theirs@example.com", "Theirs", "DEVELOPER")
		unknown := ids.Encode(ids.Member, ids.New())
		keysBefore := e.db.Count(t, "api_keys", "")
		eventsBefore := e.db.Count(t, "audit_events", "")

		for _, op := range []struct {
			name  string
			query string
			vars  func(id string) map[string]any
		}{
			{"updateMember", mbrUpdateQ, func(id string) map[string]any {
				return map[string]any{"in": map[string]any{"id": id, "name": "Hijacked", "role": "VIEWER"}}
			}},
			{"removeMember", mbrRemoveQ, func(id string) map[string]any { return map[string]any{"id": id} }},
			{"createApiKey ownerId", mbrCreateKeyQ, func(id string) map[string]any {
				return map[string]any{"in": map[string]any{"name": "stolen", "ownerId": id}}
			}},
		} {
			t.Run(op.name, func(t *testing.T) {
				e := e.sub(t)
				foreign := e.gql(e.admin, op.query, op.vars(theirs))
				absent := e.gql(e.admin, op.query, op.vars(unknown))
				mbrWant(t, foreign, "NOT_FOUND", "", "")
				mbrWant(t, absent, "NOT_FOUND", "", "")
				if foreign.Status != absent.Status || foreign.Errors[0].Message != absent.Errors[0].Message {
					t.Fatalf("a foreign member answers unlike an unknown one:\n%s\n%s", foreign.Raw, absent.Raw)
				}
			})
		}

		r := e.ok(beta, mbrNodeQ, map[string]any{"id": theirs})
		if r.str("node.name") != "Theirs" || r.str("node.role") != "DEVELOPER" {
			t.Fatalf("the other team's member changed: %s", r.Raw)
		}
		if r := e.ok(e.admin, mbrNodeQ, map[string]any{"id": theirs}); r.get("node") != nil {
			t.Fatalf("node of another team's member: %s", r.Raw)
		}
		if r := e.ok(e.admin, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": []string{theirs, mine}}); r.list("nodes")[0] != nil || pluck(r.list("nodes"), "id")[1] != mine {
			t.Fatalf("nodes across teams: %s", r.Raw)
		}
		if p := readPage(t, e.ok(e.admin, mbrListQ, nil), "team.members"); p.total != 1 || !slices.Equal(p.ids, []string{mine}) {
			t.Fatalf("team.members lists %v (total %d), want only [%s]", p.ids, p.total, mine)
		}
		if p := readPage(t, e.ok(e.admin, mbrListQ, map[string]any{"filter": map[string]any{"search": "theirs"}}), "team.members"); p.total != 0 {
			t.Fatalf("search found another team's member: %v", p.ids)
		}
		if n := e.db.Count(t, "api_keys", ""); n != keysBefore {
			t.Fatalf("a key was stored for another team's member")
		}
		if n := e.db.Count(t, "audit_events", ""); n != eventsBefore {
			t.Fatalf("refused cross-team changes were audited")
		}
		if n := e.db.Count(t, "members", "removed_at IS NULL"); n != 2 {
			t.Fatalf("%d live members, want 2", n)
		}
	})
}

func TestMemberScopes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id := mbrAdd(e, e.admin, "ada@example.com", "Ada", "ADMIN")
		mbrPersonalKey(e, e.admin, id, "ada's")
		_, reader := e.newKey(e.admin, "members reader", "MEMBERS_READ")
		_, devices := e.newKey(e.admin, "devices only", "DEVICES_READ", "API_KEYS_READ")

		// MEMBERS_READ reads members, and changes none.
		if p := readPage(t, e.ok(reader, mbrListQ, nil), "team.members"); p.total != 1 {
			t.Fatalf("MEMBERS_READ lists %d members", p.total)
		}
		if r := e.ok(reader, mbrNodeQ, map[string]any{"id": id}); r.str("node.email") != "ada@example.com" {
			t.Fatalf("node with MEMBERS_READ: %s", r.Raw)
		}
		for name, c := range map[string]struct {
			query string
			vars  map[string]any
		}{
			"addMember":    {mbrAddQ, map[string]any{"in": map[string]any{"email": "x@example.com", "role": "VIEWER"}}},
			"updateMember": {mbrUpdateQ, map[string]any{"in": map[string]any{"id": id, "role": "VIEWER"}}},
			"removeMember": {mbrRemoveQ, map[string]any{"id": id}},
		} {
			r := e.gql(reader, c.query, c.vars)
			if r.code() != "FORBIDDEN" || r.Errors[0].Extensions["scope"] != "MEMBERS_WRITE" {
				t.Errorf("%s with MEMBERS_READ: %s", name, r.Raw)
			}
		}
		if n := e.db.Count(t, "members", "role = ? AND removed_at IS NULL", "ADMIN"); n != 1 {
			t.Fatal("a refused change touched the member")
		}

		// Without MEMBERS_READ, members are out of reach.
		r := e.gql(devices, `{ team { name members { totalCount } } }`, nil)
		mbrWant(t, r, "FORBIDDEN", "scope", "MEMBERS_READ")
		if r.str("team.name") != "Acme" || r.get("team.members") != nil {
			t.Fatalf("without MEMBERS_READ: %s", r.Raw)
		}
		mbrWant(t, e.gql(devices, mbrNodeQ, map[string]any{"id": id}), "FORBIDDEN", "scope", "MEMBERS_READ")
		mbrWant(t, e.gql(devices, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": []string{id}}), "FORBIDDEN", "scope", "MEMBERS_READ")
		// Even an unknown member id is FORBIDDEN, so that the answer says nothing.
		mbrWant(t, e.gql(devices, mbrNodeQ, map[string]any{"id": ids.Encode(ids.Member, ids.New())}), "FORBIDDEN", "scope", "MEMBERS_READ")

		// Member.apiKeys needs API_KEYS_READ; the member's other fields answer.
		r = e.gql(reader, `{ team { members { nodes { id email role apiKeys { totalCount } } } } }`, nil)
		mbrWant(t, r, "FORBIDDEN", "scope", "API_KEYS_READ")
		nodes := r.list("team.members.nodes")
		if len(nodes) != 1 {
			t.Fatalf("without API_KEYS_READ the members vanished: %s", r.Raw)
		}
		m := nodes[0].(map[string]any)
		if m["id"] != id || m["email"] != "ada@example.com" || m["role"] != "ADMIN" || m["apiKeys"] != nil {
			t.Fatalf("without API_KEYS_READ: %s", r.Raw)
		}
		_, both := e.newKey(e.admin, "both", "MEMBERS_READ", "API_KEYS_READ")
		if r := e.ok(both, `{ team { members { nodes { apiKeys { totalCount } } } } }`, nil); r.list("team.members.nodes")[0].(map[string]any)["apiKeys"].(map[string]any)["totalCount"] != float64(1) {
			t.Fatalf("with both scopes: %s", r.Raw)
		}
	})
}
