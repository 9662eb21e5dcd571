package auth

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/netaddr"
	"github.com/keyplane/keyplane/internal/scope"
)

// The rule every domain service applies, stated once: a credential never
// reaches, directly or through another object, more than its effective
// scopes. Each service method calls one of the checks below before it reads
// or writes, whatever path led to it (a root field, node, an edge, a
// loader), so a new path cannot forget the rule. A refusal is FORBIDDEN,
// never NOT_FOUND: it depends only on the caller and the kind of object,
// never on whether the object exists.

// Need returns nil when p is a team API key holding every scope listed
// (none: any team API key), and otherwise the error the caller sees:
// UNAUTHENTICATED without a credential, FORBIDDEN naming the first missing
// scope.
func (p *Principal) Need(scopes ...scope.Scope) error {
	if p == nil {
		return apperr.New(apperr.Unauthenticated, "this field needs a credential: send Authorization: Bearer <key>")
	}
	if p.Kind != KindAPIKey {
		return apperr.New(apperr.Forbidden, "this field needs a team API key, not a device token")
	}
	for _, s := range scopes {
		if !p.Scopes.Has(s) {
			return apperr.MissingScope(s.String())
		}
	}
	return nil
}

// ByID is every domain service's read by ids (for edges, loaders and
// nodes): it checks the caller holds the read scope of the type first, then
// reads the ids in the caller's team. With no ids it only checks, so that a
// loader can refuse an edge whatever it points to, and before it looks at
// what the operation has read already.
func ByID[T any](ctx context.Context, p *Principal, read scope.Scope, ids []uuid.UUID,
	fetch func(ctx context.Context, teamID uuid.UUID, ids []uuid.UUID) ([]T, error)) ([]T, error) {
	if err := p.Need(read); err != nil || len(ids) == 0 {
		return nil, err
	}
	return fetch(ctx, p.TeamID, ids)
}

// NeedDevice returns nil when p is a device token: the only credential
// that may act as a device (deviceHeartbeat).
func (p *Principal) NeedDevice() error {
	if p == nil {
		return apperr.New(apperr.Unauthenticated, "this field needs a device token: send Authorization: Bearer <kpd_ token>")
	}
	if p.Kind != KindDevice {
		return apperr.New(apperr.Forbidden, "this field needs a device token, not a team API key")
	}
	return nil
}

// Covers returns nil when p holds every scope of want. what says what is at
// stake, for the message ("grant", "manage this key", …).
func (p *Principal) Covers(want scope.Set, what string) error {
	if err := p.Need(); err != nil {
		return err
	}
	missing, ok := p.Scopes.Covers(want)
	switch {
	case ok:
		return nil
	case missing == 0:
		return &apperr.Error{Code: apperr.Forbidden, Scope: "*",
			Message: "to " + what + " a key must hold every scope, including ones added later: only a key created without scopes does"}
	default:
		return &apperr.Error{Code: apperr.Forbidden, Scope: missing.String(),
			Message: "to " + what + " a key must hold every scope at stake; this key lacks " + missing.String()}
	}
}

// ManageKey is the rule for rotating, updating or revoking a key: the
// caller needs API_KEYS_WRITE and every scope the target key effectively
// holds now (for a personal key, capped by its owner's role). A key may
// always manage itself, since it holds what it holds.
func (p *Principal) ManageKey(target uuid.UUID, effective scope.Set) error {
	if err := p.Need(scope.APIKeysWrite); err != nil {
		return err
	}
	if target == p.KeyID {
		return nil
	}
	return p.Covers(effective, "manage this key")
}

// GrantRoles is the rule for adding, changing or removing a member: the
// caller needs MEMBERS_WRITE and every scope of each role's cap involved,
// the old one and the new one. Otherwise a key could promote a member whose
// personal key then holds more than the caller.
func (p *Principal) GrantRoles(roles ...scope.Role) error {
	if err := p.Need(scope.MembersWrite); err != nil {
		return err
	}
	for _, r := range roles {
		if err := p.Covers(r.Cap(), "give or take the role "+string(r)); err != nil {
			return err
		}
	}
	return nil
}

// Within is the rule for where and until when: a key restricted to some
// networks, or expiring, may only make or take over keys (createApiKey,
// rotateApiKey: the caller holds the secret afterwards) and set allowlists
// (updateApiKey) within its own bounds. Otherwise a key limited to one
// network could mint or rotate its way to a secret usable from anywhere,
// or for ever.
func (p *Principal) Within(cidrs []string, expiresAt *time.Time) error {
	if err := p.WithinNetworks(cidrs); err != nil {
		return err
	}
	if p.ExpiresAt != nil && (expiresAt == nil || expiresAt.After(*p.ExpiresAt)) {
		return bounded("this key expires at " + p.ExpiresAt.UTC().Format(time.RFC3339) + ": the keys it makes or takes over must expire no later")
	}
	return nil
}

// WithinNetworks is Within for networks alone: the allowlist a key sets, on
// itself or another key, stays inside its own.
func (p *Principal) WithinNetworks(cidrs []string) error {
	if len(p.AllowedCIDRs) == 0 {
		return nil
	}
	if len(cidrs) == 0 {
		return bounded("this key may only be used from " + strings.Join(p.AllowedCIDRs, ", ") + ": the keys it makes, takes over or changes must be limited to networks inside those")
	}
	for _, c := range cidrs {
		if !inside(c, p.AllowedCIDRs) {
			return bounded("the network " + c + " is not inside this key's own allowed networks (" + strings.Join(p.AllowedCIDRs, ", ") + ")")
		}
	}
	return nil
}

// Owns is the rule for a member's personal key making or taking over keys
// (createApiKey, rotateApiKey: the caller holds the secret afterwards):
// only keys of the same member, so that each is capped by the member's role
// and revoked with them. owner is the key's owner (nil: a team key).
func (p *Principal) Owns(owner *uuid.UUID) error {
	if p.OwnerID == nil || (owner != nil && *owner == *p.OwnerID) {
		return nil
	}
	return &apperr.Error{Code: apperr.Forbidden, Message: "a member's personal key makes and rotates only keys of that member (for a new key: set ownerId to the member, or leave it out)"}
}

func bounded(message string) error {
	return &apperr.Error{Code: apperr.Forbidden, Message: message}
}

// inside reports whether the network c lies within one of the networks.
// Both are read by netaddr's rule, as addressAllowed reads them, so that
// an entry stored before entries were made canonical means the same here.
func inside(c string, networks []string) bool {
	inner, err := netaddr.ParsePrefix(c)
	if err != nil {
		return false
	}
	inner = inner.Masked()
	for _, n := range networks {
		outer, err := netaddr.ParsePrefix(n)
		if err == nil && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr()) {
			return true
		}
	}
	return false
}
