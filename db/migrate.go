package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

//go:embed migrations
var migrations embed.FS

// provider returns goose's migration runner for the connection's dialect,
// reading the embedded SQL files of that dialect only.
func provider(d *DB) (*goose.Provider, error) {
	dialect := d.Dialect
	sub, err := fs.Sub(migrations, "migrations/"+string(dialect))
	if err != nil {
		return nil, err
	}
	sqlDB, err := d.Gorm.DB()
	if err != nil {
		return nil, err
	}
	gooseDialect := goose.DialectPostgres
	if dialect == SQLite {
		gooseDialect = goose.DialectSQLite3
	}
	return goose.NewProvider(gooseDialect, sqlDB, sub)
}

// Migrate applies every pending migration and reports how many it applied.
func Migrate(ctx context.Context, d *DB) (int, error) {
	p, err := provider(d)
	if err != nil {
		return 0, fmt.Errorf("load migrations: %w", err)
	}
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
	p, err := provider(d)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
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
