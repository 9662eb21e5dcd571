package teams_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/domaintest"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
)

// TestTeamMethodsNeedKey checks that reading the team needs a team API
// key, of any scope, and renaming it MEMBERS_WRITE; a refused rename
// leaves the team as it was.
func TestTeamMethodsNeedKey(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		other, _ := fx.Other(t)
		fx.Guard(t, nil, nil, []domaintest.Call{
			{Name: "Get", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Teams.Get(ctx, p) }},
			{Name: "Find", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Teams.Find(ctx, p, fx.Team.ID) }},
			{Name: "Find other team", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Teams.Find(ctx, p, other.ID) }},
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
// an unknown one, from either side.
func TestFindOtherTeamIsNil(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		other, otherAdmin := fx.Other(t)
		for _, tc := range []struct {
			name  string
			p     *auth.Principal
			id    uuid.UUID
			found *store.Team
		}{
			{"own team", fx.Admin, fx.Team.ID, fx.Team},
			{"other team", fx.Admin, other.ID, nil},
			{"own team from the other team", otherAdmin, fx.Team.ID, nil},
			{"unknown id", fx.Admin, uuid.New(), nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				team, err := fx.Teams.Find(t.Context(), tc.p, tc.id)
				domaintest.WantCode(t, err, "")
				if (team == nil) != (tc.found == nil) || team != nil && team.ID != tc.found.ID {
					t.Fatalf("found %+v, want %+v", team, tc.found)
				}
			})
		}
	})
}
