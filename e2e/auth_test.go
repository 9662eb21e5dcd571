package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

func TestCredentialsThatDoNotAuthenticate(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		revokedID, revoked := e.newKey(e.admin, "to revoke")
		e.ok(e.admin, `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { status } } }`, map[string]any{"id": revokedID})
		expiredID, expired := e.newKey(e.admin, "to expire")
		e.db.Exec(t, "UPDATE api_keys SET expires_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Minute), uuidOf(t, ids.APIKey, expiredID).String())

		// A well-formed key for a real key id, with another secret.
		forged, _ := credential.Generate(credential.APIKey, uuidOf(t, ids.APIKey, revokedID))
		unknown, _ := credential.Generate(credential.APIKey, ids.New())
		device, _ := credential.Generate(credential.DeviceToken, ids.New())
		enrollment, _ := credential.Generate(credential.EnrollmentKey, ids.New())
		badChecksum := e.admin[:len(e.admin)-1] + flip(e.admin[len(e.admin)-1])

		for _, tc := range []struct {
			name, key, reason string
		}{
			{"garbage", "not-a-key", "INVALID"},
			{"prefix only", "kp_", "INVALID"},
			{"bad checksum", badChecksum, "INVALID"},
			{"truncated", e.admin[:len(e.admin)-2], "INVALID"},
			{"unknown id", unknown.Token, "INVALID"},
			{"wrong secret for a revoked key", forged.Token, "INVALID"},
			{"device token", device.Token, "INVALID"},
			{"enrollment key", enrollment.Token, "INVALID"},
			{"revoked", revoked, "REVOKED"},
			{"expired", expired, "EXPIRED"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.gql(tc.key, `mutation { updateTeam(input: {name: "pwned"}) { team { name } } }`, nil)
				if r.Status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", r.Status, r.Raw)
				}
				if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if r.code() != "UNAUTHENTICATED" || r.Errors[0].Extensions["reason"] != tc.reason {
					t.Errorf("got %s, want UNAUTHENTICATED/%s", r.Raw, tc.reason)
				}
				if r.Data != nil {
					t.Errorf("nothing may execute, got data %v", r.Data)
				}
			})
		}
		if n := e.db.Count(t, "teams", "name = ?", "pwned"); n != 0 {
			t.Fatalf("a refused credential renamed the team")
		}
	})
}

func TestNoCredentialRunsUnauthenticated(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		r := e.gql("", `{ __typename }`, nil)
		if r.Status != http.StatusOK || r.str("__typename") != "Query" {
			t.Fatalf("__typename without a key: %d %s", r.Status, r.Raw)
		}
		for _, q := range []string{`{ team { id } }`, `{ viewer { id } }`, `{ node(id: "team_0") { id } }`} {
			r := e.fails("", q, nil, "UNAUTHENTICATED")
			if r.Status != http.StatusOK {
				t.Errorf("%s: status %d", q, r.Status)
			}
		}
		e.fails("", `mutation { createApiKey(input: {name: "x"}) { secret } }`, nil, "UNAUTHENTICATED")
		if n := e.db.Count(t, "api_keys", ""); n != 1 {
			t.Fatalf("%d keys stored, want only the bootstrap key", n)
		}
	})
}

func TestScopesGuardFields(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		_, devicesOnly := e.newKey(e.admin, "devices", "DEVICES_READ")
		_, keysWrite := e.newKey(e.admin, "keys", "API_KEYS_WRITE")
		_, auditor := e.newKey(e.admin, "auditor", "AUDIT_READ")

		for _, tc := range []struct {
			name, key, query, scope string
		}{
			{"list keys without API_KEYS_READ", devicesOnly, `{ team { apiKeys { totalCount } } }`, "API_KEYS_READ"},
			{"audit without AUDIT_READ", keysWrite, `{ team { auditEvents { totalCount } } }`, "AUDIT_READ"},
			{"create without API_KEYS_WRITE", auditor, `mutation { createApiKey(input: {name: "x", scopes: [AUDIT_READ]}) { secret } }`, "API_KEYS_WRITE"},
			{"rename team without MEMBERS_WRITE", keysWrite, `mutation { updateTeam(input: {name: "x"}) { team { name } } }`, "MEMBERS_WRITE"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.fails(tc.key, tc.query, nil, "FORBIDDEN")
				if r.Status != http.StatusOK || r.Errors[0].Extensions["scope"] != tc.scope {
					t.Fatalf("want FORBIDDEN naming %s, got %d %s", tc.scope, r.Status, r.Raw)
				}
			})
		}
		// WRITE implies READ; any key reads its team and itself.
		e.ok(keysWrite, `{ team { name apiKeys { totalCount } } viewer { name scopes } }`, nil)
		r := e.ok(auditor, `{ team { auditEvents { totalCount } } viewer { scopes } }`, nil)
		if got := r.list("viewer.scopes"); len(got) != 1 || got[0] != "AUDIT_READ" {
			t.Fatalf("viewer scopes = %v", got)
		}
		if n := e.db.Count(t, "api_keys", ""); n != 4 {
			t.Fatalf("%d keys stored, want 4", n)
		}
	})
}

