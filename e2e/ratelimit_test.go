package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/app"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The rate-limit tests are deterministic: a rate of 0.001 per second refills
// one token every 1000 s, so nothing comes back while a test runs and every
// decision is a matter of counting.
const (
	rlTinyRate  = 0.001
	rlTestRedis = "redis://127.0.0.1:6379/0"
	rlViewer    = `{ viewer { id } }`
	rlReqPrefix = "keyplane:rate:req:" // internal/app: the request buckets in Redis
)

// rlFrom returns the header of a request forwarded for addr.
func rlFrom(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }

// rlWant200 fails unless the response is a success.
func rlWant200(t *testing.T, what string, r *response) {
	t.Helper()
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("%s: want 200 without errors, got %d: %s", what, r.Status, r.Raw)
	}
}

// rlWant401 fails unless the response is a 401 with the reason.
func rlWant401(t *testing.T, what string, r *response, reason string) {
	t.Helper()
	if r.Status != http.StatusUnauthorized || r.code() != "UNAUTHENTICATED" || r.ext("reason") != reason {
		t.Fatalf("%s: want 401 UNAUTHENTICATED %s, got %d: %s", what, reason, r.Status, r.Raw)
	}
}

// rlWant429 fails unless the response is a 429 RATE_LIMITED whose
// Retry-After is a whole number of seconds in [lo, hi], and returns it.
func rlWant429(t *testing.T, what string, r *response, lo, hi int) int {
	t.Helper()
	if r.Status != http.StatusTooManyRequests || r.code() != "RATE_LIMITED" {
		t.Fatalf("%s: want 429 RATE_LIMITED, got %d: %s", what, r.Status, r.Raw)
	}
	if r.Data != nil {
		t.Fatalf("%s: a refused request executed something: %s", what, r.Raw)
	}
	raw := r.Header.Get("Retry-After")
	secs, err := strconv.Atoi(raw)
	if err != nil || secs < lo || secs > hi {
		t.Fatalf("%s: Retry-After %q, want a whole number of seconds in [%d, %d]", what, raw, lo, hi)
	}
	return secs
}

// rlUnknownKey returns a well-formed API key (right shape and checksum) for
// an id that does not exist: the server has to look it up to refuse it.
func rlUnknownKey(t *testing.T) string {
	t.Helper()
	return rlForge(t, credential.APIKey, uuid.New())
}

// rlForge returns a well-formed credential of the kind for the id, with a
// random secret: for an existing id, a wrong secret.
func rlForge(t *testing.T, kind credential.Kind, id uuid.UUID) string {
	t.Helper()
	issued, err := credential.Generate(kind, id)
	if err != nil {
		t.Fatal(err)
	}
	return issued.Token
}

// rlLoad reads a configuration through config.Load from the variables
// given, as the binary would from its environment.
func rlLoad(t *testing.T, vars map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(func(name string) string { return vars[name] })
	if err != nil {
		t.Fatalf("config.Load(%v): %v", vars, err)
	}
	return cfg
}

// rlTrustLoopback trusts 127.0.0.0/8 as a proxy, read from
// KEYPLANE_TRUSTED_PROXIES: the test client is on loopback, so its
// X-Forwarded-For is believed.
func rlTrustLoopback(t *testing.T) func(*config.Config) {
	loaded := rlLoad(t, map[string]string{"KEYPLANE_TRUSTED_PROXIES": "127.0.0.0/8"})
	if len(loaded.TrustedProxies) != 1 || loaded.TrustedProxies[0].String() != "127.0.0.0/8" {
		t.Fatalf("KEYPLANE_TRUSTED_PROXIES=127.0.0.0/8 loaded as %v", loaded.TrustedProxies)
	}
	return func(c *config.Config) { c.TrustedProxies = loaded.TrustedProxies }
}

