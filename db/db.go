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
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
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

// PoolSize is the PostgreSQL pool's default size: four connections per
// core the process may use, at least 4 and at most 20. Measured on 2 cores
// under the load run (README, Benchmarks): from 6 to 16 connections the
// throughput is the same, and p99 grows with the pool (8.7 ms at 6, 15 ms at
// 20, 19.5 ms at 40), as more backends than cores queue in PostgreSQL.
// pool_max_conns in DATABASE_URL sets another.
func PoolSize() int { return min(max(4*runtime.GOMAXPROCS(0), 4), 20) }

// Pool holds the connection-pool settings. Zero values take the defaults.
type Pool struct {
	// MaxOpen bounds the connections: on SQLite those of the read pool,
	// beside which there is always exactly one writer connection.
	MaxOpen     int
	MaxLifetime time.Duration
	// Timeout is the deadline of each database call (KEYPLANE_DB_TIMEOUT):
	// GORM's, and the Store's own around transactions and direct pgx
	// reads. On PostgreSQL it is also each connection's statement_timeout,
	// and on SQLite its busy_timeout. Zero sets none of them (SQLite then
	// waits up to 10 s for a lock).
	Timeout time.Duration
	// OnStatement, when set, is called for every SQL statement sent: tests
	// count a request's statements with it.
	OnStatement func()
}

// DB is an open database: GORM for every query, and on PostgreSQL the pgx
// pool GORM runs on, for the few queries on every request's path that skip
// database/sql and GORM's reflection.
//
// On SQLite, Gorm reads from a pool of read-only connections and sends every
// write and every transaction to one writer connection (see sqlite.go), so
// that a read never waits behind a writer.
type DB struct {
	Gorm    *gorm.DB
	Dialect Dialect
	// Pgx is nil on SQLite.
	Pgx *pgxpool.Pool
	// Timeout is the deadline of each call (Pool.Timeout); zero: none.
	Timeout time.Duration

	// reader and writer are SQLite's pools: the same one in memory.
	reader, writer *sql.DB
	// directConn is how a connection outside the pool reaches PostgreSQL,
	// for migrations and LISTEN: as the URL says, without the pool's
	// statement_timeout, since a migration may rightly take longer than a
	// request and a LISTEN waits for as long as the server runs.
	directConn *pgx.ConnConfig
	// track turns on counting statements per request (TrackRequests).
	track atomic.Bool
}

// Close releases the connections, also of a DB that Open left half made.
func (d *DB) Close() error {
	var errs []error
	switch {
	case d.reader != nil:
		errs = append(errs, d.reader.Close())
		if d.writer != d.reader {
			errs = append(errs, d.writer.Close())
		}
	case d.Gorm != nil:
		sqlDB, err := d.Gorm.DB()
		if err == nil {
			err = sqlDB.Close()
		}
		errs = append(errs, err)
	}
	if d.Pgx != nil {
		d.Pgx.Close()
	}
	return errors.Join(errs...)
}

// Ping reports whether the database answers: on SQLite its read pool, which
// a long write does not hold up.
func (d *DB) Ping(ctx context.Context) error {
	if d.reader != nil {
		return d.reader.PingContext(ctx)
	}
	sqlDB, err := d.Gorm.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
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

// sqliteTarget names the file, or memory. The connection settings (WAL,
// foreign keys, busy timeout, the writer's immediate transactions) are added
// by openSQLite, since the reader and the writer differ in them.
func sqliteTarget(path string) Target {
	if path == ":memory:" {
		return Target{Dialect: SQLite, DSN: "file::memory:"}
	}
	return Target{Dialect: SQLite, Path: path, DSN: "file:" + path}
}

// Open connects to the database a URL names, with GORM's error translation,
// and sets the pool sizes and the deadline of each call.
func Open(ctx context.Context, raw string, pool Pool) (*DB, error) {
	t, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if pool.MaxLifetime == 0 {
		pool.MaxLifetime = 30 * time.Minute
	}
	d := &DB{Dialect: t.Dialect, Timeout: max(pool.Timeout, 0)}
	var dialector gorm.Dialector
	switch t.Dialect {
	case Postgres:
		pool.MaxOpen = cmp.Or(pool.MaxOpen, PoolSize())
		if d.Pgx, d.directConn, err = openPgx(ctx, t.DSN, pool, &d.track); err != nil {
			return nil, err
		}
		// database/sql holds no idle connections of its own here: they stay
		// in the pgx pool, shared by both ways in.
		dialector = postgres.New(postgres.Config{Conn: stdlib.OpenDBFromPool(d.Pgx)})
	case SQLite:
		pool.MaxOpen = cmp.Or(pool.MaxOpen, 4)
		var conns *sqlitePool
		if conns, err = openSQLite(ctx, t, pool); err != nil {
			return nil, err
		}
		d.reader, d.writer = conns.reader, conns.writer
		dialector = &sqlite.Dialector{Conn: conns}
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
	var callbacks []error
	if t.Dialect == SQLite {
		callbacks = append(callbacks, routeWrites(d.Gorm), trackGormStatements(d.Gorm, &d.track))
		if pool.OnStatement != nil {
			callbacks = append(callbacks, countGormStatements(d.Gorm, pool.OnStatement))
		}
	}
	if d.Timeout > 0 {
		callbacks = append(callbacks, registerDeadlines(d.Gorm, d.Timeout))
	}
	if err := errors.Join(callbacks...); err != nil {
		_ = d.Close()
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Ping(pingCtx); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("connect to %s database: %w", t.Dialect, err)
	}
	return d, nil
}

// openPgx makes the PostgreSQL pool. Connections open on first use. With a
// timeout, each connection starts with statement_timeout set to it, sent in
// the startup message: no statement of its own, on no request's path. A
// statement_timeout in the URL wins. It also returns the connection settings
// as the URL gives them, for migrations. Its tracer counts statements for
// OnStatement, and per request once track is on.
func openPgx(ctx context.Context, dsn string, pool Pool, track *atomic.Bool) (*pgxpool.Pool, *pgx.ConnConfig, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// pool_max_conns in the URL wins: the pool's size is the
		// operator's to set for their cores (README, Benchmarks).
		cfg.MaxConns = int32(pool.MaxOpen)
	}
	cfg.MaxConnLifetime = pool.MaxLifetime
	migrations := cfg.ConnConfig.Copy()
	if _, set := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !set && pool.Timeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(pool.Timeout.Milliseconds(), 1), 10)
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerUUID(conn)
		return nil
	}
	cfg.ConnConfig.Tracer = &tracer{onStatement: pool.OnStatement, track: track}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open postgres database: %w", err)
	}
	return p, migrations, nil
}

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
