package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/graph"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testserver"
)

// obsEnv is a server whose JSON log the test reads while it runs: the log
// is read under its buffer's lock, since a request's line is written after
// its response may have reached the client.
type obsEnv struct {
	*env
}

// newObsEnv starts a server on a fresh database that logs at level.
func newObsEnv(t *testing.T, d db.Dialect, level slog.Level, configure ...func(*config.Config)) *obsEnv {
	t.Helper()
	return &obsEnv{env: serveEnv(t, testdb.New(t, d), testserver.Options{Configure: configure, Level: level})}
}

// log returns the whole log so far.
func (o *obsEnv) log() string { return o.logs.String() }

// lines returns the log lines whose msg is msg, decoded.
func (o *obsEnv) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(o.log()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("a log line is not JSON: %v: %s", err, sc.Text())
		}
		if line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}

// requestLine waits for the one request line of a request id, and fails
// when there is none or more than one.
func (o *obsEnv) requestLine(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found []map[string]any
		for _, l := range o.lines(t, "request") {
			if l["request_id"] == id {
				found = append(found, l)
			}
		}
		switch {
		case len(found) > 1:
			t.Fatalf("request %s logged %d lines, want one: %v", id, len(found), found)
		case len(found) == 1:
			return found[0]
		case time.Now().After(deadline):
			t.Fatalf("request %s logged no line", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// send posts a GraphQL request body with a Bearer key ("" sends none) and a
// request id of the test's choosing.
func (o *obsEnv) send(t *testing.T, key, id string, body map[string]any) *response {
	t.Helper()
	raw, _ := json.Marshal(body)
	header := jsonHeader(key)
	header["X-Request-Id"] = id
	return o.request(http.MethodPost, "/graphql", bytes.NewReader(raw), header)
}

// wantFields checks the fields of a log line; a nil value wants the field
// absent.
func wantFields(t *testing.T, what string, line map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got, present := line[k]
		switch {
		case v == nil && present:
			t.Errorf("%s: %s = %v, want it absent; line %v", what, k, got, line)
		case v == nil:
		case fmt.Sprint(got) != fmt.Sprint(v):
			t.Errorf("%s: %s = %v, want %v; line %v", what, k, got, v, line)
		}
	}
	if ms, ok := line["duration_ms"].(float64); !ok || ms < 0 {
		t.Errorf("%s: duration_ms = %v, want a number of milliseconds; line %v", what, line["duration_ms"], line)
	}
	if _, old := line["duration"]; old {
		t.Errorf("%s: the line still has duration (nanoseconds): %v", what, line)
	}
}

// TestRequestLogLines checks that each request logs one line that says who
// called, what ran and how it ended (its GraphQL error codes even under
// HTTP 200, the reason of a 401), and that no secret is ever in the log.
func TestRequestLogLines(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		o := newObsEnv(t, d, slog.LevelDebug)
		secrets := []string{o.admin}
		adminID := o.ok(o.admin, `{ viewer { id } }`, nil).str("viewer.id")

		// A query, named by the client.
		r := o.send(t, o.admin, "obs-query", map[string]any{"query": `query Dash { me: viewer { id } }`, "operationName": "Dash"})
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("query: %d %s", r.Status, r.Raw)
		}
		line := o.requestLine(t, "obs-query")
		wantFields(t, "query", line, map[string]any{
			"method": "POST", "path": "/graphql", "status": 200, "op_type": "query", "op_field": "viewer", "op_name": "Dash",
			"actor": adminID, "errors": nil, "reason": nil,
		})
		// At debug level: the statements and the time in the database.
		if n, ok := line["db_statements"].(float64); !ok || n < 1 {
			t.Errorf("query: db_statements = %v, want at least 1 (the credential's lookup); line %v", line["db_statements"], line)
		}
		if ms, ok := line["db_ms"].(float64); !ok || ms < 0 {
			t.Errorf("query: db_ms = %v, want milliseconds; line %v", line["db_ms"], line)
		}

		// A mutation, with its audit event logged at info.
		r = o.send(t, o.admin, "obs-mutation", map[string]any{"query": createKey, "variables": map[string]any{"in": map[string]any{"name": "reader", "scopes": []string{"DEVICES_READ"}}}})
		keyID, key := r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
		if key == "" {
			t.Fatalf("createApiKey: %s", r.Raw)
		}
		secrets = append(secrets, key)
		wantFields(t, "mutation", o.requestLine(t, "obs-mutation"), map[string]any{
			"status": 200, "op_type": "mutation", "op_field": "createApiKey", "op_name": nil, "actor": adminID, "errors": nil,
		})
		var audits []map[string]any
		for _, l := range o.lines(t, "audit") {
			if l["request_id"] == "obs-mutation" {
				audits = append(audits, l)
			}
		}
		if len(audits) != 1 || audits[0]["action"] != "apiKey.create" || audits[0]["target"] != keyID || audits[0]["actor"] != adminID || audits[0]["level"] != "INFO" {
			t.Errorf("createApiKey logged audit lines %v, want one: apiKey.create of %s by %s at INFO", audits, keyID, adminID)
		}

		// A field the key may not read: FORBIDDEN under HTTP 200.
		r = o.send(t, key, "obs-forbidden", map[string]any{"query": `{ team { apiKeys { totalCount } } }`})
		if r.Status != http.StatusOK || r.code() != "FORBIDDEN" {
			t.Fatalf("forbidden field: %d %s", r.Status, r.Raw)
		}
		wantFields(t, "FORBIDDEN field", o.requestLine(t, "obs-forbidden"), map[string]any{
			"status": 200, "op_type": "query", "op_field": "team", "actor": keyID, "errors": []any{"FORBIDDEN"}, "reason": nil,
		})

		// enrollDevice with a near miss of a real enrollment key: 200, with
		// UNAUTHENTICATED and why.
		_, enrollmentKey := devNewEnrollmentKey(o.env, o.admin, map[string]any{"reusable": true})
		secrets = append(secrets, enrollmentKey)
		bad := secAlter(t, enrollmentKey)
		secrets = append(secrets, bad)
		r = o.send(t, "", "obs-enroll", map[string]any{"query": devEnroll, "variables": map[string]any{"in": map[string]any{"enrollmentKey": bad, "serialNumber": "SN-1"}}})
		if r.Status != http.StatusOK || r.code() != "UNAUTHENTICATED" {
			t.Fatalf("enrollDevice with a bad key: %d %s", r.Status, r.Raw)
		}
		wantFields(t, "failed enrollDevice", o.requestLine(t, "obs-enroll"), map[string]any{
			"status": 200, "op_type": "mutation", "op_field": "enrollDevice", "actor": nil, "errors": []any{"UNAUTHENTICATED"}, "reason": "INVALID",
		})

		// A device's own request names the device.
		en := o.gql("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": enrollmentKey, "serialNumber": "SN-2"}})
		deviceID, token := en.str("enrollDevice.device.id"), en.str("enrollDevice.token")
		if token == "" {
			t.Fatalf("enrollDevice: %s", en.Raw)
		}
		secrets = append(secrets, token)
		o.send(t, token, "obs-device", map[string]any{"query": devHeartbeat, "variables": map[string]any{"fw": "1.0"}})
		wantFields(t, "device heartbeat", o.requestLine(t, "obs-device"), map[string]any{
			"status": 200, "op_type": "mutation", "op_field": "deviceHeartbeat", "actor": deviceID, "errors": nil,
		})

		// 401s: the reason, and no operation, since none ran.
		near := secAlter(t, key)
		secrets = append(secrets, near)
		r = o.send(t, near, "obs-401", map[string]any{"query": `{ viewer { id } }`})
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("near-miss key: %d %s", r.Status, r.Raw)
		}
		wantFields(t, "401", o.requestLine(t, "obs-401"), map[string]any{
			"status": 401, "reason": "INVALID", "errors": []any{"UNAUTHENTICATED"}, "actor": nil, "op_type": nil, "op_field": nil,
		})
		o.ok(o.admin, `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { status } } }`, map[string]any{"id": keyID})
		o.send(t, key, "obs-revoked", map[string]any{"query": `{ viewer { id } }`})
		wantFields(t, "401 revoked", o.requestLine(t, "obs-revoked"), map[string]any{"status": 401, "reason": "REVOKED", "actor": nil})

		// The client's operationName is clipped and loses its control
		// characters; it never becomes a label (TestOperationMetrics).
		forged := "Dash\n{\"level\":\"ERROR\",\"msg\":\"forged\"}\r\x1b[31m" + strings.Repeat("x", 300)
		o.send(t, o.admin, "obs-opname", map[string]any{"query": `query Dash { viewer { id } }`, "operationName": forged})
		name, _ := o.requestLine(t, "obs-opname")["op_name"].(string)
		if name == "" || len(name) > 100 || strings.ContainsAny(name, "\n\r\x1b") || !strings.HasPrefix(name, "Dash{") {
			t.Errorf("op_name logged as %q, want the name clipped to 100 bytes without control characters", name)
		}
		if strings.Contains(o.log(), `"msg":"forged"`) {
			t.Error("an operationName forged a log line")
		}

		// No secret, whole or in part, anywhere in the log.
		log := o.log()
		for _, s := range secrets {
			if strings.Contains(log, s) || strings.Contains(log, secSecretPart(t, s)) {
				t.Errorf("the log holds the secret %.12s…", s)
			}
		}
	})
}

