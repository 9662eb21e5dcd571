// Package auth turns a presented credential into a Principal and answers the
// one question every guarded field asks: may this caller do that?
package auth

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/scope"
)

// Kind is what sort of credential authenticated a request.
type Kind int

// Principal kinds. An enrollment key is no principal: it is presented in
// enrollDevice's input, never as a Bearer credential.
const (
	KindAPIKey Kind = iota + 1
	KindDevice
)

// Principal is the authenticated caller of one request.
type Principal struct {
	Kind   Kind
	TeamID uuid.UUID
	// KeyID is the API key that authenticated, for KindAPIKey.
	KeyID uuid.UUID
	// Scopes is what the key may do now: its own scopes, capped by its
	// owner's role for a personal key.
	Scopes scope.Set
	// SecretHash is the hash of the key's secret that authenticated, so that
	// a change can require that secret to still be live (Refresh).
	SecretHash []byte
	// OwnerID is the member whose personal key this is, or nil.
	OwnerID *uuid.UUID
	// AllowedCIDRs and ExpiresAt bound where and until when the key works;
	// the keys it makes or takes over must stay within them.
	AllowedCIDRs []string
	ExpiresAt    *time.Time
	// SecretExpiresAt is set when the key authenticated with its previous
	// secret, inside a rotation's grace window: when that window ends.
	SecretExpiresAt *time.Time
	// DeviceID is the device that authenticated, for KindDevice.
	DeviceID uuid.UUID
	// DeviceTokenHash is the hash of the token that authenticated, so that a
	// device's write can require that token to still be current.
	DeviceTokenHash []byte
}

// Client is where a request came from, for audit and usage.
type Client struct {
	IP        string
	UserAgent string
}

type principalKey struct{}
type clientKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal, or nil when the request
// presented no credential.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// WithClient returns ctx carrying the request's origin.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the request's origin (zero outside a request).
func ClientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// Require returns the request's caller if it is a team API key holding
// every scope listed (see Principal.Need).
func Require(ctx context.Context, scopes ...scope.Scope) (*Principal, error) {
	p := FromContext(ctx)
	if err := p.Need(scopes...); err != nil {
		return nil, err
	}
	return p, nil
}

// RequireDevice returns the request's caller if it is a device token.
func RequireDevice(ctx context.Context) (*Principal, error) {
	p := FromContext(ctx)
	if err := p.NeedDevice(); err != nil {
		return nil, err
	}
	return p, nil
}
