package teams_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/domaintest"
	"github.com/keyplane/keyplane/internal/scope"
)

// TestTeamMethodsNeedKey checks that reading the team needs a team API
// key, of any scope, and renaming it MEMBERS_WRITE; a refused rename
// leaves the team as it was.
func TestTeamMethodsNeedKey(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		other, _ := fx.Other(t)
		fx.Guard(t, nil, nil, []domaintest.Call{
			{Name: "ByID no ids", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Teams.ByID(ctx, p, nil) }},
			{Name: "ByID", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Teams.ByID(ctx, p, []uuid.UUID{fx.Team.ID})
			}},
			{Name: "ByID other team", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Teams.ByID(ctx, p, []uuid.UUID{other.ID})
			}},
		})
		team := func() any {
			team, err := fx.Store.Team(context.Background(), fx.Team.ID)
			if err != nil {
				t.Fatalf("read team: %v", err)
			}
			return *team
		}
		fx.Guard(t, []scope.Scope{scope.MembersWrite}, team, []domaintest.Call{
			{Name: "Rename", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Teams.Rename(ctx, p, fx.Unique("Renamed"))
			}},
		})
	})
}

// TestFindOtherTeamIsNil checks that another team's id reads exactly like
// an unknown one, from either side, and that a device cannot read a team.
func TestFindOtherTeamIsNil(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		other, otherAdmin := fx.Other(t)
		_, device := fx.Device(t)
		lookups := []domaintest.Lookup{
			{Name: "own team", P: fx.Admin, ID: fx.Team.ID, Found: true},
			{Name: "own team, any key", P: fx.As(t, scope.AuditRead), ID: fx.Team.ID, Found: true},
			{Name: "other team", P: fx.Admin, ID: other.ID},
			{Name: "own team from the other team", P: otherAdmin, ID: fx.Team.ID},
			{Name: "other team from itself", P: otherAdmin, ID: other.ID, Found: true},
			{Name: "unknown id", P: fx.Admin, ID: uuid.New()},
			{Name: "own team from a device", P: device, ID: fx.Team.ID, Code: apperr.Forbidden},
			{Name: "no credential", ID: fx.Team.ID, Code: apperr.Unauthenticated},
		}
		domaintest.Lookups(t, fx.Teams.ByID, lookups)
	})
}
