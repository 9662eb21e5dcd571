package graph

import (
	"context"

	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/ids"
)

// maxNodes bounds one nodes(ids:) call.
const maxNodes = 100

// node fetches one of the caller's team's objects through the service of
// its type, which checks the caller's scope for that type before it reads:
// a FORBIDDEN depends only on the id's type, never on whether the object
// exists. An unknown or foreign id reads as null, exactly alike.
func (r *queryResolver) node(ctx context.Context, id string) (model.Node, error) {
	kind, u, err := ids.Decode(id)
	if err != nil {
		return nil, apperr.Input("id", "id is not a global id returned by this API")
	}
	p := caller(ctx)
	switch kind {
	case ids.Team:
		return orNil(r.teams.Find(ctx, p, u))
	case ids.APIKey:
		return orNil(r.apiKeys.Find(ctx, p, u))
	case ids.Device:
		return orNil(r.devices.Find(ctx, p, u))
	case ids.EnrollmentKey:
		return orNil(r.devices.FindKey(ctx, p, u))
	case ids.Member:
		return orNil(r.members.Find(ctx, p, u))
	case ids.AuditEvent:
		return orNil(r.auditLog.Find(ctx, p, u))
	}
	return nil, nil
}

// nodes fetches several objects, in the order asked.
func (r *queryResolver) nodes(ctx context.Context, list []string) ([]model.Node, error) {
	if len(list) > maxNodes {
		return nil, apperr.Input("ids", "ids takes at most %d ids", maxNodes)
	}
	out := make([]model.Node, len(list))
	for i, id := range list {
		n, err := r.node(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// orNil turns a nil pointer into a nil Node, so that gqlgen writes null
// rather than an object with no fields.
func orNil[T any](v *T, err error) (model.Node, error) {
	if err != nil || v == nil {
		return nil, err
	}
	return v, nil
}
