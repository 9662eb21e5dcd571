package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testlog"
	"github.com/keyplane/keyplane/internal/testserver"
)

// fzServer is the one server of a fuzz run, shared by every input: starting
// a server per input would make fuzzing crawl.
type fzServer struct {
	srv *httptest.Server
	// errors keeps the server's ERROR lines (a panic's stack, an internal
	// error), shown when an input fails.
	errors *testlog.Buffer
	// creds replaces a placeholder of the auth input with a real credential,
	// so that the fuzzer reaches the authenticated paths.
	creds *strings.Replacer
}

// fzStart is startEnv for a *testing.F too: a server with one team, a
// full-access key ($ADMIN), a read-only key ($READER) and a device token
// ($DEVICE).
func fzStart(f testing.TB, d db.Dialect) *fzServer {
	f.Helper()
	s := testserver.StartWith(f, testdb.New(f, d), testserver.Options{
		Configure: []func(*config.Config){testSettings}, Level: slog.LevelError, Team: "Fuzz"})
	srv, admin := s.HTTP, s.Admin
	post := func(query string, vars map[string]any, path string) string {
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := srv.Client().Do(req)
		if err != nil {
			f.Fatal(err)
		}
		defer res.Body.Close()
		var out struct {
			Data map[string]map[string]any `json:"data"`
		}
		raw, _ := io.ReadAll(res.Body)
		_ = json.Unmarshal(raw, &out)
		field, sub, _ := strings.Cut(path, ".")
		s, _ := out.Data[field][sub].(string)
		if s == "" {
			f.Fatalf("setup %s: %d %s", path, res.StatusCode, raw)
		}
		return s
	}
	reader := post(createKey, map[string]any{"in": map[string]any{"name": "reader",
		"scopes": []string{"API_KEYS_READ", "DEVICES_READ", "MEMBERS_READ", "AUDIT_READ"}}}, "createApiKey.secret")
	device := post(`mutation { createDevice(input: {name: "fuzz cam", serialNumber: "SN-FUZZ"}) { token } }`, nil, "createDevice.token")
	return &fzServer{
		srv:    srv,
		errors: s.Logs,
		creds:  strings.NewReplacer("$ADMIN", admin, "$READER", reader, "$DEVICE", device),
	}
}

// fzValidHeader reports whether v can be sent as a header value at all;
// the client refuses the rest before the server sees them.
func fzValidHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// fzTarget returns the URL of a GET: the body's JSON fields become query
// parameters (so the JSON seeds fuzz GET too), or else the body is the query.
func fzTarget(base string, body []byte) string {
	var fields map[string]json.RawMessage
	params := url.Values{}
	if json.Unmarshal(body, &fields) == nil {
		for name, raw := range fields {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				params.Set(name, s)
			} else {
				params.Set(name, string(raw))
			}
		}
	} else {
		params.Set("query", string(body))
	}
	return base + "?" + params.Encode()
}

// fzSeed is one input of the seed corpus.
type fzSeed struct {
	method, contentType, auth string
	body                      []byte
}

// fzSeeds are representative bodies, each with the headers that let it reach
// the code it is about, then a valid query under every header variant and
// the other methods.
func fzSeeds() []fzSeed {
	deep := `{ team { apiKeys { nodes { ` + strings.Repeat(`createdBy { `, 20) + `id` + strings.Repeat(` }`, 20) + ` } } } }`
	var aliases strings.Builder
	aliases.WriteString("{ ")
	for i := range 400 {
		fmt.Fprintf(&aliases, "a%d: __typename ", i)
	}
	aliases.WriteString("}")
	q := func(query string, rest string) []byte {
		return []byte(`{"query":` + quote(query) + rest + `}`)
	}
	const (
		post, get = http.MethodPost, http.MethodGet
		jsonType  = "application/json"
		strict    = "application/json; charset=utf-8|application/graphql-response+json"
	)
	valid := q(`{ viewer { id name scopes } team { name apiKeys(first: 2) { totalCount nodes { id start } } } }`, ``)
	seeds := []fzSeed{
		{post, jsonType, "Bearer $READER", valid},
		{post, strict, "Bearer $ADMIN", q(`mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { secret apiKey { id } } }`,
			`,"variables":{"in":{"name":"fuzz","scopes":["DEVICES_READ"]}}`)},
		{post, jsonType, "Bearer $DEVICE", q(`mutation { deviceHeartbeat(input: {firmwareVersion: "1.2.3"}) { device { id status } } }`, ``)},
		{post, jsonType, "", q(`mutation($k: String!) { enrollDevice(input: {enrollmentKey: $k, serialNumber: "SN"}) { token } }`, `,"variables":{"k":"kpe_nope"}`)},
		{post, strict, "Bearer $READER", []byte(`{"query": "{ viewer { id }`)}, // malformed JSON
		{post, jsonType, "Bearer $READER", []byte(`[{"query":"{ __typename }"},{"query":"{ __typename }"}]`)},
		{post, jsonType, "Bearer $READER", q(deep, ``)},
		{post, strict, "Bearer $READER", q(aliases.String(), ``)},
		{get, "", "key:$READER", q(`query Unicode($s: String) { team { apiKeys(filter: {search: $s}) { totalCount nodes { name } } } }`,
			`,"variables":{"s":"日本語 \u2028 😀 '; DROP TABLE api_keys; --"},"operationName":"Unicode"`)},
		{post, jsonType, "Bearer $READER", q(`query($s: String, $id: ID) { team {
  apiKeys(filter: {search: $s}) { totalCount } devices(filter: {search: $s}) { totalCount }
  members(filter: {search: $s}) { totalCount } auditEvents(filter: {action: $s, targetId: $id}) { totalCount } } }`,
			`,"variables":{"s":"a\u0000b","id":"key_\u0000"}`)}, // a NUL byte in every free-text filter
		{post, jsonType, "Bearer $READER", q(`{ team { devices(filter: {search: "日本語 \u0000 %_"}) { totalCount } } }`,
			`,"variables":{"s":"\u2028 😀 '; DROP TABLE api_keys; --"}`)},
		{post, jsonType, "Bearer $READER", []byte("{\"query\":\"{ viewer { id } }\\u0000\",\"variables\":{\"x\":\"\\u0000\"}}\x00\x00")},
		{post, jsonType, "Bearer $READER", q(`query($id: ID!) { node(id: $id) { id ... on ApiKey { name } } nodes(ids: ["key_x", "dev_\u0000"]) { id } }`,
			`,"variables":{"id":{"not":"a string"}}`)},
		{post, jsonType, "Bearer $READER", q(`{ team { devices(first: -1, after: "not a cursor") { totalCount } } }`,
			`,"operationName":"missing","extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}`)},
		{post, jsonType, "", []byte(`{"query":null,"variables":[1,2],"operationName":7}`)},
		{post, jsonType, "Bearer $READER", []byte(``)},
	}
	for _, v := range []struct{ method, contentType, auth string }{
		{post, "text/plain", ""},
		{post, "application/json|text/html", "Bearer $READER"},
		{post, jsonType, "Basic Zm9vOmJhcg=="},
		{post, jsonType, "Bearer $DEVICE"},
		{get, "|application/graphql-response+json, application/json;q=0.9", "Bearer $READER"},
		{http.MethodPut, jsonType, "Bearer $READER"},
		{http.MethodDelete, jsonType, "Bearer $READER"},
		{http.MethodOptions, "", ""},
		{http.MethodHead, "", "Bearer $READER"},
		{http.MethodPatch, jsonType, "Bearer $READER"},
	} {
		seeds = append(seeds, fzSeed{v.method, v.contentType, v.auth, valid})
	}
	return seeds
}

