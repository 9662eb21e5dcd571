package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/ratelimit/redisfake"
	"github.com/keyplane/keyplane/internal/testdb"
)

const abIntrospect = `{ __schema { queryType { name } } }`

func TestAnonymousBudget(t *testing.T) {
	if def := rlLoad(t, nil); def.AnonymousRPS <= 0 || def.AnonymousBurst <= 0 {
		t.Fatalf("the anonymous budget is not on by default: %v per second, burst %d", def.AnonymousRPS, def.AnonymousBurst)
	}
	if off := rlLoad(t, map[string]string{"KEYPLANE_ANONYMOUS_RPS": "0"}); off.AnonymousRPS != 0 {
		t.Fatalf("KEYPLANE_ANONYMOUS_RPS=0 loaded as %v", off.AnonymousRPS)
	}
	loaded := rlLoad(t, map[string]string{"KEYPLANE_ANONYMOUS_RPS": "0.001", "KEYPLANE_ANONYMOUS_BURST": "3"})

	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d, rlTrustLoopback(t), func(c *config.Config) {
			c.AnonymousRPS, c.AnonymousBurst = loaded.AnonymousRPS, loaded.AnonymousBurst
		})
		spent := rlFrom("203.0.113.30")
		enroll := map[string]any{"in": map[string]any{"enrollmentKey": "kpe_nope", "serialNumber": "SN-ANON"}}

		// __typename, introspection and enrollDevice spend one budget.
		if r := e.gqlWith("", `{ __typename }`, nil, spent); r.Status != http.StatusOK || r.str("__typename") != "Query" {
			t.Fatalf("anonymous request 1: %d %s", r.Status, r.Raw)
		}
		if r := e.gqlWith("", abIntrospect, nil, spent); r.Status != http.StatusOK || r.str("__schema.queryType.name") != "Query" {
			t.Fatalf("anonymous request 2 (introspection): %d %s", r.Status, r.Raw)
		}
		if r := e.gqlWith("", devEnroll, enroll, spent); r.Status != http.StatusOK || r.code() != "UNAUTHENTICATED" {
			t.Fatalf("anonymous request 3 (enrollDevice): %d %s", r.Status, r.Raw)
		}

		// The fourth is refused before its body is read or parsed, with no
		// database work: a body that is not even JSON gets 429, not 400.
		before := e.db.Statements()
		rlWant429(t, "anonymous request 4", e.gqlWith("", `{ __typename }`, nil, spent), 1, 1<<31-1)
		rlWant429(t, "anonymous enrollDevice past the budget", e.gqlWith("", devEnroll, enroll, spent), 1, 1<<31-1)
		header := map[string]string{"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.30"}
		rlWant429(t, "an unparsable body past the budget", e.request(http.MethodPost, "/graphql", strings.NewReader(`{"query": "{ __typ`), header), 1, 1<<31-1)
		rlWant429(t, "a GET past the budget", e.request(http.MethodGet, "/graphql?query="+url.QueryEscape(`{ __typename }`), nil, rlFrom("203.0.113.30")), 1, 1<<31-1)
		if n := e.db.Statements() - before; n != 0 {
			t.Errorf("refused anonymous requests ran %d SQL statements, want 0", n)
		}

		// A credential from the same address is not charged to it, nor
		// refused by it; another address has a budget of its own.
		for i := range 5 {
			rlWant200(t, fmt.Sprintf("the admin key from the spent address, request %d", i+1), e.gqlWith(e.admin, rlViewer, nil, spent))
		}
		other := rlFrom("203.0.113.31")
		for i := range 3 {
			if r := e.gqlWith("", `{ __typename }`, nil, other); r.Status != http.StatusOK {
				t.Fatalf("anonymous request %d from another address: %d %s", i+1, r.Status, r.Raw)
			}
		}
		rlWant429(t, "anonymous request 4 from the other address", e.gqlWith("", `{ __typename }`, nil, other), 1, 1<<31-1)
		// The proxy's own budget is untouched by its clients'.
		if r := e.gql("", `{ __typename }`, nil); r.Status != http.StatusOK {
			t.Fatalf("anonymous request from the proxy itself: %d %s", r.Status, r.Raw)
		}
	})

	t.Run("on by default", func(t *testing.T) {
		// The harness turns the other limits off, and leaves this one at
		// its default (10 per second, burst 50): a rapid run of 150 spends
		// the burst well before it refills.
		e := newEnv(t, db.SQLite)
		statuses := map[int]int{}
		for range 150 {
			statuses[e.gql("", `{ __typename }`, nil).Status]++
		}
		if statuses[http.StatusOK] < 50 || statuses[http.StatusTooManyRequests] == 0 || len(statuses) != 2 {
			t.Fatalf("150 rapid anonymous requests with the default budget: %v; want at least 50 answered and some 429", statuses)
		}
	})

	t.Run("off", func(t *testing.T) {
		e := newEnv(t, db.SQLite, func(c *config.Config) { c.AnonymousRPS, c.AnonymousBurst = 0, 1 })
		for i := range 100 {
			if r := e.gql("", `{ __typename }`, nil); r.Status != http.StatusOK {
				t.Fatalf("anonymous request %d with the budget off: %d %s", i+1, r.Status, r.Raw)
			}
		}
	})
}

