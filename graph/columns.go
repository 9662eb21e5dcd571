package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// A page reads only the columns its selection needs: the fields selected
// under the connection's nodes and edges { node }, with fragments and
// @skip/@include applied, each mapped to the columns it reads. A field a
// table does not list reads every column, so a field added to the schema
// is correct before it is fast.
type fieldColumns map[string][]string

// deviceFields maps Device's fields to devices' columns.
var deviceFields = fieldColumns{
	"id": {"id"}, "name": {"name"}, "serialNumber": {"serial_number"}, "model": {"model"},
	"tags": {"tags"}, "createdAt": {"created_at"}, "lastSeenAt": {"last_seen_at"},
	"revokedAt": {"revoked_at"}, "firmwareVersion": {"firmware_version"},
	"status": {"revoked_at", "last_seen_at"},
}

// connectionNames names a connection's GraphQL types: itself, its edge and
// its node.
type connectionNames struct{ connection, edge, node string }

var deviceConnection = connectionNames{"DeviceConnection", "DeviceEdge", "Device"}

// selectedColumns returns the columns the nodes of the connection field
// resolving in ctx need, or nil for all of them.
func selectedColumns(ctx context.Context, types connectionNames, fields fieldColumns) []string {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return nil
	}
	op := graphql.GetOperationContext(ctx)
	var out []string
	all := false
	add := func(set ast.SelectionSet) {
		for _, f := range graphql.CollectFields(op, set, []string{types.node, "Node"}) {
			if f.Name == "__typename" {
				continue
			}
			cols, ok := fields[f.Name]
			if !ok {
				all = true
				return
			}
			out = append(out, cols...)
		}
	}
	for _, f := range graphql.CollectFields(op, fc.Field.Selections, []string{types.connection}) {
		switch f.Name {
		case "nodes":
			add(f.Selections)
		case "edges":
			for _, e := range graphql.CollectFields(op, f.Selections, []string{types.edge}) {
				if e.Name == "node" {
					add(e.Selections)
				}
			}
		}
	}
	if all {
		return nil
	}
	if out == nil {
		out = []string{}
	}
	return out
}
