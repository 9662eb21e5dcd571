package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
)

// bodyCase is one request body or query string, and whether it may run.
type bodyCase struct {
	name string
	body string // POST body; for GET, the query string after "?"
	get  bool
	ok   bool // runs and answers 200 with no error; else 400 BAD_USER_INPUT
	msg  string
}

// bodyCases are the request shapes of a strict body: the members query,
// operationName, variables and extensions, spelt exactly so, once each,
// and nothing else. Every refused shape smuggles a mutation that would
// rename the team and write an audit event if it ran.
func bodyCases() []bodyCase {
	rename := quote(hoRename)
	twoOps := quote(`query A { __typename } mutation B { updateTeam(input: {name: "pwned"}) { team { name } } }`)
	withVar := quote(`mutation($n: String!) { updateTeam(input: {name: $n}) { team { name } } }`)
	typename := quote(`{ __typename }`)
	persisted := `{"persistedQuery":{"version":1,"sha256Hash":"` + strings.Repeat("0", 64) + `"}}`
	cases := []bodyCase{
		// Accepted shapes.
		{name: "query alone", body: `{"query":` + typename + `}`, ok: true},
		{name: "all four members", body: `{"query":` + twoOps + `,"operationName":"A","variables":{},"extensions":{}}`, ok: true},
		{name: "members in another order", body: `{"extensions":{},"variables":{},"operationName":null,"query":` + typename + `}`, ok: true},
		{name: "variables null", body: `{"query":` + typename + `,"variables":null}`, ok: true},
		{name: "operationName null", body: `{"query":` + typename + `,"operationName":null}`, ok: true},
		{name: "extensions null", body: `{"query":` + typename + `,"extensions":null}`, ok: true},
		{name: "nested extensions, any keys", body: `{"query":` + typename + `,"extensions":{"a":{"b":[1,{"c":null}]},"A":{"QUERY":"x"},"a ":2}}`, ok: true},
		{name: "variables whose names differ in case", body: `{"query":"query($n: Boolean!, $N: Boolean!) { __typename @include(if: $n) x: __typename @skip(if: $N) }","variables":{"n":true,"N":false}}`, ok: true},
		{name: "white space around and inside", body: " \r\n\t{ \"query\" :\n" + typename + " } \n", ok: true},
		{name: "a key written with an escape is that key", body: `{"\u0071uery":` + typename + `}`, ok: true},

		// Unknown members.
		{name: "unknown member", body: `{"query":` + typename + `,"mutation":` + rename + `}`, msg: "other than"},
		{name: "unknown member headers", body: `{"query":` + typename + `,"headers":{"Authorization":["Bearer x"]}}`, msg: "other than"},
		{name: "empty member name", body: `{"query":` + typename + `,"":` + rename + `}`, msg: "other than"},
		{name: "member name with a Cyrillic e", body: `{"query":` + typename + `,"qu\u0435ry":` + rename + `}`, msg: "other than"},
		{name: "member name with a trailing space", body: `{"query":` + typename + `,"query ":` + rename + `}`, msg: "other than"},
		{name: "only an unknown member", body: `{"qeury":` + rename + `}`},
		{name: "unknown member before query", body: `{"x":1,"query":` + rename + `}`},

		// A closing brace too many: encoding/json's More stopped there.
		{name: "a brace too many", body: `{"query":` + rename + `}}`},
	}
	// Each member under another case, after and before the real one, and
	// twice under its own name (encoding/json kept the last of each).
	for _, m := range []struct {
		name, real, smuggled string
	}{
		{"query", typename, rename},
		{"operationName", `"A"`, `"B"`},
		{"variables", `{"n":"Acme"}`, `{"n":"pwned"}`},
		{"extensions", `{}`, persisted},
	} {
		query := rename
		switch m.name {
		case "operationName":
			query = twoOps
		case "variables":
			query = withVar
		}
		other := func(v string) string {
			if m.name == "query" {
				return `{"query":` + v
			}
			return `{"query":` + query + `,"` + m.name + `":` + v
		}
		for _, variant := range []string{strings.ToUpper(m.name), strings.ToUpper(m.name[:1]) + m.name[1:], strings.ToLower(m.name)} {
			if variant == m.name {
				continue
			}
			after := other(m.real) + `,"` + variant + `":` + m.smuggled + `}`
			before := `{"` + variant + `":` + m.smuggled + "," + strings.TrimPrefix(other(m.real), "{") + `}`
			cases = append(cases,
				bodyCase{name: m.name + " as " + variant + " after it", body: after, msg: "another case"},
				bodyCase{name: m.name + " as " + variant + " before it", body: before, msg: "another case"},
			)
		}
		cases = append(cases,
			bodyCase{name: m.name + " twice", body: other(m.real) + `,"` + m.name + `":` + m.smuggled + `}`, msg: "more than once"},
			bodyCase{name: m.name + " twice, the same", body: other(m.real) + `,"` + m.name + `":` + m.real + `}`, msg: "more than once"},
		)
	}
	cases = append(cases, bodyCase{name: "variables under a long s (which encoding/json folds to s)",
		body: `{"query":` + withVar + `,"variables":{"n":"Acme"},"variable\u017f":{"n":"pwned"}}`})
	cases = append(cases, bodyCase{name: "query twice through an escape", body: `{"query":` + typename + `,"\u0071uery":` + rename + `}`, msg: "more than once"})

	// GET: the same rules for the query string.
	q := func(pairs ...string) string {
		var b []string
		for i := 0; i < len(pairs); i += 2 {
			b = append(b, url.QueryEscape(pairs[i])+"="+url.QueryEscape(pairs[i+1]))
		}
		return strings.Join(b, "&")
	}
	const typenameText, twoOpsText = `{ __typename }`, `query A { __typename } query B { team { name } }`
	cases = append(cases,
		bodyCase{name: "GET query alone", get: true, body: q("query", typenameText), ok: true},
		bodyCase{name: "GET all four", get: true, body: q("query", twoOpsText, "operationName", "A", "variables", "{}", "extensions", "{}"), ok: true},
		bodyCase{name: "GET variables null", get: true, body: q("query", typenameText, "variables", "null"), ok: true},
		bodyCase{name: "GET query twice", get: true, body: q("query", typenameText, "query", `{ team { name } }`), msg: "more than once"},
		bodyCase{name: "GET operationName twice", get: true, body: q("query", twoOpsText, "operationName", "A", "operationName", "B"), msg: "more than once"},
		bodyCase{name: "GET variables twice", get: true, body: q("query", typenameText, "variables", "{}", "variables", "{}"), msg: "more than once"},
		bodyCase{name: "GET Query", get: true, body: q("query", typenameText, "Query", `{ team { name } }`), msg: "another case"},
		bodyCase{name: "GET OPERATIONNAME", get: true, body: q("query", twoOpsText, "operationName", "A", "OPERATIONNAME", "B"), msg: "another case"},
		bodyCase{name: "GET Variables", get: true, body: q("query", typenameText, "Variables", "{}"), msg: "another case"},
		bodyCase{name: "GET EXTENSIONS", get: true, body: q("query", typenameText, "EXTENSIONS", "{}"), msg: "another case"},
		bodyCase{name: "GET unknown parameter", get: true, body: q("query", typenameText, "debug", "1"), msg: "other than"},
		bodyCase{name: "GET semicolon separator", get: true, body: q("query", typenameText) + ";x=1", msg: "malformed"},
		bodyCase{name: "GET bad escape", get: true, body: q("query", typenameText) + "&qu%zzery=x", msg: "malformed"},
		bodyCase{name: "GET variables with trailing text", get: true, body: q("query", typenameText, "variables", "{} {}")},
	)
	return cases
}

