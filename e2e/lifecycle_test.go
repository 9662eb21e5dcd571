package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

const (
	rotateKey = `mutation($id: ID!, $grace: Int) {
  rotateApiKey(input: {id: $id, gracePeriodSeconds: $grace, clientMutationId: "r"}) {
    secret clientMutationId apiKey { id status rotatedAt previousSecretExpiresAt }
  }
}`
	revokeKey = `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id status revokedAt } } }`
	updateKey = `mutation($in: UpdateApiKeyInput!) { updateApiKey(input: $in) { apiKey { id name description allowedCidrs } } }`
)

func TestRotateWithoutGraceRefusesTheOldSecretAtOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, old := e.newKey(e.admin, "svc")
		r := e.ok(e.admin, rotateKey, map[string]any{"id": id, "grace": 0})
		fresh := r.str("rotateApiKey.secret")
		if fresh == old || r.str("rotateApiKey.apiKey.id") != id || r.str("rotateApiKey.clientMutationId") != "r" {
			t.Fatalf("payload: %s", r.Raw)
		}
		if r.get("rotateApiKey.apiKey.previousSecretExpiresAt") != nil || r.str("rotateApiKey.apiKey.rotatedAt") == "" {
			t.Fatalf("rotation times: %s", r.Raw)
		}
		if st, reason := e.authStatus(old); st != http.StatusUnauthorized || reason != "INVALID" {
			t.Fatalf("old secret after rotation: %d %s", st, reason)
		}
		if st, _ := e.authStatus(fresh); st != http.StatusOK {
			t.Fatalf("new secret: %d", st)
		}
		if n := e.db.Count(t, "audit_events", "action = ? AND target_id = ?", "apiKey.rotate", id); n != 1 {
			t.Fatalf("%d rotate events, want 1", n)
		}
	})
}

func TestRotateWithGraceKeepsTheOldSecretUntilItEnds(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, old := e.newKey(e.admin, "svc")
		r := e.ok(e.admin, rotateKey, map[string]any{"id": id, "grace": 3600})
		fresh := r.str("rotateApiKey.secret")
		until, err := time.Parse(time.RFC3339Nano, r.str("rotateApiKey.apiKey.previousSecretExpiresAt"))
		if err != nil || until.Before(time.Now().Add(59*time.Minute)) || until.After(time.Now().Add(61*time.Minute)) {
			t.Fatalf("previousSecretExpiresAt = %v (%v)", until, err)
		}
		for _, k := range []string{old, fresh} {
			if st, _ := e.authStatus(k); st != http.StatusOK {
				t.Fatalf("during the grace window both secrets work; got %d", st)
			}
		}
		// The grace window ends: the old secret stops, the new one goes on.
		e.db.Exec(t, "UPDATE api_keys SET previous_secret_expires_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Second), uuidOf(t, ids.APIKey, id).String())
		if st, _ := e.authStatus(old); st != http.StatusUnauthorized {
			t.Fatalf("old secret after the grace window: %d", st)
		}
		if st, _ := e.authStatus(fresh); st != http.StatusOK {
			t.Fatalf("new secret: %d", st)
		}
		// A second rotation drops the first secret for good, whatever its window.
		e.db.Exec(t, "UPDATE api_keys SET previous_secret_expires_at = ? WHERE id = ?", time.Now().UTC().Add(time.Hour), uuidOf(t, ids.APIKey, id).String())
		third := e.ok(e.admin, rotateKey, map[string]any{"id": id, "grace": 60}).str("rotateApiKey.secret")
		if st, _ := e.authStatus(old); st != http.StatusUnauthorized {
			t.Fatalf("the secret two rotations back still works")
		}
		for _, k := range []string{fresh, third} {
			if st, _ := e.authStatus(k); st != http.StatusOK {
				t.Fatalf("secret within its window refused: %d", st)
			}
		}
	})
}