// abFakeRedis starts a fake Redis that answers until told otherwise.
func abFakeRedis(t *testing.T) *redisfake.Server {
	t.Helper()
	srv, err := redisfake.Start(redisfake.Answer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// TestSickRedisCostsAtMostOneDeadline drives the server against a fake
// Redis that stops answering, and one that hangs up: every request is
// answered, each pays for at most one Redis deadline, and once the breaker
// is open Redis is not even dialled. It counts what the fake saw rather
// than timing anything.
func TestSickRedisCostsAtMostOneDeadline(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode redisfake.Mode
	}{{"stops answering", redisfake.Hang}, {"hangs up", redisfake.Hangup}} {
		t.Run(mode.name, func(t *testing.T) {
			fake := abFakeRedis(t)
			e := newEnv(t, db.SQLite, func(c *config.Config) {
				c.RedisURL = fake.URL()
				c.RateLimitRPS, c.RateLimitBurst = 1000, 1000
				c.AuthFailureRPS, c.AuthFailureBurst = 1000, 1000
				c.AnonymousRPS, c.AnonymousBurst = 1000, 1000
			})
			if c := fake.Commands(); c == 0 {
				t.Fatal("the fake Redis saw nothing at start-up")
			}
			rlWant200(t, "a request while Redis answers", e.gql(e.admin, rlViewer, nil))
			if v := e.metric("keyplane_ratelimit_redis_breaker_state"); v != 0 {
				t.Fatalf("breaker state %v while Redis answers, want 0 (closed)", v)
			}

			fake.SetMode(mode.mode)
			start := fake.Commands() + fake.Dials()
			var slowest time.Duration
			for i := range 2 * ratelimit.BreakerThreshold {
				began := time.Now()
				rlWant200(t, fmt.Sprintf("authenticated request %d on a sick Redis", i+1), e.gql(e.admin, rlViewer, nil))
				slowest = max(slowest, time.Since(began))
				// Each request stops asking after its first failure: it
				// sent Redis at most one command (and one dial).
				if seen := fake.Commands() + fake.Dials() - start; seen > int64(2*(i+1)) {
					t.Fatalf("after %d requests the sick Redis saw %d dials and commands, want at most 2 per request", i+1, seen)
				}
			}
			t.Logf("slowest authenticated request before and while the breaker opened: %v", slowest)
			if v := e.metric("keyplane_ratelimit_redis_breaker_state"); v != float64(ratelimit.BreakerOpen) {
				t.Fatalf("breaker state %v after %d requests on a sick Redis, want %d (open)", v, 2*ratelimit.BreakerThreshold, ratelimit.BreakerOpen)
			}

			// Open: nothing reaches Redis, whatever the request.
			dials, commands := fake.Dials(), fake.Commands()
			for i := range 20 {
				rlWant200(t, fmt.Sprintf("authenticated request %d with the breaker open", i+1), e.gql(e.admin, rlViewer, nil))
				if r := e.gql("", `{ __typename }`, nil); r.Status != http.StatusOK {
					t.Fatalf("anonymous request %d with the breaker open: %d %s", i+1, r.Status, r.Raw)
				}
				rlWant401(t, fmt.Sprintf("bad credential %d with the breaker open", i+1), e.gql(rlUnknownKey(t), rlViewer, nil), "INVALID")
			}
			if fake.Dials() != dials || fake.Commands() != commands {
				t.Fatalf("with the breaker open Redis saw %d dials and %d commands, want none", fake.Dials()-dials, fake.Commands()-commands)
			}
			if v := e.metric("keyplane_ratelimit_fail_open_total"); v < 60 {
				t.Fatalf("keyplane_ratelimit_fail_open_total = %v after 60 requests let through, want at least 60", v)
			}
			if !strings.Contains(e.logs.String(), "circuit breaker open") {
				t.Error("no log line says the breaker opened")
			}
		})
	}
}

func TestPerKeyLimitBeforeLookup(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		setup := newEnv(t, d)
		e := startEnv(t, setup.db, rlTrustLoopback(t), func(c *config.Config) {
			c.RateLimitRPS, c.RateLimitBurst = rlTinyRate, 2
			c.AuthFailureRPS, c.AuthFailureBurst = rlTinyRate, 3
		})
		abPeekBeforeLookup(t, setup, e)
	})
}

