package usage_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/usage"
)

// TestRunFlushesAtShutdown checks that uses noted just before a shutdown are
// written by it, and that a later, older touch never moves a time back.
func TestRunFlushesAtShutdown(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		database := testdb.New(t, d)
		_, issued, err := teams.NewService(database.Store).Bootstrap(context.Background(), "Acme", "admin")
		if err != nil {
			t.Fatal(err)
		}
		key := issued.Key.ID
		rec := usage.New(database.Store, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { rec.Run(ctx); close(done) }()

		later := store.Now()
		rec.Touch(store.KeyUsage{KeyID: key, At: later.Add(-time.Minute), IP: "192.0.2.1"})
		rec.Touch(store.KeyUsage{KeyID: key, At: later, IP: "192.0.2.2"})
		if n := database.Count(t, "api_keys", "last_used_at IS NOT NULL"); n != 0 {
			t.Fatal("written before the interval or the shutdown")
		}
		cancel()
		<-done
		if n := database.Count(t, "api_keys", "last_used_ip = ?", "192.0.2.2"); n != 1 {
			t.Fatal("the latest use was not written at shutdown")
		}

		// An older use arriving late does not move the time back.
		rec.Touch(store.KeyUsage{KeyID: key, At: later.Add(-time.Hour), IP: "192.0.2.9"})
		if err := rec.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := database.Count(t, "api_keys", "last_used_ip = ?", "192.0.2.2"); n != 1 {
			t.Fatal("an older use overwrote a newer one")
		}
	})
}
