package client

import (
	"context"
	"errors"
	"iter"
)

// PageOptions selects one page of a list.
type PageOptions struct {
	// First is how many items to return, at most 100; 0 leaves it to the
	// server (20).
	First int
	// After is a cursor, a previous page's PageInfo.EndCursor: the page
	// starts after it. Empty starts at the top of the list.
	After string
	// Order is the order of the list; empty leaves it to the server: oldest
	// first, except the audit log, newest first.
	Order ListOrder
}

// Page is one page of a list.
type Page[T any] struct {
	// Nodes are the page's items.
	Nodes []T
	// PageInfo says whether more items follow, and the cursors to page on
	// from.
	PageInfo PageInfo
	// TotalCount is how many items match the filter, across all pages.
	TotalCount int
}

// Next returns the options that read the page after this one, keeping
// First and Order from opts, and whether there is such a page.
func (p *Page[T]) Next(opts PageOptions) (PageOptions, bool) {
	if !p.PageInfo.HasNextPage || p.PageInfo.EndCursor == nil {
		return opts, false
	}
	opts.After = *p.PageInfo.EndCursor
	return opts, true
}

// errNoCursor stops an iterator whose server says more items follow but
// gives no way to reach them.
var errNoCursor = errors.New("keyplane: the server said more items follow but gave no new cursor")

// all walks every page that list returns, from the top of the list in its
// default order, pageSize items a request. It yields each item with a nil error, and stops after
// yielding a failed request's error with a zero item.
func all[T any](ctx context.Context, pageSize int, list func(context.Context, PageOptions) (*Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		opts := PageOptions{First: pageSize}
		for {
			page, err := list(ctx, opts)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, node := range page.Nodes {
				if !yield(node, nil) {
					return
				}
			}
			next, ok := page.Next(opts)
			if !ok {
				if page.PageInfo.HasNextPage {
					yield(zero, errNoCursor)
				}
				return
			}
			if next.After == opts.After {
				yield(zero, errNoCursor)
				return
			}
			opts = next
		}
	}
}