// TestStatementsOnlyAtDebug checks that the database's share of a request
// is logged at debug level and not below, where it is not even counted.
func TestStatementsOnlyAtDebug(t *testing.T) {
	o := newObsEnv(t, db.SQLite, slog.LevelInfo)
	o.send(t, o.admin, "obs-info", map[string]any{"query": `{ viewer { id } }`})
	line := o.requestLine(t, "obs-info")
	if _, ok := line["db_statements"]; ok {
		t.Errorf("at info level the line has db_statements: %v", line)
	}
	if _, ok := line["db_ms"]; ok {
		t.Errorf("at info level the line has db_ms: %v", line)
	}
}

// wantMetric fails unless the metric has a sample with the labels whose
// value is at least min.
func wantMetric(t *testing.T, samples map[string][]sample, name string, labels map[string]string, min float64) {
	t.Helper()
	v, ok := value(samples, name, labels)
	if !ok || v < min {
		t.Errorf("%s%v = %v (present %v), want at least %v; samples: %v", name, labels, v, ok, min, samples[name])
	}
}

// rootFields are the schema's Query and Mutation fields.
func rootFields(t *testing.T) map[string]bool {
	t.Helper()
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: graph.SDL()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, def := range []*ast.Definition{schema.Query, schema.Mutation} {
		for _, f := range def.Fields {
			out[f.Name] = true
		}
	}
	return out
}

