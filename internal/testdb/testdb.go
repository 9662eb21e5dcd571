// Package testdb gives each test a fresh, migrated database of its own, on
// SQLite always and on PostgreSQL whenever it answers, so that the same test
// runs on both dialects and test packages can run in parallel.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/store"
)

// DefaultPostgresURL is the machine's test database, when TEST_DATABASE_URL
// is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Database is one test's database.
type Database struct {
	Dialect db.Dialect
	// URL opens the same database again (another server process on it).
	URL   string
	Store *store.Store

	statements atomic.Int64
}

var (
	pgOnce  sync.Once
	pgError error
)

func postgresURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// postgresAvailable reports whether PostgreSQL answers; it asks once.
func postgresAvailable() error {
	pgOnce.Do(func() {
		d, err := db.Open(context.Background(), postgresURL(), db.Pool{MaxOpen: 1})
		if err != nil {
			pgError = err
			return
		}
		_ = d.Close()
	})
	return pgError
}

// Dialects returns the dialects to test on: SQLite, and PostgreSQL when it
// answers. With KEYPLANE_REQUIRE_POSTGRES=1 an absent PostgreSQL fails the
// test instead of being skipped.
func Dialects(t testing.TB) []db.Dialect {
	out := []db.Dialect{db.SQLite}
	if err := postgresAvailable(); err != nil {
		if os.Getenv("KEYPLANE_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL is required (KEYPLANE_REQUIRE_POSTGRES=1) but does not answer at TEST_DATABASE_URL: %v", err)
		}
		t.Logf("PostgreSQL does not answer; testing on SQLite only: %v", err)
		return out
	}
	return append(out, db.Postgres)
}

// Each runs fn once per dialect, as parallel subtests named after it.
func Each(t *testing.T, fn func(t *testing.T, d db.Dialect)) {
	for _, d := range Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// New returns a fresh migrated database on the dialect, dropped when the
// test ends. Its calls carry the server's default deadline.
func New(t testing.TB, d db.Dialect) *Database {
	t.Helper()
	return NewWithTimeout(t, d, config.DefaultDBTimeout)
}

// NewWithTimeout is New with another deadline of each database call (on
// PostgreSQL also the statement_timeout): what KEYPLANE_DB_TIMEOUT sets.
func NewWithTimeout(t testing.TB, d db.Dialect, timeout time.Duration) *Database {
	t.Helper()
	ctx := context.Background()
	var rawURL string
	switch d {
	case db.SQLite:
		rawURL = "sqlite:" + filepath.Join(t.TempDir(), "keyplane.db")
	case db.Postgres:
		rawURL = newSchema(t)
	}
	database := &Database{Dialect: d, URL: rawURL}
	opened, err := db.Open(ctx, rawURL, db.Pool{MaxOpen: 8, Timeout: timeout, OnStatement: func() { database.statements.Add(1) }})
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	database.Store = store.New(opened)
	t.Cleanup(func() { _ = database.Store.Close() })
	if _, err := db.Migrate(ctx, opened); err != nil {
		t.Fatalf("migrate %s: %v", d, err)
	}
	return database
}

// Statements returns how many SQL statements the database has received so
// far (counted by pgx on PostgreSQL, by GORM on SQLite); take the
// difference around a request.
func (d *Database) Statements() int64 { return d.statements.Load() }

// EmptyPostgresURL returns a URL whose connections use a fresh, empty
// PostgreSQL schema of the test's own, dropped when the test ends: for a
// test of what happens before migrations ran. Call Dialects first: it
// assumes that PostgreSQL answers.
func EmptyPostgresURL(t testing.TB) string {
	t.Helper()
	return newSchema(t)
}

// newSchema makes a schema of its own for the test and returns a URL whose
// connections use it; the schema is dropped when the test ends, since the
// machine's PostgreSQL outlives the run.
func newSchema(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin, err := db.Open(context.Background(), postgresURL(), db.Pool{MaxOpen: 1})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	if err := admin.Gorm.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.Gorm.Exec("DROP SCHEMA " + schema + " CASCADE").Error
		_ = admin.Close()
	})
	u, err := url.Parse(postgresURL())
	if err != nil {
		t.Fatalf("parse TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Exec runs raw SQL on the test's database, for a test that must reach past
// the API: to move a time into the past, or to break a table on purpose.
func (d *Database) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if err := d.Store.ExecForTest(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// Count returns the number of rows of a table matching a condition.
func (d *Database) Count(t testing.TB, table, where string, args ...any) int64 {
	t.Helper()
	n, err := d.Store.CountForTest(context.Background(), table, where, args...)
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}
