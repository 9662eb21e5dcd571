package scope_test

import (
	"slices"
	"testing"

	"github.com/keyplane/keyplane/internal/scope"
)

func TestWriteImpliesRead(t *testing.T) {
	set := scope.Of(scope.APIKeysWrite, scope.AuditRead)
	for _, tc := range []struct {
		s    scope.Scope
		want bool
	}{
		{scope.APIKeysWrite, true},
		{scope.APIKeysRead, true},
		{scope.AuditRead, true},
		{scope.DevicesRead, false},
		{scope.MembersWrite, false},
	} {
		if got := set.Has(tc.s); got != tc.want {
			t.Errorf("Has(%s) = %v, want %v", tc.s, got, tc.want)
		}
	}
	if set.Has(scope.APIKeysRead) && scope.Of(scope.APIKeysRead).Has(scope.APIKeysWrite) {
		t.Error("READ must not imply WRITE")
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		have, want scope.Set
		ok         bool
		missing    scope.Scope
	}{
		{"subset", scope.Of(scope.APIKeysWrite), scope.Of(scope.APIKeysRead), true, 0},
		{"equal", scope.Of(scope.DevicesRead), scope.Of(scope.DevicesRead), true, 0},
		{"write from read", scope.Of(scope.DevicesRead), scope.Of(scope.DevicesWrite), false, scope.DevicesWrite},
		{"wildcard covers all", scope.Wildcard, scope.Of(scope.All...), true, 0},
		{"wildcard covers wildcard", scope.Wildcard, scope.Wildcard, true, 0},
		{"partial cannot mint wildcard", scope.Of(scope.APIKeysWrite), scope.Wildcard, false, scope.DevicesRead},
		{"every scope still not wildcard", scope.Of(scope.All...), scope.Wildcard, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			missing, ok := tc.have.Covers(tc.want)
			if ok != tc.ok || missing != tc.missing {
				t.Fatalf("Covers = (%v, %v), want (%v, %v)", missing, ok, tc.missing, tc.ok)
			}
		})
	}
}

func TestStoredRoundTrip(t *testing.T) {
	for _, set := range []scope.Set{0, scope.Wildcard, scope.Of(scope.APIKeysRead), scope.Of(scope.All...), scope.Of(scope.MembersWrite, scope.AuditRead)} {
		if got := scope.ParseStored(set.Stored()); got != set {
			t.Errorf("ParseStored(Stored(%b)) = %b", set, got)
		}
	}
	if got := scope.ParseStored("API_KEYS_READ BOGUS"); got != scope.Of(scope.APIKeysRead) {
		t.Errorf("unknown names must be skipped, got %b", got)
	}
}

func TestListExpandsImpliedAndWildcard(t *testing.T) {
	if got := scope.Wildcard.List(); !slices.Equal(got, scope.All) {
		t.Errorf("Wildcard.List() = %v", got)
	}
	want := []scope.Scope{scope.DevicesRead, scope.DevicesWrite}
	if got := scope.Of(scope.DevicesWrite).List(); !slices.Equal(got, want) {
		t.Errorf("List() = %v, want %v", got, want)
	}
}

func TestGraphQLEnum(t *testing.T) {
	var s scope.Scope
	if err := s.UnmarshalGQL("MEMBERS_WRITE"); err != nil || s != scope.MembersWrite {
		t.Fatalf("UnmarshalGQL = %v, %v", s, err)
	}
	for _, bad := range []any{"members_write", "", 3, nil} {
		if err := s.UnmarshalGQL(bad); err == nil {
			t.Errorf("UnmarshalGQL(%v) accepted", bad)
		}
	}
}

func TestRoleCaps(t *testing.T) {
	for _, tc := range []struct {
		role scope.Role
		key  scope.Set
		has  []scope.Scope
		not  []scope.Scope
	}{
		{scope.Viewer, scope.Wildcard, []scope.Scope{scope.APIKeysRead, scope.DevicesRead, scope.MembersRead, scope.AuditRead}, []scope.Scope{scope.APIKeysWrite, scope.DevicesWrite, scope.MembersWrite}},
		{scope.Developer, scope.Wildcard, []scope.Scope{scope.DevicesWrite, scope.AuditRead}, []scope.Scope{scope.APIKeysWrite, scope.MembersWrite}},
		{scope.Developer, scope.Of(scope.APIKeysWrite), []scope.Scope{scope.APIKeysRead}, []scope.Scope{scope.APIKeysWrite, scope.DevicesRead}},
		{scope.Admin, scope.Of(scope.MembersWrite), []scope.Scope{scope.MembersWrite, scope.MembersRead}, []scope.Scope{scope.DevicesRead}},
		{scope.Owner, scope.Wildcard, scope.All, nil},
		{scope.Role("GONE"), scope.Wildcard, nil, scope.All},
	} {
		got := tc.role.Limit(tc.key)
		for _, s := range tc.has {
			if !got.Has(s) {
				t.Errorf("%s limiting %s: lacks %s", tc.role, tc.key.Stored(), s)
			}
		}
		for _, s := range tc.not {
			if got.Has(s) {
				t.Errorf("%s limiting %s: holds %s", tc.role, tc.key.Stored(), s)
			}
		}
	}
	if got := scope.RolesGranting(scope.APIKeysWrite); len(got) != 2 || got[0] != "OWNER" || got[1] != "ADMIN" {
		t.Errorf("RolesGranting(API_KEYS_WRITE) = %v", got)
	}
}
