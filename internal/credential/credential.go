// Package credential defines the wire format of Keyplane's bearer
// credentials (team API keys, device tokens and enrollment keys) and the
// pure functions around it: generation, parsing, checksum, hashing and
// constant-time comparison. It knows nothing about storage or HTTP.
//
// A token looks like
//
//	kp_<id:22>_<secret:43><checksum:6>
//
// where id is the base62 form of the credential object's own UUID, so
// authenticating is a single primary-key lookup followed by one hash
// comparison; secret is 256 random bits in base62; and checksum is the CRC32
// of everything before it, so typos and truncated pastes are rejected
// locally, without a database round trip, and secret scanners can recognise
// real tokens with few false positives. The whole token uses only
// [A-Za-z0-9_], so it survives double-click selection, URLs and shells.
package credential

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/base62"

	"github.com/keyplane/keyplane/internal/ids"
)

// Kind says what a credential authenticates as. Each kind has its own token
// prefix, so a leaked token's purpose is obvious and a token of one kind
// cannot be replayed where another is expected.
type Kind int

// The credential kinds. The zero value is deliberately not a kind, so an
// unset Kind is never mistaken for a valid one.
const (
	// APIKey is a team API key, used by automation acting for a team.
	APIKey Kind = iota + 1
	// DeviceToken is the long-lived token of an enrolled device.
	DeviceToken
	// EnrollmentKey is a key that lets a new device enroll into a team.
	EnrollmentKey
)

// The token prefixes. They are part of the external contract (secret
// scanners match on them) and must never change.
const (
	apiKeyPrefix        = "kp_"
	deviceTokenPrefix   = "kpd_"
	enrollmentKeyPrefix = "kpe_"
)

// Prefix returns the token prefix of the kind ("kp_", "kpd_" or "kpe_"), or
// "" for a value that is not a kind.
func (k Kind) Prefix() string {
	switch k {
	case APIKey:
		return apiKeyPrefix
	case DeviceToken:
		return deviceTokenPrefix
	case EnrollmentKey:
		return enrollmentKeyPrefix
	}
	return ""
}

// String returns a human-readable name of the kind for messages and logs.
func (k Kind) String() string {
	switch k {
	case APIKey:
		return "api key"
	case DeviceToken:
		return "device token"
	case EnrollmentKey:
		return "enrollment key"
	}
	return "credential.Kind(" + strconv.Itoa(int(k)) + ")"
}

// Lengths of the parts of a token after its prefix.
const (
	idLen       = 22 // ids.Base62 of a UUID
	secretLen   = 43 // 62^43 > 2^256, so 32 random bytes always fit
	checksumLen = 6  // 62^6 > 2^32, so a CRC32 always fits
	secretBytes = 32
	bodyLen     = idLen + 1 + secretLen + checksumLen // 72

	minTokenLen = len(apiKeyPrefix) + bodyLen
	maxTokenLen = len(deviceTokenPrefix) + bodyLen
)

// Sentinel errors of Parse and ParseKind. Test for them with errors.Is. None
// of the errors returned by this package ever contains any part of a token.
var (
	// ErrMalformed means the input does not have the shape of a credential:
	// unknown prefix, wrong length, a character outside the alphabet, a
	// missing separator or an id that is not a valid UUID.
	ErrMalformed = errors.New("credential: malformed token")
	// ErrChecksum means the input has the shape of a credential but its
	// checksum does not match, which almost always means a typo or a
	// corrupted copy rather than an attack; it is kept apart from
	// ErrMalformed so callers can give a more helpful message.
	ErrChecksum = errors.New("credential: token checksum mismatch")
	// ErrWrongKind means a well-formed credential of another kind was
	// presented, for example a device token where an API key is required.
	ErrWrongKind = errors.New("credential: wrong kind of token")
)

