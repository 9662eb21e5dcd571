package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The database-fault tests put a pgProxy between the server and PostgreSQL
// and cut it, or stall it, then restore it. The machine's PostgreSQL is
// never stopped: only the proxy's connections are.
const (
	// ftTimeout is the servers' database deadline (KEYPLANE_DB_TIMEOUT).
	ftTimeout = 500 * time.Millisecond
	// ftLimit is how long the test's client waits for any answer: far past
	// the deadline, so that only a request that hangs reaches it.
	ftLimit = 20 * ftTimeout
	// ftViewer is a guarded request: it authenticates against the database.
	ftViewer = `{ viewer { id } }`
)

// ftEnv starts a server on a fresh schema that it reaches through a proxy,
// with a database deadline, and returns it, the proxy, and the schema
// reached directly, for checks that must not go through the proxy.
func ftEnv(t *testing.T, timeout time.Duration) (*env, *pgProxy, *testdb.Database) {
	t.Helper()
	direct := testdb.NewWithTimeout(t, db.Postgres, timeout)
	proxy := newPGProxy(t, direct.URL)
	e := startEnv(t, openStore(t, proxy.url(direct.URL), timeout), func(c *config.Config) { c.DBTimeout = timeout })
	return e, proxy, direct
}

// ftWantInternal fails unless r is the answer to a request the database
// failed: INTERNAL (or UNAVAILABLE), with the request id the response's
// X-Request-Id carries. It returns the id, for ftLogged.
func ftWantInternal(t *testing.T, r *response, what string) string {
	t.Helper()
	if code := r.code(); code != "INTERNAL" && code != "UNAVAILABLE" {
		t.Fatalf("%s: want INTERNAL or UNAVAILABLE, got %d: %s", what, r.Status, r.Raw)
	}
	id := r.ext("requestId")
	if id == "" || id != r.Header.Get("X-Request-Id") {
		t.Fatalf("%s: requestId %q, X-Request-Id %q: want the same id in both: %s", what, id, r.Header.Get("X-Request-Id"), r.Raw)
	}
	return id
}

// ftLogged fails unless the server's log names every request id, so that
// an operator finds what a client quotes. It stops the server first, so
// that no request is still writing to the log.
func ftLogged(t *testing.T, e *env, ids []string) {
	t.Helper()
	e.srv.Close()
	logs := e.logs.String()
	for _, id := range ids {
		if !strings.Contains(logs, id) {
			t.Errorf("the server's log does not name request %s", id)
		}
	}
}

// TestDatabaseOutage: while the database is gone (connections refused) or
// stops answering (nothing comes back), /readyz answers 503 and /healthz
// 200; a guarded request fails within the database deadline, with INTERNAL
// and its request id, and the server stays up. Once the database is back,
// the server recovers by itself, and what was committed before is there.
func TestDatabaseOutage(t *testing.T) {
	requirePostgres(t)
	faults := []struct {
		name  string
		start func(*pgProxy)
	}{
		{"refused", (*pgProxy).Cut},
		{"unanswered", (*pgProxy).Stall},
	}
	for _, fault := range faults {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			e, proxy, direct := ftEnv(t, ftTimeout)
			_, token := devNew(e, e.admin, "kept", "SN-KEPT")
			during := map[string]any{"in": map[string]any{"name": "cam", "serialNumber": "SN-DURING"}}

			fault.start(proxy)
			if status, err := e.status("/readyz", ftLimit); status != http.StatusServiceUnavailable {
				t.Errorf("/readyz during the outage: %d %v, want 503", status, err)
			}
			if status, err := e.status("/healthz", ftLimit); status != http.StatusOK {
				t.Errorf("/healthz during the outage: %d %v, want 200: liveness must not follow the database", status, err)
			}
			var slowest time.Duration
			var failed []string
			fails := func(what, key, query string, vars map[string]any) {
				t.Helper()
				start := time.Now()
				r := e.gqlWithin(ftLimit, key, query, vars)
				slowest = max(slowest, time.Since(start))
				failed = append(failed, ftWantInternal(t, r, what))
			}
			for i := range 3 {
				fails(fmt.Sprintf("viewer %d", i+1), e.admin, ftViewer, nil)
			}
			fails("createDevice", e.admin, devCreate, during)
			fails("a device's heartbeat", token, devHeartbeat, map[string]any{"fw": "2.0"})
			t.Logf("the slowest guarded request during the outage answered in %v (database deadline %v)", slowest, ftTimeout)
			// What needs no database still answers.
			if r := e.gqlWithin(ftLimit, "", `{ __typename }`, nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Errorf("{ __typename } during the outage: %d %s", r.Status, r.Raw)
			}

			proxy.Restore()
			e.waitReady(t)
			for i := range 5 {
				if r := e.gql(e.admin, ftViewer, nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
					t.Fatalf("request %d after /readyz came back: %d %s", i+1, r.Status, r.Raw)
				}
			}
			if n := direct.Count(t, "devices", "serial_number = ?", "SN-KEPT"); n != 1 {
				t.Errorf("the device committed before the outage: %d rows, want 1", n)
			}
			if n := direct.Count(t, "devices", "serial_number = ?", "SN-DURING"); n != 0 {
				t.Errorf("the device refused during the outage: %d rows, want 0", n)
			}
			if r := devBeat(e, token); r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Errorf("the device's token after the outage: %d %s", r.Status, r.Raw)
			}
			e.ok(e.admin, devCreate, during)
			ftLogged(t, e, failed)
		})
	}
}

