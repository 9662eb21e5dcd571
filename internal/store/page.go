package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/keyplane/keyplane/db"
)

// PageArgs asks for one keyset page of a list ordered by id, which is the
// order of creation (ids are UUIDv7): Limit rows after a row id (forward) or
// before one (backward). After and before are positions in the list's own
// order, ascending or, when Descending, newest first. The GraphQL edge builds
// it from Relay's arguments and cursors (graph/model.NewPageArgs).
type PageArgs struct {
	Limit      int
	Backward   bool
	Descending bool
	After      *uuid.UUID
	Before     *uuid.UUID
}

// bounds returns how a row id compares with a cursor's for the row to come
// after the cursor in the list, and for it to come before.
func (a PageArgs) bounds() (after, before string) {
	if a.Descending {
		return "<", ">"
	}
	return ">", "<"
}

// scan returns the order to read rows in: the list's own, or its reverse
// when paging backward, so that the rows nearest the cursor come first.
func (a PageArgs) scan() string {
	if a.Descending != a.Backward {
		return "id DESC"
	}
	return "id ASC"
}

// Page is one keyset page of rows, in the list's order.
type Page[T any] struct {
	Items   []T
	HasNext bool
	HasPrev bool
}

// keysetPage reads one page of q by its id column: no OFFSET, so a page deep
// in the list costs what the first one does, in either order: an index on
// (team_id, id) is read forward or backward. It fetches one row more than
// asked to learn whether another page follows. A cursor is a row's id, so a
// page never shifts when rows are inserted elsewhere in the list.
func keysetPage[T any](s *Store, q *gorm.DB, args PageArgs, what string) (Page[T], error) {
	rows, err := find[T](s, keysetQuery(q, args))
	if err != nil {
		return Page[T]{}, translate(err, what)
	}
	return pageOf(rows, args), nil
}

// pageOf makes a page of the rows read for args, one more than asked
// when another page follows, in the order they were read.
func pageOf[T any](rows []T, args PageArgs) Page[T] {
	var page Page[T]
	more := len(rows) > args.Limit
	if more {
		rows = rows[:args.Limit]
	}
	if args.Backward {
		slices.Reverse(rows)
		page.HasPrev, page.HasNext = more, args.Before != nil
	} else {
		page.HasNext, page.HasPrev = more, args.After != nil
	}
	page.Items = rows
	return page
}

// condition is one of a list's WHERE conditions, with its args.
type condition struct {
	sql  string
	args []any
}

// pageKey is the shape of a keyset page's statement: what its SQL text
// depends on. The filter part says which conditions a list applies (never
// their values); it must be comparable, and its type is the list's own, so
// that two lists never share a key.
type pageKey struct {
	filter     any
	after      bool
	before     bool
	backward   bool
	descending bool
	limit      int
}

// pageSQL holds the SQL text of the keyset pages read through pgx, by
// pageKey: GORM writes each shape's once, and each request brings only its
// args. The shapes are few: a filter's conditions, an order, two cursors
// and a page size bounded by the schema.
var pageSQL sync.Map

// listPage reads one keyset page of the rows of model that match conds,
// as keysetPage does. On the pgx path the statement's text is written once
// per shape (filter, order, cursors, limit), with LIMIT literal so that
// PostgreSQL can keep a generic plan; filter names the conditions' shape.
func listPage[T any](ctx context.Context, s *Store, model any, filter any, conds []condition, args PageArgs, what string) (Page[T], error) {
	q := func(ctx context.Context) *gorm.DB {
		q := s.with(ctx).Model(model)
		for _, c := range conds {
			q = q.Where(c.sql, c.args...)
		}
		return q
	}
	sc, ok := any(new(T)).(scanned)
	if s.pgx == nil || s.txCtx != nil || !ok {
		return keysetPage[T](s, q(ctx), args, what)
	}
	n := 0
	for _, c := range conds {
		n += len(c.args)
	}
	vars := make([]any, 0, n+2)
	for _, c := range conds {
		vars = append(vars, c.args...)
	}
	if args.After != nil {
		vars = append(vars, *args.After)
	}
	if args.Before != nil {
		vars = append(vars, *args.Before)
	}
	key := pageKey{filter: filter, after: args.After != nil, before: args.Before != nil,
		backward: args.Backward, descending: args.Descending, limit: args.Limit}
	text, ok := pageSQL.Load(key)
	if !ok {
		stmt := keysetWhere(q(ctx), args).Select(sc.columns()).Session(&gorm.Session{DryRun: true}).Find(&[]map[string]any{})
		if stmt.Error != nil {
			return Page[T]{}, translate(stmt.Error, what)
		}
		if len(stmt.Statement.Vars) != len(vars) {
			return Page[T]{}, fmt.Errorf("store: the %s page's SQL has %d args, its conditions %d", what, len(stmt.Statement.Vars), len(vars))
		}
		text, _ = pageSQL.LoadOrStore(key, stmt.Statement.SQL.String()+" LIMIT "+strconv.Itoa(args.Limit+1))
	}
	ctx, cancel := db.Deadline(ctx, s.timeout)
	cursor, err := s.pgxQuery(ctx, cancel, text.(string), vars)
	if err != nil {
		return Page[T]{}, translate(err, what)
	}
	rows, err := scanRows[T](cursor)
	if err != nil {
		return Page[T]{}, translate(err, what)
	}
	return pageOf(rows, args), nil
}

// keysetQuery narrows q to the rows of args' page, and one more, in the
// order they are read.
func keysetQuery(q *gorm.DB, args PageArgs) *gorm.DB {
	return keysetWhere(q, args).Limit(args.Limit + 1)
}

// keysetWhere narrows q to the rows after and before args' cursors, in the
// order they are read, without the page's LIMIT.
func keysetWhere(q *gorm.DB, args PageArgs) *gorm.DB {
	after, before := args.bounds()
	if args.After != nil {
		q = q.Where("id "+after+" ?", *args.After)
	}
	if args.Before != nil {
		q = q.Where("id "+before+" ?", *args.Before)
	}
	return q.Order(args.scan())
}

// scanned is a row type that lists its columns and scans itself, for the
// pages read on every request: GORM's reflective scan allocates a value per
// column per row, which was a third of a request's allocations.
type scanned interface {
	columns() string
	fields() []any
}

// find runs q and reads its rows, scanning them directly when *T knows how.
func find[T any](s *Store, q *gorm.DB) ([]T, error) {
	var rows []T
	if _, ok := any(new(T)).(scanned); !ok {
		err := q.Find(&rows).Error
		return rows, err
	}
	cursor, err := s.query(q.Select(any(new(T)).(scanned).columns()))
	if err != nil {
		return nil, err
	}
	return scanRows[T](cursor)
}

// scanRows reads and closes cursor; *T must be scanned.
func scanRows[T any](cursor rows) ([]T, error) {
	var rows []T
	defer cursor.Close()
	for cursor.Next() {
		var row T
		if err := cursor.Scan(any(&row).(scanned).fields()...); err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, cursor.Err()
}