// TestOperationMetrics checks the GraphQL operations' counter and
// histogram: by type and root field, an alias or an unknown field counted
// under its root field or "other", the outcome by error code, and no label
// taken from what the client chose (its operationName).
func TestOperationMetrics(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		o := newObsEnv(t, d, slog.LevelInfo)
		_, reader := o.newKey(o.admin, "reader", "DEVICES_READ")
		o.ok(o.admin, `{ viewer { id } }`, nil)
		o.ok(o.admin, `{ x: viewer { id } y: team { name } }`, nil)  // aliases: its first root field
		o.fails(o.admin, `{ nope }`, nil, "BAD_USER_INPUT")          // an unknown field: "other"
		o.fails(o.admin, `{ team { nope } }`, nil, "BAD_USER_INPUT") // fails validation, counted under team
		o.fails(o.admin, `{`, nil, "BAD_USER_INPUT")                 // no operation at all
		o.fails(reader, `{ team { apiKeys { totalCount } } }`, nil, "FORBIDDEN")
		o.fails("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": "kp_enr_nothing", "serialNumber": "S"}}, "UNAUTHENTICATED")
		o.ok(o.admin, `{ __typename }`, nil)
		random := fmt.Sprintf("Op%d", time.Now().UnixNano())
		o.send(t, o.admin, "obs-random", map[string]any{"query": "query " + random + " { viewer { id } }", "operationName": random})

		samples, text := scrape(t, o.app.Handler)
		const ops = "keyplane_graphql_operations_total"
		wantMetric(t, samples, ops, map[string]string{"type": "query", "field": "viewer", "outcome": "ok"}, 3)
		wantMetric(t, samples, ops, map[string]string{"type": "query", "field": "other", "outcome": "BAD_USER_INPUT"}, 1)
		wantMetric(t, samples, ops, map[string]string{"type": "query", "field": "team", "outcome": "BAD_USER_INPUT"}, 1)
		wantMetric(t, samples, ops, map[string]string{"type": "none", "field": "none", "outcome": "BAD_USER_INPUT"}, 1)
		wantMetric(t, samples, ops, map[string]string{"type": "query", "field": "team", "outcome": "FORBIDDEN"}, 1)
		wantMetric(t, samples, ops, map[string]string{"type": "mutation", "field": "createApiKey", "outcome": "ok"}, 1)
		wantMetric(t, samples, ops, map[string]string{"type": "mutation", "field": "enrollDevice", "outcome": "UNAUTHENTICATED"}, 1)
		wantMetric(t, samples, ops, map[string]string{"type": "query", "field": "__typename", "outcome": "ok"}, 1)
		wantMetric(t, samples, "keyplane_graphql_operation_duration_seconds_count", map[string]string{"type": "query", "field": "viewer"}, 3)
		wantMetric(t, samples, "keyplane_graphql_operation_duration_seconds_count", map[string]string{"type": "mutation", "field": "createApiKey"}, 1)

		// Every label value is from a fixed set.
		fields := rootFields(t)
		outcomes := map[string]bool{"ok": true, "other": true}
		for _, c := range apperr.Codes() {
			outcomes[string(c)] = true
		}
		for _, name := range []string{ops, "keyplane_graphql_operation_duration_seconds_count"} {
			for _, s := range samples[name] {
				typ, field := s.labels["type"], s.labels["field"]
				if !slices.Contains([]string{"query", "mutation", "subscription", "none"}, typ) ||
					!(fields[field] || field == "other" || field == "none" || field == "__typename") ||
					(name == ops && !outcomes[s.labels["outcome"]]) {
					t.Errorf("%s has a label value outside its set: %v", name, s.labels)
				}
			}
		}
		if strings.Contains(text, random) {
			t.Errorf("the client's operationName %s became a label", random)
		}
	})
}

