package auth

import "context"

// Gate admits a credential presented after the request's headers were read,
// as in a WebSocket's connection_init, with the same checks a header's
// passes (failure limit, rate limit, the key's networks), and charges each
// later operation on that connection to the credential's rate limit. The
// HTTP layer puts one in every request's context.
type Gate interface {
	Authenticate(ctx context.Context, token string) (*Principal, error)
	Charge(ctx context.Context, p *Principal) error
}

type gateKey struct{}

// WithGate returns ctx carrying g.
func WithGate(ctx context.Context, g Gate) context.Context {
	return context.WithValue(ctx, gateKey{}, g)
}

// GateFrom returns the request's gate, or nil.
func GateFrom(ctx context.Context) Gate {
	g, _ := ctx.Value(gateKey{}).(Gate)
	return g
}
