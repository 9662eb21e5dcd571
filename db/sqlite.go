package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
)

// SQLite lets one connection at a time hold the write lock; in WAL mode the
// others go on reading the last commit meanwhile. So the embedded store
// reads through a pool of read-only connections, and writes through exactly
// one writer connection that every write and every transaction queues for.
// A writer waiting for the lock (held by another process, or by a long
// transaction) then holds that one connection and nothing else: reads never
// wait for writers, and a queued writer waits in database/sql, where its
// context's deadline ends the wait.

// sqlitePool is the connection pool GORM runs on for SQLite: queries go to
// the read pool; statements (Exec) and transactions go to the writer.
// GORM's creates, updates and deletes are sent to the writer by routeWrites
// even when they read rows back (INSERT … RETURNING runs as a query).
type sqlitePool struct{ reader, writer *sql.DB }

// PrepareContext prepares on the writer, which may run a statement of
// either kind. (GORM prepares only with PrepareStmt, which Open leaves off.)
func (p *sqlitePool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.writer.PrepareContext(ctx, query)
}

// ExecContext runs a statement that may write, on the writer.
func (p *sqlitePool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.writer.ExecContext(ctx, query, args...)
}

// QueryContext runs a query on the read pool.
func (p *sqlitePool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.reader.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a query on the read pool.
func (p *sqlitePool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.reader.QueryRowContext(ctx, query, args...)
}

// BeginTx begins a transaction on the writer: it takes the write lock at
// BEGIN (_txlock=immediate), so a read-then-write inside it cannot
// interleave with another.
func (p *sqlitePool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return p.writer.BeginTx(ctx, opts)
}

// GetDBConn is what GORM's DB() returns: the writer, since whoever takes
// the *sql.DB (migrations) may write.
func (p *sqlitePool) GetDBConn() (*sql.DB, error) { return p.writer, nil }

// openSQLite opens the read pool and the writer of a file, or the one
// connection of a database in memory.
//
// Every connection has foreign keys on and a busy timeout of pool.Timeout
// (10 s without one), past which a writer that cannot get the lock fails
// with SQLITE_BUSY; SQLite's BEGIN does not watch a context, so the busy
// timeout is what bounds it. The writer turns on WAL and makes every
// transaction take the write lock at BEGIN (_txlock=immediate: the driver
// ignores it when _time_format is also given, so that one stays unset; its
// default is the same format). Row locks do not exist in SQLite; one writer
// with immediate transactions serialises read-then-write transactions
// instead. The readers are query_only, so a write routed to them by mistake
// fails loudly instead of taking the lock.
func openSQLite(ctx context.Context, t Target, pool Pool) (*sqlitePool, error) {
	busy := 10 * time.Second
	if pool.Timeout > 0 {
		busy = pool.Timeout
	}
	params := "?_pragma=foreign_keys(1)&_pragma=busy_timeout(" + strconv.FormatInt(max(busy.Milliseconds(), 1), 10) + ")"
	if t.Path == "" {
		// A database in memory is private to its connection and lives as
		// long as it: one connection, never recycled, does both jobs
		// (there is no WAL in memory, so readers would wait anyway).
		conn, err := sql.Open(sqlite.DriverName, t.DSN+params+"&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
		conn.SetMaxOpenConns(1)
		conn.SetMaxIdleConns(1)
		conn.SetConnMaxLifetime(0)
		return &sqlitePool{reader: conn, writer: conn}, nil
	}
	if err := os.MkdirAll(filepath.Dir(t.Path), 0o700); err != nil {
		return nil, fmt.Errorf("create database folder: %w", err)
	}
	writer, err := sql.Open(sqlite.DriverName, t.DSN+params+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(pool.MaxLifetime)
	// The writer connects first: its connection turns the file to WAL
	// before any reader opens it.
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := writer.PingContext(pingCtx); err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("connect to sqlite database: %w", err)
	}
	reader, err := sql.Open(sqlite.DriverName, t.DSN+params+"&_pragma=query_only(1)")
	if err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	reader.SetMaxOpenConns(pool.MaxOpen)
	reader.SetMaxIdleConns(pool.MaxOpen)
	reader.SetConnMaxLifetime(pool.MaxLifetime)
	return &sqlitePool{reader: reader, writer: writer}, nil
}

// routeWrites sends GORM's creates, updates and deletes to the writer,
// whatever statement they turn into; inside a transaction they already run
// on it.
func routeWrites(g *gorm.DB) error {
	toWriter := func(db *gorm.DB) {
		if p, ok := db.Statement.ConnPool.(*sqlitePool); ok {
			db.Statement.ConnPool = p.writer
		}
	}
	cb := g.Callback()
	return errors.Join(
		cb.Create().Before("*").Register("keyplane:writer", toWriter),
		cb.Update().Before("*").Register("keyplane:writer", toWriter),
		cb.Delete().Before("*").Register("keyplane:writer", toWriter),
	)
}