// Pre-wrapped errors, so that rejecting garbage never allocates.
var (
	errLength    = fmt.Errorf("%w: wrong length", ErrMalformed)
	errPrefix    = fmt.Errorf("%w: unknown prefix", ErrMalformed)
	errSeparator = fmt.Errorf("%w: missing separator after id", ErrMalformed)
	errChar      = fmt.Errorf("%w: character outside [A-Za-z0-9_]", ErrMalformed)
	errID        = fmt.Errorf("%w: id is not a valid base62 uuid", ErrMalformed)
	errBadKind   = errors.New("credential: not a credential kind")
)

// randReader is the source of secrets. It is a variable only so tests can
// exercise the failure path.
var randReader io.Reader = rand.Reader

// Hash is the stored form of a secret: SHA-256 over the whole token string.
// It is fast on purpose: the secret has 256 bits of entropy, so a slow
// password hash would add latency to every request and no safety, since
// nobody can brute-force a 256-bit preimage anyway.
type Hash [32]byte

// HashToken returns the Hash of a token. It hashes the whole token rather
// than only the secret so the stored hash is bound to the kind and id, and a
// hash copied to another row cannot match. It does not allocate for inputs
// up to the length of a token.
func HashToken(token string) Hash {
	if len(token) <= maxTokenLen {
		// Copy into a stack buffer: converting the string with []byte(token)
		// would heap-allocate because the hash implementation's argument
		// escapes.
		var buf [maxTokenLen]byte
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// Issued is a freshly generated credential. The plaintext Token is shown
// once to the caller and never stored; only Hash is stored, keyed by ID.
type Issued struct {
	// Kind is the kind of the credential.
	Kind Kind
	// ID is the credential object's id, also embedded in the token.
	ID uuid.UUID
	// Token is the plaintext bearer token. Never log or store it.
	Token string
	// Hash is HashToken(Token), the only form that may be stored.
	Hash Hash
}

// String returns a redacted description so that printing an Issued with fmt
// or a logger does not leak the token.
func (i Issued) String() string { return redacted(i.Kind, i.ID) }

// GoString returns the same redacted description as String, so %#v does not
// leak the token either.
func (i Issued) GoString() string { return redacted(i.Kind, i.ID) }

// Generate makes a new credential of the given kind for the object id, with a
// secret from crypto/rand. It returns an error only if the random source
// fails, or if kind is not one of the defined kinds (a programming error).
func Generate(kind Kind, id uuid.UUID) (Issued, error) {
	prefix := kind.Prefix()
	if prefix == "" {
		return Issued{}, errBadKind
	}
	var raw [secretBytes]byte
	defer clear(raw[:])
	if _, err := io.ReadFull(randReader, raw[:]); err != nil {
		return Issued{}, fmt.Errorf("credential: generating %s: reading random source: %w", kind, err)
	}

	var buf [maxTokenLen]byte
	defer clear(buf[:])
	n := copy(buf[:], prefix)
	n += copy(buf[n:], ids.Base62(id))
	buf[n] = '_'
	n++
	base62.PutBigEndian(buf[n:n+secretLen], raw[:])
	n += secretLen
	base62.PutUint(buf[n:n+checksumLen], uint64(crc(buf[:n])))
	n += checksumLen

	token := string(buf[:n])
	return Issued{Kind: kind, ID: id, Token: token, Hash: HashToken(token)}, nil
}

// Parsed is a token whose shape and checksum are right. Nothing about it has
// been checked against storage: it is not yet authenticated, and whether it
// is valid is decided only by Matches against the stored hash.
type Parsed struct {
	// Kind is the kind named by the token's prefix.
	Kind Kind
	// ID is the credential object's id, the key to look up the stored hash.
	ID    uuid.UUID
	token string
}

// Hash returns HashToken of the parsed token.
func (p Parsed) Hash() Hash { return HashToken(p.token) }

// Matches reports whether the token hashes to stored, the hash kept for
// p.ID. The comparison is constant-time so response timing reveals nothing
// about how much of the hash matched. It is false if stored is not 32 bytes
// long and for the zero Parsed, so a missing or truncated row or an unparsed
// value never authenticates.
func (p Parsed) Matches(stored []byte) bool {
	if p.token == "" || len(stored) != len(Hash{}) {
		return false
	}
	h := p.Hash()
	return subtle.ConstantTimeCompare(h[:], stored) == 1
}

// String returns a redacted description so that printing a Parsed does not
// leak the token.
func (p Parsed) String() string { return redacted(p.Kind, p.ID) }

// GoString returns the same redacted description as String, so %#v does not
// leak the token either.
func (p Parsed) GoString() string { return redacted(p.Kind, p.ID) }

// Parse checks a token's prefix, exact length, alphabet, separator position,
// id and checksum, without touching a database, so garbage and typos are
// rejected before any lookup. It returns an error wrapping ErrMalformed for
// any shape problem and ErrChecksum for a bad checksum. It checks the length
// first, so it is cheap on arbitrary (even huge) input, and it does not
// allocate.
func Parse(token string) (Parsed, error) {
	if len(token) < minTokenLen || len(token) > maxTokenLen {
		return Parsed{}, errLength
	}
	kind := prefixKind(token)
	if kind == 0 {
		return Parsed{}, errPrefix
	}
	rest := token[len(kind.Prefix()):]
	if len(rest) != bodyLen {
		return Parsed{}, errLength
	}
	if rest[idLen] != '_' {
		return Parsed{}, errSeparator
	}
	for i := range len(rest) {
		if _, ok := base62.Digit(rest[i]); i != idLen && !ok {
			return Parsed{}, errChar
		}
	}
	id, err := ids.ParseBase62(rest[:idLen])
	if err != nil {
		return Parsed{}, errID
	}
	cut := len(token) - checksumLen
	var sum uint64
	for i := cut; i < len(token); i++ {
		d, _ := base62.Digit(token[i])
		sum = sum*62 + uint64(d)
	}
	if sum != uint64(crc(token[:cut])) {
		return Parsed{}, ErrChecksum
	}
	return Parsed{Kind: kind, ID: id, token: token}, nil
}

// ParseKind is Parse plus a required kind: a well-formed token of another
// kind yields an error wrapping ErrWrongKind, so a device token cannot be
// used as an API key even if the ids happened to collide.
func ParseKind(token string, kind Kind) (Parsed, error) {
	p, err := Parse(token)
	if err != nil {
		return Parsed{}, err
	}
	if p.Kind != kind {
		return Parsed{}, fmt.Errorf("%w: got %s, want %s", ErrWrongKind, p.Kind, kind)
	}
	return p, nil
}

// Start returns the public, recognisable beginning of a credential: its
// prefix and its 22-character id, e.g. "kp_0Abc...". It reveals nothing of
// the secret, so it is safe to show in UIs, audit logs and error reports to
// help people tell their credentials apart.
func Start(kind Kind, id uuid.UUID) string {
	return kind.Prefix() + ids.Base62(id)
}

// prefixKind returns the kind whose prefix s starts with, or 0. The prefixes
// are unambiguous ("kp_" has '_' where the others have 'd' or 'e'), but the
// longer ones are checked first anyway so that adding a prefix cannot
// silently shadow another.
func prefixKind(s string) Kind {
	switch {
	case strings.HasPrefix(s, deviceTokenPrefix):
		return DeviceToken
	case strings.HasPrefix(s, enrollmentKeyPrefix):
		return EnrollmentKey
	case strings.HasPrefix(s, apiKeyPrefix):
		return APIKey
	}
	return 0
}

// redacted describes a credential without its secret.
func redacted(kind Kind, id uuid.UUID) string {
	return kind.String() + " " + Start(kind, id) + "_[REDACTED]"
}

// crc returns the CRC32 (IEEE) of s. It walks the standard table itself so
// that a string can be checksummed without copying it to a []byte, which
// would allocate; tokens are short, so the byte-at-a-time loop is fast
// enough.
func crc[T string | []byte](s T) uint32 {
	c := ^uint32(0)
	for i := range len(s) {
		c = crc32.IEEETable[byte(c)^s[i]] ^ (c >> 8)
	}
	return ^c
}