func FuzzGraphQLEndpoint(f *testing.F) {
	s := fzStart(f, db.SQLite)
	for _, seed := range fzSeeds() {
		f.Add(seed.method, seed.contentType, seed.auth, seed.body)
	}

	f.Fuzz(func(t *testing.T, method, contentType, authz string, body []byte) {
		s.check(t, method, contentType, authz, body)
	})
}

// TestFuzzGraphQLEndpointSeedsOnEveryDialect runs the fuzz target's seed
// corpus on every dialect: the fuzzer itself runs on SQLite only, and some
// inputs (a NUL byte in a string) only hurt PostgreSQL.
func TestFuzzGraphQLEndpointSeedsOnEveryDialect(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := fzStart(t, d)
		for i, seed := range fzSeeds() {
			t.Run(fmt.Sprintf("seed %d", i), func(t *testing.T) {
				s.check(t, seed.method, seed.contentType, seed.auth, seed.body)
			})
		}
	})
}

// check sends one input and asserts the endpoint's property: no 5xx, no
// INTERNAL error, a JSON body, and on a 200 data or errors, every error
// with an extensions.code.
func (s *fzServer) check(t *testing.T, method, contentType, authz string, body []byte) {
	ctype, accept, _ := strings.Cut(contentType, "|")
	authz = s.creds.Replace(authz)
	if !fzValidHeader(ctype) || !fzValidHeader(accept) || !fzValidHeader(authz) {
		return
	}
	target := s.srv.URL + "/graphql"
	var reqBody io.Reader = bytes.NewReader(body)
	if method == http.MethodGet || method == http.MethodHead {
		target, reqBody = fzTarget(target, body), nil
	}
	req, err := http.NewRequest(method, target, reqBody)
	if err != nil {
		return // not a method the client can send
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if key, ok := strings.CutPrefix(authz, "key:"); ok {
		req.Header.Set("X-API-Key", key)
	} else if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %q: the server dropped the request: %v\nserver errors:\n%s", method, body, err, s.errors)
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s %q: reading the response: %v", method, body, err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s ctype=%q accept=%q auth=%q body=%q\n→ %d %s\n%s\nserver errors:\n%s",
			method, ctype, accept, authz, body, res.StatusCode, raw, fmt.Sprintf(format, args...), s.errors)
	}
	if res.StatusCode >= 500 {
		fail("a 5xx")
	}
	if method == http.MethodHead || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified {
		return // no body by definition
	}
	var decoded struct {
		Data   *json.RawMessage  `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		fail("the body is not one JSON object: %v", err)
	}
	if res.StatusCode == http.StatusOK && (decoded.Data == nil || string(*decoded.Data) == "null") && len(decoded.Errors) == 0 {
		fail("a 200 with neither data nor errors")
	}
	for _, e := range decoded.Errors {
		var ge gqlError
		if err := json.Unmarshal(e, &ge); err != nil || ge.code() == "" {
			fail("an error without extensions.code: %s", e)
		}
		if ge.code() == "INTERNAL" {
			fail("an INTERNAL error: the server failed on this input")
		}
	}
}
