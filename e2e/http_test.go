package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/requestid"
	"github.com/keyplane/keyplane/internal/testdb"
)

// httpMaxBody is the contract's body limit (1 MiB).
const httpMaxBody = 1 << 20

// httpQueryURL returns /graphql with the operation in the query string.
func httpQueryURL(query string) string {
	return "/graphql?query=" + url.QueryEscape(query)
}

func TestHealthReadyMetrics(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)

		if r := e.request(http.MethodGet, "/healthz", nil, nil); r.Status != http.StatusOK {
			t.Fatalf("GET /healthz: want 200, got %d: %s", r.Status, r.Raw)
		}
		if r := e.request(http.MethodGet, "/readyz", nil, nil); r.Status != http.StatusOK {
			t.Fatalf("GET /readyz with a live database: want 200, got %d: %s", r.Status, r.Raw)
		}
		m := e.request(http.MethodGet, "/metrics", nil, nil)
		if m.Status != http.StatusOK {
			t.Fatalf("GET /metrics: want 200, got %d: %s", m.Status, m.Raw)
		}
		if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("GET /metrics: Content-Type %q, want text/plain…", ct)
		}
		for _, want := range []string{"keyplane_http_requests_total", "go_goroutines"} {
			if !bytes.Contains(m.Raw, []byte(want)) {
				t.Errorf("GET /metrics: body lacks %q", want)
			}
		}

		// The database goes away: the process is alive, but not ready.
		if err := e.db.Store.Close(); err != nil {
			t.Fatalf("close the database: %v", err)
		}
		if r := e.request(http.MethodGet, "/readyz", nil, nil); r.Status != http.StatusServiceUnavailable {
			t.Errorf("GET /readyz with the database closed: want 503, got %d: %s", r.Status, r.Raw)
		}
		if r := e.request(http.MethodGet, "/healthz", nil, nil); r.Status != http.StatusOK {
			t.Errorf("GET /healthz with the database closed: want 200, got %d: %s", r.Status, r.Raw)
		}
	})
}

func TestResponseHeaders(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)

		checkCommon := func(t *testing.T, what string, r *response) {
			t.Helper()
			if got := r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", what, got)
			}
			if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("%s: X-Content-Type-Options %q, want nosniff", what, got)
			}
			if got := r.Header.Get("X-Request-Id"); !requestid.Valid(got) {
				t.Errorf("%s: X-Request-Id %q, want a well-formed id", what, got)
			}
		}

		ok := e.gql(e.admin, `{ __typename team { name } }`, nil)
		if ok.Status != http.StatusOK || len(ok.Errors) > 0 {
			t.Fatalf("POST /graphql: want success, got %d: %s", ok.Status, ok.Raw)
		}
		checkCommon(t, "POST /graphql (200)", ok)

		denied := e.gql("kp_notAKey", `{ __typename }`, nil)
		if denied.Status != http.StatusUnauthorized {
			t.Fatalf("POST /graphql with a bad key: want 401, got %d: %s", denied.Status, denied.Raw)
		}
		checkCommon(t, "POST /graphql (401)", denied)

		health := e.request(http.MethodGet, "/healthz", nil, nil)
		if health.Status != http.StatusOK {
			t.Fatalf("GET /healthz: want 200, got %d", health.Status)
		}
		checkCommon(t, "GET /healthz", health)

		page := e.request(http.MethodGet, "/", nil, nil)
		if page.Status != http.StatusOK {
			t.Fatalf("GET /: want 200, got %d", page.Status)
		}
		checkCommon(t, "GET /", page)

		// Two requests get two different ids.
		if a, b := ok.Header.Get("X-Request-Id"), health.Header.Get("X-Request-Id"); a == b {
			t.Errorf("two requests share the request id %q", a)
		}

		// A well-formed client id is adopted and echoed.
		echoed := e.request(http.MethodGet, "/healthz", nil, map[string]string{"X-Request-Id": "abc-123"})
		if got := echoed.Header.Get("X-Request-Id"); got != "abc-123" {
			t.Errorf("X-Request-Id abc-123: echoed %q", got)
		}
		echoedGQL := e.request(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ __typename }"}`),
			map[string]string{"Content-Type": "application/json", "X-Request-Id": "abc-123"})
		if got := echoedGQL.Header.Get("X-Request-Id"); got != "abc-123" {
			t.Errorf("POST /graphql with X-Request-Id abc-123: echoed %q", got)
		}

		// A malformed one is replaced by a generated one.
		for _, bad := range []string{"abc 123", strings.Repeat("a", 100), "<script>alert(1)</script>", "a;b=c"} {
			r := e.request(http.MethodGet, "/healthz", nil, map[string]string{"X-Request-Id": bad})
			got := r.Header.Get("X-Request-Id")
			if got == bad || !requestid.Valid(got) {
				t.Errorf("X-Request-Id %q: answered %q, want a fresh well-formed id", bad, got)
			}
		}
	})
}

