// Package requestid gives every request an id that its log lines and its
// INTERNAL errors share, so an operator can find one from the other.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Header carries the id in both directions.
const Header = "X-Request-Id"

type key struct{}

// New returns a fresh random id.
func New() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Valid reports whether a client-sent id is safe to adopt and to log: 1 to 64
// characters of letters, digits, '-' and '_'.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context { return context.WithValue(ctx, key{}, id) }

// From returns the request's id, or "" outside a request.
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
