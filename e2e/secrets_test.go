package e2e

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
)

// secSecretPart returns the secret part of a credential: everything after
// its prefix, its 22-character id and the underscore that ends the id.
func secSecretPart(t *testing.T, token string) string {
	t.Helper()
	prefix := token[:strings.Index(token, "_")+1]
	at := len(prefix) + 23
	if len(prefix) < 3 || len(token) <= at || token[at-1] != '_' {
		t.Fatalf("%q does not look like a credential", token)
	}
	return token[at:]
}

// secAlter returns the credential with one character of its secret changed:
// a near miss, as a typo or a guess would be.
func secAlter(t *testing.T, token string) string {
	t.Helper()
	i := len(token) - len(secSecretPart(t, token)) + 7
	return token[:i] + flip(token[i]) + token[i+1:]
}

func TestSecretsNeverLogged(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d, func(c *config.Config) { c.LogLevel = slog.LevelDebug })
		var secrets []string // every credential the lifecycle handles
		keep := func(what, s string) string {
			t.Helper()
			if s == "" {
				t.Fatalf("%s: no secret", what)
			}
			secrets = append(secrets, s)
			return s
		}
		viewer := func(key string) { t.Helper(); e.ok(key, `{ viewer { id name } }`, nil) }
		beat := func(token string) { t.Helper(); e.ok(token, devHeartbeat, map[string]any{"fw": "3.1.4"}) }
		enroll := func(key, serial string) *response {
			t.Helper()
			return e.gql("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": key, "serialNumber": serial}})
		}
		requests := 0
		count := func(n int) { requests += n }

		keep("bootstrap", e.admin)

		// A key, rotated with grace: both secrets work.
		keyID, key := e.newKey(e.admin, "svc")
		keep("createApiKey", key)
		rotated := keep("rotateApiKey", e.ok(e.admin, rotateKey, map[string]any{"id": keyID, "grace": 3600}).str("rotateApiKey.secret"))
		viewer(key)
		viewer(rotated)
		// Through X-API-Key, and over GET with the key in the URL too, where
		// a careless access log would record it. The endpoint refuses the
		// unknown parameter, but only once the request line is logged.
		if r := e.request(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ viewer { id } }"}`),
			map[string]string{"Content-Type": "application/json", "X-API-Key": rotated}); r.Status != http.StatusOK {
			t.Fatalf("X-API-Key: %d %s", r.Status, r.Raw)
		}
		if r := e.request(http.MethodGet, "/graphql?query="+url.QueryEscape(`{ viewer { id } }`)+"&api_key="+rotated, nil,
			map[string]string{"Authorization": "Bearer " + rotated}); r.Status != http.StatusBadRequest || r.code() != "BAD_USER_INPUT" {
			t.Fatalf("GET with api_key: want 400 BAD_USER_INPUT, got %d %s", r.Status, r.Raw)
		}
		count(6)

		// A device with a token, and one enrolled with an enrollment key.
		devID, token := devNew(e, e.admin, "cam", "SN-S-1")
		keep("createDevice", token)
		_, enrollmentKey := devNewEnrollmentKey(e, e.admin, map[string]any{"reusable": true, "tags": []string{"lab"}})
		keep("createEnrollmentKey", enrollmentKey)
		en := enroll(enrollmentKey, "SN-S-2")
		enrolled := keep("enrollDevice", en.str("enrollDevice.token"))
		beat(token)
		beat(enrolled)
		newToken := keep("rotateDeviceToken", e.ok(e.admin, devRotate, map[string]any{"id": devID}).str("rotateDeviceToken.token"))
		beat(newToken)
		count(7)

		// Another team's first key.
		other := keep("bootstrap of another team", e.bootstrap("Globex"))
		viewer(other)
		count(1)

		// Refusals that hold the real secret: revoked, not allowed from here,
		// the old device token, an enrollment key as a Bearer, a key where an
		// enrollment key belongs.
		doomedID, doomed := e.newKey(e.admin, "doomed")
		keep("createApiKey", doomed)
		e.ok(e.admin, revokeKey, map[string]any{"id": doomedID})
		if st, reason := e.authStatus(doomed); st != http.StatusUnauthorized || reason != "REVOKED" {
			t.Fatalf("revoked key: %d %s", st, reason)
		}
		fencedID, fenced := e.newKey(e.admin, "fenced")
		keep("createApiKey", fenced)
		e.ok(e.admin, updateKey, map[string]any{"in": map[string]any{"id": fencedID, "allowedCidrs": []string{"203.0.113.0/24"}}})
		if st, reason := e.authStatus(fenced); st != http.StatusUnauthorized || reason != "IP_NOT_ALLOWED" {
			t.Fatalf("fenced key: %d %s", st, reason)
		}
		if st, _ := e.authStatus(token); st != http.StatusUnauthorized {
			t.Fatalf("the rotated-away device token: %d", st)
		}
		if st, _ := e.authStatus(enrollmentKey); st != http.StatusUnauthorized {
			t.Fatalf("an enrollment key as a Bearer: %d", st)
		}
		if r := enroll(key, "SN-S-3"); r.code() != "UNAUTHENTICATED" {
			t.Fatalf("an API key as an enrollment key: %s", r.Raw)
		}
		count(9)

		// Near misses of every secret.
		for _, s := range append([]string(nil), secrets...) {
			altered := keep("altered", secAlter(t, s))
			if strings.HasPrefix(s, "kpe_") {
				if r := enroll(altered, "SN-S-4"); r.code() != "UNAUTHENTICATED" {
					t.Fatalf("an altered enrollment key: %s", r.Raw)
				}
			} else if st, _ := e.authStatus(altered); st != http.StatusUnauthorized {
				t.Fatalf("an altered credential: %d", st)
			}
			count(1)
		}

		// At the very end, a fault: the audit log's table is gone, so every
		// mutation fails INTERNAL and is logged with its error.
		e.db.Exec(t, "DROP TABLE audit_events")
		internal := []*response{
			e.gql(e.admin, createKey, map[string]any{"in": map[string]any{"name": "lost"}}),
			e.gql(e.admin, rotateKey, map[string]any{"id": keyID, "grace": 60}),
			e.gql(e.admin, devRotate, map[string]any{"id": devID}),
			enroll(enrollmentKey, "SN-S-5"),
		}
		// And the credential lookup itself fails: the device table is gone.
		drop := "DROP TABLE devices"
		if d == db.Postgres {
			drop += " CASCADE"
		}
		e.db.Exec(t, drop)
		internal = append(internal, e.gql(newToken, devHeartbeat, map[string]any{"fw": "3.1.5"}))
		for i, r := range internal {
			if r.code() != "INTERNAL" {
				t.Fatalf("mutation %d after DROP TABLE: want INTERNAL, got %d: %s", i+1, r.Status, r.Raw)
			}
		}
		count(len(internal))

		logs := e.logs.String()
		// The capture worked: a request line for every request, and the
		// errors of the failed mutations.
		if n := strings.Count(logs, `"msg":"request"`); n < requests {
			t.Fatalf("%d request lines in the log for at least %d requests; the capture is broken:\n%s", n, requests, logs)
		}
		for _, r := range internal {
			id, _ := r.Errors[0].Extensions["requestId"].(string)
			if id == "" || !strings.Contains(logs, id) {
				t.Errorf("the INTERNAL error %s is not in the log", r.Raw)
			}
		}
		if !strings.Contains(logs, `"level":"ERROR"`) {
			t.Error("no ERROR line in the log, though mutations failed INTERNAL")
		}

		for _, s := range secrets {
			part := secSecretPart(t, s)
			for _, needle := range []string{s, part} {
				if strings.Contains(logs, needle) {
					line := logs[strings.LastIndex(logs[:strings.Index(logs, needle)], "\n")+1:]
					line, _, _ = strings.Cut(line, "\n")
					t.Errorf("the log holds the secret %.12s…: %s", s, strings.ReplaceAll(line, needle, "<SECRET>"))
				}
			}
		}
	})
}
