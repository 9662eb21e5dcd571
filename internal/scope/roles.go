package scope

import (
	"io"
	"strconv"

	"github.com/keyplane/keyplane/internal/apperr"
)

// Role is a member's role in a team. It caps the scopes of the member's
// personal keys, at request time, so that a demotion takes effect at once.
type Role string

// The roles of the contract, most powerful first.
const (
	Owner     Role = "OWNER"
	Admin     Role = "ADMIN"
	Developer Role = "DEVELOPER"
	Viewer    Role = "VIEWER"
)

// Roles lists every role.
var Roles = []Role{Owner, Admin, Developer, Viewer}

var reads = Of(APIKeysRead, DevicesRead, MembersRead, AuditRead)

var caps = map[Role]Set{
	Owner:     Wildcard,
	Admin:     Wildcard,
	Developer: reads | Of(DevicesWrite),
	Viewer:    reads,
}

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { _, ok := caps[r]; return ok }

// Cap returns the most a personal key of this role may do.
func (r Role) Cap() Set { return caps[r] }

// Limit returns what a key holding set may do when its owner has role r:
// the scopes both grant. A removed or unknown role grants nothing.
func (r Role) Limit(set Set) Set {
	limit, ok := caps[r]
	switch {
	case !ok:
		return 0
	case limit&Wildcard != 0:
		return set
	case set&Wildcard != 0:
		return limit
	}
	var out Set
	for _, s := range All {
		if set.Has(s) && limit.Has(s) {
			out |= Set(s)
		}
	}
	return out
}

// RolesGranting lists the roles whose personal keys may hold s.
func RolesGranting(s Scope) []string {
	var out []string
	for _, r := range Roles {
		if caps[r].Has(s) {
			out = append(out, string(r))
		}
	}
	return out
}

// MarshalGQL writes the role as a GraphQL enum value.
func (r Role) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(r))) }

// UnmarshalGQL reads a GraphQL enum value.
func (r *Role) UnmarshalGQL(v any) error {
	name, _ := v.(string)
	if !Role(name).Valid() {
		return apperr.Input("", "%q is not a valid MemberRole", name)
	}
	*r = Role(name)
	return nil
}

// KeyScopes is what a key may do now: its stored scopes, capped for a
// personal key by its owner's current role ("" once the owner is removed,
// which grants nothing). Authentication and the API's ApiKey.scopes both
// answer through it, so they cannot disagree.
func KeyScopes(stored string, personal bool, ownerRole string) Set {
	set := ParseStored(stored)
	if personal {
		return Role(ownerRole).Limit(set)
	}
	return set
}
