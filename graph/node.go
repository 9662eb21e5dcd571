package graph

import (
	"context"

	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/scope"
)

// maxNodes bounds one nodes(ids:) call.
const maxNodes = 100

// nodeScope is the scope each type of object needs through node and nodes,
// the same one its list needs. The check depends only on the id's type, so a
// FORBIDDEN never says whether the object exists.
var nodeScope = map[ids.Kind][]scope.Scope{
	ids.Team:          nil,
	ids.APIKey:        {scope.APIKeysRead},
	ids.Device:        {scope.DevicesRead},
	ids.EnrollmentKey: {scope.DevicesRead},
	ids.Member:        {scope.MembersRead},
	ids.AuditEvent:    {scope.AuditRead},
}

// node fetches one of the caller's team's objects; an unknown or foreign id
// reads as null, exactly alike.
func (r *queryResolver) node(ctx context.Context, id string) (model.Node, error) {
	kind, u, err := ids.Decode(id)
	if err != nil {
		return nil, apperr.Input("id", "id is not a global id returned by this API")
	}
	scopes, served := nodeScope[kind]
	if !served {
		return nil, nil
	}
	p, err := auth.Require(ctx, scopes...)
	if err != nil {
		return nil, err
	}
	switch kind {
	case ids.Team:
		if u != p.TeamID {
			return nil, nil
		}
		return orNil(r.teams.Get(ctx, p))
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