func TestPerCredentialRateLimit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		// Setup goes through a server without limits on the same database,
		// so that it spends nothing of the limited server's buckets.
		setup := newEnv(t, d)
		e := startEnv(t, setup.db, func(c *config.Config) {
			c.RateLimitRPS, c.RateLimitBurst = rlTinyRate, 3
			c.AuthFailureRPS = 0
		})
		aID, a := setup.newKey(setup.admin, "busy")
		_, b := setup.newKey(setup.admin, "quiet")
		_, devToken := devNew(setup, setup.admin, "cam", "SN-RL-1")

		for i := range 3 {
			rlWant200(t, fmt.Sprintf("key A, request %d of the burst of 3", i+1), e.gql(a, rlViewer, nil))
		}
		r := e.gql(a, rlViewer, nil)
		rlWant429(t, "key A, request 4", r, 1, 1<<31-1)
		if got, _ := r.Errors[0].Extensions["retryAfter"].(float64); strconv.Itoa(int(got)) != r.Header.Get("Retry-After") {
			t.Errorf("extensions.retryAfter %v disagrees with Retry-After %q", r.Errors[0].Extensions["retryAfter"], r.Header.Get("Retry-After"))
		}
		// A refusal spends nothing more, and still refuses.
		rlWant429(t, "key A, request 5", e.gql(a, rlViewer, nil), 1, 1<<31-1)

		// Another key of the same team has a bucket of its own.
		for i := range 3 {
			rlWant200(t, fmt.Sprintf("key B, request %d", i+1), e.gql(b, rlViewer, nil))
		}
		rlWant429(t, "key B, request 4", e.gql(b, rlViewer, nil), 1, 1<<31-1)

		// So has a device token.
		for i := range 3 {
			rlWant200(t, fmt.Sprintf("device, heartbeat %d", i+1), e.gql(devToken, devHeartbeat, map[string]any{"fw": "1.0"}))
		}
		rlWant429(t, "device, heartbeat 4", e.gql(devToken, devHeartbeat, map[string]any{"fw": "1.0"}), 1, 1<<31-1)

		// The bucket belongs to the key, not to one secret: a rotation does
		// not hand the key a fresh burst.
		rotated := setup.ok(setup.admin, rotateKey, map[string]any{"id": aID, "grace": 3600}).str("rotateApiKey.secret")
		rlWant429(t, "key A's new secret after a rotation", e.gql(rotated, rlViewer, nil), 1, 1<<31-1)

		// Requests without a credential are not limited by it.
		for i := range 20 {
			r := e.gql("", `{ __typename }`, nil)
			if r.Status != http.StatusOK || r.str("__typename") != "Query" {
				t.Fatalf("request %d without a credential: %d %s", i+1, r.Status, r.Raw)
			}
		}
	})
}

