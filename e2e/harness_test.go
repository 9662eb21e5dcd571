// Package e2e drives the real server over HTTP and JSON, the way a team's
// backend does, on SQLite and on PostgreSQL.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/app"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
)

// env is one running server on its own database, with one bootstrapped team.
type env struct {
	t     *testing.T
	db    *testdb.Database
	app   *app.App
	srv   *httptest.Server
	admin string // the team's first key: every scope
	logs  *bytes.Buffer
}

func testConfig() config.Config {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	cfg.UsageFlushInterval = time.Hour // tests flush by hand
	// Rate limits are off unless a test is about them: many tests fail
	// credentials on purpose, all from 127.0.0.1.
	cfg.RateLimitRPS, cfg.AuthFailureRPS = 0, 0
	return cfg
}

// newEnv starts a server on a fresh database of the dialect; configure, if
// given, changes the settings first.
func newEnv(t *testing.T, d db.Dialect, configure ...func(*config.Config)) *env {
	t.Helper()
	database := testdb.New(t, d)
	return startEnv(t, database, configure...)
}

func startEnv(t *testing.T, database *testdb.Database, configure ...func(*config.Config)) *env {
	t.Helper()
	cfg := testConfig()
	for _, c := range configure {
		c(&cfg)
	}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(context.Background(), cfg, database.Store, log)
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	e := &env{t: t, db: database, app: a, srv: srv, logs: logs}
	e.admin = e.bootstrap("Acme")
	return e
}

// bootstrap creates another team and returns its first key.
func (e *env) bootstrap(name string) string {
	e.t.Helper()
	_, issued, err := teams.NewService(e.db.Store).Bootstrap(context.Background(), name, "admin")
	if err != nil {
		e.t.Fatalf("bootstrap: %v", err)
	}
	return issued.Secret
}

// gqlError is one error of a GraphQL response.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (g gqlError) code() string { s, _ := g.Extensions["code"].(string); return s }

// response is what the server answered.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Data   map[string]any
	Errors []gqlError
}

// code returns the first error's code, or "" when there is none.
func (r *response) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].code()
}

// get walks the data by a dotted path, such as "team.apiKeys.totalCount".
func (r *response) get(path string) any {
	var cur any = r.Data
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

func (r *response) str(path string) string { s, _ := r.get(path).(string); return s }

func (r *response) list(path string) []any { l, _ := r.get(path).([]any); return l }

// request sends a raw HTTP request to the server.
func (e *env) request(method, path string, body io.Reader, header map[string]string) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := &response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	var decoded struct {
		Data   map[string]any `json:"data"`
		Errors []gqlError     `json:"errors"`
	}
	if json.Unmarshal(raw, &decoded) == nil {
		out.Data, out.Errors = decoded.Data, decoded.Errors
	}
	return out
}

// gql posts a GraphQL operation with a Bearer key ("" sends none).
func (e *env) gql(key, query string, vars map[string]any) *response {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	header := map[string]string{"Content-Type": "application/json"}
	if key != "" {
		header["Authorization"] = "Bearer " + key
	}
	return e.request(http.MethodPost, "/graphql", bytes.NewReader(body), header)
}

// ok posts an operation that must succeed, and returns its response.
func (e *env) ok(key, query string, vars map[string]any) *response {
	e.t.Helper()
	r := e.gql(key, query, vars)
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		e.t.Fatalf("want success, got %d: %s", r.Status, r.Raw)
	}
	return r
}

// fails posts an operation that must fail with an error code, and returns it.
func (e *env) fails(key, query string, vars map[string]any, code string) *response {
	e.t.Helper()
	r := e.gql(key, query, vars)
	if r.code() != code {
		e.t.Fatalf("want error %s, got %d: %s", code, r.Status, r.Raw)
	}
	return r
}

const createKey = `mutation($in: CreateApiKeyInput!) {
  createApiKey(input: $in) { secret clientMutationId apiKey { id name description scopes status start expiresAt allowedCidrs createdBy { id } } }
}`

// newKey creates a key with the given scopes (none: every scope) through the
// API and returns its id and secret.
func (e *env) newKey(by, name string, scopes ...string) (id, secret string) {
	e.t.Helper()
	in := map[string]any{"name": name}
	if len(scopes) > 0 {
		in["scopes"] = scopes
	}
	r := e.ok(by, createKey, map[string]any{"in": in})
	return r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
}

// authStatus reports how the server answers a key: the HTTP status and, for
// a 401, the reason.
func (e *env) authStatus(key string) (int, string) {
	e.t.Helper()
	r := e.gql(key, `{ viewer { id } }`, nil)
	if r.Status == http.StatusUnauthorized {
		reason, _ := r.Errors[0].Extensions["reason"].(string)
		return r.Status, reason
	}
	if len(r.Errors) > 0 {
		e.t.Fatalf("viewer: %s", r.Raw)
	}
	return r.Status, ""
}

// flushUsage writes the batched last-use times now.
func (e *env) flushUsage() {
	e.t.Helper()
	if err := e.app.Usage.Flush(context.Background()); err != nil {
		e.t.Fatalf("flush usage: %v", err)
	}
}

// race sends n requests at once, released together, and returns their
// responses in the order of i.
func (e *env) race(n int, send func(i int) *response) []*response {
	e.t.Helper()
	out := make([]*response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = send(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts responses by their first error code, "" for a success.
func tally(rs []*response) map[string]int {
	codes := map[string]int{}
	for _, r := range rs {
		codes[r.code()]++
	}
	return codes
}

// collect returns the non-empty strings at path in the responses.
func collect(rs []*response, path string) []string {
	var out []string
	for _, r := range rs {
		if s := r.str(path); s != "" {
			out = append(out, s)
		}
	}
	return out
}
