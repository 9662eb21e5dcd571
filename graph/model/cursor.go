package model

import (
	"encoding/base64"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/store"
)

// Page sizes of the contract.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

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
// pages one way only. order is the list's order, which the cursors and the
// directions follow: after a cursor is further down the list as it is
// ordered, newest first or oldest first.
func NewPageArgs(first *int, after *string, last *int, before *string, order ListOrder) (store.PageArgs, error) {
	args := store.PageArgs{Descending: order == ListOrderNewestFirst}
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
