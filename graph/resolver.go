// Package graph is the GraphQL edge: thin resolvers that read the caller from
// the context, call a domain service and map its result.
package graph

import (
	"time"

	"github.com/keyplane/keyplane/internal/apikeys"
	"github.com/keyplane/keyplane/internal/audit"
	"github.com/keyplane/keyplane/internal/devices"
	"github.com/keyplane/keyplane/internal/live"
	"github.com/keyplane/keyplane/internal/members"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
)

// Resolver holds the domain services, the resolvers' only way to data:
// each service checks the caller's scopes itself.
type Resolver struct {
	apiKeys  *apikeys.Service
	teams    *teams.Service
	auditLog *audit.Log
	devices  *devices.Service
	members  *members.Service
	// live serves the subscriptions; nil where they are not served.
	live *live.Hub
}

// NewResolver wires the domain services on one store, and the live events
// of hub. onlineWindow is how recently a device must have been seen to be
// ONLINE.
func NewResolver(s *store.Store, onlineWindow time.Duration, hub *live.Hub) *Resolver {
	return &Resolver{
		apiKeys: apikeys.NewService(s), teams: teams.NewService(s), auditLog: audit.NewLog(s),
		devices: devices.NewService(s, onlineWindow), members: members.NewService(s), live: hub,
	}
}