func TestRotateRefusals(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, secret := e.newKey(e.admin, "svc")
		revokedID, _ := e.newKey(e.admin, "gone")
		e.ok(e.admin, revokeKey, map[string]any{"id": revokedID})
		for _, tc := range []struct {
			name  string
			vars  map[string]any
			code  string
			field string
		}{
			{"grace over seven days", map[string]any{"id": id, "grace": 604801}, "BAD_USER_INPUT", "gracePeriodSeconds"},
			{"negative grace", map[string]any{"id": id, "grace": -1}, "BAD_USER_INPUT", "gracePeriodSeconds"},
			{"malformed id", map[string]any{"id": "key_!!"}, "BAD_USER_INPUT", "id"},
			{"id of another type", map[string]any{"id": "team_0351sYg4NCmEAmdoFd2Rz4"}, "BAD_USER_INPUT", "id"},
			{"unknown key", map[string]any{"id": "key_0351sYg4NCmEAmdoFd2Rz4"}, "NOT_FOUND", ""},
			{"revoked key", map[string]any{"id": revokedID}, "FAILED_PRECONDITION", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.fails(e.admin, rotateKey, tc.vars, tc.code)
				if tc.field != "" && r.Errors[0].Extensions["field"] != tc.field {
					t.Errorf("field = %v, want %s", r.Errors[0].Extensions["field"], tc.field)
				}
			})
		}
		// Seven days exactly is allowed; nothing above changed the key.
		if st, _ := e.authStatus(secret); st != http.StatusOK {
			t.Fatalf("a refused rotation changed the secret")
		}
		e.ok(e.admin, rotateKey, map[string]any{"id": id, "grace": 604800})
		if n := e.db.Count(t, "audit_events", "action = ?", "apiKey.rotate"); n != 1 {
			t.Fatalf("%d rotate events, want 1", n)
		}
	})
}

func TestConcurrentRotationsLeaveOneLiveSecret(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, original := e.newKey(e.admin, "contended")
		const n = 20
		rs := e.race(n, func(int) *response {
			return e.gql(e.admin, rotateKey, map[string]any{"id": id, "grace": 0})
		})
		codes, secrets := tally(rs), collect(rs, "rotateApiKey.secret")
		if codes[""]+codes["CONFLICT"] != n || codes[""] == 0 {
			t.Fatalf("outcomes %v: every rotation must succeed or answer CONFLICT", codes)
		}
		live := 0
		for _, s := range append(secrets, original) {
			if st, _ := e.authStatus(s); st == http.StatusOK {
				live++
			}
		}
		if live != 1 {
			t.Fatalf("%d live secrets after %d rotations, want exactly 1", live, codes[""])
		}
		if got := e.db.Count(t, "audit_events", "action = ?", "apiKey.rotate"); got != int64(codes[""]) {
			t.Fatalf("%d rotate events for %d rotations", got, codes[""])
		}
	})
}

func TestRevokeIsImmediateAndPermanent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, secret := e.newKey(e.admin, "leaked")
		if st, _ := e.authStatus(secret); st != http.StatusOK {
			t.Fatal("new key refused")
		}
		r := e.ok(e.admin, revokeKey, map[string]any{"id": id})
		if r.str("revokeApiKey.apiKey.status") != "REVOKED" || r.str("revokeApiKey.apiKey.revokedAt") == "" {
			t.Fatalf("payload: %s", r.Raw)
		}
		if st, reason := e.authStatus(secret); st != http.StatusUnauthorized || reason != "REVOKED" {
			t.Fatalf("revoked key: %d %s", st, reason)
		}
		// Revoking again changes nothing and records nothing more.
		again := e.ok(e.admin, revokeKey, map[string]any{"id": id})
		if again.str("revokeApiKey.apiKey.revokedAt") != r.str("revokeApiKey.apiKey.revokedAt") {
			t.Fatal("a second revoke moved revokedAt")
		}
		if n := e.db.Count(t, "audit_events", "action = ? AND target_id = ?", "apiKey.revoke", id); n != 1 {
			t.Fatalf("%d revoke events, want 1", n)
		}
		e.fails(e.admin, revokeKey, map[string]any{"id": "key_0351sYg4NCmEAmdoFd2Rz4"}, "NOT_FOUND")
	})
}