// TestOperationalMetrics checks the metrics of the credential check, the
// rate limits, the database pools, the usage batch and the build.
func TestOperationalMetrics(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		o := newObsEnv(t, d, slog.LevelInfo)
		keyID, key := o.newKey(o.admin, "svc")
		o.ok(key, `{ viewer { id } }`, nil)
		o.ok(o.admin, `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { status } } }`, map[string]any{"id": keyID})
		if st, reason := o.authStatus(key); st != http.StatusUnauthorized || reason != "REVOKED" {
			t.Fatalf("revoked key: %d %s", st, reason)
		}
		if st, reason := o.authStatus(secAlter(t, o.admin)); st != http.StatusUnauthorized || reason != "INVALID" {
			t.Fatalf("near-miss key: %d %s", st, reason)
		}
		if st, _ := o.authStatus("not-a-key"); st != http.StatusUnauthorized {
			t.Fatalf("garbage key: %d", st)
		}
		o.flushUsage()

		samples, _ := scrape(t, o.app.Handler)
		wantMetric(t, samples, "keyplane_auth_failures_total", map[string]string{"reason": "INVALID"}, 2)
		wantMetric(t, samples, "keyplane_auth_failures_total", map[string]string{"reason": "REVOKED"}, 1)
		for _, reason := range []string{"EXPIRED", "IP_NOT_ALLOWED"} {
			wantMetric(t, samples, "keyplane_auth_failures_total", map[string]string{"reason": reason}, 0)
		}
		if n := len(samples["keyplane_auth_failures_total"]); n != 4 {
			t.Errorf("keyplane_auth_failures_total has %d series, want the 4 reasons: %v", n, samples["keyplane_auth_failures_total"])
		}

		// The pools: PostgreSQL's pgx pool and database/sql over it; SQLite's
		// read pool and writer. testdb opens 8 connections at most.
		pools := map[db.Dialect]map[string]float64{db.Postgres: {"pgx": 8, "sql": 0}, db.SQLite: {"read": 8, "write": 1}}[d]
		for pool, max := range pools {
			for _, state := range []string{"in_use", "idle"} {
				wantMetric(t, samples, "keyplane_db_connections", map[string]string{"pool": pool, "state": state}, 0)
			}
			if v, ok := value(samples, "keyplane_db_connections_max", map[string]string{"pool": pool}); !ok || v != max {
				t.Errorf("keyplane_db_connections_max{pool=%q} = %v (present %v), want %v", pool, v, ok, max)
			}
			wantMetric(t, samples, "keyplane_db_waits_total", map[string]string{"pool": pool}, 0)
			wantMetric(t, samples, "keyplane_db_wait_seconds_total", map[string]string{"pool": pool}, 0)
		}
		if n := len(samples["keyplane_db_connections_max"]); n != len(pools) {
			t.Errorf("keyplane_db_connections_max has %d pools, want %d: %v", n, len(pools), samples["keyplane_db_connections_max"])
		}
		if idle, _ := value(samples, "keyplane_db_connections", map[string]string{"pool": map[db.Dialect]string{db.Postgres: "pgx", db.SQLite: "read"}[d], "state": "idle"}); idle < 1 {
			t.Errorf("no idle connection in the main pool after a dozen requests: %v", samples["keyplane_db_connections"])
		}

		// The usage batch: one flush of the keys used.
		wantMetric(t, samples, "keyplane_usage_flush_keys_count", nil, 1)
		wantMetric(t, samples, "keyplane_usage_flush_keys_sum", nil, 2)
		wantMetric(t, samples, "keyplane_usage_flush_duration_seconds_count", nil, 1)
		if v, ok := value(samples, "keyplane_usage_flush_errors_total", nil); !ok || v != 0 {
			t.Errorf("keyplane_usage_flush_errors_total = %v (present %v), want 0", v, ok)
		}
		if v, ok := value(samples, "keyplane_usage_pending_keys", nil); !ok || v != 0 {
			t.Errorf("keyplane_usage_pending_keys = %v (present %v) after a flush, want 0", v, ok)
		}

		// The build: read from the binary, until the server names it.
		if v, ok := value(samples, "keyplane_build_info", map[string]string{"version": "dev", "goversion": runtime.Version()}); !ok || v != 1 {
			t.Errorf("keyplane_build_info = %v: %v", v, samples["keyplane_build_info"])
		}
		o.app.SetBuild("1.2.3", "abc123")
		samples, _ = scrape(t, o.app.Handler)
		if v, ok := value(samples, "keyplane_build_info", map[string]string{"version": "1.2.3", "commit": "abc123", "goversion": runtime.Version()}); !ok || v != 1 || len(samples["keyplane_build_info"]) != 1 {
			t.Errorf("after SetBuild, keyplane_build_info = %v", samples["keyplane_build_info"])
		}
	})
}