// TestPerCredentialRateLimitWithExtremeSettings checks that a positive rate,
// however small, and a large burst still limit: the arithmetic must not
// overflow into "no limit". A configuration may refuse such values instead,
// naming the variable.
func TestPerCredentialRateLimitWithExtremeSettings(t *testing.T) {
	tests := []struct {
		rps   string
		burst int
	}{
		{"1e-10", 3}, // one token every 317 years
		{"1e-9", 10}, // one every 32 years, with a burst that multiplies past int64 nanoseconds
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("rate %s burst %d", tc.rps, tc.burst), func(t *testing.T) {
			vars := map[string]string{
				"KEYPLANE_RATE_LIMIT_RPS": tc.rps, "KEYPLANE_RATE_LIMIT_BURST": strconv.Itoa(tc.burst),
				"KEYPLANE_AUTH_FAILURE_RPS": tc.rps, "KEYPLANE_AUTH_FAILURE_BURST": strconv.Itoa(tc.burst),
			}
			loaded, err := config.Load(func(name string) string { return vars[name] })
			var cfgErr *config.Error
			if errors.As(err, &cfgErr) && strings.Contains(cfgErr.Var, "_RPS") {
				return // refused at start-up, with the variable named: fine
			} else if err != nil {
				t.Fatalf("config.Load: %v", err)
			}
			// The limiter's arithmetic is dialect-free: SQLite only.
			setup := newEnv(t, db.SQLite)
			e := startEnv(t, setup.db, func(c *config.Config) {
				c.RateLimitRPS, c.RateLimitBurst = loaded.RateLimitRPS, loaded.RateLimitBurst
				c.AuthFailureRPS, c.AuthFailureBurst = loaded.AuthFailureRPS, loaded.AuthFailureBurst
			})
			_, key := setup.newKey(setup.admin, "busy")
			for i := range tc.burst {
				rlWant200(t, fmt.Sprintf("request %d of the burst", i+1), e.gql(key, rlViewer, nil))
			}
			if r := e.gql(key, rlViewer, nil); r.Status != http.StatusTooManyRequests || r.code() != "RATE_LIMITED" {
				t.Errorf("request %d, past a burst of %d at %s per second: want 429 RATE_LIMITED, got %d: %s", tc.burst+1, tc.burst, tc.rps, r.Status, r.Raw)
			}
			for i := range tc.burst {
				rlWant401(t, fmt.Sprintf("bad credential %d of the burst", i+1), e.gql(rlUnknownKey(t), rlViewer, nil), "INVALID")
			}
			if r := e.gql(rlUnknownKey(t), rlViewer, nil); r.Status != http.StatusTooManyRequests || r.code() != "RATE_LIMITED" {
				t.Errorf("bad credential %d, past a burst of %d at %s per second: want 429 RATE_LIMITED, got %d: %s", tc.burst+1, tc.burst, tc.rps, r.Status, r.Raw)
			}
		})
	}
}

