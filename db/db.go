// Package db opens Keyplane's database and applies its versioned migrations.
//
// Two dialects are supported: PostgreSQL, the production store, and SQLite
// (pure Go, no cgo), the embedded default for a first `go run .`.
package db

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
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
	MaxLifetime time.Duration
	// OnStatement, when set, is called for every SQL statement sent: tests
	// count a request's statements with it.
	OnStatement func()
}

// DB is an open database: GORM for every query, and on PostgreSQL the pgx
// pool GORM runs on, for the few queries on every request's path that skip
// database/sql and GORM's reflection.
type DB struct {
	Gorm    *gorm.DB
	Dialect Dialect
	// Pgx is nil on SQLite.
	Pgx *pgxpool.Pool
}

// Close releases the connections, also of a DB that Open left half made.
func (d *DB) Close() error {
	var err error
	if d.Gorm != nil {
		var sqlDB *sql.DB
		if sqlDB, err = d.Gorm.DB(); err == nil {
			err = sqlDB.Close()
		}
	}
	if d.Pgx != nil {
		d.Pgx.Close()
	}
	return err
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

// Open connects to the database a URL names, with GORM's error translation,
// and sets the pool sizes.
func Open(ctx context.Context, raw string, pool Pool) (*DB, error) {
	t, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if pool.MaxLifetime == 0 {
		pool.MaxLifetime = 30 * time.Minute
	}
	d := &DB{Dialect: t.Dialect}
	var dialector gorm.Dialector
	switch t.Dialect {
	case Postgres:
		pool.MaxOpen = cmp.Or(pool.MaxOpen, 20)
		if d.Pgx, err = openPgx(ctx, t.DSN, pool); err != nil {
			return nil, err
		}
		// database/sql holds no idle connections of its own here: they stay
		// in the pgx pool, shared by both ways in.
		dialector = postgres.New(postgres.Config{Conn: stdlib.OpenDBFromPool(d.Pgx)})
	case SQLite:
		if t.Path != "" {
			if err := os.MkdirAll(filepath.Dir(t.Path), 0o700); err != nil {
				return nil, fmt.Errorf("create database folder: %w", err)
			}
		}
		dialector = sqlite.Open(t.DSN)
		pool.MaxOpen = cmp.Or(pool.MaxOpen, 4)
	}
	d.Gorm, err = gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		// On PostgreSQL pgx prepares and caches each statement per
		// connection by itself. GORM's own prepared statements would sit on
		// database/sql connections that come and go with the pgx pool's; on
		// SQLite they stall: GORM prepares while holding a process-wide
		// lock, and with writers queued on SQLite's lock that holds every
		// request for the whole busy timeout.
		PrepareStmt:            false,
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	})
	if err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("open %s database: %w", t.Dialect, err)
	}
	sqlDB, err := d.Gorm.DB()
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	if t.Dialect == SQLite {
		sqlDB.SetMaxOpenConns(pool.MaxOpen)
		sqlDB.SetMaxIdleConns(pool.MaxOpen)
		sqlDB.SetConnMaxLifetime(pool.MaxLifetime)
		if pool.OnStatement != nil {
			if err := countGormStatements(d.Gorm, pool.OnStatement); err != nil {
				_ = d.Close()
				return nil, err
			}
		}
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("connect to %s database: %w", t.Dialect, err)
	}
	return d, nil
}

// openPgx makes the PostgreSQL pool. Connections open on first use.
func openPgx(ctx context.Context, dsn string, pool Pool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	cfg.MaxConns = int32(pool.MaxOpen)
	cfg.MaxConnLifetime = pool.MaxLifetime
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerUUID(conn)
		return nil
	}
	if pool.OnStatement != nil {
		cfg.ConnConfig.Tracer = statementCounter(pool.OnStatement)
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres database: %w", err)
	}
	return p, nil
}

// statementCounter calls its function for each statement pgx sends.
type statementCounter func()

func (f statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	f()
	return ctx
}

func (statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// countGormStatements calls f after every statement GORM runs; on SQLite
// every statement goes through GORM.
func countGormStatements(g *gorm.DB, f func()) error {
	count := func(g *gorm.DB) {
		if !g.DryRun {
			f()
		}
	}
	cb := g.Callback()
	return errors.Join(
		cb.Query().After("gorm:query").Register("keyplane:count", count),
		cb.Create().After("gorm:create").Register("keyplane:count", count),
		cb.Update().After("gorm:update").Register("keyplane:count", count),
		cb.Delete().After("gorm:delete").Register("keyplane:count", count),
		cb.Row().After("gorm:row").Register("keyplane:count", count),
		cb.Raw().After("gorm:raw").Register("keyplane:count", count),
	)
}
