package e2e

import (
	"encoding/json"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// TestPagesReadWhatTheySelect: a devices page reads only the columns its
// selection needs, and each field, selected alone, by a fragment, under
// edges or skipped, answers what it answers in a page that reads them all.
func TestPagesReadWhatTheySelect(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		r := e.ok(e.admin, `mutation { createDevice(input: {name: "pump", serialNumber: "SN-1", model: "P1", tags: ["a", "b"]}) { token device { id } } }`, nil)
		e.ok(r.str("createDevice.token"), `mutation { deviceHeartbeat(input: {firmwareVersion: "1.2.3"}) { device { id } } }`, nil)
		e.ok(e.admin, `mutation { createDevice(input: {name: "idle", serialNumber: "SN-2"}) { device { id } } }`, nil)
		var fields []string
		for _, f := range e.ok(e.admin, `{ __type(name: "Device") { fields { name } } }`, nil).list("__type.fields") {
			fields = append(fields, f.(map[string]any)["name"].(string))
		}
		all := "id"
		for _, f := range fields {
			all += " " + f
		}
		full := e.ok(e.admin, `{ team { devices { nodes { `+all+` } } } }`, nil).list("team.devices.nodes")
		if len(fields) < 10 || len(full) != 2 {
			t.Fatalf("%d fields of Device, %d devices", len(fields), len(full))
		}
		for _, f := range fields {
			want := make([]any, len(full))
			for i, n := range full {
				want[i] = n.(map[string]any)[f]
			}
			shapes := map[string]string{
				"alone":    `{ team { devices { nodes { ` + f + ` } } } }`,
				"fragment": `{ team { devices { nodes { ...F } } } } fragment F on Device { ` + f + ` }`,
				"inline":   `{ team { devices { nodes { ... on Node { id } ... on Device { ` + f + ` } } } } }`,
			}
			for shape, q := range shapes {
				got := e.ok(e.admin, q, nil).list("team.devices.nodes")
				for i, n := range got {
					if !same(n.(map[string]any)[f], want[i]) {
						t.Errorf("%s %s: device %d reads %v, want %v", f, shape, i, n.(map[string]any)[f], want[i])
					}
				}
			}
			edges := e.ok(e.admin, `{ team { devices { edges { cursor node { `+f+` } } nodes @skip(if: true) { name } } } }`, nil).list("team.devices.edges")
			for i, edge := range edges {
				if v := edge.(map[string]any)["node"].(map[string]any)[f]; !same(v, want[i]) {
					t.Errorf("%s under edges: device %d reads %v, want %v", f, i, v, want[i])
				}
			}
		}
	})
}

// same compares two decoded JSON values.
func same(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