func TestPerKeyLimitBeforeLookupInRedis(t *testing.T) {
	client := rlRedis(t)
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		setup := newEnv(t, d)
		e := startEnv(t, setup.db, rlTrustLoopback(t), func(c *config.Config) {
			c.RedisURL = rlTestRedis
			c.RateLimitRPS, c.RateLimitBurst = rlTinyRate, 2
			// Buckets per address would outlive the run in the shared Redis.
			c.AuthFailureRPS, c.AnonymousRPS = 0, 0
		})
		var buckets []string
		t.Cleanup(func() { client.Del(context.Background(), buckets...) })
		for _, id := range abPeekBeforeLookup(t, setup, e) {
			buckets = append(buckets, rlReqPrefix+id)
		}
	})
}

// abPeekBeforeLookup checks, on a server e whose keys may make 2 requests
// and whose addresses may fail 3 times (or not at all), that a key over its
// rate is refused without the database, and that forged tokens carrying a
// victim's id spend none of its budget. It returns the buckets it used.
func abPeekBeforeLookup(t *testing.T, setup, e *env) []string {
	t.Helper()
	keyID, key := setup.newKey(setup.admin, "busy")
	devID, token := devNew(setup, setup.admin, "cam", "SN-PEEK-1")
	victimID, victim := setup.newKey(setup.admin, "victim")
	keyUUID, devUUID, victimUUID := uuidOf(t, ids.APIKey, keyID), uuidOf(t, ids.Device, devID), uuidOf(t, ids.APIKey, victimID)
	buckets := []string{"key:" + keyUUID.String(), "dev:" + devUUID.String(), "key:" + victimUUID.String()}
	from := rlFrom("203.0.113.50")

	// A key over its rate: refused before its lookup.
	for i := range 2 {
		rlWant200(t, fmt.Sprintf("key, request %d of 2", i+1), e.gqlWith(key, rlViewer, nil, from))
	}
	before := e.db.Statements()
	rlWant429(t, "key, request 3", e.gqlWith(key, rlViewer, nil, from), 1, 1<<31-1)
	rlWant429(t, "key, request 4", e.gqlWith(key, rlViewer, nil, from), 1, 1<<31-1)
	if n := e.db.Statements() - before; n != 0 {
		t.Errorf("two requests of a key over its rate ran %d SQL statements, want 0", n)
	}
	// So is a device token.
	for i := range 2 {
		rlWant200(t, fmt.Sprintf("device, heartbeat %d of 2", i+1), e.gqlWith(token, devHeartbeat, map[string]any{"fw": "1.0"}, from))
	}
	before = e.db.Statements()
	rlWant429(t, "device, heartbeat 3", e.gqlWith(token, devHeartbeat, map[string]any{"fw": "1.0"}, from), 1, 1<<31-1)
	if n := e.db.Statements() - before; n != 0 {
		t.Errorf("a device over its rate ran %d SQL statements, want 0", n)
	}

	// Forged tokens with the victim's id, from many addresses: each is a
	// bad credential (charged to its address), none spends the victim's
	// budget.
	for i := range 12 {
		forged := rlForge(t, credential.APIKey, victimUUID)
		r := e.gqlWith(forged, rlViewer, nil, rlFrom(fmt.Sprintf("198.51.100.%d", 1+i/3)))
		rlWant401(t, fmt.Sprintf("forged token %d with the victim's id", i+1), r, "INVALID")
	}
	forgedDevice := rlForge(t, credential.DeviceToken, devUUID)
	rlWant429(t, "a forged device token with an exhausted device's id", e.gqlWith(forgedDevice, rlViewer, nil, from), 1, 1<<31-1)
	for i := range 2 {
		rlWant200(t, fmt.Sprintf("the victim, request %d of 2 after 12 forgeries", i+1), e.gqlWith(victim, rlViewer, nil, rlFrom("203.0.113.51")))
	}
	rlWant429(t, "the victim, request 3", e.gqlWith(victim, rlViewer, nil, rlFrom("203.0.113.51")), 1, 1<<31-1)

	// A malformed token has no id to peek at: it is a bad credential.
	rlWant401(t, "a malformed token", e.gqlWith("kp_"+uuid.NewString(), rlViewer, nil, rlFrom("198.51.100.99")), "INVALID")
	return buckets
}

