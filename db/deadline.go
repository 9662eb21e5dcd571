package db

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// Deadline returns ctx bounded to timeout from now, and the function that
// releases it, which the caller must call once the call is over. A ctx that
// ends sooner already (a transaction's, whose one deadline bounds all of
// it) is returned as it is, and so is any ctx when timeout is zero.
func Deadline(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if !needsDeadline(ctx, timeout) {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}

// needsDeadline reports whether ctx may outlast timeout from now.
func needsDeadline(ctx context.Context, timeout time.Duration) bool {
	if timeout <= 0 {
		return false
	}
	d, ok := ctx.Deadline()
	return !ok || time.Until(d) > timeout
}

// callContext is the context of one GORM call, with its own deadline. It
// remembers the statement that made it, so that only that statement's end
// releases it, and the caller's context, which the statement gets back.
type callContext struct {
	context.Context
	cancel context.CancelFunc
	caller context.Context
	stmt   *gorm.Statement
}

// registerDeadlines gives every GORM call a deadline of timeout, unless its
// context ends sooner already. GORM's WithContext only passes a context on,
// and its DefaultContextTimeout never calls the cancel function it makes, so
// the deadline is made and released here, around each call.
//
// Row and Rows hand their cursor to the caller, who reads it after the call:
// that deadline must outlive the call, so it is not cancelled at the end.
// It is released when its timer fires or the caller's context ends, at the
// latest one timeout later. (The Store's own cursors carry a deadline they
// release on Close; this one is for the rest, such as GORM's Scan.)
func registerDeadlines(g *gorm.DB, timeout time.Duration) error {
	begin := func(db *gorm.DB) {
		stmt := db.Statement
		if db.DryRun || stmt.Context == nil || !needsDeadline(stmt.Context, timeout) {
			return
		}
		ctx, cancel := context.WithTimeout(stmt.Context, timeout)
		stmt.Context = &callContext{Context: ctx, cancel: cancel, caller: stmt.Context, stmt: stmt}
	}
	finish := func(cancel bool) func(*gorm.DB) {
		return func(db *gorm.DB) {
			c, ok := db.Statement.Context.(*callContext)
			if !ok || c.stmt != db.Statement {
				return
			}
			if cancel {
				c.cancel()
			}
			db.Statement.Context = c.caller
		}
	}
	end, handOver := finish(true), finish(false)
	cb := g.Callback()
	return errors.Join(
		cb.Create().Before("*").Register("keyplane:deadline", begin),
		cb.Create().After("*").Register("keyplane:deadline_end", end),
		cb.Query().Before("*").Register("keyplane:deadline", begin),
		cb.Query().After("*").Register("keyplane:deadline_end", end),
		cb.Update().Before("*").Register("keyplane:deadline", begin),
		cb.Update().After("*").Register("keyplane:deadline_end", end),
		cb.Delete().Before("*").Register("keyplane:deadline", begin),
		cb.Delete().After("*").Register("keyplane:deadline_end", end),
		cb.Raw().Before("*").Register("keyplane:deadline", begin),
		cb.Raw().After("*").Register("keyplane:deadline_end", end),
		cb.Row().Before("*").Register("keyplane:deadline", begin),
		cb.Row().After("*").Register("keyplane:deadline_end", handOver),
	)
}