// TestRateLimitRefusalMetrics checks that each limit's refusals are
// counted under its name, and logged with RATE_LIMITED.
func TestRateLimitRefusalMetrics(t *testing.T) {
	o := newObsEnv(t, db.SQLite, slog.LevelInfo, func(c *config.Config) {
		// Rates so slow that no token comes back while the test runs.
		c.RateLimitRPS, c.RateLimitBurst = 0.0001, 2
		c.AuthFailureRPS, c.AuthFailureBurst = 0.0001, 2
		c.AnonymousRPS, c.AnonymousBurst = 0.0001, 3
	})
	refusals := func() map[string]float64 {
		samples, _ := scrape(t, o.app.Handler)
		out := map[string]float64{}
		for _, s := range samples["keyplane_ratelimit_refusals_total"] {
			out[s.labels["limit"]] = s.value
		}
		return out
	}
	if got := refusals(); len(got) != 3 || got["requests"] != 0 || got["failures"] != 0 || got["anonymous"] != 0 {
		t.Fatalf("before any refusal: %v, want the three limits at 0", got)
	}

	// Per credential: a burst of 2.
	for i := range 2 {
		rlWant200(t, fmt.Sprintf("request %d", i+1), o.gql(o.admin, rlViewer, nil))
	}
	if r := o.send(t, o.admin, "obs-429", map[string]any{"query": rlViewer}); r.Status != http.StatusTooManyRequests {
		t.Fatalf("request 3: %d %s", r.Status, r.Raw)
	}
	wantFields(t, "429", o.requestLine(t, "obs-429"), map[string]any{"status": 429, "errors": []any{"RATE_LIMITED"}, "op_type": nil})

	// Failed credentials per address: a burst of 2, then refused, in the
	// header and in enrollDevice's input alike.
	for i := range 2 {
		rlWant401(t, fmt.Sprintf("bad credential %d", i+1), o.gql(rlUnknownKey(t), rlViewer, nil), "INVALID")
	}
	if r := o.gql(rlUnknownKey(t), rlViewer, nil); r.Status != http.StatusTooManyRequests {
		t.Fatalf("bad credential 3: %d %s", r.Status, r.Raw)
	}
	o.fails("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": "kp_enr_nothing", "serialNumber": "S"}}, "RATE_LIMITED")

	// Without a credential, per address: a burst of 3, one spent above.
	for i := range 2 {
		rlWant200(t, fmt.Sprintf("anonymous request %d", i+1), o.gql("", `{ __typename }`, nil))
	}
	if r := o.gql("", `{ __typename }`, nil); r.Status != http.StatusTooManyRequests {
		t.Fatalf("anonymous request 3: %d %s", r.Status, r.Raw)
	}

	if got := refusals(); got["requests"] != 1 || got["failures"] != 2 || got["anonymous"] != 1 {
		t.Errorf("refusals by limit: %v, want requests 1, failures 2, anonymous 1", got)
	}
}