func TestFailedCredentialsPerAddress(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		failures := func(c *config.Config) {
			c.AuthFailureRPS, c.AuthFailureBurst = rlTinyRate, 3
			c.RateLimitRPS = 0
		}

		t.Run("socket address", func(t *testing.T) {
			e := newEnv(t, d, failures)
			adminID := e.ok(e.admin, rlViewer, nil).str("viewer.id")
			bad := []string{
				"kp_nope", // malformed: refused without the database
				rlUnknownKey(t),
				rlForge(t, credential.APIKey, uuidOf(t, ids.APIKey, adminID)), // the admin key's id, a wrong secret
			}
			for i, key := range bad {
				rlWant401(t, fmt.Sprintf("bad credential %d", i+1), e.gql(key, rlViewer, nil), "INVALID")
			}
			rlWant429(t, "bad credential 4", e.gql(rlUnknownKey(t), rlViewer, nil), 1, 10)

			// Now even the valid key is refused from this address, before
			// the database sees anything.
			before := e.db.Statements()
			r := e.gql(e.admin, rlViewer, nil)
			rlWant429(t, "the valid admin key from a blocked address", r, 1, 10)
			if after := e.db.Statements(); after != before {
				t.Errorf("the refused request ran %d SQL statements; the failure limit must be checked before any database work", after-before)
			}
			// The refusal is not a failure of the key: no 401, no reason.
			if r.ext("reason") != "" || r.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("a rate-limited request answers like a bad credential: %v %s", r.Header, r.Raw)
			}
		})

		t.Run("forwarded addresses", func(t *testing.T) {
			e := newEnv(t, d, failures, rlTrustLoopback(t))
			blocked, other := rlFrom("203.0.113.9"), rlFrom("203.0.113.10")
			for i := range 3 {
				rlWant401(t, fmt.Sprintf("bad credential %d from .9", i+1), e.gqlWith(rlUnknownKey(t), rlViewer, nil, blocked), "INVALID")
			}
			rlWant429(t, "bad credential 4 from .9", e.gqlWith(rlUnknownKey(t), rlViewer, nil, blocked), 1, 10)
			// The other forwarded address has its own budget...
			rlWant401(t, "bad credential from .10", e.gqlWith(rlUnknownKey(t), rlViewer, nil, other), "INVALID")
			rlWant200(t, "the admin key from .10", e.gqlWith(e.admin, rlViewer, nil, other))
			// ...while the spent one refuses even the valid key, and so
			// does nothing of the proxy's own address.
			rlWant429(t, "the admin key from .9", e.gqlWith(e.admin, rlViewer, nil, blocked), 1, 10)
			rlWant200(t, "the admin key from the proxy itself", e.gql(e.admin, rlViewer, nil))
		})

		t.Run("enrollment keys", func(t *testing.T) {
			e := newEnv(t, d, failures, rlTrustLoopback(t))
			ekID, ek := devNewEnrollmentKey(e, e.admin, map[string]any{"reusable": true})
			ekUUID := uuidOf(t, ids.EnrollmentKey, ekID)
			enroll := func(from map[string]string, key, serial string) *response {
				return e.gqlWith("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": key, "serialNumber": serial}}, from)
			}
			guesses := []string{
				"kpe_garbage", // malformed
				rlForge(t, credential.EnrollmentKey, ekUUID), // the key's id, a wrong secret
				rlForge(t, credential.EnrollmentKey, uuid.New()),
			}
			devices := func() int64 { return e.db.Count(t, "devices", "") }

			// Guesses alone spend the address's budget...
			guesser := rlFrom("203.0.113.20")
			for i, g := range guesses {
				r := enroll(guesser, g, fmt.Sprintf("SN-G%d", i))
				if r.code() != "UNAUTHENTICATED" || r.ext("reason") != "INVALID" {
					t.Fatalf("guess %d: want UNAUTHENTICATED INVALID, got %d: %s", i+1, r.Status, r.Raw)
				}
			}
			// ...after which the real key is not even tried...
			n, before := devices(), e.db.Statements()
			r := enroll(guesser, ek, "SN-REAL-1")
			if r.code() != "RATE_LIMITED" || r.get("enrollDevice") != nil {
				t.Fatalf("the real enrollment key after the budget is spent: want RATE_LIMITED, got %d: %s", r.Status, r.Raw)
			}
			if after := e.db.Statements(); after != before {
				t.Errorf("the refused enrollment ran %d SQL statements; it must be refused before the key is looked up", after-before)
			}
			if devices() != n {
				t.Fatal("a rate-limited enrollment created a device")
			}
			// ...and the budget is the same one the Authorization header spends.
			rlWant429(t, "a bad Bearer after enrollment guesses", e.gqlWith(rlUnknownKey(t), rlViewer, nil, guesser), 1, 10)

			// The other way round: bad Bearer credentials spend the budget
			// that enrollDevice checks.
			mixed := rlFrom("203.0.113.21")
			rlWant401(t, "bad Bearer 1 from .21", e.gqlWith(rlUnknownKey(t), rlViewer, nil, mixed), "INVALID")
			rlWant401(t, "bad Bearer 2 from .21", e.gqlWith("kp_nope", rlViewer, nil, mixed), "INVALID")
			if r := enroll(mixed, guesses[1], "SN-G9"); r.code() != "UNAUTHENTICATED" {
				t.Fatalf("guess 3 from .21: %s", r.Raw)
			}
			if r := enroll(mixed, ek, "SN-REAL-2"); r.code() != "RATE_LIMITED" {
				t.Fatalf("the real enrollment key from .21: want RATE_LIMITED, got %d: %s", r.Status, r.Raw)
			}
			if devices() != n {
				t.Fatal("a rate-limited enrollment created a device")
			}

			// Guesses batched as aliases of one request are each counted: only
			// the budget's worth are tried.
			var batch strings.Builder
			batch.WriteString("mutation {")
			for i := range 10 {
				fmt.Fprintf(&batch, " g%d: enrollDevice(input: {enrollmentKey: %q, serialNumber: \"SN-B%d\"}) { token }", i, rlForge(t, credential.EnrollmentKey, ekUUID), i)
			}
			batch.WriteString(" }")
			r = e.gqlWith("", batch.String(), nil, rlFrom("203.0.113.23"))
			codes := map[string]int{}
			for _, err := range r.Errors {
				codes[err.code()]++
			}
			if codes["UNAUTHENTICATED"] != 3 || codes["RATE_LIMITED"] != 7 {
				t.Fatalf("10 aliased guesses with a budget of 3: want 3 UNAUTHENTICATED and 7 RATE_LIMITED, got %v: %s", codes, r.Raw)
			}

			// The key itself is fine: from a clean address it enrolls.
			if r := enroll(rlFrom("203.0.113.22"), ek, "SN-REAL-3"); r.str("enrollDevice.token") == "" {
				t.Fatalf("the real enrollment key from a clean address: %d %s", r.Status, r.Raw)
			}
			if r := devNode(e, e.admin, ekID); r.get("node.usesCount") != 1.0 {
				t.Fatalf("usesCount after one enrollment and two refused ones: %s", r.Raw)
			}
		})
	})
}

