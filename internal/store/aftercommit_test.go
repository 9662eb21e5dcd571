package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
)

// TestAfterCommit: what a transaction defers runs once it commits, in
// order, and never when it, or the savepoint that deferred it, rolls back.
func TestAfterCommit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := testdb.New(t, d).Store
		ctx := context.Background()
		var ran []string
		note := func(what string) func() { return func() { ran = append(ran, what) } }
		boom := errors.New("boom")

		s.AfterCommit(note("outside"))
		err := s.InTx(ctx, func(tx *store.Store) error {
			tx.AfterCommit(note("outer"))
			if len(ran) != 1 {
				t.Errorf("ran %v before the commit", ran)
			}
			_ = tx.InTx(ctx, func(sp *store.Store) error {
				sp.AfterCommit(note("savepoint rolled back"))
				return boom
			})
			return tx.InTx(ctx, func(sp *store.Store) error {
				sp.AfterCommit(note("savepoint kept"))
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Store) error {
			tx.AfterCommit(note("rolled back"))
			return boom
		}); !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if want := []string{"outside", "outer", "savepoint kept"}; !slices.Equal(ran, want) {
			t.Errorf("ran %v, want %v", ran, want)
		}
	})
}