func TestPlayground(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)

		r := e.request(http.MethodGet, "/", nil, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /: want 200, got %d: %s", r.Status, r.Raw)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET /: Content-Type %q, want text/html", ct)
		}
		body := string(r.Raw)
		if !strings.Contains(strings.ToLower(body), "graphiql") {
			t.Errorf("GET /: the page does not mention GraphiQL")
		}
		if !strings.Contains(body, "Authorization") {
			t.Errorf("GET /: the page has no place for the Authorization header")
		}
		if csp := r.Header.Get("Content-Security-Policy"); csp == "" {
			t.Errorf("GET /: no Content-Security-Policy header")
		}

		if p := e.request(http.MethodPost, "/", strings.NewReader("x"), map[string]string{"Content-Type": "text/plain"}); p.Status >= 500 {
			t.Errorf("POST /: want no 5xx, got %d: %s", p.Status, p.Raw)
		}
	})
}

func TestGraphQLOverHTTP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)

		const marker = "SECRET_MARKER_123"
		tests := []struct {
			name   string
			method string
			path   string
			body   func() io.Reader
			header map[string]string
			check  func(t *testing.T, r *response)
		}{
			{
				name: "GET query", method: http.MethodGet, path: httpQueryURL("{__typename}"),
				check: func(t *testing.T, r *response) {
					if r.Status != http.StatusOK || r.str("__typename") != "Query" {
						t.Errorf("want 200 with __typename Query, got %d: %s", r.Status, r.Raw)
					}
				},
			},
			{
				name: "GET mutation is refused", method: http.MethodGet,
				path:   httpQueryURL(`mutation { updateTeam(input:{name:"x"}) { team { name } } }`),
				header: map[string]string{"Authorization": "Bearer " + e.admin},
				check: func(t *testing.T, r *response) {
					if r.Status < 400 || r.Status >= 500 {
						t.Errorf("want a 4xx, got %d: %s", r.Status, r.Raw)
					}
					httpWantCodes(t, r)
					after := e.ok(e.admin, `{ team { name } }`, nil)
					if got := after.str("team.name"); got != "Acme" {
						t.Errorf("a mutation over GET renamed the team to %q", got)
					}
				},
			},
			{
				name: "malformed JSON is 400 and not echoed", method: http.MethodPost, path: "/graphql",
				body:   func() io.Reader { return strings.NewReader(`{"query": "` + marker) },
				header: jsonHeader(""),
				check: func(t *testing.T, r *response) {
					if r.Status != http.StatusBadRequest {
						t.Errorf("want 400, got %d: %s", r.Status, r.Raw)
					}
					if bytes.Contains(r.Raw, []byte(marker)) {
						t.Errorf("the response echoes the request body back: %s", r.Raw)
					}
					httpWantCodes(t, r)
				},
			},
			{
				name: "variables of the wrong JSON type are 400 and not echoed", method: http.MethodPost, path: "/graphql",
				body:   func() io.Reader { return strings.NewReader(`{"query":"{__typename}","variables":"` + marker + `"}`) },
				header: jsonHeader(""),
				check: func(t *testing.T, r *response) {
					if r.Status != http.StatusBadRequest {
						t.Errorf("want 400, got %d: %s", r.Status, r.Raw)
					}
					if bytes.Contains(r.Raw, []byte(marker)) {
						t.Errorf("the response echoes the request body back: %s", r.Raw)
					}
					httpWantCodes(t, r)
				},
			},
			{
				name: "text/plain body", method: http.MethodPost, path: "/graphql",
				body:   func() io.Reader { return strings.NewReader(`{"query":"{__typename}"}`) },
				header: map[string]string{"Content-Type": "text/plain"},
				check: func(t *testing.T, r *response) {
					if r.Status < 400 || r.Status >= 500 {
						t.Errorf("want a 4xx, got %d: %s", r.Status, r.Raw)
					}
					httpWantCodes(t, r)
				},
			},
			{
				name: "body of 1 MiB + 1 byte", method: http.MethodPost, path: "/graphql",
				body:   func() io.Reader { return bytes.NewReader(padded(t, httpMaxBody+1)) },
				header: jsonHeader(""),
				check: func(t *testing.T, r *response) {
					if r.Status != http.StatusRequestEntityTooLarge {
						t.Errorf("want 413, got %d: %.300s", r.Status, r.Raw)
					}
				},
			},
			{
				name: "chunked body of 1 MiB + 1 byte", method: http.MethodPost, path: "/graphql",
				// A reader of unknown length: the client sends no Content-Length.
				body:   func() io.Reader { return io.MultiReader(bytes.NewReader(padded(t, httpMaxBody+1))) },
				header: jsonHeader(""),
				check: func(t *testing.T, r *response) {
					if r.Status != http.StatusRequestEntityTooLarge {
						t.Errorf("want 413, got %d: %.300s", r.Status, r.Raw)
					}
				},
			},
			{
				name: "body just under 1 MiB", method: http.MethodPost, path: "/graphql",
				body:   func() io.Reader { return bytes.NewReader(padded(t, httpMaxBody-1)) },
				header: jsonHeader(""),
				check: func(t *testing.T, r *response) {
					if r.Status == http.StatusRequestEntityTooLarge || r.Status >= 500 {
						t.Errorf("want neither 413 nor 5xx, got %d: %.300s", r.Status, r.Raw)
					}
					if r.str("__typename") != "Query" {
						t.Errorf("want __typename Query, got %d: %.300s", r.Status, r.Raw)
					}
				},
			},
			{
				name: "Accept graphql-response+json", method: http.MethodPost, path: "/graphql",
				body: func() io.Reader { return strings.NewReader(`{"query":"{__typename}"}`) },
				header: map[string]string{
					"Content-Type": "application/json",
					"Accept":       "application/graphql-response+json",
				},
				check: func(t *testing.T, r *response) {
					if r.Status != http.StatusOK || r.str("__typename") != "Query" {
						t.Errorf("want 200 with __typename Query, got %d: %s", r.Status, r.Raw)
					}
					if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/graphql-response+json") {
						t.Errorf("Content-Type %q, want application/graphql-response+json", ct)
					}
				},
			},
			{
				name: "PUT", method: http.MethodPut, path: "/graphql",
				body:   func() io.Reader { return strings.NewReader(`{"query":"{__typename}"}`) },
				header: jsonHeader(""),
				check:  httpWantMethodNotAllowed,
			},
			{
				name: "DELETE", method: http.MethodDelete, path: "/graphql",
				check: httpWantMethodNotAllowed,
			},
			{
				name: "OPTIONS", method: http.MethodOptions, path: "/graphql",
				check: func(t *testing.T, r *response) {
					if r.Status < 200 || r.Status >= 300 {
						t.Errorf("want a 2xx, got %d: %s", r.Status, r.Raw)
					}
				},
			},
			{
				name: "unknown path", method: http.MethodGet, path: "/no/such/path",
				check: func(t *testing.T, r *response) {
					if r.Status != http.StatusNotFound {
						t.Errorf("want 404, got %d: %s", r.Status, r.Raw)
					}
				},
			},
			{
				name: "syntax error", method: http.MethodPost, path: "/graphql",
				body:   func() io.Reader { return strings.NewReader(`{"query":"{ team {"}`) },
				header: jsonHeader(e.admin),
				check: func(t *testing.T, r *response) {
					if r.Status >= 500 {
						t.Errorf("want no 5xx, got %d: %s", r.Status, r.Raw)
					}
					if r.code() != "BAD_USER_INPUT" {
						t.Errorf("want BAD_USER_INPUT, got %q: %s", r.code(), r.Raw)
					}
				},
			},
			{
				name: "syntax error over GET", method: http.MethodGet, path: httpQueryURL("{ team {"),
				header: map[string]string{"Authorization": "Bearer " + e.admin},
				check: func(t *testing.T, r *response) {
					if r.Status >= 500 {
						t.Errorf("want no 5xx, got %d: %s", r.Status, r.Raw)
					}
					if r.code() != "BAD_USER_INPUT" {
						t.Errorf("want BAD_USER_INPUT, got %q: %s", r.code(), r.Raw)
					}
				},
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var body io.Reader
				if tc.body != nil {
					body = tc.body()
				}
				tc.check(t, e.request(tc.method, tc.path, body, tc.header))
			})
		}

		// A mutation registered as an automatic persisted query must not
		// run over GET by its hash either.
		t.Run("GET mutation by persisted-query hash is refused", func(t *testing.T) {
			const mutation = `mutation { updateTeam(input:{name:"Renamed by GET"}) { team { name } } }`
			sum := sha256.Sum256([]byte(mutation))
			ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
			body, _ := json.Marshal(map[string]any{"query": mutation, "extensions": ext})
			reg := e.request(http.MethodPost, "/graphql", bytes.NewReader(body), jsonHeader(e.admin))
			if reg.Status != http.StatusOK || len(reg.Errors) > 0 {
				t.Fatalf("register the persisted mutation over POST: %d: %s", reg.Status, reg.Raw)
			}
			e.ok(e.admin, `mutation { updateTeam(input:{name:"Acme"}) { team { name } } }`, nil)

			extJSON, _ := json.Marshal(ext)
			r := e.request(http.MethodGet, "/graphql?extensions="+url.QueryEscape(string(extJSON)), nil,
				map[string]string{"Authorization": "Bearer " + e.admin})
			if r.Status < 400 || r.Status >= 500 {
				t.Errorf("want a 4xx, got %d: %s", r.Status, r.Raw)
			}
			httpWantCodes(t, r)
			if got := e.ok(e.admin, `{ team { name } }`, nil).str("team.name"); got != "Acme" {
				t.Errorf("a persisted mutation over GET renamed the team to %q", got)
			}
		})
	})
}

