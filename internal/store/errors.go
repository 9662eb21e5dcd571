package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// Sentinels of the outcomes a caller may act on. Test for them with
// errors.Is; the domain and the GraphQL edge map them to the contract's
// codes, the store knows nothing of those.
var (
	// ErrNotFound is a row that does not exist for the team asked about.
	ErrNotFound = errors.New("not found")
	// ErrConflict is a row that would duplicate a unique one.
	ErrConflict = errors.New("already exists")
	// ErrStale is a conditional update that lost a race: the row changed
	// (or was revoked) after the caller read it.
	ErrStale = errors.New("changed meanwhile; read it again and retry")
)

// Error is one of the sentinels with the name of the object it is about:
// "api key not found". Its text is made only of the store's own words,
// never a driver's, so the edge may show it to a client.
type Error struct {
	object string
	err    error
}

func (e *Error) Error() string { return e.object + " " + e.err.Error() }

// Unwrap returns the sentinel, for errors.Is.
func (e *Error) Unwrap() error { return e.err }

func notFound(object string) error { return &Error{object: object, err: ErrNotFound} }

func stale(object string) error { return &Error{object: object, err: ErrStale} }

// OrNil turns ErrNotFound into a nil result, for lookups where absence is
// an answer rather than a failure (a key's owner who is gone).
func OrNil[T any](v *T, err error) (*T, error) {
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// translate maps a driver error to the store's: what names the object in
// ErrNotFound's and ErrConflict's text ("a member with this email already
// exists"); any other error is wrapped for the log.
func translate(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return notFound(what)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return &Error{object: what, err: ErrConflict}
	case lostRace(err):
		return &Error{object: what, err: ErrStale}
	default:
		return fmt.Errorf("store: %s: %w", what, err)
	}
}

// lostRace reports whether PostgreSQL broke a deadlock or a serialization
// conflict by failing this statement: the change lost a race with another,
// and the caller may read again and retry.
func lostRace(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
