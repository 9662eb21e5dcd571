package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/domaintest"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
)

// TestAuditPagesReadAnIndexInOrder: every page of the audit log, first or
// deep, oldest or newest first, forward or backward, is read from the
// (team_id, id) index in the page's order, with no sort: a page deep in the
// log costs what the first one does, in either order.
func TestAuditPagesReadAnIndexInOrder(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := testdb.New(t, d).Store
		team, cursor := uuid.New(), ids.New()
		for _, tc := range []struct {
			name string
			args store.PageArgs
		}{
			{"oldest first, first page", store.PageArgs{Limit: 20}},
			{"oldest first, deep page", store.PageArgs{Limit: 20, After: &cursor}},
			{"oldest first, last page", store.PageArgs{Limit: 20, Backward: true}},
			{"oldest first, before a row", store.PageArgs{Limit: 20, Backward: true, Before: &cursor}},
			{"newest first, first page", store.PageArgs{Limit: 20, Descending: true}},
			{"newest first, deep page", store.PageArgs{Limit: 20, Descending: true, After: &cursor}},
			{"newest first, last page", store.PageArgs{Limit: 20, Descending: true, Backward: true}},
			{"newest first, before a row", store.PageArgs{Limit: 20, Descending: true, Backward: true, Before: &cursor}},
		} {
			plan, err := s.AuditPagePlan(t.Context(), team, store.AuditFilter{}, tc.args)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			sorts := strings.Contains(plan, "Sort") || strings.Contains(plan, "TEMP B-TREE")
			if sorts || !strings.Contains(plan, "audit_events_team_id_id") {
				t.Errorf("%s is not read from audit_events_team_id_id in order:\n%s", tc.name, plan)
			}
			if testing.Verbose() {
				t.Logf("%s:\n%s", tc.name, plan)
			}
		}
	})
}

// TestPageReadsOnlyItsColumns: a page asked for some columns leaves the
// others zero (they were not read), always reads the key columns, and
// reads everything for a name the row does not have.
func TestPageReadsOnlyItsColumns(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		s, teamID := fx.Store, fx.Team.ID
		fx.Device(t)
		read := func(columns []string) store.Device {
			t.Helper()
			page, err := s.ListDevices(t.Context(), teamID, store.DeviceFilter{}, store.PageArgs{Limit: 5, Columns: columns}, time.Now(), time.Minute)
			if err != nil || len(page.Items) == 0 {
				t.Fatalf("page: %v", err)
			}
			return page.Items[0]
		}
		some := read([]string{"name"})
		if some.ID == uuid.Nil || some.TeamID != teamID || some.Name == "" {
			t.Fatalf("the key columns and name were not read: %+v", some)
		}
		if some.SerialNumber != "" || !some.CreatedAt.IsZero() || some.TokenHash != nil {
			t.Fatalf("columns not asked for were read: %+v", some)
		}
		if every := read([]string{"name", "no_such_column"}); every.SerialNumber == "" || every.CreatedAt.IsZero() {
			t.Fatalf("an unknown name did not read every column: %+v", every)
		}
		if every := read(nil); every.SerialNumber == "" || every.CreatedAt.IsZero() {
			t.Fatalf("nil did not read every column: %+v", every)
		}
	})
}
