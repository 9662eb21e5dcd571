package store

import (
	"slices"

	"github.com/google/uuid"
	"gorm.io/gorm"
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
	var page Page[T]
	rows, err := find[T](s, keysetQuery(q, args))
	if err != nil {
		return page, translate(err, what)
	}
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
	return page, nil
}

// keysetQuery narrows q to the rows of args' page, and one more, in the
// order they are read.
func keysetQuery(q *gorm.DB, args PageArgs) *gorm.DB {
	after, before := args.bounds()
	if args.After != nil {
		q = q.Where("id "+after+" ?", *args.After)
	}
	if args.Before != nil {
		q = q.Where("id "+before+" ?", *args.Before)
	}
	return q.Order(args.scan()).Limit(args.Limit + 1)
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
