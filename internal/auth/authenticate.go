package auth

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
)

// Reason says why a credential did not authenticate. Only a caller whose
// secret matched learns more than INVALID.
type Reason string

// The reasons of the contract.
const (
	ReasonInvalid      Reason = "INVALID"
	ReasonRevoked      Reason = "REVOKED"
	ReasonExpired      Reason = "EXPIRED"
	ReasonIPNotAllowed Reason = "IP_NOT_ALLOWED"
)

// Failure is a credential that did not authenticate: the request gets 401.
type Failure struct{ Reason Reason }

func (f *Failure) Error() string {
	switch f.Reason {
	case ReasonRevoked:
		return "this credential has been revoked"
	case ReasonExpired:
		return "this credential has expired"
	case ReasonIPNotAllowed:
		return "this credential may not be used from this address"
	default:
		return "this credential is not valid"
	}
}

// UsageRecorder notes that a key was used, without writing per request.
type UsageRecorder interface {
	Touch(u store.KeyUsage)
}

// Authenticator checks credentials against the store.
type Authenticator struct {
	store *store.Store
	usage UsageRecorder
}

// NewAuthenticator returns an Authenticator; usage may be nil.
func NewAuthenticator(s *store.Store, usage UsageRecorder) *Authenticator {
	return &Authenticator{store: s, usage: usage}
}

// Authenticate returns the principal a credential stands for: a team API key
// or a device token. A credential that does not authenticate yields a
// *Failure; anything else is a fault of the server. The shape and checksum
// are checked before the database is.
func (a *Authenticator) Authenticate(ctx context.Context, token string, client Client) (*Principal, error) {
	parsed, err := credential.Parse(token)
	if err != nil {
		return nil, &Failure{Reason: ReasonInvalid}
	}
	switch parsed.Kind {
	case credential.APIKey:
		return a.apiKey(ctx, parsed, client)
	case credential.DeviceToken:
		return a.device(ctx, parsed)
	default:
		return nil, &Failure{Reason: ReasonInvalid}
	}
}

func (a *Authenticator) apiKey(ctx context.Context, parsed credential.Parsed, client Client) (*Principal, error) {
	key, err := a.store.APIKeyForAuth(ctx, parsed.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Failure{Reason: ReasonInvalid}
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if !secretMatches(parsed, &key.APIKey, now) {
		return nil, &Failure{Reason: ReasonInvalid}
	}
	switch key.StatusAt(now) {
	case store.KeyRevoked:
		return nil, &Failure{Reason: ReasonRevoked}
	case store.KeyExpired:
		return nil, &Failure{Reason: ReasonExpired}
	}
	if !addressAllowed(key.CIDRs(), client.IP) {
		return nil, &Failure{Reason: ReasonIPNotAllowed}
	}
	if a.usage != nil {
		a.usage.Touch(store.KeyUsage{KeyID: key.ID, At: store.Now(), IP: client.IP})
	}
	var ownerRole string
	if key.OwnerRole != nil {
		ownerRole = *key.OwnerRole
	}
	scopes := scope.KeyScopes(key.Scopes, key.OwnerID != nil, ownerRole)
	return &Principal{Kind: KindAPIKey, TeamID: key.TeamID, KeyID: key.ID, Scopes: scopes}, nil
}

func (a *Authenticator) device(ctx context.Context, parsed credential.Parsed) (*Principal, error) {
	d, err := a.store.DeviceForAuth(ctx, parsed.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Failure{Reason: ReasonInvalid}
	}
	if err != nil {
		return nil, err
	}
	if !parsed.Matches(d.TokenHash) {
		return nil, &Failure{Reason: ReasonInvalid}
	}
	if d.RevokedAt != nil {
		return nil, &Failure{Reason: ReasonRevoked}
	}
	return &Principal{Kind: KindDevice, TeamID: d.TeamID, DeviceID: d.ID, DeviceTokenHash: d.TokenHash}, nil
}

// secretMatches compares in constant time against the current secret and,
// during a rotation's grace window, the previous one.
func secretMatches(p credential.Parsed, key *store.APIKey, now time.Time) bool {
	if p.Matches(key.SecretHash) {
		return true
	}
	return key.PreviousSecretExpiresAt != nil && now.Before(*key.PreviousSecretExpiresAt) && p.Matches(key.PreviousSecretHash)
}

// addressAllowed reports whether ip falls in one of the networks; no
// networks means any address.
func addressAllowed(cidrs []string, ip string) bool {
	if len(cidrs) == 0 {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, c := range cidrs {
		if prefix, err := netip.ParsePrefix(c); err == nil && prefix.Contains(addr) {
			return true
		}
	}
	return false
}
