package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
)

// TestSchemaFile fetches GET /schema.graphql, as a codegen tool pointed at
// the server does, with no credential: with introspection on it is the
// schema in SDL, which parses back and holds every type and directive
// introspection lists; with introspection off the path is not found, even
// with the playground on.
func TestSchemaFile(t *testing.T) {
	e := newEnv(t, db.SQLite)
	r := e.request(http.MethodGet, "/schema.graphql", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /schema.graphql: %d %.300s", r.Status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	sdl := string(r.Raw)
	for _, want := range []string{"type Query", "type Mutation", "directive @auth", "scalar DateTime", "interface Node"} {
		if !strings.Contains(sdl, want) {
			t.Errorf("the schema lacks %q", want)
		}
	}
	if strings.Contains(sdl, "__Schema") || strings.Contains(sdl, "directive @skip") {
		t.Errorf("the schema holds the built-in definitions every server shares")
	}
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: sdl})
	if err != nil {
		t.Fatalf("the schema does not parse back: %v", err)
	}
	if schema.Query == nil || schema.Query.Name != "Query" || schema.Mutation == nil || schema.Mutation.Name != "Mutation" {
		t.Errorf("the root types are not Query and Mutation")
	}

	// It is the schema introspection describes, type for type and field
	// for field.
	intro := e.ok("", `{ __schema { types { name fields(includeDeprecated: true) { name } } directives { name } } }`, nil)
	types := intro.list("__schema.types")
	if len(types) < 20 {
		t.Fatalf("introspection lists %d types: %.300s", len(types), intro.Raw)
	}
	for _, v := range types {
		ty, _ := v.(map[string]any)
		name, _ := ty["name"].(string)
		def := schema.Types[name]
		if def == nil {
			t.Errorf("type %s is missing", name)
			continue
		}
		fields, _ := ty["fields"].([]any)
		for _, f := range fields {
			field, _ := f.(map[string]any)["name"].(string)
			if def.Fields.ForName(field) == nil {
				t.Errorf("field %s.%s is missing", name, field)
			}
		}
	}
	for _, v := range intro.list("__schema.directives") {
		name, _ := v.(map[string]any)["name"].(string)
		if schema.Directives[name] == nil {
			t.Errorf("directive @%s is missing", name)
		}
	}

	off := newEnv(t, db.SQLite, func(c *config.Config) { c.Introspection, c.Playground = false, true })
	if r := off.request(http.MethodGet, "/schema.graphql", nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("GET /schema.graphql with introspection off: %d %.300s", r.Status, r.Raw)
	}
	if r := off.request(http.MethodGet, "/", nil, nil); r.Status != http.StatusOK {
		t.Errorf("the playground is off too: %d", r.Status)
	}
}
