package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed migrations
var migrations embed.FS

// provider returns goose's migration runner for the connection's dialect,
// reading the embedded SQL files of that dialect only, and the function that
// releases what it opened.
func provider(d *DB) (*goose.Provider, func(), error) {
	dialect := d.Dialect
	sub, err := fs.Sub(migrations, "migrations/"+string(dialect))
	if err != nil {
		return nil, nil, err
	}
	sqlDB, release, err := migrationDB(d)
	if err != nil {
		return nil, nil, err
	}
	gooseDialect := goose.DialectPostgres
	opts := []goose.ProviderOption{goose.WithSessionLocker(migrationLock{})}
	if dialect == SQLite {
		gooseDialect, opts = goose.DialectSQLite3, nil
	}
	p, err := goose.NewProvider(gooseDialect, sqlDB, sub, opts...)
	if err != nil {
		release()
		return nil, nil, err
	}
	return p, release, nil
}

// migrationLock keeps processes that start at once on one PostgreSQL
// database (replicas) from applying the same migrations together, which
// fails all but one of them: each waits for a session-level advisory lock,
// one per schema, before goose reads which migrations are applied. It
// waits as long as the lock is held (a long migration of another process);
// the process's context ends the wait. On SQLite one process owns the file.
type migrationLock struct{}

const migrationLockKey = "hashtext('keyplane migrations'), hashtext(coalesce(current_schema(), ''))"

func (migrationLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+migrationLockKey+")")
	return err
}

func (migrationLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock("+migrationLockKey+")")
	return err
}

// migrationDB is the connection pool migrations run on: on PostgreSQL one
// of their own, without the statement_timeout of the request pool; on
// SQLite the writer.
func migrationDB(d *DB) (*sql.DB, func(), error) {
	if d.directConn != nil {
		sqlDB := stdlib.OpenDB(*d.directConn)
		sqlDB.SetMaxOpenConns(2)
		return sqlDB, func() { _ = sqlDB.Close() }, nil
	}
	sqlDB, err := d.Gorm.DB()
	return sqlDB, func() {}, err
}

// Migrate applies every pending migration and reports how many it applied.
func Migrate(ctx context.Context, d *DB) (int, error) {
	p, release, err := provider(d)
	if err != nil {
		return 0, fmt.Errorf("load migrations: %w", err)
	}
	defer release()
	results, err := p.Up(ctx)
	if err != nil {
		return len(results), fmt.Errorf("apply migrations: %w", err)
	}
	return len(results), nil
}

// MigrationState is one migration and whether it has been applied.
type MigrationState struct {
	Version int64
	Source  string
	Applied bool
}

// Status lists every known migration and whether it is applied.
func Status(ctx context.Context, d *DB) ([]MigrationState, error) {
	p, release, err := provider(d)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	defer release()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read migration status: %w", err)
	}
	out := make([]MigrationState, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationState{Version: s.Source.Version, Source: s.Source.Path, Applied: s.State == goose.StateApplied})
	}
	return out, nil
}
