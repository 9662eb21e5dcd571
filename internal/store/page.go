package store

import (
	"slices"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// PageArgs asks for one keyset page: Limit rows after a row id (forward) or
// before one (backward). The GraphQL edge builds it from Relay's arguments
// and cursors (graph/model.NewPageArgs).
type PageArgs struct {
	Limit    int
	Backward bool
	After    *uuid.UUID
	Before   *uuid.UUID
}

// Page is one keyset page of rows, in ascending id order.
type Page[T any] struct {
	Items   []T
	HasNext bool
	HasPrev bool
}

// keysetPage reads one page of q by its id column: no OFFSET, so a page deep
// in the list costs what the first one does. It fetches one row more than
// asked to learn whether another page follows.
func keysetPage[T any](s *Store, q *gorm.DB, args PageArgs, what string) (Page[T], error) {
	var page Page[T]
	if args.After != nil {
		q = q.Where("id > ?", *args.After)
	}
	if args.Before != nil {
		q = q.Where("id < ?", *args.Before)
	}
	order := "id ASC"
	if args.Backward {
		order = "id DESC"
	}
	rows, err := find[T](s, q.Order(order).Limit(args.Limit+1))
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