// httpWantCodes checks the contract's rule that every error carries
// extensions.code, also on errors raised before execution.
func httpWantCodes(t *testing.T, r *response) {
	t.Helper()
	if len(r.Errors) == 0 {
		t.Errorf("want a GraphQL error body, got %d: %.300s", r.Status, r.Raw)
	}
	for _, e := range r.Errors {
		if e.code() == "" {
			t.Errorf("error %q carries no extensions.code: %.300s", e.Message, r.Raw)
		}
	}
}

func httpWantMethodNotAllowed(t *testing.T, r *response) {
	t.Helper()
	httpWantCodes(t, r)
	if r.Status != http.StatusMethodNotAllowed {
		t.Errorf("want 405, got %d: %s", r.Status, r.Raw)
	}
	allow := r.Header.Get("Allow")
	if !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q, want it to name GET and POST", allow)
	}
}

func TestInternalErrorsRevealNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		if n := e.db.Count(t, "api_keys", ""); n != 1 {
			t.Fatalf("before: %d keys, want 1", n)
		}

		e.db.Exec(t, "DROP TABLE audit_events")
		r := e.gql(e.admin, createKey, map[string]any{"in": map[string]any{"name": "x"}})

		if r.Status >= 500 && len(r.Errors) == 0 {
			t.Fatalf("want a GraphQL error, got %d: %s", r.Status, r.Raw)
		}
		if r.code() != "INTERNAL" {
			t.Fatalf("want INTERNAL, got %q (%d): %s", r.code(), r.Status, r.Raw)
		}
		header := r.Header.Get("X-Request-Id")
		if header == "" {
			t.Fatalf("no X-Request-Id header")
		}
		if got, _ := r.Errors[0].Extensions["requestId"].(string); got != header {
			t.Errorf("extensions.requestId %q, want the X-Request-Id header %q", got, header)
		}
		for _, leak := range []string{"audit_events", "SQL", "sql", "relation", "no such table", "pq:", "ERROR", "goroutine", ".go:"} {
			if strings.Contains(r.Errors[0].Message, leak) {
				t.Errorf("the message reveals %q: %s", leak, r.Errors[0].Message)
			}
			if bytes.Contains(r.Raw, []byte(leak)) {
				t.Errorf("the response reveals %q: %s", leak, r.Raw)
			}
		}

		// Atomic: no key without its audit event.
		if n := e.db.Count(t, "api_keys", ""); n != 1 {
			t.Errorf("after a failed createApiKey: %d keys, want 1 (the mutation committed without its audit event)", n)
		}

		// The operator can find the failure from the id the client quotes.
		if !strings.Contains(e.logs.String(), header) {
			t.Errorf("the server log does not contain the request id %q", header)
		}
	})
}