// TestMetricsOnTheirOwnListener checks how the handlers are wired for
// KEYPLANE_METRICS_ADDR: set, the public handler answers 404 for /metrics
// and App.Metrics serves them (server.go listens with it there); unset,
// /metrics is on the public handler and App.Metrics is nil.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	if _, err := config.Load(func(name string) string {
		if name == "KEYPLANE_METRICS_ADDR" {
			return "nowhere"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "KEYPLANE_METRICS_ADDR") {
		t.Errorf("a bad KEYPLANE_METRICS_ADDR: %v, want an error naming it", err)
	}
	cfg, err := config.Load(func(name string) string {
		if name == "KEYPLANE_METRICS_ADDR" {
			return "127.0.0.1:9091"
		}
		return ""
	})
	if err != nil || cfg.MetricsAddr != "127.0.0.1:9091" {
		t.Fatalf("KEYPLANE_METRICS_ADDR loaded as %q: %v", cfg.MetricsAddr, err)
	}

	apart := newObsEnv(t, db.SQLite, slog.LevelInfo, func(c *config.Config) { c.MetricsAddr = "127.0.0.1:9091" })
	if r := apart.request(http.MethodGet, "/metrics", nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("with KEYPLANE_METRICS_ADDR, the public GET /metrics = %d, want 404", r.Status)
	}
	if apart.app.Metrics == nil {
		t.Fatal("with KEYPLANE_METRICS_ADDR, App.Metrics is nil")
	}
	apart.ok(apart.admin, `{ viewer { id } }`, nil)
	samples, _ := scrape(t, apart.app.Metrics)
	wantMetric(t, samples, "keyplane_graphql_operations_total", map[string]string{"type": "query", "field": "viewer", "outcome": "ok"}, 1)
	wantMetric(t, samples, "keyplane_build_info", nil, 1)
	for _, path := range []string{"/", "/graphql", "/healthz"} {
		rec := httptest.NewRecorder()
		apart.app.Metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("the metrics listener answers GET %s with %d, want 404", path, rec.Code)
		}
	}

	public := newObsEnv(t, db.SQLite, slog.LevelInfo)
	if public.app.Metrics != nil {
		t.Error("without KEYPLANE_METRICS_ADDR, App.Metrics is set")
	}
	if r := public.request(http.MethodGet, "/metrics", nil, nil); r.Status != http.StatusOK || !bytes.Contains(r.Raw, []byte("keyplane_build_info")) {
		t.Errorf("without KEYPLANE_METRICS_ADDR, GET /metrics = %d", r.Status)
	}
}
