package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
)

// TestDeadlineKeepsASoonerOne: a call inside a transaction keeps the
// transaction's deadline instead of starting a fresh one.
func TestDeadlineKeepsASoonerOne(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ctx, release := db.Deadline(parent, time.Minute)
	defer release()
	if ctx != parent {
		t.Fatal("a sooner deadline was replaced")
	}
	ctx, release = db.Deadline(context.Background(), time.Second)
	defer release()
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("no deadline added")
	}
	ctx, release = db.Deadline(context.Background(), 0)
	defer release()
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("a deadline added with no timeout")
	}
}

// TestTransactionHasOneDeadline: a transaction's statements all run under
// the deadline set when it began, not one each; once it passes, the next
// statement fails, a commit fails, and nothing the transaction wrote stays.
func TestTransactionHasOneDeadline(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		const timeout = 300 * time.Millisecond
		s := testdb.NewWithTimeout(t, d, timeout).Store
		ctx := context.Background()
		team := func(name string) *store.Team {
			now := store.Now()
			return &store.Team{ID: ids.New(), Name: name, CreatedAt: now, UpdatedAt: now}
		}
		// Each statement alone is quick; the transaction as a whole is not.
		err := s.InTx(ctx, func(tx *store.Store) error {
			if err := tx.CreateTeam(ctx, team("early")); err != nil {
				return err
			}
			time.Sleep(timeout + 100*time.Millisecond)
			return tx.CreateTeam(ctx, team("late"))
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("statement past the transaction's deadline: %v, want context.DeadlineExceeded", err)
		}
		// A transaction whose work ends past the deadline does not commit.
		err = s.InTx(ctx, func(tx *store.Store) error {
			if err := tx.CreateTeam(ctx, team("uncommitted")); err != nil {
				return err
			}
			time.Sleep(timeout + 100*time.Millisecond)
			return nil
		})
		if err == nil {
			t.Error("a transaction past its deadline committed")
		}
		n, err := s.CountForTest(ctx, "teams", "")
		if err != nil || n != 0 {
			t.Fatalf("teams after the late transactions: %d, %v; want none", n, err)
		}
		// The store works again at once.
		if err := s.InTx(ctx, func(tx *store.Store) error { return tx.CreateTeam(ctx, team("on time")) }); err != nil {
			t.Fatalf("a quick transaction: %v", err)
		}
	})
}

// TestPostgresDeadlines: each connection carries statement_timeout, and a
// call waiting for a pooled connection gives up at its deadline, on the
// GORM path and on the direct pgx path alike.
func TestPostgresDeadlines(t *testing.T) {
	if len(testdb.Dialects(t)) < 2 {
		t.Skip("PostgreSQL does not answer")
	}
	ctx := context.Background()
	url := testdb.New(t, db.Postgres).URL
	d, err := db.Open(ctx, url, db.Pool{MaxOpen: 1, Timeout: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	var setting string
	if err := d.Gorm.Raw("SHOW statement_timeout").Scan(&setting).Error; err != nil || setting != "250ms" {
		t.Fatalf("statement_timeout = %q, %v; want 250ms", setting, err)
	}
	var slept int
	if err := d.Gorm.Raw("SELECT 1 FROM pg_sleep(1)").Scan(&slept).Error; err == nil {
		t.Fatal("a statement ran past statement_timeout")
	}

	// Migrations take longer than a request may: their connection has no
	// statement_timeout.
	if _, err := db.Migrate(ctx, d); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	// Hold the pool's one connection: the next call waits for it, until
	// its deadline.
	tx := d.Gorm.Begin()
	if tx.Error != nil {
		t.Fatal(tx.Error)
	}
	defer tx.Rollback()
	var n int64
	if err := d.Gorm.Raw("SELECT COUNT(*) FROM teams").Scan(&n).Error; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GORM call waiting for a connection: %v, want context.DeadlineExceeded", err)
	}
	s := store.New(d)
	if _, err := s.APIKeyForAuth(ctx, ids.New()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pgx call waiting for a connection: %v, want context.DeadlineExceeded", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping answered with the pool exhausted")
	}
}
