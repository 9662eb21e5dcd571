package main

import (
	"os"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

const (
	schemaFile = "../../schema.graphqls"
	docFile    = "../../docs/schema.md"
)

func loadSDL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sections splits the reference at its "### " headings, by heading.
func sections(doc string) map[string]string {
	out := map[string]string{}
	parts := strings.Split(doc, "\n### ")
	for _, p := range parts[1:] {
		name, body, _ := strings.Cut(p, "\n")
		// A section ends where the next "## " part begins.
		body, _, _ = strings.Cut(body, "\n## ")
		out[name] = body
	}
	return out
}

// TestEverythingDocumented checks that every type of the schema has its own
// section, and every field, argument, input field, enum value and directive
// argument appears in it, and that guarded fields say what they need.
func TestEverythingDocumented(t *testing.T) {
	sdl := loadSDL(t)
	doc, err := Render("schema.graphqls", sdl)
	if err != nil {
		t.Fatal(err)
	}
	schema := gqlparser.MustLoadSchema(&ast.Source{Name: "schema.graphqls", Input: sdl})
	secs := sections(string(doc))

	types := 0
	for name, def := range schema.Types {
		if def.BuiltIn {
			continue
		}
		types++
		sec, ok := secs[name]
		if !ok {
			t.Errorf("type %s has no section", name)
			continue
		}
		if def.Description != "" && !strings.Contains(sec, strings.Join(strings.Fields(def.Description), " ")) {
			t.Errorf("%s: description missing", name)
		}
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue // introspection's own fields, on Query
			}
			line := findLine(sec, "- **`"+f.Name+"`**: ")
			if line == "" {
				t.Errorf("%s.%s is missing", name, f.Name)
				continue
			}
			if !strings.Contains(line, "`"+f.Type.String()+"`") {
				t.Errorf("%s.%s: type %s missing from %q", name, f.Name, f.Type, line)
			}
			if f.Description != "" && !strings.Contains(line, strings.Join(strings.Fields(f.Description), " ")) {
				t.Errorf("%s.%s: description missing from %q", name, f.Name, line)
			}
			if dir := f.Directives.ForName("auth"); dir != nil {
				if !strings.Contains(line, "(needs ") {
					t.Errorf("%s.%s: @auth not shown in %q", name, f.Name, line)
				}
				if req := dir.Arguments.ForName("requires"); req != nil {
					for _, s := range req.Value.Children {
						if !strings.Contains(line, "`"+s.Value.Raw+"`") {
							t.Errorf("%s.%s: scope %s not shown in %q", name, f.Name, s.Value.Raw, line)
						}
					}
				}
			}
			for _, a := range f.Arguments {
				if !strings.Contains(sec, "  - `"+a.Name+"`: ") {
					t.Errorf("%s.%s(%s) is missing", name, f.Name, a.Name)
				}
			}
		}
		for _, v := range def.EnumValues {
			if findLine(sec, "- **`"+v.Name+"`**") == "" {
				t.Errorf("%s.%s is missing", name, v.Name)
			}
		}
	}
	if types < 40 {
		t.Errorf("only %d types checked: is the schema loaded?", types)
	}

	for name, dir := range schema.Directives {
		if dir.Position == nil || dir.Position.Src.BuiltIn {
			continue
		}
		sec, ok := secs["@"+name]
		if !ok {
			t.Errorf("directive @%s has no section", name)
			continue
		}
		for _, a := range dir.Arguments {
			if findLine(sec, "- **`"+a.Name+"`**: ") == "" {
				t.Errorf("@%s(%s) is missing", name, a.Name)
			}
		}
	}

	// The plain words for the three kinds of requirement.
	for _, want := range []string{
		"- **`apiKeys`**: [`ApiKeyConnection`](#apikeyconnection) **(needs `API_KEYS_READ`)**",
		"- **`deviceHeartbeat`**: [`DeviceHeartbeatPayload`](#deviceheartbeatpayload) **(needs a device token)**",
		"- **`enrollDevice`**: [`EnrollDevicePayload`](#enrolldevicepayload) **(no credential needed)**",
		"- **`team`**: [`Team`](#team) **(needs a team API key)**",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("reference lacks %q", want)
		}
	}

	// Query and Mutation come first, in that order.
	q, m, d := strings.Index(string(doc), "\n### Query\n"), strings.Index(string(doc), "\n### Mutation\n"), strings.Index(string(doc), "\n### DateTime\n")
	if q < 0 || m < q || d < m {
		t.Errorf("sections out of order: Query at %d, Mutation at %d, DateTime at %d", q, m, d)
	}
}

func findLine(s, prefix string) string {
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// TestDeterministic renders twice and expects the same bytes: no map order
// may leak into the file.
func TestDeterministic(t *testing.T) {
	sdl := loadSDL(t)
	first, err := Render("schema.graphqls", sdl)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := Render("schema.graphqls", sdl)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatal("two renders of the same schema differ")
		}
	}
}

// TestCommittedIsCurrent fails when docs/schema.md was not regenerated after
// a change to schema.graphqls.
func TestCommittedIsCurrent(t *testing.T) {
	want, err := Render("schema.graphqls", loadSDL(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is stale: run go generate ./... (or go run ./cmd/schemadoc) and commit it", docFile)
	}
}

func TestBadSchema(t *testing.T) {
	if _, err := Render("bad.graphqls", "type Query { x: Nope }"); err == nil {
		t.Fatal("a schema naming an unknown type rendered without error")
	}
}
