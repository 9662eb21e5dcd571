package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// Members are listed page by page and filtered; an email the team already
// has is a conflict.
func TestMembers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := start(t, d)
		ctx := context.Background()
		kp := s.client(s.admin, client.WithPageSize(1))

		ada := must(kp.AddMember(ctx, client.AddMemberInput{Email: "ada@example.com", Name: "Ada", Role: client.MemberRoleDeveloper}))(t)
		if ada.Status != client.MemberStatusInvited || ada.Role != client.MemberRoleDeveloper || ada.Name == nil || *ada.Name != "Ada" ||
			!strings.HasPrefix(ada.Id, "mem_") {
			t.Fatalf("added %+v", ada)
		}
		must(kp.AddMember(ctx, client.AddMemberInput{Email: "grace@example.com", Role: client.MemberRoleViewer}))(t)

		var emails []string
		for m, err := range kp.AllMembers(ctx, client.MemberFilter{}) {
			if err != nil {
				t.Fatal(err)
			}
			emails = append(emails, m.Email)
		}
		if got := strings.Join(emails, ","); got != "ada@example.com,grace@example.com" {
			t.Fatalf("members %s", got)
		}

		page := must(kp.Members(ctx, client.MemberFilter{Role: client.MemberRoleViewer}, client.PageOptions{}))(t)
		if page.TotalCount != 1 || page.Nodes[0].Email != "grace@example.com" || page.Nodes[0].Name != nil {
			t.Fatalf("viewers %+v", page)
		}

		_, err := kp.AddMember(ctx, client.AddMemberInput{Email: "ADA@example.com", Role: client.MemberRoleViewer})
		if !errors.Is(err, client.ErrConflict) {
			t.Fatalf("a second Ada: %v", err)
		}
	})
}
