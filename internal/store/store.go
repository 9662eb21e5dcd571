// Package store is Keyplane's persistence: GORM models and the queries on
// them. Every query names the team it reads or writes, except the one lookup
// that authenticates a credential by its public id.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/apperr"
)

// Store runs queries on one connection pool, or inside one transaction.
type Store struct {
	db      *gorm.DB
	dialect db.Dialect
}

// New wraps an open database.
func New(gdb *gorm.DB, dialect db.Dialect) *Store {
	return &Store{db: gdb, dialect: dialect}
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

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close releases the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// errNoRows stands for an UPDATE that matched nothing, so translate says NOT_FOUND.
var errNoRows = gorm.ErrRecordNotFound

func (s *Store) with(ctx context.Context) *gorm.DB { return s.db.WithContext(ctx) }

// Now is the store's clock: UTC, truncated to the microsecond both dialects
// keep, so that a value written reads back equal.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// translate maps driver errors to client-safe ones. what names the object
// for a NOT_FOUND or CONFLICT message; other errors are wrapped for the log.
func translate(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return apperr.NotFoundf("%s not found", what)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return apperr.New(apperr.Conflict, "%s already exists", what)
	default:
		return fmt.Errorf("store: %s: %w", what, err)
	}
}

// likeEscaper escapes LIKE's wildcards (the queries say ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// likeContains returns a LIKE pattern matching lower-cased text anywhere.
func likeContains(text string) string {
	return "%" + likeEscaper.Replace(strings.ToLower(text)) + "%"
}