func TestCredentialHeaders(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)

		post := func(header map[string]string, query string) *response {
			h := map[string]string{"Content-Type": "application/json"}
			for k, v := range header {
				h[k] = v
			}
			return e.request(http.MethodPost, "/graphql", strings.NewReader(`{"query":`+quote(query)+`}`), h)
		}
		wantViewer := func(t *testing.T, r *response) {
			t.Helper()
			if r.Status != http.StatusOK || len(r.Errors) > 0 || r.str("viewer.id") == "" {
				t.Errorf("want the viewer, got %d: %s", r.Status, r.Raw)
			}
		}
		wantInvalid := func(t *testing.T, r *response) {
			t.Helper()
			if r.Status != http.StatusUnauthorized {
				t.Fatalf("want 401, got %d: %s", r.Status, r.Raw)
			}
			if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if r.code() != "UNAUTHENTICATED" {
				t.Errorf("want UNAUTHENTICATED, got %q: %s", r.code(), r.Raw)
			}
			if reason, _ := r.Errors[0].Extensions["reason"].(string); reason != "INVALID" {
				t.Errorf("want reason INVALID, got %q: %s", reason, r.Raw)
			}
			if r.Data != nil {
				t.Errorf("a refused credential executed something: %s", r.Raw)
			}
		}

		tests := []struct {
			name   string
			header map[string]string
			query  string
			check  func(t *testing.T, r *response)
		}{
			{"X-API-Key", map[string]string{"X-API-Key": e.admin}, `{ viewer { id } }`, wantViewer},
			{"Bearer", map[string]string{"Authorization": "Bearer " + e.admin}, `{ viewer { id } }`, wantViewer},
			{"lower-case bearer", map[string]string{"Authorization": "bearer " + e.admin}, `{ viewer { id } }`, wantViewer},
			{"Basic", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, `{ __typename }`, wantInvalid},
			{"empty Bearer", map[string]string{"Authorization": "Bearer "}, `{ __typename }`, wantInvalid},
			{"bad X-API-Key", map[string]string{"X-API-Key": "kp_nope"}, `{ __typename }`, wantInvalid},
			{"no credential: __typename", nil, `{ __typename }`, func(t *testing.T, r *response) {
				if r.Status != http.StatusOK || len(r.Errors) > 0 || r.str("__typename") != "Query" {
					t.Errorf("want 200 with __typename Query, got %d: %s", r.Status, r.Raw)
				}
			}},
			{"no credential: team", nil, `{ team { name } }`, func(t *testing.T, r *response) {
				if r.Status != http.StatusOK {
					t.Errorf("want 200, got %d: %s", r.Status, r.Raw)
				}
				if r.code() != "UNAUTHENTICATED" {
					t.Errorf("want UNAUTHENTICATED, got %q: %s", r.code(), r.Raw)
				}
				if r.str("team.name") != "" {
					t.Errorf("team answered without a credential: %s", r.Raw)
				}
			}},
			{"no credential: introspection", nil, `{ __schema { queryType { name } } }`, func(t *testing.T, r *response) {
				if r.Status != http.StatusOK || len(r.Errors) > 0 || r.str("__schema.queryType.name") != "Query" {
					t.Errorf("want introspection to answer Query, got %d: %s", r.Status, r.Raw)
				}
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tc.check(t, post(tc.header, tc.query))
			})
		}
	})
}