func TestLastKeyManagerCannotBeRevoked(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")
		readerID, _ := e.newKey(e.admin, "reader", "API_KEYS_READ")

		r := e.fails(e.admin, revokeKey, map[string]any{"id": adminID}, "FAILED_PRECONDITION")
		if r.Status != http.StatusOK {
			t.Fatalf("status %d", r.Status)
		}
		// A key without API_KEYS_WRITE does not count, and may go.
		e.ok(e.admin, revokeKey, map[string]any{"id": readerID})
		e.fails(e.admin, revokeKey, map[string]any{"id": adminID}, "FAILED_PRECONDITION")

		// An expired key holding the scope does not count either.
		expiredID, _ := e.newKey(e.admin, "old manager", "API_KEYS_WRITE")
		e.db.Exec(t, "UPDATE api_keys SET expires_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Minute), uuidOf(t, ids.APIKey, expiredID).String())
		e.fails(e.admin, revokeKey, map[string]any{"id": adminID}, "FAILED_PRECONDITION")

		// With a second manager, the first may be revoked, even by itself.
		_, second := e.newKey(e.admin, "manager", "API_KEYS_WRITE")
		e.ok(e.admin, revokeKey, map[string]any{"id": adminID})
		if st, _ := e.authStatus(second); st != http.StatusOK {
			t.Fatal("the remaining manager is refused")
		}
		if st, reason := e.authStatus(e.admin); st != http.StatusUnauthorized || reason != "REVOKED" {
			t.Fatalf("revoked admin: %d %s", st, reason)
		}
	})
}

func TestConcurrentRevokesNeverLockTheTeamOut(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")
		otherID, other := e.newKey(e.admin, "second manager")
		// Each manager revokes the other, at the same time.
		var wg sync.WaitGroup
		codes := make([]string, 2)
		for i, pair := range [][2]string{{e.admin, otherID}, {other, adminID}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = e.gql(pair[0], revokeKey, map[string]any{"id": pair[1]}).code()
			}()
		}
		wg.Wait()
		active := e.db.Count(t, "api_keys", "revoked_at IS NULL")
		if active < 1 {
			t.Fatalf("outcomes %v left no active key: the team is locked out", codes)
		}
		// The loser is refused by the rule, or finds its own key revoked.
		allowed := map[string]bool{"": true, "FAILED_PRECONDITION": true, "UNAUTHENTICATED": true}
		for _, c := range codes {
			if !allowed[c] {
				t.Fatalf("unexpected outcomes %v", codes)
			}
		}
	})
}

func TestUpdateApiKey(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, _ := e.newKey(e.admin, "before")
		r := e.ok(e.admin, updateKey, map[string]any{"in": map[string]any{"id": id, "name": "after", "description": "why", "allowedCidrs": []string{"10.1.2.3/8"}}})
		if r.str("updateApiKey.apiKey.name") != "after" || r.str("updateApiKey.apiKey.description") != "why" {
			t.Fatalf("payload: %s", r.Raw)
		}
		if got := r.list("updateApiKey.apiKey.allowedCidrs"); len(got) != 1 || got[0] != "10.0.0.0/8" {
			t.Fatalf("allowedCidrs = %v", got)
		}
		// Absent fields stay; an empty description clears it; an empty list allows any address.
		r = e.ok(e.admin, updateKey, map[string]any{"in": map[string]any{"id": id, "description": ""}})
		if r.str("updateApiKey.apiKey.name") != "after" || r.get("updateApiKey.apiKey.description") != nil || len(r.list("updateApiKey.apiKey.allowedCidrs")) != 1 {
			t.Fatalf("partial update: %s", r.Raw)
		}
		r = e.ok(e.admin, updateKey, map[string]any{"in": map[string]any{"id": id, "allowedCidrs": []string{}}})
		if len(r.list("updateApiKey.apiKey.allowedCidrs")) != 0 {
			t.Fatalf("allowedCidrs not cleared: %s", r.Raw)
		}
		e.fails(e.admin, updateKey, map[string]any{"in": map[string]any{"id": id, "name": ""}}, "BAD_USER_INPUT")
		e.fails(e.admin, updateKey, map[string]any{"in": map[string]any{"id": id, "allowedCidrs": []string{"nope"}}}, "BAD_USER_INPUT")
		if n := e.db.Count(t, "api_keys", "name = ?", "after"); n != 1 {
			t.Fatal("a refused update changed the key")
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "apiKey.update"); n != 3 {
			t.Fatalf("%d update events, want 3", n)
		}
	})
}

