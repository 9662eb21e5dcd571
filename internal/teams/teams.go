// Package teams holds the team itself: reading and renaming it, and
// bootstrapping a new one with its first key.
package teams

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apikeys"
	"github.com/keyplane/keyplane/internal/audit"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/validate"
)

// DefaultKeyName names the first key of a bootstrapped team.
const DefaultKeyName = "admin"

// Service carries out the team's reads and mutations.
type Service struct {
	store *store.Store
}

// NewService returns a Service on s.
func NewService(s *store.Store) *Service { return &Service{store: s} }

// ByID reads the caller's team if ids name it, for nodes(ids:): other
// teams' ids read exactly like unknown ones. With no ids it only checks
// the caller is a team's key.
func (s *Service) ByID(ctx context.Context, actor *auth.Principal, ids []uuid.UUID) ([]store.Team, error) {
	if err := actor.Need(); err != nil || !slices.Contains(ids, actor.TeamID) {
		return nil, err
	}
	t, err := s.store.Team(ctx, actor.TeamID)
	if err != nil {
		return nil, err
	}
	return []store.Team{*t}, nil
}

// Rename sets the caller's team's name.
func (s *Service) Rename(ctx context.Context, actor *auth.Principal, name string) (*store.Team, error) {
	if err := actor.Need(scope.MembersWrite); err != nil {
		return nil, err
	}
	if err := validate.Name("name", name); err != nil {
		return nil, err
	}
	return auth.InTx(ctx, s.store, actor, func(tx *store.Store, actor *auth.Principal) (*store.Team, error) {
		if err := actor.Need(scope.MembersWrite); err != nil {
			return nil, err
		}
		if err := tx.RenameTeam(ctx, actor.TeamID, name, store.Now()); err != nil {
			return nil, err
		}
		if err := audit.Record(ctx, tx, actor.TeamID, actor, audit.TeamUpdate, ids.Encode(ids.Team, actor.TeamID)); err != nil {
			return nil, err
		}
		return tx.Team(ctx, actor.TeamID)
	})
}

// Bootstrap creates a team and its first key, holding every scope, in one
// transaction. The key's secret is in the result and nowhere else.
func (s *Service) Bootstrap(ctx context.Context, teamName, keyName string) (*store.Team, apikeys.Issued, error) {
	return s.bootstrap(ctx, teamName, keyName, false, nil)
}

// BootstrapFirst is Bootstrap for a first start: it creates nothing, and
// returns a nil team, when the database already holds a team.
func (s *Service) BootstrapFirst(ctx context.Context, teamName, keyName string) (*store.Team, apikeys.Issued, error) {
	return s.bootstrap(ctx, teamName, keyName, true, nil)
}

// BootstrapFirstWith is BootstrapFirst that hands the key over before it
// commits: deliver runs inside the transaction, once the team and its key
// are written, and when it fails nothing is committed. A key that could not
// be handed over (to a file, say) therefore never exists, and the next start
// tries again. deliver is not called when the database already holds a team.
func (s *Service) BootstrapFirstWith(ctx context.Context, teamName, keyName string, deliver func(apikeys.Issued) error) (*store.Team, apikeys.Issued, error) {
	return s.bootstrap(ctx, teamName, keyName, true, deliver)
}

func (s *Service) bootstrap(ctx context.Context, teamName, keyName string, onlyFirst bool, deliver func(apikeys.Issued) error) (*store.Team, apikeys.Issued, error) {
	if err := validate.Name("team", teamName); err != nil {
		return nil, apikeys.Issued{}, err
	}
	if keyName == "" {
		keyName = DefaultKeyName
	}
	if err := validate.Name("key-name", keyName); err != nil {
		return nil, apikeys.Issued{}, err
	}
	now := store.Now()
	team := &store.Team{ID: ids.New(), Name: teamName, CreatedAt: now, UpdatedAt: now}
	issued, err := apikeys.NewKey(team.ID, keyName, scope.Wildcard, nil)
	if err != nil {
		return nil, apikeys.Issued{}, err
	}
	created := true
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		if onlyFirst {
			if err := tx.LockTeamsForBootstrap(ctx); err != nil {
				return err
			}
			exists, err := tx.HasTeams(ctx)
			if err != nil || exists {
				created = false
				return err
			}
		}
		if err := tx.CreateTeam(ctx, team); err != nil {
			return err
		}
		if err := tx.CreateAPIKey(ctx, issued.Key); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, team.ID, nil, audit.TeamCreate, ids.Encode(ids.Team, team.ID)); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, team.ID, nil, audit.APIKeyCreate, ids.Encode(ids.APIKey, issued.Key.ID)); err != nil {
			return err
		}
		if deliver != nil {
			return deliver(issued)
		}
		return nil
	})
	if err != nil || !created {
		return nil, apikeys.Issued{}, err
	}
	return team, issued, nil
}