// TestStrictRequestBody sends every shape of body and query string: the
// accepted ones run, the others are 400 BAD_USER_INPUT before anything
// runs, without a row written.
func TestStrictRequestBody(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		reader := hoReader(t, e)
		for _, tc := range bodyCases() {
			t.Run(tc.name, func(t *testing.T) {
				before := hoSnap(t, reader)
				var r *response
				if tc.get {
					r = e.request(http.MethodGet, "/graphql?"+tc.body, nil, map[string]string{"Authorization": "Bearer " + e.admin})
				} else {
					r = e.request(http.MethodPost, "/graphql", strings.NewReader(tc.body), jsonHeader(e.admin))
				}
				if diff := hoDiff(before, hoSnap(t, reader)); diff != "" {
					t.Fatalf("the request wrote to the database:%s\n%s", diff, r.Raw)
				}
				if tc.ok {
					if r.Status != http.StatusOK || len(r.Errors) > 0 || r.str("__typename") != "Query" {
						t.Fatalf("want 200 with __typename Query, got %d: %s", r.Status, r.Raw)
					}
					return
				}
				if r.Status != http.StatusBadRequest || r.code() != "BAD_USER_INPUT" || len(r.Errors) != 1 {
					t.Fatalf("want 400 BAD_USER_INPUT, got %d: %s", r.Status, r.Raw)
				}
				if r.Data != nil {
					t.Errorf("a refused request answered data: %s", r.Raw)
				}
				if tc.msg != "" && !strings.Contains(r.Errors[0].Message, tc.msg) {
					t.Errorf("message %q does not say %q", r.Errors[0].Message, tc.msg)
				}
				if bytes.Contains(r.Raw, []byte("pwned")) {
					t.Errorf("the answer echoes the request: %s", r.Raw)
				}
			})
		}
		if got := e.ok(e.admin, `{ team { name } }`, nil).str("team.name"); got != "Acme" {
			t.Fatalf("the team was renamed to %q", got)
		}
	})
}