func TestNoEscalation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		_, manager := e.newKey(e.admin, "manager", "API_KEYS_WRITE", "DEVICES_READ")

		for _, tc := range []struct {
			name   string
			scopes []string
			code   string
			scope  string
		}{
			{"a subset", []string{"DEVICES_READ"}, "", ""},
			{"its own scopes", []string{"API_KEYS_WRITE", "DEVICES_READ"}, "", ""},
			{"an implied read", []string{"API_KEYS_READ"}, "", ""},
			{"a write it only reads", []string{"DEVICES_WRITE"}, "FORBIDDEN", "DEVICES_WRITE"},
			{"a scope it lacks", []string{"DEVICES_READ", "MEMBERS_WRITE"}, "FORBIDDEN", "MEMBERS_WRITE"},
			{"no scopes means all", nil, "FORBIDDEN", "DEVICES_WRITE"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := e.db.Count(t, "api_keys", "")
				in := map[string]any{"name": tc.name}
				if tc.scopes != nil {
					in["scopes"] = tc.scopes
				}
				r := e.gql(manager, createKey, map[string]any{"in": in})
				if r.code() != tc.code {
					t.Fatalf("want %q, got %s", tc.code, r.Raw)
				}
				if tc.code != "" {
					if r.Errors[0].Extensions["scope"] != tc.scope {
						t.Errorf("error names %v, want %s", r.Errors[0].Extensions["scope"], tc.scope)
					}
					if after := e.db.Count(t, "api_keys", ""); after != before {
						t.Errorf("a refused create stored a key")
					}
				}
			})
		}

		// The bootstrap key holds every scope, so it may mint a key without scopes.
		r := e.ok(e.admin, createKey, map[string]any{"in": map[string]any{"name": "full"}})
		if got := len(r.list("createApiKey.apiKey.scopes")); got != 7 {
			t.Fatalf("a key without scopes lists %d scopes, want all 7", got)
		}
	})
}

func TestCreateApiKey(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		expires := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Second)
		r := e.ok(e.admin, createKey, map[string]any{"in": map[string]any{
			"name": "CI", "description": "deploys", "scopes": []string{"DEVICES_WRITE"},
			"expiresAt": expires.Format(time.RFC3339), "allowedCidrs": []string{"127.0.0.1/8", "::1/128"},
			"clientMutationId": "req-7",
		}})
		secret := r.str("createApiKey.secret")
		if !strings.HasPrefix(secret, "kp_") || r.str("createApiKey.clientMutationId") != "req-7" {
			t.Fatalf("payload: %s", r.Raw)
		}
		if start := r.str("createApiKey.apiKey.start"); !strings.HasPrefix(secret, start) || len(start) >= len(secret)-40 {
			t.Fatalf("start %q must be a short literal prefix of the secret", start)
		}
		if got := r.list("createApiKey.apiKey.allowedCidrs"); len(got) != 2 || got[0] != "127.0.0.0/8" {
			t.Fatalf("allowedCidrs stored as %v, want canonical networks", got)
		}
		if r.str("createApiKey.apiKey.expiresAt") != expires.Format(time.RFC3339) {
			t.Fatalf("expiresAt = %q", r.str("createApiKey.apiKey.expiresAt"))
		}
		if got := r.list("createApiKey.apiKey.scopes"); len(got) != 2 {
			t.Fatalf("DEVICES_WRITE lists %v, want it with the DEVICES_READ it implies", got)
		}
		if st, _ := e.authStatus(secret); st != http.StatusOK {
			t.Fatalf("the new key does not authenticate: %d", st)
		}
		// Only a hash is stored: the secret appears in no column.
		if n := e.db.Count(t, "api_keys", "name = ? OR description = ? OR allowed_cidrs LIKE ?", secret, secret, "%"+secret[10:30]+"%"); n != 0 {
			t.Fatalf("the secret is stored in clear")
		}
	})
}

func TestCreateApiKeyRefusesBadInput(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		for _, tc := range []struct {
			name  string
			in    map[string]any
			field string
		}{
			{"empty name", map[string]any{"name": ""}, "name"},
			{"blank name", map[string]any{"name": "   "}, "name"},
			{"name of 201 characters", map[string]any{"name": strings.Repeat("é", 201)}, "name"},
			{"name with a NUL byte", map[string]any{"name": "a\x00b"}, "name"},
			{"name with a newline", map[string]any{"name": "a\nb"}, "name"},
			{"description of 2001 characters", map[string]any{"name": "x", "description": strings.Repeat("d", 2001)}, "description"},
			{"expiry in the past", map[string]any{"name": "x", "expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"},
			{"expiry not RFC 3339", map[string]any{"name": "x", "expiresAt": "tomorrow"}, "expiresAt"},
			{"bad CIDR", map[string]any{"name": "x", "allowedCidrs": []string{"10.0.0.0/33"}}, "allowedCidrs"},
			{"address without prefix", map[string]any{"name": "x", "allowedCidrs": []string{"10.0.0.1"}}, "allowedCidrs"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.fails(e.admin, createKey, map[string]any{"in": tc.in}, "BAD_USER_INPUT")
				if r.Errors[0].Extensions["field"] != tc.field {
					t.Errorf("field = %v, want %s (%s)", r.Errors[0].Extensions["field"], tc.field, r.Raw)
				}
			})
		}
		// 200 characters, counted as characters rather than bytes, is fine.
		e.ok(e.admin, createKey, map[string]any{"in": map[string]any{"name": strings.Repeat("é", 200), "description": strings.Repeat("d", 2000)}})
		if n := e.db.Count(t, "api_keys", ""); n != 2 {
			t.Fatalf("%d keys stored, want the bootstrap key and the valid one", n)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "apiKey.create"); n != 2 {
			t.Fatalf("%d create events, want 2", n)
		}
	})
}
