package graph

import (
	"context"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/complexity"
	"github.com/vektah/gqlparser/v2/ast"
)

// TestEveryScalarListHasACost walks the schema: a field that returns a
// list of scalars or enums costs at least 1, so that no page of rows can
// carry lists for free.
func TestEveryScalarListHasACost(t *testing.T) {
	es := executableSchema()
	schema := es.Schema()
	found := 0
	for name, def := range schema.Types {
		if def.Kind != ast.Object || strings.HasPrefix(name, "__") {
			continue
		}
		for _, f := range def.Fields {
			if f.Type.Elem == nil {
				continue
			}
			elem := schema.Types[f.Type.Elem.Name()]
			if elem == nil || (elem.Kind != ast.Scalar && elem.Kind != ast.Enum) {
				continue
			}
			found++
			if cost, ok := es.Complexity(context.Background(), name, f.Name, 0, nil); !ok || cost < 1 {
				t.Errorf("%s.%s, a list of %s, costs %d (set: %v)", name, f.Name, elem.Name, cost, ok)
			}
		}
	}
	if found < 4 {
		t.Fatalf("found %d lists of scalars; the schema has tags, scopes and allowedCidrs", found)
	}
}

// TestScalarListsCountTowardsCost prices the requests that drew megabytes
// of tags under the old cost, where a list of scalars cost 0: 24 aliased
// pages of 100 devices, each with its tags twice, cost 9,601 and passed.
func TestScalarListsCountTowardsCost(t *testing.T) {
	o := defaultOptions(t, true)
	es := executableSchema()
	cost := func(query string) int {
		t.Helper()
		doc, errs := loadQuery(es.Schema(), query)
		if errs != nil {
			t.Fatal(errs)
		}
		return complexity.Calculate(context.Background(), es, doc.Operations[0], nil, complexity.WithFixedScalarValue(0))
	}
	page := `devices(first: 100) { nodes { tags } edges { node { tags } } }`
	var wide strings.Builder
	wide.WriteString("{ team { ")
	for i := range 24 {
		wide.WriteString("d" + string(rune('a'+i)) + ": " + page + " ")
	}
	wide.WriteString("} }")
	for _, tc := range []struct {
		name  string
		query string
		want  int
	}{
		{"a page of devices with their tags", `{ team { devices(first: 100) { nodes { id tags } } } }`, 1 + 100*(1+1+50)},
		{"a page of keys with scopes and networks", `{ team { apiKeys(first: 100) { nodes { scopes allowedCidrs } } } }`, 1 + 100*(1+1+7+50)},
		{"a page of enrollment keys with their tags", `{ team { enrollmentKeys(first: 10) { nodes { tags } } } }`, 1 + 10*(1+1+50)},
		{"the viewer's scopes", `{ viewer { scopes } }`, 1 + 7},
		{"a page of devices without tags", `{ team { devices(first: 100) { nodes { id name } } } }`, 1 + 100*(1+1)},
		{"one page with the tags twice", `{ team { ` + page + ` } }`, 1 + 100*(1+(1+50)+(1+(1+50)))},
		{"24 such pages", wide.String(), 1 + 24*100*(1+(1+50)+(1+(1+50)))},
	} {
		got := cost(tc.query)
		if got != tc.want {
			t.Errorf("%s: cost %d, want %d", tc.name, got, tc.want)
		}
		if tc.name == "24 such pages" && got <= o.MaxCost {
			t.Errorf("%s: cost %d is within the limit %d", tc.name, got, o.MaxCost)
		}
	}

	// Through the endpoint, the 24 pages are refused before anything runs.
	a := post(context.Background(), t, newTestHandler(t, true), wide.String(), nil)
	if a.code() != "QUERY_TOO_COMPLEX" || !strings.Contains(a.message(), "exceeds the limit") {
		t.Errorf("24 pages of tags: %s", a.raw)
	}
}

// TestCostIsRememberedOnlyWithoutVariables: a document sent again is
// refused again, from the remembered cost; one whose page size comes in its
// variables is measured each time, so a cheap first request does not let
// an expensive second one through.
func TestCostIsRememberedOnlyWithoutVariables(t *testing.T) {
	h := newTestHandler(t, true)
	ctx := context.Background()
	costly := `{ team { devices(first: 100) { nodes { id } } apiKeys(first: 100) { nodes { id } } members(first: 100) { nodes { id apiKeys(first: 100) { nodes { id } } } } } }`
	for range 2 {
		if a := post(ctx, t, h, costly, nil); a.code() != "QUERY_TOO_COMPLEX" {
			t.Fatalf("an operation over the cost limit answered %s: %s", a.code(), a.raw)
		}
	}
	byVariables := `query($n: Int) { team { members(first: $n) { nodes { id apiKeys(first: $n) { nodes { id } } } } } }`
	if a := post(ctx, t, h, byVariables, map[string]any{"n": 1}); a.code() == "QUERY_TOO_COMPLEX" {
		t.Fatalf("a cheap operation was refused: %s", a.raw)
	}
	if a := post(ctx, t, h, byVariables, map[string]any{"n": 100}); a.code() != "QUERY_TOO_COMPLEX" {
		t.Fatalf("the same document with a costly page size answered %s: %s", a.code(), a.raw)
	}
}