// TestResponseCap checks KEYPLANE_MAX_RESPONSE_BYTES: a response of exactly
// the limit is sent as it is, one byte more is replaced whole by a
// QUERY_TOO_COMPLEX error, never cut short.
func TestResponseCap(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		for i := range 20 {
			e.newKey(e.admin, fmt.Sprintf("key with a fairly long name, number %02d", i))
		}
		const list = `{ team { apiKeys(first: 100) { nodes { id name scopes } } } }`
		full := e.ok(e.admin, list, nil)
		size := len(full.Raw)
		if size < 2000 {
			t.Fatalf("the list is only %d bytes", size)
		}
		capped := func(limit int) *env {
			return startEnv(t, e.db, func(c *config.Config) { c.MaxResponseBytes = limit })
		}
		tooLarge := func(t *testing.T, r *response, limit int) {
			t.Helper()
			if r.Status != http.StatusOK || r.code() != "QUERY_TOO_COMPLEX" || len(r.Errors) != 1 {
				t.Fatalf("want 200 QUERY_TOO_COMPLEX, got %d: %s", r.Status, r.Raw)
			}
			if v, present := r.Data, bytes.Contains(r.Raw, []byte(`"data":null`)); v != nil || !present {
				t.Errorf("want data null: %s", r.Raw)
			}
			msg := r.Errors[0].Message
			if !strings.Contains(msg, fmt.Sprint(limit)) || !strings.Contains(msg, "KEYPLANE_MAX_RESPONSE_BYTES") {
				t.Errorf("the message does not name the limit: %q", msg)
			}
			if bytes.Contains(r.Raw, []byte("key_")) || len(r.Raw) > 600 {
				t.Errorf("the refusal carries part of the response: %s", r.Raw)
			}
		}

		t.Run("exactly the limit is sent untouched", func(t *testing.T) {
			r := capped(size).sub(t).ok(e.admin, list, nil)
			if !bytes.Equal(r.Raw, full.Raw) {
				t.Fatalf("under a limit of its size the response changed:\n%s\nwant\n%s", r.Raw, full.Raw)
			}
			get := capped(size).sub(t).request(http.MethodGet, "/graphql?query="+url.QueryEscape(list), nil, map[string]string{"Authorization": "Bearer " + e.admin})
			if !bytes.Equal(get.Raw, full.Raw) {
				t.Fatalf("over GET, under a limit of its size the response changed: %s", get.Raw)
			}
		})
		t.Run("one byte over is refused whole", func(t *testing.T) {
			c := capped(size - 1).sub(t)
			tooLarge(t, c.gql(e.admin, list, nil), size-1)
			get := c.request(http.MethodGet, "/graphql?query="+url.QueryEscape(list), nil, map[string]string{"Authorization": "Bearer " + e.admin})
			tooLarge(t, get, size-1)
			if !strings.Contains(get.Header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", get.Header.Get("Content-Type"))
			}
			// Small answers still pass, and so do errors.
			if r := c.ok(e.admin, `{ viewer { id } }`, nil); r.str("viewer.id") == "" {
				t.Errorf("a small query under the limit: %s", r.Raw)
			}
			if r := c.gql(e.admin, `{ team { nope } }`, nil); r.code() != "BAD_USER_INPUT" {
				t.Errorf("a validation error under the limit: %s", r.Raw)
			}
		})
		t.Run("as the GraphQL response type", func(t *testing.T) {
			c := capped(size - 1).sub(t)
			body := `{"query":` + quote(list) + `}`
			r := c.request(http.MethodPost, "/graphql", strings.NewReader(body), map[string]string{
				"Content-Type": "application/json", "Accept": "application/graphql-response+json", "Authorization": "Bearer " + e.admin})
			tooLarge(t, r, size-1)
		})
		t.Run("a mutation's over-large answer says the change was made", func(t *testing.T) {
			c := capped(300).sub(t)
			r := c.gql(e.admin, createKey, map[string]any{"in": map[string]any{"name": "made despite the limit"}})
			tooLarge(t, r, 300)
			if !strings.Contains(r.Errors[0].Message, "carried out") {
				t.Errorf("the message does not say the mutation was carried out: %q", r.Errors[0].Message)
			}
			if n := e.db.Count(t, "api_keys", "name = ?", "made despite the limit"); n != 1 {
				t.Errorf("%d keys created, want 1", n)
			}
		})
		t.Run("the default is 8 MiB", func(t *testing.T) {
			if got := testConfig().MaxResponseBytes; got != 8<<20 {
				t.Errorf("default MaxResponseBytes %d, want %d", got, 8<<20)
			}
		})
	})
}