// ftNth returns a trigger that fires at the nth statement containing part.
func ftNth(n int, part string) func() func(string) bool {
	return func() func(string) bool {
		var seen atomic.Int32
		return func(sql string) bool {
			return strings.Contains(sql, part) && int(seen.Add(1)) == n
		}
	}
}

// ftCommit fires at the first COMMIT.
func ftCommit() func(string) bool {
	return func(sql string) bool { return strings.EqualFold(strings.TrimSpace(sql), "commit") }
}

// TestMutationCutBetweenStatements: a mutation whose connection is cut
// after some of its statements ran, and before it committed, fails with
// INTERNAL and leaves nothing behind, neither rows nor audit events, and
// the same mutation goes through once the database is back.
func TestMutationCutBetweenStatements(t *testing.T) {
	requirePostgres(t)
	const (
		insertDevice = `INSERT INTO "devices"`
		insertEvent  = `INSERT INTO "audit_events"`
	)
	batch := make([]any, 500) // three INSERTs of at most 200 rows
	var batchSerials []string
	for i := range batch {
		serial := fmt.Sprintf("SN-BATCH-%03d", i)
		batch[i] = map[string]any{"name": "cam", "serialNumber": serial}
		batchSerials = append(batchSerials, serial)
	}
	tests := []struct {
		name    string
		query   string
		vars    map[string]any
		serials []string
		// at makes the trigger; ran is a statement that must have been
		// sent before the cut, so that the cut fell inside the mutation.
		at  func() func(string) bool
		ran string
	}{
		{
			name: "createDevice, cut after its device, before its audit event", query: devCreate,
			vars:    map[string]any{"in": map[string]any{"name": "cam", "serialNumber": "SN-CUT-1"}},
			serials: []string{"SN-CUT-1"}, at: ftNth(1, insertEvent), ran: insertDevice,
		},
		{
			name: "createDevice, cut before COMMIT", query: devCreate,
			vars:    map[string]any{"in": map[string]any{"name": "cam", "serialNumber": "SN-CUT-2"}},
			serials: []string{"SN-CUT-2"}, at: ftCommit, ran: insertEvent,
		},
		{
			name: "createDevices of 500, cut before its second batch", query: devCreateMany,
			vars:    map[string]any{"in": map[string]any{"devices": batch}},
			serials: batchSerials, at: ftNth(2, insertDevice), ran: insertDevice,
		},
	}
	e, proxy, direct := ftEnv(t, config.DefaultDBTimeout)
	var failed []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events := direct.Count(t, "audit_events", "action = ?", "device.create")
			fired := proxy.CutAt(tc.at())
			r := e.gqlWithin(ftLimit, e.admin, tc.query, tc.vars)
			seen := proxy.Seen()
			select {
			case <-fired:
			default:
				t.Fatalf("the proxy never cut; the statements sent were: %s; the answer: %s", ftShort(seen), r.Raw)
			}
			if !slices.ContainsFunc(seen[:len(seen)-1], func(sql string) bool { return strings.Contains(sql, tc.ran) }) {
				t.Fatalf("no %s was sent before the cut; the statements were: %s", tc.ran, ftShort(seen))
			}
			t.Logf("cut before the last of: %s", ftShort(seen))
			id := ftWantInternal(t, r, "the cut mutation")
			proxy.Restore()
			e.waitReady(t)
			failed = append(failed, id)

			if n := direct.Count(t, "devices", "serial_number IN ?", tc.serials); n != 0 {
				t.Errorf("the cut mutation left %d devices", n)
			}
			if n := direct.Count(t, "audit_events", "action = ?", "device.create"); n != events {
				t.Errorf("the cut mutation left %d audit events", n-events)
			}
			e.ok(e.admin, tc.query, tc.vars)
			if n := direct.Count(t, "devices", "serial_number IN ?", tc.serials); n != int64(len(tc.serials)) {
				t.Errorf("after the retry: %d devices, want %d", n, len(tc.serials))
			}
			if n := direct.Count(t, "audit_events", "action = ?", "device.create"); n != events+int64(len(tc.serials)) {
				t.Errorf("after the retry: %d audit events more, want %d", n-events, len(tc.serials))
			}
		})
	}
	ftLogged(t, e, failed)
}

// ftShort lists statements by their first words, for a log line.
func ftShort(statements []string) string {
	out := make([]string, len(statements))
	for i, sql := range statements {
		if len(sql) > 40 {
			sql = sql[:40] + "…"
		}
		out[i] = fmt.Sprintf("%q", sql)
	}
	return strings.Join(out, ", ")
}
