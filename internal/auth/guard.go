package auth

import (
	"context"
	"time"
)

// FailureGuard limits failed credentials per client address. The HTTP layer
// applies it to the credentials of headers; a credential carried in a
// mutation's input (an enrollment key) is checked through the guard the
// HTTP layer puts in the request's context.
type FailureGuard interface {
	// Blocked reports whether the client has failed too often, and for how
	// long it must wait.
	Blocked(ctx context.Context) (time.Duration, bool)
	// Failed counts one failed credential against the client.
	Failed(ctx context.Context)
}

type guardKey struct{}

// WithGuard returns ctx carrying g.
func WithGuard(ctx context.Context, g FailureGuard) context.Context {
	return context.WithValue(ctx, guardKey{}, g)
}

// GuardFrom returns the request's guard, or one that never blocks.
func GuardFrom(ctx context.Context) FailureGuard {
	if g, ok := ctx.Value(guardKey{}).(FailureGuard); ok {
		return g
	}
	return noGuard{}
}

type noGuard struct{}

func (noGuard) Blocked(context.Context) (time.Duration, bool) { return 0, false }
func (noGuard) Failed(context.Context)                        {}
