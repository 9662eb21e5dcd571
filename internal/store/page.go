package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	// Columns, when set, are the only columns the caller reads of each
	// row: the others are not read, and stay zero. The row's first two
	// (id, team_id) are always read; a name the row type does not have
	// reads them all. Nil reads every column.
	Columns []string
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
	rows, err := find[T](s, keysetQuery(q, args), args.Columns, args.Limit+1)
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
	columns    uint64
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
	pick := picked(sc, args.Columns)
	key := pageKey{filter: filter, after: args.After != nil, before: args.Before != nil,
		backward: args.Backward, descending: args.Descending, limit: args.Limit, columns: pick}
	text, ok := pageSQL.Load(key)
	if !ok {
		stmt := keysetWhere(q(ctx), args).Select(selectList(sc, pick)).Session(&gorm.Session{DryRun: true}).Find(&[]map[string]any{})
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
	rows, err := scanRows[T](cursor, pick, args.Limit+1)
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
// column per row, which was a third of a request's allocations. fields
// returns a pointer per column, in the order of columns.
type scanned interface {
	columns() []string
	fields() []any
}

// picked returns the set of columns of sc (bit i: the i-th) that reading
// want takes: the first two always, every one for nil or for a name sc
// does not have. The set names the statement's shape in pageKey.
func picked(sc scanned, want []string) uint64 {
	all := sc.columns()
	if want == nil {
		return 1<<len(all) - 1
	}
	set := uint64(0b11)
	for _, name := range want {
		i := slices.Index(all, name)
		if i < 0 {
			return 1<<len(all) - 1
		}
		set |= 1 << i
	}
	return set
}

// selectList is the SELECT list of the columns in set.
func selectList(sc scanned, set uint64) string {
	var b strings.Builder
	for i, name := range sc.columns() {
		if set&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(name)
		}
	}
	return b.String()
}

// find runs q and reads its rows, scanning them directly when *T knows how,
// then only the columns named (PageArgs.Columns). size is how many rows to
// make room for.
func find[T any](s *Store, q *gorm.DB, columns []string, size int) ([]T, error) {
	sc, ok := any(new(T)).(scanned)
	if !ok {
		var rows []T
		err := q.Find(&rows).Error
		return rows, err
	}
	set := picked(sc, columns)
	cursor, err := s.query(q.Select(selectList(sc, set)))
	if err != nil {
		return nil, err
	}
	return scanRows[T](cursor, set, size)
}

// scanRows reads and closes cursor, whose columns are those of set; *T must
// be scanned. size is how many rows to make room for.
//
// Each row is scanned into one value and copied out: the targets are made
// once, not per row. A column left out is never scanned, so it stays zero;
// what a scan allocates (a string, a *time.Time) is the row's own.
func scanRows[T any](cursor rows, set uint64, size int) ([]T, error) {
	defer cursor.Close()
	out := make([]T, 0, size)
	var row T
	all := any(&row).(scanned).fields()
	targets := all[:0]
	for i, f := range all {
		if set&(1<<i) != 0 {
			targets = append(targets, f)
		}
	}
	for cursor.Next() {
		if err := cursor.Scan(targets...); err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, cursor.Err()
}
