// Package store is Keyplane's persistence: GORM models and the queries on
// them. Every query names the team it reads or writes, except the one lookup
// that authenticates a credential by its public id.
package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"

	"github.com/keyplane/keyplane/db"
)

// Store runs queries on one connection pool, or inside one transaction.
// Every call carries a deadline (db.Pool.Timeout): GORM's calls get theirs
// from db's callbacks, the direct pgx reads and the transactions from here.
type Store struct {
	db      *gorm.DB
	dialect db.Dialect
	// pgx reads the pages and credentials of every request directly, on
	// PostgreSQL and outside a transaction; nil otherwise.
	pgx  *pgxpool.Pool
	open *db.DB
	// timeout is the deadline of each call; zero: none.
	timeout time.Duration
	// txCtx is the context of the transaction a Store made by InTx runs
	// in, nil otherwise: its deadline bounds the whole transaction.
	txCtx context.Context
	// committed collects, in a transaction, what AfterCommit must run once
	// it commits; nil outside one.
	committed *[]func()
	// bell is told which team's audit log grew, once that commits.
	bell *bell
	// locked is the team whose lock the transaction holds (LockTeam),
	// shared by the Stores of one transaction; nil outside one.
	locked *uuid.UUID
}

// New wraps an open database.
func New(d *db.DB) *Store {
	return &Store{db: d.Gorm, dialect: d.Dialect, pgx: d.Pgx, open: d, timeout: d.Timeout, bell: &bell{}}
}

// Dialect names the SQL engine behind the store.
func (s *Store) Dialect() db.Dialect { return s.dialect }

// DB returns the open database under the store, for its pool statistics
// and per-request statement counts; nil for a Store made by InTx.
func (s *Store) DB() *db.DB { return s.open }

// InTx runs fn in one transaction: everything fn writes through tx commits
// together, or nothing does when fn returns an error.
//
// The transaction has one deadline, the store's timeout from now: every
// statement of fn runs under it, and once it passes the transaction rolls
// back (database/sql ends it, and a late commit fails). On SQLite it runs
// on the one writer connection. Inside a transaction, InTx makes a
// savepoint under the same deadline.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	txCtx := s.txCtx
	if txCtx == nil {
		var cancel context.CancelFunc
		txCtx, cancel = db.Deadline(ctx, s.timeout)
		defer cancel()
	}
	var committed []func()
	err := s.db.WithContext(txCtx).Transaction(func(gtx *gorm.DB) error {
		return fn(&Store{db: gtx, dialect: s.dialect, timeout: s.timeout, txCtx: txCtx, committed: &committed, bell: s.bell, locked: new(uuid.UUID)})
	})
	if err != nil {
		return err
	}
	for _, f := range committed {
		s.AfterCommit(f)
	}
	return nil
}

// AfterCommit runs f once what s writes has committed: at once outside a
// transaction, after the outermost commit inside one, and never when the
// transaction (or the savepoint s belongs to) rolls back.
func (s *Store) AfterCommit(f func()) {
	if s.committed == nil {
		f()
		return
	}
	*s.committed = append(*s.committed, f)
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

// Ping reports whether the database answers, within the store's timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := db.Deadline(ctx, s.timeout)
	defer cancel()
	return s.open.Ping(ctx)
}

// Close releases the connection pool.
func (s *Store) Close() error { return s.open.Close() }

// with starts a query. In a transaction every statement runs under the
// transaction's context, whose deadline is the transaction's; outside one,
// db gives each GORM call its own deadline.
func (s *Store) with(ctx context.Context) *gorm.DB {
	if s.txCtx != nil {
		ctx = s.txCtx
	}
	return s.db.WithContext(ctx)
}

// rows is a query's result, read a row at a time.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// query runs the SELECT that q describes, under a deadline that Close
// releases. On PostgreSQL outside a transaction GORM only writes the SQL,
// and pgx runs it: database/sql's layer and GORM's reflective scan stay off
// the path every request takes.
func (s *Store) query(q *gorm.DB) (rows, error) {
	ctx, cancel := db.Deadline(q.Statement.Context, s.timeout)
	if s.pgx == nil {
		r, err := q.WithContext(ctx).Rows()
		if err != nil {
			cancel()
			return nil, err
		}
		return sqlRows{r, cancel}, nil
	}
	stmt := q.Session(&gorm.Session{DryRun: true}).Find(&[]map[string]any{})
	if stmt.Error != nil {
		cancel()
		return nil, stmt.Error
	}
	return s.pgxQuery(ctx, cancel, stmt.Statement.SQL.String(), stmt.Statement.Vars)
}

// rawSQL is a statement written once, at start: with ? placeholders for
// GORM, and with PostgreSQL's $n for pgx.
type rawSQL struct {
	gorm, pg string
}

// newRawSQL numbers the ? placeholders of text for PostgreSQL; text must
// have no ? other than its placeholders.
func newRawSQL(text string) rawSQL {
	var b strings.Builder
	n := 0
	for _, c := range text {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return rawSQL{gorm: text, pg: b.String()}
}

// queryRaw runs a SELECT written once, under a deadline that Close
// releases: through pgx on PostgreSQL outside a transaction, through GORM
// otherwise.
func (s *Store) queryRaw(ctx context.Context, q rawSQL, args ...any) (rows, error) {
	if s.txCtx != nil {
		ctx = s.txCtx
	}
	ctx, cancel := db.Deadline(ctx, s.timeout)
	if s.pgx == nil {
		r, err := s.db.WithContext(ctx).Raw(q.gorm, args...).Rows()
		if err != nil {
			cancel()
			return nil, err
		}
		return sqlRows{r, cancel}, nil
	}
	return s.pgxQuery(ctx, cancel, q.pg, args)
}

// pgxQuery runs sql through pgx under ctx, which cancel releases on Close.
func (s *Store) pgxQuery(ctx context.Context, cancel context.CancelFunc, sql string, args []any) (rows, error) {
	r, err := s.pgx.Query(ctx, sql, args...)
	if err != nil {
		cancel()
		return nil, err
	}
	return pgxRows{r, cancel}, nil
}

// sqlRows gives database/sql's rows pgx's Close, whose error Err reports,
// and releases the query's deadline on Close.
type sqlRows struct {
	*sql.Rows
	cancel context.CancelFunc
}

func (r sqlRows) Close() {
	_ = r.Rows.Close()
	r.cancel()
}

// pgxRows releases the query's deadline on Close.
type pgxRows struct {
	pgx.Rows
	cancel context.CancelFunc
}

func (r pgxRows) Close() {
	r.Rows.Close()
	r.cancel()
}

// Now is the store's clock: UTC, truncated to the microsecond both dialects
// keep, so that a value written reads back equal.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// likeEscaper escapes LIKE's wildcards (the queries say ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// likeContains returns a LIKE pattern matching lower-cased text anywhere.
func likeContains(text string) string {
	return "%" + likeEscaper.Replace(strings.ToLower(text)) + "%"
}
