package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/netaddr"
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
	hash := parsed.Hash()
	if !stillLive(key, hash[:], now) {
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
	return KeyPrincipal(key, hash), nil
}

// KeyPrincipal is the principal of a key that authenticated with the secret
// whose hash is given: what the key may do now, its scopes capped for a
// personal key by its owner's current role, and where and until when.
func KeyPrincipal(key *store.AuthKey, secretHash credential.Hash) *Principal {
	var ownerRole string
	if key.OwnerRole != nil {
		ownerRole = *key.OwnerRole
	}
	p := &Principal{
		Kind: KindAPIKey, TeamID: key.TeamID, KeyID: key.ID,
		Scopes:     scope.KeyScopes(key.Scopes, key.OwnerID != nil, ownerRole),
		SecretHash: secretHash[:], OwnerID: key.OwnerID,
		AllowedCIDRs: key.CIDRs(), ExpiresAt: key.ExpiresAt,
	}
	if subtle.ConstantTimeCompare(secretHash[:], key.SecretHash) != 1 {
		// The previous secret, inside its rotation's grace window.
		p.SecretExpiresAt = key.PreviousSecretExpiresAt
	}
	return p
}

// Until is when the principal's credential stops working by itself: the
// key's expiry, or the end of the grace window of the previous secret it
// authenticated with, whichever comes first; nil for never.
func (p *Principal) Until() *time.Time {
	switch {
	case p.ExpiresAt == nil:
		return p.SecretExpiresAt
	case p.SecretExpiresAt == nil || p.ExpiresAt.Before(*p.SecretExpiresAt):
		return p.ExpiresAt
	default:
		return p.SecretExpiresAt
	}
}

// Admits reports whether the key may be used from the client address ip,
// as Authenticate decided when the request began.
func (p *Principal) Admits(ip string) bool {
	return p.Kind != KindAPIKey || addressAllowed(p.AllowedCIDRs, ip)
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

// addressAllowed reports whether the client at ip may use a key limited to
// the networks; netaddr holds the rule. An entry stored before entries were
// made canonical (::ffff:10.0.0.0/104) is read the same way as a new one,
// and an unreadable entry admits nobody.
func addressAllowed(cidrs []string, ip string) bool {
	if len(cidrs) == 0 {
		return true
	}
	networks := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		if n, err := netaddr.ParsePrefix(c); err == nil {
			networks = append(networks, n)
		}
	}
	if len(networks) == 0 {
		return false
	}
	addr, err := netaddr.ParseAddr(ip)
	if err != nil {
		return false
	}
	return netaddr.Admits(networks, addr)
}

// Claim is who a credential says it is, read from the token alone: its
// kind and id, checked against nothing. It names the rate-limit bucket a
// request can be refused by before the database is asked anything, and
// must never be trusted beyond that.
type Claim struct {
	Kind Kind
	ID   uuid.UUID
}

// ClaimOf reads the claim of a Bearer credential without the database; it
// is false for a token that is malformed or of a kind that is no principal.
func ClaimOf(token string) (Claim, bool) {
	parsed, err := credential.Parse(token)
	if err != nil {
		return Claim{}, false
	}
	switch parsed.Kind {
	case credential.APIKey:
		return Claim{Kind: KindAPIKey, ID: parsed.ID}, true
	case credential.DeviceToken:
		return Claim{Kind: KindDevice, ID: parsed.ID}, true
	default:
		return Claim{}, false
	}
}
