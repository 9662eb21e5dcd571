package graph_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/graph"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
)

// TestErrorPresenterMapsStoreErrors drives the store into each of its
// sentinels on a real database and checks what a client would see: the
// contract's code and the store's own text, whatever wraps it; a driver
// failure shows as INTERNAL without its text.
func TestErrorPresenterMapsStoreErrors(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		st := testdb.New(t, d).Store
		ctx := context.Background()
		now := store.Now()
		team := &store.Team{ID: uuid.Must(uuid.NewV7()), Name: "acme", CreatedAt: now, UpdatedAt: now}
		if err := st.CreateTeam(ctx, team); err != nil {
			t.Fatalf("create team: %v", err)
		}
		key := &store.APIKey{ID: uuid.Must(uuid.NewV7()), TeamID: team.ID, Name: "k", Scopes: "*",
			SecretHash: make([]byte, 32), Version: 1, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateAPIKey(ctx, key); err != nil {
			t.Fatalf("create key: %v", err)
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()

		for _, tc := range []struct {
			name    string
			err     func() error
			code    string
			message string
		}{
			{name: "not found", code: "NOT_FOUND", message: "api key not found", err: func() error {
				_, err := st.APIKey(ctx, team.ID, uuid.Must(uuid.NewV7()))
				return err
			}},
			{name: "not found, wrapped on its way up", code: "NOT_FOUND", message: "api key not found", err: func() error {
				_, err := st.APIKey(ctx, team.ID, uuid.Must(uuid.NewV7()))
				return fmt.Errorf("reading the key to update: %w", err)
			}},
			{name: "duplicate", code: "CONFLICT", message: "team already exists", err: func() error {
				return st.CreateTeam(ctx, &store.Team{ID: team.ID, Name: "again", CreatedAt: now, UpdatedAt: now})
			}},
			{name: "lost race", code: "CONFLICT", message: "api key changed meanwhile; read it again and retry", err: func() error {
				old := *key
				old.Version = 0
				return st.RotateAPIKeySecret(ctx, &old, store.SecretChange{SecretHash: make([]byte, 32), RotatedAt: time.Now()})
			}},
			{name: "driver failure", code: "INTERNAL", err: func() error {
				_, err := st.APIKey(canceled, team.ID, key.ID)
				return err
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.err()
				if err == nil {
					t.Fatal("no error")
				}
				var logged bytes.Buffer
				got := graph.ErrorPresenter(slog.New(slog.NewTextHandler(&logged, nil)))(ctx, err)
				if code := got.Extensions["code"]; code != tc.code {
					t.Fatalf("code %v, want %s (%v)", code, tc.code, err)
				}
				if tc.message != "" && got.Message != tc.message {
					t.Fatalf("message %q, want %q", got.Message, tc.message)
				}
				if tc.code == "INTERNAL" && (strings.Contains(got.Message, "context") || logged.Len() == 0) {
					t.Fatalf("INTERNAL shows %q and logs %q", got.Message, logged.String())
				}
			})
		}
	})
}
