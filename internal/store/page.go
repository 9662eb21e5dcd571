package store

import (
	"encoding/base64"
	"slices"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/keyplane/keyplane/internal/apperr"
)

// Page sizes of the contract.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// PageArgs is a validated Relay pagination request: a number of rows after a
// cursor (forward) or before one (backward).
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

// cursorVersion leads every cursor so that its format can change later.
const cursorVersion = 1

// EncodeCursor returns the opaque cursor of a row id.
func EncodeCursor(id uuid.UUID) string {
	var b [17]byte
	b[0] = cursorVersion
	copy(b[1:], id[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeCursor reads a cursor made by EncodeCursor. Only the exact text
// EncodeCursor makes is accepted: the base64 decoder alone would skip line
// breaks, so one row would have many cursors.
func DecodeCursor(field, cursor string) (uuid.UUID, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil || len(b) != 17 || b[0] != cursorVersion || EncodeCursor(uuid.UUID(b[1:])) != cursor {
		return uuid.Nil, apperr.Input(field, "%s is not a cursor returned by this API", field)
	}
	return uuid.UUID(b[1:]), nil
}

// NewPageArgs validates first/after/last/before as the contract sets them:
// first defaults to 20, neither may exceed 100 or be negative, and a request
// pages one way only.
func NewPageArgs(first *int, after *string, last *int, before *string) (PageArgs, error) {
	var args PageArgs
	if first != nil && last != nil {
		return args, apperr.Input("last", "pass first or last, not both")
	}
	size := DefaultPageSize
	field := "first"
	if last != nil {
		size, field, args.Backward = *last, "last", true
	} else if first != nil {
		size = *first
	}
	if size < 0 || size > MaxPageSize {
		return args, apperr.Input(field, "%s must be between 0 and %d", field, MaxPageSize)
	}
	args.Limit = size
	if after != nil {
		id, err := DecodeCursor("after", *after)
		if err != nil {
			return args, err
		}
		args.After = &id
	}
	if before != nil {
		id, err := DecodeCursor("before", *before)
		if err != nil {
			return args, err
		}
		args.Before = &id
	}
	return args, nil
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