func TestPlaygroundAndIntrospectionCanBeTurnedOff(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d, func(c *config.Config) { c.Playground, c.Introspection = false, false })
		if r := e.request(http.MethodGet, "/", nil, nil); r.Status != http.StatusNotFound {
			t.Fatalf("GET / with the playground off: %d", r.Status)
		}
		for _, q := range []string{
			`{ __schema { queryType { name } } }`,
			`query { ...F } fragment F on Query { ... on Query { __type(name: "Team") { name } } }`,
		} {
			r := e.gql(e.admin, q, nil)
			if r.code() != "BAD_USER_INPUT" || r.Data != nil || !strings.Contains(r.Errors[0].Message, "introspection") {
				t.Fatalf("introspection with it off: %s", r.Raw)
			}
		}
		if r := e.ok("", `{ __typename }`, nil); r.str("__typename") != "Query" {
			t.Fatalf("__typename: %s", r.Raw)
		}
		// With the schema hidden, validation errors suggest no field names.
		r := e.gql(e.admin, `{ team { nam } }`, nil)
		if r.code() != "BAD_USER_INPUT" || strings.Contains(string(r.Raw), "Did you mean") {
			t.Fatalf("a typo with introspection off: %s", r.Raw)
		}
		on := newEnv(t, d)
		if r := on.gql(on.admin, `{ team { nam } }`, nil); !strings.Contains(string(r.Raw), "Did you mean") {
			t.Fatalf("with introspection on, suggestions help: %s", r.Raw)
		}
		// The API itself still answers.
		e.ok(e.admin, `{ team { name } }`, nil)
	})
}
