package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/store"
)

// A principal is what its key could do when the request began. A request
// can outlive that: one alias removes the key's owner and the next mints a
// key, or an administrator revokes the key while a long request runs. So
// every change runs through InTx, which locks the team, reads the caller
// again inside the change's transaction, and hands the change the caller as
// it is now. Every change of a team takes the same lock first, so a
// revocation, rotation, demotion or removal that committed before is seen,
// and one that comes later waits for this change to commit. One lock, taken
// first by all, also means no two changes can deadlock on each other's rows.

// InTx runs fn in one transaction, with the team locked and the caller as
// it is now (Refresh), and returns fn's value. Every team mutation goes
// through it.
func InTx[T any](ctx context.Context, s *store.Store, p *Principal, fn func(tx *store.Store, p *Principal) (T, error)) (T, error) {
	return store.Tx(ctx, s, func(tx *store.Store) (T, error) {
		var zero T
		if p != nil && p.Kind == KindAPIKey {
			if err := tx.LockTeam(ctx, p.TeamID); err != nil {
				return zero, err
			}
		}
		fresh, err := Refresh(ctx, tx, p)
		if err != nil {
			return zero, err
		}
		return fn(tx, fresh)
	})
}

// Do is InTx for a change that returns nothing but its error.
func Do(ctx context.Context, s *store.Store, p *Principal, fn func(tx *store.Store, p *Principal) error) error {
	_, err := InTx(ctx, s, p, func(tx *store.Store, p *Principal) (struct{}, error) {
		return struct{}{}, fn(tx, p)
	})
	return err
}

// Refresh reads p's key again inside tx, and returns the principal it is
// now: UNAUTHENTICATED once the key is
// revoked, expired, or its secret rotated away, or its owner removed. A
// device token or a missing credential is returned as it is; Need and
// NeedDevice refuse those.
func Refresh(ctx context.Context, tx *store.Store, p *Principal) (*Principal, error) {
	if p == nil || p.Kind != KindAPIKey {
		return p, nil
	}
	k, err := tx.APIKeyForAuth(ctx, p.KeyID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !stillLive(k, p.SecretHash, time.Now())) {
		return nil, ended(ReasonRevoked, "this key's secret was rotated away or revoked while the request ran")
	}
	if err != nil {
		return nil, err
	}
	switch k.StatusAt(time.Now()) {
	case store.KeyRevoked:
		return nil, ended(ReasonRevoked, "this key was revoked while the request ran")
	case store.KeyExpired:
		return nil, ended(ReasonExpired, "this key expired while the request ran")
	}
	if k.OwnerID != nil && k.OwnerRole == nil {
		return nil, ended(ReasonRevoked, "this key's owner was removed while the request ran")
	}
	var hash [32]byte
	copy(hash[:], p.SecretHash)
	return KeyPrincipal(k, hash), nil
}

// stillLive reports whether the secret that authenticated is still the
// key's, or its previous one inside the rotation's grace window.
func stillLive(k *store.AuthKey, secretHash []byte, now time.Time) bool {
	if subtle.ConstantTimeCompare(secretHash, k.SecretHash) == 1 {
		return true
	}
	return k.PreviousSecretExpiresAt != nil && now.Before(*k.PreviousSecretExpiresAt) &&
		subtle.ConstantTimeCompare(secretHash, k.PreviousSecretHash) == 1
}

func ended(reason Reason, message string) error {
	return &apperr.Error{Code: apperr.Unauthenticated, Reason: string(reason), Message: message}
}
