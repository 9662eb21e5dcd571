// Package ids implements Keyplane's global object ids.
//
// Internally every object is keyed by a UUIDv7, so primary keys are time
// ordered and index friendly. Externally (in GraphQL, logs and URLs) an id is
// written as a short kind prefix, an underscore and the UUID in fixed-width
// base62, for example "key_0F4nW3v0kQy9bJ3YtA2xZq". The prefix makes an id
// self-describing, so a node(id:) lookup knows which table to read and a
// device id pasted where a key id is expected is rejected before any query.
//
// The fixed width and the ascending alphabet (digits, then upper case, then
// lower case, which is ASCII order) make the string order of encoded ids
// equal to the byte order of the UUIDs, so sorting by external id is sorting
// by creation time.
package ids

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/base62"
)

// Kind is the type prefix of a global id; it names the kind of object the id
// refers to, so ids of different kinds can never be confused.
type Kind string

// The known kinds. The strings are part of the external contract: they
// appear in every id handed to clients and must never change.
const (
	// Team is the kind of a team, the unit that owns keys and devices.
	Team Kind = "team"
	// APIKey is the kind of a team API key.
	APIKey Kind = "key"
	// Device is the kind of an enrolled device.
	Device Kind = "dev"
	// Member is the kind of a team membership.
	Member Kind = "mem"
	// EnrollmentKey is the kind of an enrollment key used to enroll devices.
	EnrollmentKey Kind = "enr"
	// AuditEvent is the kind of an audit log event.
	AuditEvent Kind = "evt"
)

// encodedLen is the length of the base62 form of a UUID. It is fixed, and
// not minimal for small values, so that string order equals numeric order.
const encodedLen = 22

// Bounds on the length of a full global id, used to reject absurd input
// before looking at its bytes.
const (
	minKindLen = 3 // "key", "dev", "mem", "enr", "evt"
	maxKindLen = 4 // "team"
	minIDLen   = minKindLen + 1 + encodedLen
	maxIDLen   = maxKindLen + 1 + encodedLen
)

// ErrMalformed is returned (possibly wrapped) for any string that is not a
// well-formed global id or base62 UUID. Callers should test for it with
// errors.Is and report a generic "invalid id" to clients.
var ErrMalformed = errors.New("ids: malformed id")

// Pre-wrapped errors, so that rejecting garbage costs no allocation.
var (
	errLength   = fmt.Errorf("%w: wrong length", ErrMalformed)
	errPrefix   = fmt.Errorf("%w: unknown kind prefix", ErrMalformed)
	errChar     = fmt.Errorf("%w: character outside base62 alphabet", ErrMalformed)
	errOverflow = fmt.Errorf("%w: value exceeds 128 bits", ErrMalformed)
)

// New returns a fresh UUIDv7 for a new object. It does not return an error
// because the only failure of uuid.NewV7 is a failing random source, which
// callers can do nothing about: it retries a few times and then panics, which
// in practice cannot happen since crypto/rand crashes the program rather than
// return an error (Go 1.24 and later).
func New() uuid.UUID {
	for range 3 {
		if id, err := uuid.NewV7(); err == nil {
			return id
		}
	}
	// uuid.NewV7 may have been pointed at another reader with uuid.SetRand;
	// fall back to crypto/rand directly before giving up.
	return uuid.Must(uuid.NewV7FromReader(rand.Reader))
}

// After returns a new id that sorts after prev: New's, when it does, or
// else the smallest UUIDv7 above prev. A team's audit events get their ids
// through it under the team's lock, so that their order by id is the order
// in which they committed even when replicas' clocks disagree.
func After(prev uuid.UUID) uuid.UUID {
	id := New()
	if bytes.Compare(id[:], prev[:]) > 0 {
		return id
	}
	return next(prev)
}

// next returns the UUIDv7 just above id: the random bits plus one, carried
// into the timestamp past their top, leaving the version and variant bits.
func next(id uuid.UUID) uuid.UUID {
	randB := binary.BigEndian.Uint64(id[8:]) & (1<<62 - 1)
	randA := uint64(binary.BigEndian.Uint16(id[6:])) & 0x0fff
	ts := uint64(binary.BigEndian.Uint32(id[0:]))<<16 | uint64(binary.BigEndian.Uint16(id[4:]))
	if randB++; randB == 1<<62 {
		randB = 0
		if randA++; randA == 1<<12 {
			randA = 0
			ts++
		}
	}
	var out uuid.UUID
	binary.BigEndian.PutUint32(out[0:], uint32(ts>>16))
	binary.BigEndian.PutUint16(out[4:], uint16(ts))
	binary.BigEndian.PutUint16(out[6:], 0x7000|uint16(randA))
	binary.BigEndian.PutUint64(out[8:], 1<<63|randB)
	return out
}

