package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
)

// hotTeam returns the team a key belongs to.
func hotTeam(t testing.TB, database *testdb.Database, key string) uuid.UUID {
	t.Helper()
	p, err := auth.NewAuthenticator(database.Store, nil).Authenticate(context.Background(), key, auth.Client{IP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return p.TeamID
}

// hotSeed gives the env's team n devices, written straight to the store.
func hotSeed(t testing.TB, database *testdb.Database, teamID uuid.UUID, n int) {
	t.Helper()
	fleet := make([]store.Device, n)
	now := store.Now()
	for i := range fleet {
		fleet[i] = store.Device{ID: ids.New(), TeamID: teamID, Name: fmt.Sprintf("device-%03d", i),
			SerialNumber: fmt.Sprintf("SN-%03d", i), Version: 1, CreatedAt: now, UpdatedAt: now}
	}
	if err := database.Store.CreateDevices(context.Background(), fleet); err != nil {
		t.Fatal(err)
	}
}

// TestHotPathStatements pins the work of the request backends send all
// day: one statement authenticates the key, one reads the page. The count
// grows neither with the page size nor with the connections selected
// (one statement each), and totalCount costs a COUNT only when asked for.
func TestHotPathStatements(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		hotSeed(t, e.db, hotTeam(t, e.db, e.admin), 120)

		statements := func(query string, vars map[string]any) int64 {
			t.Helper()
			before := e.db.Statements()
			r := e.gql(e.admin, query, vars)
			if r.Status != 200 || len(r.Errors) > 0 {
				t.Fatalf("%s: status %d, errors %v", query, r.Status, r.Errors)
			}
			return e.db.Statements() - before
		}
		const page = `query($n: Int!) { team { devices(first: $n) { nodes { id name } } } }`
		for _, n := range []int{1, 20, 100} {
			if got := statements(page, map[string]any{"n": n}); got != 2 {
				t.Errorf("a page of %d devices: %d SQL statements, want 2 (the key, the page)", n, got)
			}
		}
		deep := e.gql(e.admin, `{ team { devices(first: 100) { pageInfo { endCursor } } } }`, nil).str("team.devices.pageInfo.endCursor")
		if got := statements(`query($c: String!) { team { devices(first: 20, after: $c) { nodes { id } } } }`, map[string]any{"c": deep}); got != 2 {
			t.Errorf("a page after 100 rows: %d SQL statements, want 2", got)
		}
		if got := statements(`{ team { devices(first: 20) { totalCount nodes { id } } } }`, nil); got != 3 {
			t.Errorf("a page with totalCount: %d SQL statements, want 3 (the key, the page, the count)", got)
		}
		if got := statements(`{ team { devices(first: 100) { nodes { id } } apiKeys(first: 100) { nodes { id } } members(first: 100) { nodes { id } } } }`, nil); got != 4 {
			t.Errorf("three connections: %d SQL statements, want 4 (the key, one per connection)", got)
		}
	})
}
