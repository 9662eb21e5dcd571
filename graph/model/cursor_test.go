package model_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/apperr"
)

func TestCursorRoundTrip(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	got, err := model.DecodeCursor("after", model.EncodeCursor(id))
	if err != nil || got != id {
		t.Fatalf("DecodeCursor(EncodeCursor(id)) = %v, %v", got, err)
	}
}

func TestNewPageArgs(t *testing.T) {
	n := func(i int) *int { return &i }
	s := func(v string) *string { return &v }
	cursor := model.EncodeCursor(uuid.Must(uuid.NewV7()))
	for _, tc := range []struct {
		name        string
		first, last *int
		after, bef  *string
		order       model.ListOrder
		limit       int
		backward    bool
		descending  bool
		field       string
	}{
		{name: "defaults to 20", limit: 20},
		{name: "oldest first ascends", first: n(3), order: model.ListOrderOldestFirst, limit: 3},
		{name: "newest first descends", first: n(3), after: &cursor, order: model.ListOrderNewestFirst, limit: 3, descending: true},
		{name: "newest first, last", last: n(4), bef: &cursor, order: model.ListOrderNewestFirst, limit: 4, backward: true, descending: true},
		{name: "first", first: n(7), limit: 7},
		{name: "first 0", first: n(0), limit: 0},
		{name: "first 100", first: n(100), limit: 100},
		{name: "last pages backward", last: n(5), bef: &cursor, limit: 5, backward: true},
		{name: "first 101", first: n(101), field: "first"},
		{name: "negative first", first: n(-1), field: "first"},
		{name: "last 101", last: n(101), field: "last"},
		{name: "both", first: n(1), last: n(1), field: "last"},
		{name: "garbage after", after: s("nope"), field: "after"},
		{name: "garbage before", bef: s("%%%"), field: "before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, err := model.NewPageArgs(tc.first, tc.after, tc.last, tc.bef, tc.order)
			if tc.field != "" {
				e, ok := apperr.As(err)
				if !ok || !errors.Is(err, apperr.ErrBadUserInput) || e.Field != tc.field {
					t.Fatalf("want BAD_USER_INPUT on %s, got %v", tc.field, err)
				}
				return
			}
			if err != nil || args.Limit != tc.limit || args.Backward != tc.backward || args.Descending != tc.descending {
				t.Fatalf("got %+v, %v", args, err)
			}
		})
	}
}

// FuzzDecodeCursor feeds arbitrary text to the cursor decoder: it never
// panics, and anything it accepts encodes back to itself.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(model.EncodeCursor(uuid.Must(uuid.NewV7())))
	f.Add("")
	f.Add("AQ")
	f.Add("key_0351sYg4NCngT9UiL1J5oQ")
	f.Add("AgAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := model.DecodeCursor("after", s)
		if err != nil {
			if !errors.Is(err, apperr.ErrBadUserInput) {
				t.Fatalf("error %v is not BAD_USER_INPUT", err)
			}
			return
		}
		if model.EncodeCursor(id) != s {
			t.Fatalf("accepted %q, which encodes back as %q", s, model.EncodeCursor(id))
		}
	})
}
