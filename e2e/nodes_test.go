package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

// nodesFixture is a team with objects of three types, 100 in all, and
// another team's objects of the same types.
type nodesFixture struct {
	devices, keys, members []string // the team's own ids, by type
	foreign                []string // the other team's device, key and member
}

// all returns the team's 100 ids, the types interleaved.
func (f nodesFixture) all() []string {
	var out []string
	for i := 0; len(out) < 100; i++ {
		for _, list := range [][]string{f.devices, f.keys, f.members} {
			if i < len(list) && len(out) < 100 {
				out = append(out, list[i])
			}
		}
	}
	return out
}

func newNodesFixture(e *env) nodesFixture {
	e.t.Helper()
	var f nodesFixture
	hotSeed(e.t, e.db, hotTeam(e.t, e.db, e.admin), 34)
	r := e.ok(e.admin, `{ team { devices(first: 100) { nodes { id } } } }`, nil)
	f.devices = pluck(r.list("team.devices.nodes"), "id")
	for i := range 33 {
		id, _ := e.newKey(e.admin, fmt.Sprintf("key %d", i))
		f.keys = append(f.keys, id)
	}
	for i := range 33 {
		r := e.ok(e.admin, hoAddMember, hoIn(map[string]any{"email": fmt.Sprintf("m%d@example.com", i), "role": "VIEWER"}))
		f.members = append(f.members, r.str("addMember.member.id"))
	}
	if len(f.devices) != 34 || len(f.keys) != 33 || len(f.members) != 33 {
		e.t.Fatalf("fixture: %d devices, %d keys, %d members", len(f.devices), len(f.keys), len(f.members))
	}
	other := e.bootstrap("Globex")
	dev := e.ok(other, hoCreateDevice, hoIn(map[string]any{"name": "theirs", "serialNumber": "SN-G"})).str("createDevice.device.id")
	key, _ := e.newKey(other, "theirs")
	mem := e.ok(other, hoAddMember, hoIn(map[string]any{"email": "g@example.com", "role": "VIEWER"})).str("addMember.member.id")
	f.foreign = []string{dev, key, mem}
	return f
}

// nodesStatements sends a query that must succeed and returns how many SQL
// statements it cost, the key's lookup included.
func nodesStatements(e *env, key, query string, vars map[string]any) (int64, *response) {
	e.t.Helper()
	before := e.db.Statements()
	r := e.gql(key, query, vars)
	n := e.db.Statements() - before
	if r.Status != 200 || len(r.Errors) > 0 {
		e.t.Fatalf("%.80s: %d %.500s", query, r.Status, r.Raw)
	}
	return n, r
}

