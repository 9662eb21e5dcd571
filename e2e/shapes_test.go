package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
)

// shDoubling is a query of about 1 KB whose 27 fragments each spread the
// next twice: 2^27 selections once expanded. Before the limits were
// linear it kept a core busy for over 30 seconds, sent with no credential.
func shDoubling(n int) string {
	var b strings.Builder
	b.WriteString("query { ...F0 }")
	for i := range n {
		fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
	}
	fmt.Fprintf(&b, " fragment F%d on Query { __typename }", n)
	return b.String()
}

// TestCraftedShapesAreRefusedBeforeValidation sends the shapes that made a
// small request cost seconds, without a credential, over HTTP: each is
// refused by a limit of the expanded document, and the server still answers.
func TestCraftedShapesAreRefusedBeforeValidation(t *testing.T) {
	e := newEnv(t, db.SQLite)
	for _, tc := range []struct {
		name, query, says string
	}{
		{"27 doubling fragments", shDoubling(27), "fields or more once its fragments are expanded; the limit is 2000"},
		{"4,900 repeated fields", "{ " + strings.Repeat("__typename ", 4900) + "}", "once its fragments are expanded"},
		{"a selection set of 101 fields", "{ " + strings.Repeat("__typename ", 101) + "}", "holds 101 fields or more once its fragments are expanded; the limit is 100"},
		{"one field repeated under ten parents", "{ " + strings.Repeat("team { "+strings.Repeat("name ", 99)+"} ", 10) + "}", "pairs or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.query) < 1500 {
				t.Logf("%d bytes", len(tc.query))
			}
			r := e.gql("", tc.query, nil)
			if r.Status != http.StatusOK || r.code() != "QUERY_TOO_COMPLEX" || !strings.Contains(r.Errors[0].Message, tc.says) {
				t.Fatalf("want QUERY_TOO_COMPLEX saying %q, got %d: %.300s", tc.says, r.Status, r.Raw)
			}
			if r.Data != nil {
				t.Errorf("a refused query answered data: %.300s", r.Raw)
			}
		})
	}
	if got := e.ok(e.admin, `{ viewer { name } }`, nil).str("viewer.name"); got == "" {
		t.Fatal("the server does not answer after the shapes")
	}
}

// TestIntrospectionQueriesPassTheLimits sends the introspection queries of
// graphql-js, GraphiQL and Apollo over HTTP, with no credential, as a
// codegen tool or the playground does: with the default limits they answer
// the schema; with introspection off they are refused as such.
func TestIntrospectionQueriesPassTheLimits(t *testing.T) {
	e := newEnv(t, db.SQLite)
	off := newEnv(t, db.SQLite, func(c *config.Config) { c.Introspection = false })
	files, err := filepath.Glob("../graph/testdata/introspection/*.graphql")
	if err != nil || len(files) != 3 {
		t.Fatalf("want the 3 introspection queries, found %v %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			query, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			r := e.gql("", string(query), nil)
			if r.Status != http.StatusOK || len(r.Errors) > 0 || r.str("__schema.queryType.name") != "Query" || len(r.list("__schema.types")) < 20 {
				t.Fatalf("want the schema: %d %.300s", r.Status, r.Raw)
			}
			r = off.gql("", string(query), nil)
			if r.code() != "BAD_USER_INPUT" || r.Data != nil || !strings.Contains(r.Errors[0].Message, "introspection is turned off") {
				t.Fatalf("with introspection off: %.300s", r.Raw)
			}
		})
	}
}