func TestAllowlistAddressForms(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d, rlTrustLoopback(t))
		create := func(cidrs ...string) *response {
			return e.gql(e.admin, createKey, map[string]any{"in": map[string]any{"name": "fenced", "allowedCidrs": cidrs}})
		}
		keyFor := func(cidrs ...string) (id, secret string) {
			t.Helper()
			r := create(cidrs...)
			if r.code() != "" {
				t.Fatalf("createApiKey with %v: %s", cidrs, r.Raw)
			}
			return r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
		}

		// Stored in canonical form.
		stored := []struct {
			in   []string
			want []string
		}{
			{[]string{"::ffff:10.0.0.0/104"}, []string{"10.0.0.0/8"}},
			{[]string{"::ffff:203.0.113.9/128", "203.0.113.9/32"}, []string{"203.0.113.9/32"}},
			{[]string{"::ffff:0:0/96"}, []string{"0.0.0.0/0"}},
			{[]string{"::/0", "0.0.0.0/0"}, []string{"::/0", "0.0.0.0/0"}},
		}
		for _, tc := range stored {
			r := create(tc.in...)
			if got := strs(r.get("createApiKey.apiKey.allowedCidrs")); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("allowedCidrs %v stored as %v, want %v: %s", tc.in, got, tc.want, r.Raw)
			}
		}
		// A mapped network shorter than /96 is refused, clearly.
		for _, bad := range []string{"::ffff:10.0.0.0/80", "::ffff:10.0.0.0/95"} {
			r := create(bad)
			if r.code() != "BAD_USER_INPUT" || r.ext("field") != "allowedCidrs" || !strings.Contains(r.Errors[0].Message, "/96") {
				t.Errorf("allowedCidrs %q: want BAD_USER_INPUT on allowedCidrs naming /96, got %s", bad, r.Raw)
			}
		}

		// What each network admits.
		_, mapped := keyFor("::ffff:10.0.0.0/104")
		_, v4all := keyFor("0.0.0.0/0")
		_, v6all := keyFor("::/0")
		_, both := keyFor("::/0", "0.0.0.0/0")
		legacyID, legacy := keyFor("192.0.2.0/24")
		// A row written before entries were made canonical.
		e.db.Exec(t, "UPDATE api_keys SET allowed_cidrs = ? WHERE id = ?", "::ffff:10.0.0.0/104", uuidOf(t, ids.APIKey, legacyID).String())
		admits := []struct {
			name, key, from string
			ok              bool
		}{
			{"mapped entry, IPv4 client", mapped, "10.1.2.3", true},
			{"mapped entry, mapped client", mapped, "::ffff:10.1.2.3", true},
			{"mapped entry, client with port", mapped, "10.1.2.3:4567", true},
			{"mapped entry, outside", mapped, "11.0.0.1", false},
			{"stored mapped entry, IPv4 client", legacy, "10.1.2.3", true},
			{"stored mapped entry, outside", legacy, "192.0.2.1", false},
			{"0.0.0.0/0, IPv4", v4all, "198.51.100.7", true},
			{"0.0.0.0/0, mapped IPv4", v4all, "[::ffff:198.51.100.7]:443", true},
			{"0.0.0.0/0, IPv6", v4all, "2001:db8::7", false},
			{"::/0, IPv6", v6all, "[2001:db8::7]:443", true},
			{"::/0, IPv4", v6all, "198.51.100.7", false},
			{"both, IPv4", both, "198.51.100.7", true},
			{"both, IPv6", both, "2001:db8::7", true},
			{"both, unknown client", both, "unknown", false},
		}
		for _, tc := range admits {
			r := e.gqlWith(tc.key, rlViewer, nil, rlFrom(tc.from))
			if tc.ok {
				rlWant200(t, tc.name, r)
			} else {
				rlWant401(t, tc.name, r, "IP_NOT_ALLOWED")
			}
		}

		// The keys a stored mapped entry makes stay within it, read the same
		// way: 10.1.0.0/16 lies inside ::ffff:10.0.0.0/104, 11.0.0.0/8 not.
		for _, tc := range []struct {
			cidr string
			code string
		}{{"10.1.0.0/16", ""}, {"11.0.0.0/8", "FORBIDDEN"}} {
			r := e.gqlWith(legacy, createKey, map[string]any{"in": map[string]any{"name": "derived " + tc.cidr, "allowedCidrs": []string{tc.cidr}}}, rlFrom("10.1.2.3"))
			if r.code() != tc.code {
				t.Errorf("a key stored with ::ffff:10.0.0.0/104 minting one for %s: got %q, want %q: %s", tc.cidr, r.code(), tc.code, r.Raw)
			}
		}
	})
}