// TestNodesReadsEachTypeOnce pins nodes(ids:) at one statement per object
// type in the list, whatever the number of ids, with the answer in the
// order asked and null for what the caller's team does not hold.
func TestNodesReadsEachTypeOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		f := newNodesFixture(e)
		const nodes = `query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }`

		t.Run("100 ids of three types", func(t *testing.T) {
			e := e.sub(t)
			want := f.all()
			n, r := nodesStatements(e, e.admin, nodes, map[string]any{"ids": want})
			if got := pluck(r.list("nodes"), "id"); !slices.Equal(got, want) {
				t.Fatalf("nodes answered %v, want the ids in the order asked", got)
			}
			t.Logf("100 ids of three types: %d SQL statements", n)
			// One statement looks up the key, then one per type.
			if n > 1+3 {
				t.Errorf("100 ids of three types cost %d SQL statements, want at most 4 (the key, one per type)", n)
			}
		})

		t.Run("order, repeats, nulls and foreign ids", func(t *testing.T) {
			e := e.sub(t)
			unknown := ids.Encode(ids.Device, ids.New())
			// A device's UUID under the key prefix names no key.
			disguised := ids.Encode(ids.APIKey, uuidOf(t, ids.Device, f.devices[1]))
			asked := []string{f.members[0], f.foreign[0], f.devices[0], unknown, f.keys[0], f.foreign[1],
				f.devices[0], disguised, f.foreign[2], f.devices[1], f.keys[0]}
			want := []string{f.members[0], "", f.devices[0], "", f.keys[0], "", f.devices[0], "", "", f.devices[1], f.keys[0]}
			n, r := nodesStatements(e, e.admin, nodes, map[string]any{"ids": asked})
			list := r.list("nodes")
			if got := pluck(list, "id"); !slices.Equal(got, want) {
				t.Fatalf("nodes answered %v, want %v", got, want)
			}
			for i, id := range want {
				if id == "" && list[i] != nil {
					t.Errorf("nodes[%d] = %v, want null", i, list[i])
				}
			}
			if types := pluck(list, "__typename"); types[0] != "Member" || types[2] != "Device" || types[4] != "ApiKey" {
				t.Errorf("types %v", types)
			}
			if n > 1+3 {
				t.Errorf("%d SQL statements, want at most 4", n)
			}
		})

		t.Run("every type", func(t *testing.T) {
			e := e.sub(t)
			me := e.ok(e.admin, `{ team { id enrollmentKeys(first: 1) { nodes { id } } auditEvents(first: 1) { nodes { id } } } }`, nil)
			team, event := me.str("team.id"), pluck(me.list("team.auditEvents.nodes"), "id")[0]
			enr := e.ok(e.admin, hoCreateEnr, hoIn(map[string]any{"description": "nodes"})).str("createEnrollmentKey.enrollmentKey.id")
			asked := []string{event, team, enr, f.devices[2], f.keys[2], f.members[2], team, enr, event}
			n, r := nodesStatements(e, e.admin, nodes, map[string]any{"ids": asked})
			if got := pluck(r.list("nodes"), "id"); !slices.Equal(got, asked) {
				t.Fatalf("nodes answered %v, want %v", got, asked)
			}
			t.Logf("ids of all six types: %d SQL statements", n)
			if n > 1+6 {
				t.Errorf("six types cost %d SQL statements, want at most 7", n)
			}
		})

		t.Run("a type the key may not read refuses the field", func(t *testing.T) {
			e := e.sub(t)
			_, devicesOnly := e.newKey(e.admin, "devices only", "DEVICES_READ")
			for _, asked := range [][]string{
				{f.devices[0], f.keys[0]},
				{f.keys[0], f.devices[0]},
				{f.devices[0], ids.Encode(ids.APIKey, ids.New())}, // an unknown key: the same refusal
				{f.devices[0], f.foreign[1]},                      // another team's key: the same refusal
			} {
				r := e.gql(devicesOnly, nodes, map[string]any{"ids": asked})
				if !forbiddenAt(r, "nodes", "API_KEYS_READ") || r.get("nodes") != nil {
					t.Errorf("nodes %v without API_KEYS_READ: %s", asked, r.Raw)
				}
				if strings.Contains(string(r.Raw), f.devices[0]) {
					t.Errorf("the refused field shows a device: %s", r.Raw)
				}
			}
			if got := pluck(e.ok(devicesOnly, nodes, map[string]any{"ids": f.devices[:3]}).list("nodes"), "id"); !slices.Equal(got, f.devices[:3]) {
				t.Errorf("devices with DEVICES_READ: %v", got)
			}
		})

		t.Run("30 aliases of 100 ids", func(t *testing.T) {
			e := e.sub(t)
			var q strings.Builder
			q.WriteString("query($ids: [ID!]!) {")
			for i := range 30 {
				fmt.Fprintf(&q, " a%d: nodes(ids: $ids) { id }", i)
			}
			q.WriteString(" }")
			n, r := nodesStatements(e, e.admin, q.String(), map[string]any{"ids": f.all()})
			if got := len(r.list("a29")); got != 100 {
				t.Fatalf("a29 holds %d nodes", got)
			}
			t.Logf("30 aliases of the same 100 ids of three types: %d SQL statements", n)
			if n > 1+3 {
				t.Errorf("30 aliases of the same 100 ids cost %d SQL statements, want at most 4: the operation reads each row once", n)
			}

			// Different ids in every alias: one statement per type per alias.
			var vars strings.Builder
			args := map[string]any{}
			q.Reset()
			for i := range 30 {
				fmt.Fprintf(&vars, "$i%d: [ID!]!, ", i)
				fmt.Fprintf(&q, " a%d: nodes(ids: $i%d) { id }", i, i)
				list := make([]string, 100)
				for j := range list {
					list[j] = ids.Encode([]ids.Kind{ids.Device, ids.APIKey, ids.Member}[j%3], ids.New())
				}
				args[fmt.Sprintf("i%d", i)] = list
			}
			n, _ = nodesStatements(e, e.admin, "query("+strings.TrimSuffix(vars.String(), ", ")+") {"+q.String()+" }", args)
			t.Logf("30 aliases of 100 distinct ids each, three types: %d SQL statements", n)
			if n > 1+30*3 {
				t.Errorf("30 aliases of 100 distinct ids cost %d SQL statements, want at most %d", n, 1+30*3)
			}
		})
	})
}