func TestLimitsOff(t *testing.T) {
	loaded := rlLoad(t, map[string]string{"KEYPLANE_RATE_LIMIT_RPS": "0", "KEYPLANE_AUTH_FAILURE_RPS": "0"})
	if loaded.RateLimitRPS != 0 || loaded.AuthFailureRPS != 0 {
		t.Fatalf("rates of 0 loaded as %v and %v", loaded.RateLimitRPS, loaded.AuthFailureRPS)
	}
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d, func(c *config.Config) {
			c.RateLimitRPS, c.RateLimitBurst = loaded.RateLimitRPS, 1
			c.AuthFailureRPS, c.AuthFailureBurst = loaded.AuthFailureRPS, 1
		})
		bad := []string{"kp_nope", rlUnknownKey(t), secAlter(t, e.admin)}
		statuses := map[int]int{}
		for i := range 300 {
			r := e.gql(bad[i%len(bad)], rlViewer, nil)
			statuses[r.Status]++
			if r.Status != http.StatusUnauthorized {
				t.Fatalf("bad credential %d: want 401, got %d: %s", i+1, r.Status, r.Raw)
			}
		}
		for i := range 20 {
			r := e.gql("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": "kpe_nope", "serialNumber": fmt.Sprint("SN-", i)}})
			if r.code() != "UNAUTHENTICATED" {
				t.Fatalf("enrollment guess %d with the limits off: %s", i+1, r.Raw)
			}
		}
		for range 5 {
			rlWant200(t, "the admin key after 300 failures", e.gql(e.admin, rlViewer, nil))
		}
	})
}

