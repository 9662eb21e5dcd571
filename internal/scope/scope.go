// Package scope defines the permissions a team API key may hold and the one
// rule that relates them: a WRITE scope implies the READ scope of the same
// resource.
package scope

import (
	"io"
	"math/bits"
	"strconv"
	"strings"

	"github.com/keyplane/keyplane/internal/apperr"
)

// Scope is one permission. Each is a bit, so that a Set is a word.
type Scope uint32

// The scopes of the contract, in the order the schema lists them.
const (
	APIKeysRead Scope = 1 << iota
	APIKeysWrite
	DevicesRead
	DevicesWrite
	MembersRead
	MembersWrite
	AuditRead
)

// All lists every scope, in schema order.
var All = []Scope{APIKeysRead, APIKeysWrite, DevicesRead, DevicesWrite, MembersRead, MembersWrite, AuditRead}

var names = map[Scope]string{
	APIKeysRead:  "API_KEYS_READ",
	APIKeysWrite: "API_KEYS_WRITE",
	DevicesRead:  "DEVICES_READ",
	DevicesWrite: "DEVICES_WRITE",
	MembersRead:  "MEMBERS_READ",
	MembersWrite: "MEMBERS_WRITE",
	AuditRead:    "AUDIT_READ",
}

var byName = func() map[string]Scope {
	m := make(map[string]Scope, len(names))
	for s, n := range names {
		m[n] = s
	}
	return m
}()

// implies maps each WRITE scope to the READ scope it includes.
var implies = map[Scope]Scope{APIKeysWrite: APIKeysRead, DevicesWrite: DevicesRead, MembersWrite: MembersRead}

// String returns the scope's contract name, such as API_KEYS_WRITE.
func (s Scope) String() string {
	if n, ok := names[s]; ok {
		return n
	}
	return "Scope(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// Parse returns the scope with a contract name.
func Parse(name string) (Scope, bool) {
	s, ok := byName[name]
	return s, ok
}

// MarshalGQL writes the scope as a GraphQL enum value.
func (s Scope) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(s.String())) }

// UnmarshalGQL reads a GraphQL enum value.
func (s *Scope) UnmarshalGQL(v any) error {
	name, ok := v.(string)
	if !ok {
		return apperr.Input("", "Scope must be a string")
	}
	parsed, ok := Parse(name)
	if !ok {
		return apperr.Input("", "%q is not a valid Scope", name)
	}
	*s = parsed
	return nil
}

// Set is a collection of scopes. Wildcard stands for every scope, including
// any a later version adds: it is what a key created without scopes holds.
type Set uint32

// Wildcard is the set of every scope, present and future.
const Wildcard Set = 1 << 31

// Of returns the set of the given scopes.
func Of(scopes ...Scope) Set {
	var set Set
	for _, s := range scopes {
		set |= Set(s)
	}
	return set
}

// Has reports whether the set grants s, counting WRITE as implying READ.
func (set Set) Has(s Scope) bool {
	if set&Wildcard != 0 || set&Set(s) != 0 {
		return true
	}
	for w, r := range implies {
		if r == s && set&Set(w) != 0 {
			return true
		}
	}
	return false
}

// Covers reports whether every scope of other is granted by set. When it is
// not, missing names one scope that is lacking (zero when other is the
// wildcard and set holds every current scope but not the wildcard itself).
func (set Set) Covers(other Set) (missing Scope, ok bool) {
	if set&Wildcard != 0 {
		return 0, true
	}
	if other&Wildcard != 0 {
		for _, s := range All {
			if !set.Has(s) {
				return s, false
			}
		}
		return 0, false
	}
	for _, s := range All {
		if other&Set(s) != 0 && !set.Has(s) {
			return s, false
		}
	}
	return 0, true
}

// List returns the scopes the set grants, in schema order, counting the
// implied READ scopes and expanding the wildcard.
func (set Set) List() []Scope {
	out := make([]Scope, 0, bits.OnesCount32(uint32(set)))
	for _, s := range All {
		if set.Has(s) {
			out = append(out, s)
		}
	}
	return out
}

// Stored returns the set's storage form: "*" for the wildcard, else the
// names of the scopes held, space-separated, in schema order.
func (set Set) Stored() string {
	if set&Wildcard != 0 {
		return "*"
	}
	parts := make([]string, 0, len(All))
	for _, s := range All {
		if set&Set(s) != 0 {
			parts = append(parts, s.String())
		}
	}
	return strings.Join(parts, " ")
}

// ParseStored reads the storage form written by Stored. Unknown names are
// skipped: a scope removed in a later version then grants nothing.
func ParseStored(stored string) Set {
	if stored == "*" {
		return Wildcard
	}
	var set Set
	for _, name := range strings.Fields(stored) {
		if s, ok := byName[name]; ok {
			set |= Set(s)
		}
	}
	return set
}

// StoredMatch returns a SQL LIKE pattern that matches the storage form of a
// set holding s directly. Callers also match "*" (the wildcard). Names are
// never substrings of one another, so the pattern cannot match a neighbour.
func StoredMatch(s Scope) string { return "%" + s.String() + "%" }