// Encode returns the external global id of the object id of the given kind:
// kind + "_" + Base62(id).
func Encode(kind Kind, id uuid.UUID) string {
	var buf [maxKindLen + 1 + encodedLen]byte
	if len(kind) > maxKindLen {
		// Not one of the known kinds; still produce the documented format
		// rather than panic, at the cost of an allocation.
		return string(kind) + "_" + Base62(id)
	}
	n := copy(buf[:], kind)
	buf[n] = '_'
	n++
	putBase62(buf[n:n+encodedLen], id)
	return string(buf[:n+encodedLen])
}

// Decode parses a global id and returns its kind and UUID. It rejects, with
// an error wrapping ErrMalformed, an unknown kind prefix, a wrong length, a
// character outside the base62 alphabet and a value beyond 128 bits. It does
// not allocate on failure, so it is cheap to call on untrusted input.
func Decode(s string) (Kind, uuid.UUID, error) {
	if len(s) < minIDLen || len(s) > maxIDLen {
		return "", uuid.Nil, errLength
	}
	sep := strings.IndexByte(s, '_')
	if sep < 0 {
		return "", uuid.Nil, errPrefix
	}
	kind, ok := knownKind(s[:sep])
	if !ok {
		return "", uuid.Nil, errPrefix
	}
	id, err := ParseBase62(s[sep+1:])
	if err != nil {
		return "", uuid.Nil, err
	}
	return kind, id, nil
}

// DecodeAs parses a global id that must be of the given kind, so that, for
// example, a device id passed where an API key id is expected is rejected
// instead of being looked up in the wrong table. A well-formed id of another
// kind yields an error wrapping ErrMalformed.
func DecodeAs(kind Kind, s string) (uuid.UUID, error) {
	got, id, err := Decode(s)
	if err != nil {
		return uuid.Nil, err
	}
	if got != kind {
		return uuid.Nil, fmt.Errorf("%w: got a %q id, want %q", ErrMalformed, got, kind)
	}
	return id, nil
}

// Base62 returns the 22-character base62 form of id, without a kind prefix.
// The credential package uses it as the public lookup part of a token.
func Base62(id uuid.UUID) string {
	var buf [encodedLen]byte
	putBase62(buf[:], id)
	return string(buf[:])
}

// ParseBase62 is the inverse of Base62. It requires exactly 22 characters
// from the alphabet and a value that fits in 128 bits, and returns an error
// wrapping ErrMalformed otherwise. It does not allocate.
func ParseBase62(s string) (uuid.UUID, error) {
	if len(s) != encodedLen {
		return uuid.Nil, errLength
	}
	var hi, lo uint64
	for i := range len(s) {
		d, ok := base62.Digit(s[i])
		if !ok {
			return uuid.Nil, errChar
		}
		// (hi, lo) = (hi, lo)*62 + d, failing on any carry out of 128 bits.
		ovf, hi62 := bits.Mul64(hi, 62)
		carry, lo62 := bits.Mul64(lo, 62)
		var c uint64
		hi, c = bits.Add64(hi62, carry, 0)
		if ovf != 0 || c != 0 {
			return uuid.Nil, errOverflow
		}
		lo, c = bits.Add64(lo62, uint64(d), 0)
		hi, c = bits.Add64(hi, 0, c)
		if c != 0 {
			return uuid.Nil, errOverflow
		}
	}
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id, nil
}

// knownKind reports whether p is one of the known kinds. It is a switch on
// the string so that it does not allocate.
func knownKind(p string) (Kind, bool) {
	switch k := Kind(p); k {
	case Team, APIKey, Device, Member, EnrollmentKey, AuditEvent:
		return k, true
	}
	return "", false
}

// putBase62 writes the 22 base62 digits of id into dst.
func putBase62(dst []byte, id uuid.UUID) { base62.PutBigEndian(dst, id[:]) }
