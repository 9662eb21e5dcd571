package db_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		url     string
		dialect db.Dialect
		ok      bool
	}{
		{"postgres://u@localhost:5432/x?sslmode=disable", db.Postgres, true},
		{"postgresql://u@localhost/x", db.Postgres, true},
		{"sqlite:data/keyplane.db", db.SQLite, true},
		{"sqlite::memory:", db.SQLite, true},
		{"sqlite:", "", false},
		{"mysql://u@localhost/x", "", false},
		{"postgres://", "", false},
		{"", "", false},
	} {
		got, err := db.Parse(tc.url)
		if (err == nil) != tc.ok || got.Dialect != tc.dialect {
			t.Errorf("Parse(%q) = %v, %v", tc.url, got.Dialect, err)
		}
		if err != nil && !errors.Is(err, db.ErrBadURL) {
			t.Errorf("Parse(%q) error %v is not ErrBadURL", tc.url, err)
		}
	}
}

// TestSQLiteSettings pins what the embedded store relies on: foreign keys,
// WAL, and transactions that take the write lock at BEGIN, so that two
// read-then-write transactions queue instead of failing with SQLITE_BUSY.
func TestSQLiteSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "k.db")
	d, err := db.Open(ctx, "sqlite:"+path, db.Pool{})
	if err != nil || d.Dialect != db.SQLite {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	gdb := d.Gorm
	var fk int
	var journal string
	gdb.Raw("PRAGMA foreign_keys").Scan(&fk)
	gdb.Raw("PRAGMA journal_mode").Scan(&journal)
	if fk != 1 || journal != "wal" {
		t.Fatalf("foreign_keys=%d journal_mode=%s", fk, journal)
	}
	if err := gdb.Exec("CREATE TABLE counter (n INTEGER NOT NULL)").Error; err != nil {
		t.Fatal(err)
	}
	gdb.Exec("INSERT INTO counter (n) VALUES (0)")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx := gdb.Begin()
			var n int
			if err := tx.Raw("SELECT n FROM counter").Scan(&n).Error; err != nil {
				tx.Rollback()
				errs <- err
				return
			}
			if err := tx.Exec("UPDATE counter SET n = ?", n+1).Error; err != nil {
				tx.Rollback()
				errs <- err
				return
			}
			errs <- tx.Commit().Error
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent read-then-write transaction: %v", err)
		}
	}
	var n int
	gdb.Raw("SELECT n FROM counter").Scan(&n)
	if n != 16 {
		t.Fatalf("counter = %d, want 16: transactions interleaved", n)
	}
	applied, err := db.Migrate(ctx, d)
	if err != nil || applied == 0 {
		t.Fatalf("Migrate: %d %v", applied, err)
	}
	if again, err := db.Migrate(ctx, d); err != nil || again != 0 {
		t.Fatalf("second Migrate applied %d: %v", again, err)
	}
}

// TestPoolSizeFollowsCoresAndTheURL: the PostgreSQL pool defaults to four
// connections per core, between 4 and 20, and pool_max_conns in the URL
// sets another.
func TestPoolSizeFollowsCoresAndTheURL(t *testing.T) {
	if got, want := db.PoolSize(), min(max(4*runtime.GOMAXPROCS(0), 4), 20); got != want {
		t.Fatalf("PoolSize() = %d, want %d", got, want)
	}
	if !slices.Contains(testdb.Dialects(t), db.Postgres) {
		t.Skip("PostgreSQL does not answer")
	}
	url := testdb.EmptyPostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, tc := range []struct {
		url  string
		want int32
	}{{url, int32(db.PoolSize())}, {url + sep + "pool_max_conns=3", 3}} {
		d, err := db.Open(t.Context(), tc.url, db.Pool{})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Pgx.Config().MaxConns; got != tc.want {
			t.Errorf("%s: pool of %d, want %d", tc.url, got, tc.want)
		}
		_ = d.Close()
	}
}