func TestAllowedCidrsAreEnforced(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, secret := e.newKey(e.admin, "office only")
		e.ok(e.admin, updateKey, map[string]any{"in": map[string]any{"id": id, "allowedCidrs": []string{"203.0.113.0/24"}}})
		if st, reason := e.authStatus(secret); st != http.StatusUnauthorized || reason != "IP_NOT_ALLOWED" {
			t.Fatalf("key used from outside its networks: %d %s", st, reason)
		}
		// Only the holder of the secret learns the reason.
		if st, reason := e.authStatus(secret[:len(secret)-8] + "AAAAAAAA"); st != http.StatusUnauthorized || reason != "INVALID" {
			t.Fatalf("wrong secret: %d %s", st, reason)
		}
		e.ok(e.admin, updateKey, map[string]any{"in": map[string]any{"id": id, "allowedCidrs": []string{"203.0.113.0/24", "127.0.0.0/8", "::1/128"}}})
		if st, _ := e.authStatus(secret); st != http.StatusOK {
			t.Fatalf("key used from an allowed network: %d", st)
		}
	})
}

func TestLastUsedIsRecordedInBatches(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, secret := e.newKey(e.admin, "polled")
		for range 5 {
			e.ok(secret, `{ viewer { id } }`, nil)
		}
		// Nothing is written per request...
		if n := e.db.Count(t, "api_keys", "last_used_at IS NOT NULL"); n != 0 {
			t.Fatalf("%d keys marked used before the flush", n)
		}
		// ...and everything at the flush.
		e.flushUsage()
		r := e.ok(e.admin, `query($id: ID!) { node(id: $id) { ... on ApiKey { lastUsedAt lastUsedIp } } }`, map[string]any{"id": id})
		used, err := time.Parse(time.RFC3339Nano, r.str("node.lastUsedAt"))
		if err != nil || time.Since(used) > time.Minute || r.str("node.lastUsedIp") != "127.0.0.1" {
			t.Fatalf("usage: %s", r.Raw)
		}
	})
}

func TestUpdateTeam(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		r := e.ok(e.admin, `mutation { updateTeam(input: {name: "Acme Robotics", clientMutationId: "t"}) { clientMutationId team { id name } } }`, nil)
		if r.str("updateTeam.team.name") != "Acme Robotics" || r.str("updateTeam.clientMutationId") != "t" {
			t.Fatalf("payload: %s", r.Raw)
		}
		e.fails(e.admin, `mutation { updateTeam(input: {name: ""}) { team { name } } }`, nil, "BAD_USER_INPUT")
		if n := e.db.Count(t, "teams", "name = ?", "Acme Robotics"); n != 1 {
			t.Fatal("a refused rename changed the team")
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "team.update"); n != 1 {
			t.Fatalf("%d team.update events, want 1", n)
		}
	})
}

// TestOneFailingMutationLosesNoSecret sends two mutations in one request, the
// second refused: the first one's key was created, so its secret must reach
// the caller rather than vanish with a null data.
func TestOneFailingMutationLosesNoSecret(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		r := e.gql(e.admin, `mutation {
  good: createApiKey(input: {name: "kept"}) { secret apiKey { id } }
  bad: createApiKey(input: {name: ""}) { secret apiKey { id } }
}`, nil)
		if r.code() != "BAD_USER_INPUT" || r.str("good.secret") == "" || r.get("bad") != nil {
			t.Fatalf("want the first payload and an error for the second, got %s", r.Raw)
		}
		if st, _ := e.authStatus(r.str("good.secret")); st != http.StatusOK {
			t.Fatalf("the returned secret does not authenticate: %d", st)
		}
	})
}

// TestGuardedFieldsAnswerNullAlone checks that a field the caller may not
// read is null on its own, and the rest of the response still answers.
func TestGuardedFieldsAnswerNullAlone(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		r := e.gql("", `{ __typename team { name } }`, nil)
		if r.str("__typename") != "Query" || r.get("team") != nil || r.code() != "UNAUTHENTICATED" {
			t.Fatalf("without a key: %s", r.Raw)
		}
		_, reader := e.newKey(e.admin, "reader", "DEVICES_READ")
		r = e.gql(reader, `{ team { name apiKeys { totalCount } } }`, nil)
		if r.str("team.name") != "Acme" || r.get("team.apiKeys") != nil || r.code() != "FORBIDDEN" {
			t.Fatalf("without API_KEYS_READ: %s", r.Raw)
		}
	})
}