func TestTrustedProxies(t *testing.T) {
	const (
		office = "203.0.113.0/24"
		forged = "198.51.100.0/24"
	)
	tests := []struct {
		name    string
		trusted bool
		xff     string
		want    string // the address the server must see
	}{
		{"no trusted proxies: X-Forwarded-For is ignored", false, "203.0.113.5", "127.0.0.1"},
		{"trusted loopback: the forwarded address counts", true, "203.0.113.5", "203.0.113.5"},
		{"a trusted hop on the right is skipped", true, "203.0.113.5, 127.0.0.1", "203.0.113.5"},
		{"the rightmost untrusted address wins over a forged one", true, "198.51.100.1, 203.0.113.5", "203.0.113.5"},
		{"garbage makes the client unknown, never the proxy", true, "nonsense", "unknown"},
	}
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var configure []func(*config.Config)
				if tc.trusted {
					configure = append(configure, rlTrustLoopback(t))
				}
				e := newEnv(t, d, configure...)
				restrict := func(name, cidr string) string {
					id, secret := e.newKey(e.admin, name)
					e.ok(e.admin, updateKey, map[string]any{"in": map[string]any{"id": id, "allowedCidrs": []string{cidr}}})
					return secret
				}
				officeKey, forgedKey := restrict("office", office), restrict("forged", forged)
				probeID, probe := e.newKey(e.admin, "probe")
				from := rlFrom(tc.xff)

				// The allowlist sees the resolved address.
				r := e.gqlWith(officeKey, rlViewer, nil, from)
				if strings.HasPrefix(tc.want, "203.0.113.") {
					rlWant200(t, "the office key", r)
				} else {
					rlWant401(t, "the office key", r, "IP_NOT_ALLOWED")
				}
				// Nobody resolves to 198.51.100.1: a client cannot forge its
				// way in by writing an address on the left.
				rlWant401(t, "the key allowed only from the forged address", e.gqlWith(forgedKey, rlViewer, nil, from), "IP_NOT_ALLOWED")

				// So do the audit log and the last-use record.
				u := e.gqlWith(probe, updateKey, map[string]any{"in": map[string]any{"id": probeID, "description": "probed"}}, from)
				rlWant200(t, "a mutation through the proxy", u)
				e.flushUsage()
				events := e.ok(e.admin, `query($f: AuditEventFilter) { team { auditEvents(first: 10, filter: $f) { nodes { ip } } } }`,
					map[string]any{"f": map[string]any{"action": "apiKey.update", "targetId": probeID}})
				nodes := events.list("team.auditEvents.nodes")
				if len(nodes) != 1 {
					t.Fatalf("want one apiKey.update event of the probe, got %s", events.Raw)
				}
				if ip, _ := nodes[0].(map[string]any)["ip"].(string); ip != tc.want {
					t.Errorf("audit event ip %q, want %q", ip, tc.want)
				}
				used := e.ok(e.admin, `query($id: ID!) { node(id: $id) { ... on ApiKey { lastUsedIp } } }`, map[string]any{"id": probeID})
				if got := used.str("node.lastUsedIp"); got != tc.want {
					t.Errorf("lastUsedIp %q, want %q", got, tc.want)
				}
				// And the access log.
				if !strings.Contains(e.logs.String(), `"remote":"`+tc.want+`"`) {
					t.Errorf("no access log line with remote %q", tc.want)
				}
			})
		}
	})
}

// rlRedis returns a client of the test Redis, or skips the test when it
// does not answer (fails it instead with KEYPLANE_REQUIRE_REDIS=1).
func rlRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(rlTestRedis)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		if os.Getenv("KEYPLANE_REQUIRE_REDIS") == "1" {
			t.Fatalf("Redis is required (KEYPLANE_REQUIRE_REDIS=1) but does not answer at %s: %v", rlTestRedis, err)
		}
		t.Skipf("Redis does not answer at %s: %v", rlTestRedis, err)
	}
	return client
}

