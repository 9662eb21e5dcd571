package graph

import (
	"context"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
)

// maxNodes bounds one nodes(ids:) call.
const maxNodes = 100

// node fetches one of the caller's team's objects, as nodes does.
func (r *queryResolver) node(ctx context.Context, id string) (model.Node, error) {
	out, err := r.nodes(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// nodes fetches several of the caller's team's objects, in the order asked,
// with one statement per type in the list at most: the ids are grouped by
// type, and each group is one call to the domain service's read by ids,
// which checks the caller's scope for that type before it reads. Rows go
// through the operation's cache, so that aliases asking for the same ids
// read them once.
//
// Every id is decoded, and the caller's scope checked for each type, before
// anything is read. A FORBIDDEN thus depends only on the types of the ids,
// never on whether the objects exist; an unknown or foreign id reads as
// null, exactly alike.
func (r *queryResolver) nodes(ctx context.Context, list []string) ([]model.Node, error) {
	if len(list) > maxNodes {
		return nil, apperr.Input("ids", "ids takes at most %d ids", maxNodes)
	}
	type group struct {
		read nodeReader
		at   []int        // positions in list
		ids  []*uuid.UUID // the ids at those positions
	}
	var groups []*group
	byKind := map[ids.Kind]*group{}
	uuids := make([]uuid.UUID, len(list))
	for i, id := range list {
		kind, u, err := ids.Decode(id)
		if err != nil {
			return nil, apperr.Input("id", "id is not a global id returned by this API")
		}
		g := byKind[kind]
		if g == nil {
			g = &group{read: r.nodeReader(ctx, kind)}
			// No ids: the service only checks the caller may read the type.
			if _, err := g.read(ctx, nil); err != nil {
				return nil, err
			}
			byKind[kind] = g
			groups = append(groups, g)
		}
		uuids[i] = u
		g.at = append(g.at, i)
		g.ids = append(g.ids, &uuids[i])
	}
	out := make([]model.Node, len(list))
	for _, g := range groups {
		found, err := g.read(ctx, g.ids)
		if err != nil {
			return nil, err
		}
		for j, i := range g.at {
			out[i] = found[j]
		}
	}
	return out, nil
}

// nodeReader reads objects of one type by id for nodes: one entry per id,
// nil where the caller's team holds no such object.
type nodeReader func(ctx context.Context, ids []*uuid.UUID) ([]model.Node, error)

// nodeReader returns the reader of a type's objects through the service of
// that type.
func (r *Resolver) nodeReader(ctx context.Context, kind ids.Kind) nodeReader {
	switch kind {
	case ids.Team:
		return readNodes(r.teamsByID(ctx), teamID)
	case ids.APIKey:
		return readNodes(r.keysByID(ctx), keyID)
	case ids.Device:
		return readNodes(r.devicesByID(ctx), deviceID)
	case ids.EnrollmentKey:
		return readNodes(r.enrollmentKeysByID(ctx), enrollmentKeyID)
	case ids.Member:
		return readNodes(r.membersByID(ctx), memberID)
	case ids.AuditEvent:
		return readNodes(r.auditEventsByID(ctx), auditEventID)
	}
	// A kind ids.Decode knows but no Node type has: nothing to read.
	return func(_ context.Context, ids []*uuid.UUID) ([]model.Node, error) {
		return make([]model.Node, len(ids)), nil
	}
}

// readNodes makes a nodeReader of a service's read by ids.
func readNodes[T any](fetch func(context.Context, []uuid.UUID) ([]T, error), id func(*T) uuid.UUID) nodeReader {
	return func(ctx context.Context, want []*uuid.UUID) ([]model.Node, error) {
		rows, err := related(ctx, want, func(u *uuid.UUID) *uuid.UUID { return u }, fetch, id)
		if err != nil {
			return nil, err
		}
		out := make([]model.Node, len(rows))
		for i, row := range rows {
			if row != nil { // a nil *T would be an object with no fields, not null
				out[i] = row
			}
		}
		return out, nil
	}
}

func teamID(t *store.Team) uuid.UUID                   { return t.ID }
func enrollmentKeyID(k *store.EnrollmentKey) uuid.UUID { return k.ID }
func auditEventID(e *store.AuditEvent) uuid.UUID       { return e.ID }
