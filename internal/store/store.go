// Package store is Keyplane's persistence: GORM models and the queries on
// them. Every query names the team it reads or writes, except the one lookup
// that authenticates a credential by its public id.
package store

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"

	"github.com/keyplane/keyplane/db"
)

// Store runs queries on one connection pool, or inside one transaction.
type Store struct {
	db      *gorm.DB
	dialect db.Dialect
	// pgx reads the pages and credentials of every request directly, on
	// PostgreSQL and outside a transaction; nil otherwise.
	pgx  *pgxpool.Pool
	open *db.DB
}

// New wraps an open database.
func New(d *db.DB) *Store {
	return &Store{db: d.Gorm, dialect: d.Dialect, pgx: d.Pgx, open: d}
}

// Dialect names the SQL engine behind the store.
func (s *Store) Dialect() db.Dialect { return s.dialect }

// InTx runs fn in one transaction: everything fn writes through tx commits
// together, or nothing does when fn returns an error.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	return s.db.WithContext(ctx).Transaction(func(gtx *gorm.DB) error {
		return fn(&Store{db: gtx, dialect: s.dialect})
	})
}

// Tx runs fn in one transaction on s and returns its value: what fn
// writes commits together, or nothing does and Tx returns fn's error.
func Tx[T any](ctx context.Context, s *Store, fn func(tx *Store) (T, error)) (T, error) {
	var out T
	err := s.InTx(ctx, func(tx *Store) error {
		var err error
		out, err = fn(tx)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close releases the connection pool.
func (s *Store) Close() error { return s.open.Close() }

func (s *Store) with(ctx context.Context) *gorm.DB { return s.db.WithContext(ctx) }

// rows is a query's result, read a row at a time.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// query runs the SELECT that q describes. On PostgreSQL outside a
// transaction GORM only writes the SQL, and pgx runs it: database/sql's
// layer and GORM's reflective scan stay off the path every request takes.
func (s *Store) query(q *gorm.DB) (rows, error) {
	if s.pgx == nil {
		r, err := q.Rows()
		if err != nil {
			return nil, err
		}
		return sqlRows{r}, nil
	}
	stmt := q.Session(&gorm.Session{DryRun: true}).Find(&[]map[string]any{})
	if stmt.Error != nil {
		return nil, stmt.Error
	}
	return s.pgx.Query(stmt.Statement.Context, stmt.Statement.SQL.String(), stmt.Statement.Vars...)
}

// sqlRows gives database/sql's rows pgx's Close, whose error Err reports.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// Now is the store's clock: UTC, truncated to the microsecond both dialects
// keep, so that a value written reads back equal.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// likeEscaper escapes LIKE's wildcards (the queries say ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// likeContains returns a LIKE pattern matching lower-cased text anywhere.
func likeContains(text string) string {
	return "%" + likeEscaper.Replace(strings.ToLower(text)) + "%"
}
