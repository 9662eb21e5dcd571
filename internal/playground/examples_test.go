package playground

import (
	"os"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// The audit log tab reads the log newest first, and pages on into the past
// with first/after, rather than reading the last page of an oldest-first
// list.
func TestAuditTabReadsNewestFirst(t *testing.T) {
	sdl, err := os.ReadFile("../../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(sdl)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tab := range DefaultTabs {
		doc, errs := gqlparser.LoadQueryWithRules(schema, tab.Query, nil)
		if len(errs) > 0 || len(doc.Operations) != 1 || doc.Operations[0].Name != "AuditLog" {
			continue
		}
		field := auditEventsField(doc.Operations[0].SelectionSet)
		if field == nil {
			t.Fatal("the AuditLog tab does not select team.auditEvents")
		}
		order := field.Arguments.ForName("order")
		if order == nil || order.Value.Raw != "NEWEST_FIRST" {
			t.Errorf("the AuditLog tab's auditEvents has order %v, want NEWEST_FIRST", order)
		}
		for _, name := range []string{"first", "after"} {
			if field.Arguments.ForName(name) == nil {
				t.Errorf("the AuditLog tab's auditEvents does not pass %s", name)
			}
		}
		if field.Arguments.ForName("last") != nil || field.Arguments.ForName("before") != nil {
			t.Error("the AuditLog tab's auditEvents pages with last/before")
		}
		return
	}
	t.Fatal("no default tab runs AuditLog")
}

func auditEventsField(set ast.SelectionSet) *ast.Field {
	for _, sel := range set {
		f, ok := sel.(*ast.Field)
		if !ok {
			continue
		}
		if f.Name == "auditEvents" {
			return f
		}
		if found := auditEventsField(f.SelectionSet); found != nil {
			return found
		}
	}
	return nil
}
