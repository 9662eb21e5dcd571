package db

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// RequestStats counts the statements one request sends and the time they
// take, for its log line at debug level. The request's resolvers run in
// parallel, so it is counted atomically.
type RequestStats struct {
	statements atomic.Int64
	nanos      atomic.Int64
}

// Statements returns how many statements the request sent so far.
func (s *RequestStats) Statements() int64 { return s.statements.Load() }

// Time returns how long the request's statements took, from sending each to
// its answer (on SQLite, to GORM's callback after it).
func (s *RequestStats) Time() time.Duration { return time.Duration(s.nanos.Load()) }

func (s *RequestStats) add(start time.Time) {
	s.statements.Add(1)
	s.nanos.Add(int64(time.Since(start)))
}

type requestStatsKey struct{}

// WithRequestStats returns ctx whose statements are counted into s, once the
// database counts per request (TrackRequests).
func WithRequestStats(ctx context.Context, s *RequestStats) context.Context {
	return context.WithValue(ctx, requestStatsKey{}, s)
}

func requestStatsFrom(ctx context.Context) *RequestStats {
	if ctx == nil {
		return nil
	}
	s, _ := ctx.Value(requestStatsKey{}).(*RequestStats)
	return s
}

// TrackRequests turns on counting statements into the RequestStats of their
// context. Until it is on, the hooks look at nothing but this flag, so that
// a server that does not log at debug level pays nothing for them.
func (d *DB) TrackRequests() { d.track.Store(true) }

// tracer is the pgx tracer of every connection: it calls the OnStatement
// hook, and times statements into the request's RequestStats.
type tracer struct {
	onStatement func()
	track       *atomic.Bool
}

// tracedQuery is what TraceQueryStart leaves for TraceQueryEnd.
type tracedQuery struct {
	stats *RequestStats
	start time.Time
}

type tracedQueryKey struct{}

func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if t.onStatement != nil {
		t.onStatement()
	}
	if !t.track.Load() {
		return ctx
	}
	if s := requestStatsFrom(ctx); s != nil {
		return context.WithValue(ctx, tracedQueryKey{}, tracedQuery{stats: s, start: time.Now()})
	}
	return ctx
}

func (t *tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if !t.track.Load() {
		return
	}
	if q, ok := ctx.Value(tracedQueryKey{}).(tracedQuery); ok {
		q.stats.add(q.start)
	}
}

// trackGormStatements times, on SQLite, where every statement goes through
// GORM, each statement into its context's RequestStats.
func trackGormStatements(g *gorm.DB, track *atomic.Bool) error {
	start := func(g *gorm.DB) {
		if track.Load() && requestStatsFrom(g.Statement.Context) != nil {
			g.Statement.Settings.Store(tracedQueryKey{}, time.Now())
		}
	}
	end := func(g *gorm.DB) {
		if !track.Load() || g.DryRun {
			return
		}
		if began, ok := g.Statement.Settings.LoadAndDelete(tracedQueryKey{}); ok {
			if s := requestStatsFrom(g.Statement.Context); s != nil {
				s.add(began.(time.Time))
			}
		}
	}
	cb := g.Callback()
	return errors.Join(
		cb.Query().Before("gorm:query").Register("keyplane:stats_start", start),
		cb.Query().After("gorm:query").Register("keyplane:stats_end", end),
		cb.Create().Before("gorm:create").Register("keyplane:stats_start", start),
		cb.Create().After("gorm:create").Register("keyplane:stats_end", end),
		cb.Update().Before("gorm:update").Register("keyplane:stats_start", start),
		cb.Update().After("gorm:update").Register("keyplane:stats_end", end),
		cb.Delete().Before("gorm:delete").Register("keyplane:stats_start", start),
		cb.Delete().After("gorm:delete").Register("keyplane:stats_end", end),
		cb.Row().Before("gorm:row").Register("keyplane:stats_start", start),
		cb.Row().After("gorm:row").Register("keyplane:stats_end", end),
		cb.Raw().Before("gorm:raw").Register("keyplane:stats_start", start),
		cb.Raw().After("gorm:raw").Register("keyplane:stats_end", end),
	)
}

// PoolStat is the state of one connection pool, for metrics.
type PoolStat struct {
	// Pool names it: "pgx" (PostgreSQL's connections) and "sql"
	// (database/sql, which GORM runs on, over them); on SQLite "read" (the
	// read-only pool) and "write" (the one writer; in memory, the only
	// connection).
	Pool string
	// Max is how many connections it may open (0: no bound).
	Max, InUse, Idle int
	// Waits counts the times a caller had to wait for a connection, and
	// WaitTime how long they waited in all.
	Waits    int64
	WaitTime time.Duration
}

// PoolStats returns the state of the connection pools.
func (d *DB) PoolStats() []PoolStat {
	var out []PoolStat
	if d.Pgx != nil {
		s := d.Pgx.Stat()
		out = append(out, PoolStat{
			Pool: "pgx", Max: int(s.MaxConns()), InUse: int(s.AcquiredConns()), Idle: int(s.IdleConns()),
			Waits: s.EmptyAcquireCount(), WaitTime: s.EmptyAcquireWaitTime(),
		})
	}
	switch {
	case d.reader != nil && d.reader != d.writer:
		out = append(out, sqlPoolStat("read", d.reader), sqlPoolStat("write", d.writer))
	case d.writer != nil:
		out = append(out, sqlPoolStat("write", d.writer))
	case d.Gorm != nil:
		if sqlDB, err := d.Gorm.DB(); err == nil {
			out = append(out, sqlPoolStat("sql", sqlDB))
		}
	}
	return out
}

func sqlPoolStat(name string, p *sql.DB) PoolStat {
	s := p.Stats()
	return PoolStat{Pool: name, Max: s.MaxOpenConnections, InUse: s.InUse, Idle: s.Idle, Waits: s.WaitCount, WaitTime: s.WaitDuration}
}