func TestForwardedForForms(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d, rlTrustLoopback(t), func(c *config.Config) {
			c.AuthFailureRPS, c.AuthFailureBurst = rlTinyRate, 2
		})
		probeID, probe := e.newKey(e.admin, "probe")
		tests := []struct{ xff, want string }{
			{"203.0.113.9", "203.0.113.9"},
			{"203.0.113.9:51234", "203.0.113.9"},
			{"[2001:db8::1]:443", "2001:db8::1"},
			{"[2001:db8::1]", "2001:db8::1"},
			{"::ffff:203.0.113.9", "203.0.113.9"},
			{"198.51.100.1, 203.0.113.9:80, 127.0.0.1:8080", "203.0.113.9"},
			{"unknown", "unknown"},
			{"unknown, 127.0.0.2", "unknown"},
			{"203.0.113.9, unknown", "unknown"},
			{"unknown, 203.0.113.9", "203.0.113.9"},
		}
		for _, tc := range tests {
			rlWant200(t, "X-Forwarded-For: "+tc.xff, e.gqlWith(probe, rlViewer, nil, rlFrom(tc.xff)))
			e.flushUsage()
			got := e.ok(e.admin, `query($id: ID!) { node(id: $id) { ... on ApiKey { lastUsedIp } } }`, map[string]any{"id": probeID}).str("node.lastUsedIp")
			if got != tc.want {
				t.Errorf("X-Forwarded-For: %s: the client is %q, want %q", tc.xff, got, tc.want)
			}
		}
		if !strings.Contains(e.logs.String(), `"hop":"unknown"`) {
			t.Error("no log line names the unreadable hop")
		}

		// Clients the proxy could not name share one failure budget, and
		// spend none of the proxy's own, nor of a client with a port.
		for i := range 2 {
			rlWant401(t, fmt.Sprintf("bad credential %d from an unknown client", i+1), e.gqlWith(rlUnknownKey(t), rlViewer, nil, rlFrom("unknown")), "INVALID")
		}
		rlWant429(t, "bad credential 3 from an unknown client", e.gqlWith(rlUnknownKey(t), rlViewer, nil, rlFrom("garbage")), 1, 10)
		rlWant200(t, "the proxy itself", e.gql(e.admin, rlViewer, nil))
		rlWant200(t, "a client with a port", e.gqlWith(e.admin, rlViewer, nil, rlFrom("203.0.113.77:5555")))
	})
}
