package graph

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

// schemaNames lists every name the schema defines: types, fields,
// arguments, input fields, enum values and directives, less the built-in
// scalars and directives and the introspection types, which every GraphQL
// server shares.
func schemaNames(schema *ast.Schema) []string {
	builtin := map[string]bool{"String": true, "Int": true, "Float": true, "Boolean": true, "ID": true,
		"skip": true, "include": true, "deprecated": true, "specifiedBy": true, "oneOf": true, "defer": true}
	seen := map[string]bool{}
	add := func(name string) {
		if !builtin[name] && !strings.HasPrefix(name, "__") {
			seen[name] = true
		}
	}
	for name, def := range schema.Types {
		if def.BuiltIn || strings.HasPrefix(name, "__") {
			continue
		}
		add(name)
		for _, f := range def.Fields {
			add(f.Name)
			for _, a := range f.Arguments {
				add(a.Name)
			}
		}
		for _, v := range def.EnumValues {
			add(v.Name)
		}
	}
	for name, d := range schema.Directives {
		if builtin[name] {
			continue
		}
		add(name)
		for _, a := range d.Arguments {
			add(a.Name)
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// revealed returns the schema's names that body holds as a word and the
// request did not: what the answer taught the client.
func revealed(names []string, request, body string) []string {
	var out []string
	for _, name := range names {
		word := regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(name) + `([^A-Za-z0-9_]|$)`)
		if word.MatchString(body) && !word.MatchString(request) {
			out = append(out, name)
		}
	}
	return out
}

// hintCases are mistakes whose validation message, left as gqlparser
// writes it, names a part of the schema the request did not: the type a
// field is looked up on, an argument or input field left out, the enum a
// value is not in, the type a position expects.
var hintCases = []struct {
	name, query string
	vars        map[string]any
}{
	{name: "unknown field", query: `{ team { nope } }`},
	{name: "unknown argument", query: `{ team { apiKeys(x: 1) { totalCount } } }`},
	{name: "unknown enum value", query: `mutation { createApiKey(input: {name: "k", scopes: [FOO]}) { secret } }`},
	{name: "unknown enum value of a role", query: `mutation { updateMember(input: {id: "mem_1", role: BOSS}) { clientMutationId } }`},
	{name: "required input field left out", query: `mutation { createApiKey(input: {}) { secret } }`},
	{name: "required argument left out", query: `mutation { createApiKey { secret } }`},
	{name: "required list argument left out", query: `{ nodes { __typename } }`},
	{name: "unknown input field", query: `mutation { createApiKey(input: {name: "k", nmae: "x"}) { secret } }`},
	{name: "object where an input object goes", query: `{ team { apiKeys(filter: 5) { totalCount } } }`},
	{name: "object field without a selection", query: `{ team }`},
	{name: "selection on an enum", query: `{ viewer { status { x } } }`},
	{name: "fragment that can never apply", query: `{ team { ... on ApiKey { id } } }`},
	{name: "fields of one response name and different types", query: `{ node(id: "x") { ... on ApiKey { s: status } ... on Device { s: status } } }`},
	{name: "variable of the wrong input type", query: `query($f: DeviceFilter) { team { apiKeys(filter: $f) { totalCount } } }`},
	{name: "default value missing an input field", query: `mutation($in: CreateApiKeyInput = {}) { createApiKey(input: $in) { secret } }`},
	{name: "variable missing an input field", query: `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { secret } }`,
		vars: map[string]any{"in": map[string]any{}}},
	{name: "variable with an unknown enum value", query: `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { secret } }`,
		vars: map[string]any{"in": map[string]any{"name": "k", "scopes": []string{"FOO"}}}},
	{name: "variable with an unknown enum value in a filter", query: `query($f: ApiKeyFilter) { team { apiKeys(filter: $f) { totalCount } } }`,
		vars: map[string]any{"f": map[string]any{"status": "NOPE"}}},
	{name: "variable with an object where a scalar goes", query: `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { secret } }`,
		vars: map[string]any{"in": map[string]any{"name": "k", "expiresAt": map[string]any{"a": 1}}}},
	{name: "variable missing a required input field among others", query: `mutation($in: UpdateDeviceInput!) { updateDevice(input: $in) { clientMutationId } }`,
		vars: map[string]any{"in": map[string]any{"tags": []string{"a"}}}},
	{name: "literal of the wrong kind for a custom scalar", query: `mutation { createApiKey(input: {name: "k", expiresAt: 5}) { secret } }`},
}

// TestHiddenSchemaRevealsNoName sends each hint case to a server with
// introspection on, where the answer must name something the request did
// not (else the case proves nothing), and off, where it must not: the
// message is generic, the code and the location stay.
func TestHiddenSchemaRevealsNoName(t *testing.T) {
	names := schemaNames(executableSchema().Schema())
	if len(names) < 100 || !slices.Contains(names, "Team") || !slices.Contains(names, "API_KEYS_WRITE") || !slices.Contains(names, "allowedCidrs") {
		t.Fatalf("the schema's names are not all listed: %v", names)
	}
	on, off := newTestHandler(t, true), newTestHandler(t, false)
	ctx := context.Background()
	for _, tc := range hintCases {
		t.Run(tc.name, func(t *testing.T) {
			vars, err := json.Marshal(tc.vars)
			if err != nil {
				t.Fatal(err)
			}
			request := tc.query + " " + string(vars)

			shown := post(ctx, t, on, tc.query, tc.vars)
			if shown.code() != "BAD_USER_INPUT" {
				t.Fatalf("with introspection on, code %q: %s", shown.code(), shown.raw)
			}
			if leaks := revealed(names, request, string(shown.raw)); len(leaks) == 0 {
				t.Fatalf("with introspection on, the answer names nothing the request did not: %s", shown.raw)
			}

			hidden := post(ctx, t, off, tc.query, tc.vars)
			if leaks := revealed(names, request, string(hidden.raw)); len(leaks) > 0 {
				t.Errorf("with introspection off, the answer names %v: %s", leaks, hidden.raw)
			}
			if hidden.code() != "BAD_USER_INPUT" {
				t.Errorf("with introspection off, code %q: %s", hidden.code(), hidden.raw)
			}
			for _, e := range hidden.Errors {
				if e.Message != schemaMismatch && e.Message != variablesMismatch && e.Message != valueMismatch {
					t.Errorf("message %q, want a generic one", e.Message)
				}
				if e.Message == schemaMismatch && len(e.Locations) == 0 {
					t.Errorf("the error lost its location: %s", hidden.raw)
				}
			}
		})
	}
}

// TestHiddenSchemaKeepsHarmlessMessages checks what names no schema part
// keeps its message with introspection off: parse errors, which quote the
// client's text, the limits, and the refusal of introspection.
func TestHiddenSchemaKeepsHarmlessMessages(t *testing.T) {
	off := newTestHandler(t, false)
	ctx := context.Background()
	graphqlJS, err := os.ReadFile("testdata/introspection/graphql-js.graphql")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, code, message string }{
		{`{ team { name }`, "BAD_USER_INPUT", "Expected Name, found <EOF>"},
		{`{ __schema { queryType { name } } }`, "BAD_USER_INPUT", introspectionOff},
		{`{ ` + strings.Repeat("a: __typename ", 31) + `}`, "QUERY_TOO_COMPLEX", "the limit is 30"},
		// Depth is checked after validation and after the refusal of
		// introspection, so a client's standard introspection query hears why.
		{string(graphqlJS), "BAD_USER_INPUT", introspectionOff},
	} {
		if a := post(ctx, t, off, tc.query, nil); a.code() != tc.code || !strings.Contains(a.message(), tc.message) {
			t.Errorf("%s: want %s %q, got %s", tc.query, tc.code, tc.message, a.raw)
		}
	}
}