// TestScalarListsCountTowardsCost fills a team with 100 devices of 50 tags
// of 64 characters, the most each may have, and asks for them the way that
// drew megabytes when a list of scalars cost nothing.
func TestScalarListsCountTowardsCost(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		specs := make([]map[string]any, 100)
		for i := range specs {
			tags := make([]string, 50)
			for j := range tags {
				tags[j] = fmt.Sprintf("%02d-%s", j, strings.Repeat("t", 61))
			}
			specs[i] = map[string]any{"name": fmt.Sprintf("cam %d", i), "serialNumber": fmt.Sprintf("SN-%03d", i), "tags": tags}
		}
		e.ok(e.admin, `mutation($in: CreateDevicesInput!) { createDevices(input: $in) { devices { id } } }`,
			map[string]any{"in": map[string]any{"devices": specs}})

		// One page with its tags costs 5,201 and answers.
		one := e.ok(e.admin, `{ team { devices(first: 100) { nodes { tags } } } }`, nil)
		if nodes := one.list("team.devices.nodes"); len(nodes) != 100 {
			t.Fatalf("%d devices on the page", len(nodes))
		}
		t.Logf("one page of 100 devices with their tags: %d bytes", len(one.Raw))

		// Two such pages cost 10,402: over the limit of 10,000.
		two := e.fails(e.admin, `{ team { a: devices(first: 100) { nodes { tags } } b: devices(first: 100) { nodes { tags } } } }`, nil, "QUERY_TOO_COMPLEX")
		if two.Data != nil {
			t.Errorf("the refused query answered data: %.300s", two.Raw)
		}

		// Before lists of scalars had a cost, 30 pages of tags cost 6,001 and
		// drew 10 MB from a request of 1.3 KB; 24 pages with the tags twice
		// cost 9,601 and drew 16 MB.
		for _, tc := range []struct {
			pages int
			page  string
		}{
			{30, "devices(first: 100) { nodes { tags } }"},
			{24, "devices(first: 100) { nodes { tags } edges { node { tags } } }"},
		} {
			var wide strings.Builder
			wide.WriteString("{ team { ")
			for i := range tc.pages {
				fmt.Fprintf(&wide, "p%d: %s ", i, tc.page)
			}
			wide.WriteString("} }")
			r := e.fails(e.admin, wide.String(), nil, "QUERY_TOO_COMPLEX")
			t.Logf("a %d-byte request for %d pages of tags: %d bytes answered", wide.Len(), tc.pages, len(r.Raw))
			if len(r.Raw) > 1000 || !strings.Contains(r.Errors[0].Message, "exceeds the limit of 10000") {
				t.Errorf("want a short refusal of the cost: %.300s", r.Raw)
			}
		}
	})
}

// TestHiddenSchemaOverHTTP checks, through the whole server with
// KEYPLANE_INTROSPECTION=false, that validation answers name nothing of the
// schema the request did not, with a credential or without.
func TestHiddenSchemaOverHTTP(t *testing.T) {
	e := newEnv(t, db.SQLite, func(c *config.Config) { c.Introspection = false })
	for _, tc := range []struct {
		name, key, query string
		vars             map[string]any
		hidden           []string
	}{
		{"unknown field, no credential", "", `{ team { nope } }`, nil, []string{"Team"}},
		{"unknown argument", e.admin, `{ team { apiKeys(x: 1) { totalCount } } }`, nil, []string{"Team"}},
		{"unknown enum value", e.admin, `mutation { createApiKey(input: {name: "k", scopes: [FOO]}) { secret } }`, nil, []string{"Scope"}},
		{"input field left out", e.admin, `mutation { createApiKey(input: {}) { secret } }`, nil, []string{"CreateApiKeyInput", "name"}},
		{"variable missing an input field", e.admin, `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { secret } }`,
			map[string]any{"in": map[string]any{}}, []string{"name"}},
		{"typo", e.admin, `{ team { nam } }`, nil, []string{"name", "Did you mean"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.gql(tc.key, tc.query, tc.vars)
			if r.code() != "BAD_USER_INPUT" {
				t.Fatalf("code %q: %.300s", r.code(), r.Raw)
			}
			for _, name := range tc.hidden {
				if strings.Contains(string(r.Raw), `"`+name+`"`) || strings.Contains(string(r.Raw), name+`"`) || strings.Contains(string(r.Raw), name+".") {
					t.Errorf("the answer names %q: %s", name, r.Raw)
				}
			}
		})
	}
}