func TestRateLimitsSharedThroughRedis(t *testing.T) {
	t.Run("REDIS_URL is validated", func(t *testing.T) {
		for _, bad := range []string{"http://x", "redis://", "127.0.0.1:6379", "::"} {
			_, err := config.Load(func(name string) string {
				if name == "REDIS_URL" {
					return bad
				}
				return ""
			})
			var cfgErr *config.Error
			if !errors.As(err, &cfgErr) || cfgErr.Var != "REDIS_URL" || !strings.Contains(err.Error(), "REDIS_URL") {
				t.Errorf("REDIS_URL=%q: want a config error naming REDIS_URL, got %v", bad, err)
			}
		}
		if cfg := rlLoad(t, map[string]string{"REDIS_URL": rlTestRedis}); cfg.RedisURL != rlTestRedis {
			t.Errorf("REDIS_URL loaded as %q", cfg.RedisURL)
		}
		// A well-formed URL where no Redis answers stops start-up.
		cfg := testConfig()
		cfg.RedisURL, cfg.RateLimitRPS = "redis://127.0.0.1:1/0", 1
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if _, err := app.New(ctx, cfg, testdb.New(t, db.SQLite).Store, slog.New(slog.DiscardHandler)); err == nil {
			t.Error("app.New started with a REDIS_URL where nothing answers")
		}
	})

	client := rlRedis(t)
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		shared := func(c *config.Config) {
			c.RedisURL = rlTestRedis
			c.RateLimitRPS, c.RateLimitBurst = rlTinyRate, 4
			c.AuthFailureRPS = 0 // a failure bucket per address would outlive the run in Redis
		}
		database := testdb.New(t, d)
		a := startEnv(t, database, shared)
		b := startEnv(t, database, shared)
		keyID, key := a.newKey(a.admin, "shared")
		adminID := a.ok(a.admin, rlViewer, nil).str("viewer.id")
		bucket := rlReqPrefix + "key:" + uuidOf(t, ids.APIKey, keyID).String()
		t.Cleanup(func() {
			client.Del(context.Background(), bucket, rlReqPrefix+"key:"+uuidOf(t, ids.APIKey, adminID).String())
		})

		rlWant200(t, "request 1 on A", a.gql(key, rlViewer, nil))
		rlWant200(t, "request 2 on A", a.gql(key, rlViewer, nil))
		rlWant200(t, "request 3 on B", b.gql(key, rlViewer, nil))
		rlWant200(t, "request 4 on B", b.gql(key, rlViewer, nil))
		// With a bucket per process, A would still have two tokens left.
		rlWant429(t, "request 5 on A", a.gql(key, rlViewer, nil), 1, 1<<31-1)
		rlWant429(t, "request 5 on B", b.gql(key, rlViewer, nil), 1, 1<<31-1)
		if n, err := client.Exists(context.Background(), bucket).Result(); err != nil || n != 1 {
			t.Errorf("the key's bucket %q is not in Redis: %d %v", bucket, n, err)
		}
	})
}

func TestRevocationIsImmediateAcrossServers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		database := testdb.New(t, d)
		a := startEnv(t, database)
		b := startEnv(t, database)
		admin := a.admin
		want := func(what string, key string, status int, reason string) {
			t.Helper()
			if st, r := b.authStatus(key); st != status || r != reason {
				t.Fatalf("%s on server B: got %d %q, want %d %q", what, st, r, status, reason)
			}
		}

		id, secret := a.newKey(admin, "leaked")
		want("a new key", secret, http.StatusOK, "")
		a.ok(admin, revokeKey, map[string]any{"id": id})
		want("the key revoked on A", secret, http.StatusUnauthorized, "REVOKED")

		id, old := a.newKey(admin, "rotated")
		want("a new key", old, http.StatusOK, "")
		fresh := a.ok(admin, rotateKey, map[string]any{"id": id, "grace": 0}).str("rotateApiKey.secret")
		want("the old secret after a rotation without grace on A", old, http.StatusUnauthorized, "INVALID")
		want("the new secret", fresh, http.StatusOK, "")

		devID, token := devNew(a, admin, "cam", "SN-X-1")
		beat := func(what, token string, status int, reason string) {
			t.Helper()
			r := b.gql(token, devHeartbeat, map[string]any{"fw": "2.0"})
			if r.Status != status || r.ext("reason") != reason || (status == http.StatusOK && len(r.Errors) > 0) {
				t.Fatalf("%s on server B: want %d %q, got %d: %s", what, status, reason, r.Status, r.Raw)
			}
		}
		beat("a new device token", token, http.StatusOK, "")
		newToken := a.ok(admin, devRotate, map[string]any{"id": devID}).str("rotateDeviceToken.token")
		beat("the old device token after a rotation on A", token, http.StatusUnauthorized, "INVALID")
		beat("the new device token", newToken, http.StatusOK, "")
		a.ok(admin, devRevoke, map[string]any{"id": devID})
		beat("the device token after the device was revoked on A", newToken, http.StatusUnauthorized, "REVOKED")
	})
}
