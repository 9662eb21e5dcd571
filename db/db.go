// Package db opens Keyplane's database and applies its versioned migrations.
//
// Two dialects are supported: PostgreSQL, the production store, and SQLite
// (pure Go, no cgo), the embedded default for a first `go run .`.
package db

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the SQL engine behind a connection.
type Dialect string

// The dialects Keyplane runs on.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DefaultURL is used when DATABASE_URL is unset: an embedded SQLite file.
const DefaultURL = "sqlite:data/keyplane.db"

// Pool holds the connection-pool sizes. Zero values take the defaults.
type Pool struct {
	MaxOpen     int
	MaxIdle     int
	MaxLifetime time.Duration
}

// Target is a parsed DATABASE_URL.
type Target struct {
	Dialect Dialect
	// DSN is what the driver receives.
	DSN string
	// Path is the SQLite file, empty for PostgreSQL and for memory.
	Path string
}

// ErrBadURL marks a DATABASE_URL that names no supported database.
var ErrBadURL = errors.New("unsupported database URL")

// Parse reads a DATABASE_URL: postgres:// or postgresql:// for PostgreSQL,
// sqlite:PATH or sqlite::memory: for the embedded store.
func Parse(raw string) (Target, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return Target{}, fmt.Errorf("%w: not a valid postgres URL", ErrBadURL)
		}
		return Target{Dialect: Postgres, DSN: raw}, nil
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(raw, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return Target{}, fmt.Errorf("%w: sqlite: needs a path, or :memory: for a database in memory", ErrBadURL)
		}
		return sqliteTarget(path), nil
	default:
		return Target{}, fmt.Errorf("%w: want postgres://, postgresql:// or sqlite:PATH", ErrBadURL)
	}
}

// sqliteTarget turns on foreign keys, WAL and a busy timeout, and makes every
// transaction take the write lock at BEGIN (_txlock=immediate). Row locks do
// not exist in SQLite; immediate transactions serialise writers instead, so a
// read-then-write inside a transaction cannot be interleaved. (The driver
// ignores _txlock when _time_format is also given, so that one stays unset:
// its default is the same format.)
func sqliteTarget(path string) Target {
	params := "_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_txlock=immediate"
	if path == ":memory:" {
		// A shared cache keeps one database across the pool's connections.
		return Target{Dialect: SQLite, DSN: "file::memory:?cache=shared&" + params}
	}
	return Target{Dialect: SQLite, Path: path, DSN: "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&" + params}
}

// Open connects to the database a URL names, with GORM's error translation
// and prepared statements on, and sets the pool sizes.
func Open(ctx context.Context, raw string, pool Pool) (*gorm.DB, Dialect, error) {
	t, err := Parse(raw)
	if err != nil {
		return nil, "", err
	}
	var dialector gorm.Dialector
	switch t.Dialect {
	case Postgres:
		dialector = postgres.New(postgres.Config{DSN: t.DSN})
		if pool.MaxOpen == 0 {
			pool.MaxOpen = 20
		}
	case SQLite:
		if t.Path != "" {
			if err := os.MkdirAll(filepath.Dir(t.Path), 0o700); err != nil {
				return nil, "", fmt.Errorf("create database folder: %w", err)
			}
		}
		dialector = sqlite.Open(t.DSN)
		if pool.MaxOpen == 0 {
			pool.MaxOpen = 4
		}
	}
	if pool.MaxIdle == 0 {
		pool.MaxIdle = pool.MaxOpen
	}
	if pool.MaxLifetime == 0 {
		pool.MaxLifetime = 30 * time.Minute
	}
	gdb, err := gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		// Prepared statements save PostgreSQL a parse per query. On SQLite
		// they are off: GORM prepares a new statement on a pool connection
		// while holding a process-wide lock, and with writers queued on
		// SQLite's lock (holding the other connections) that stalls every
		// request for the whole busy timeout.
		PrepareStmt:            t.Dialect == Postgres,
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	})
	if err != nil {
		return nil, "", fmt.Errorf("open %s database: %w", t.Dialect, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, "", err
	}
	sqlDB.SetMaxOpenConns(pool.MaxOpen)
	sqlDB.SetMaxIdleConns(pool.MaxIdle)
	sqlDB.SetConnMaxLifetime(pool.MaxLifetime)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, "", fmt.Errorf("connect to %s database: %w", t.Dialect, err)
	}
	return gdb, t.Dialect, nil
}
