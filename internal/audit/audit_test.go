package audit_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/domaintest"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
)

// firstEvent returns the id of a team's first audit event (its bootstrap).
func firstEvent(t *testing.T, fx *domaintest.Fixture, teamID uuid.UUID) uuid.UUID {
	t.Helper()
	page, err := fx.Store.ListAuditEvents(context.Background(), teamID, store.AuditFilter{}, store.PageArgs{Limit: 1})
	if err != nil || len(page.Items) == 0 {
		t.Fatalf("read the team's first event: %v", err)
	}
	return page.Items[0].ID
}

// TestReadsNeedAuditRead calls every read of the audit log without a
// credential, with a device token and with a key holding all but
// AUDIT_READ.
func TestReadsNeedAuditRead(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		event := firstEvent(t, fx, fx.Team.ID)
		fx.Guard(t, []scope.Scope{scope.AuditRead}, nil, []domaintest.Call{
			{Name: "List", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Audit.List(ctx, p, store.AuditFilter{}, store.PageArgs{Limit: 10})
			}},
			{Name: "Count", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Audit.Count(ctx, p, store.AuditFilter{})
			}},
			{Name: "Find", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Audit.Find(ctx, p, event) }},
			{Name: "Find unknown", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Audit.Find(ctx, p, uuid.New()) }},
		})
	})
}

// TestOtherTeamsEventsReadAsUnknown checks that an event of another team
// reads exactly like an unknown one, and that counts leave them out.
func TestOtherTeamsEventsReadAsUnknown(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		other, otherAdmin := fx.Other(t)
		own, foreign := firstEvent(t, fx, fx.Team.ID), firstEvent(t, fx, other.ID)
		for _, tc := range []struct {
			name  string
			p     *auth.Principal
			id    uuid.UUID
			found bool
		}{
			{"own event", fx.Admin, own, true},
			{"other team's event", fx.Admin, foreign, false},
			{"own event from the other team", otherAdmin, own, false},
			{"unknown id", fx.Admin, uuid.New(), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e, err := fx.Audit.Find(t.Context(), tc.p, tc.id)
				domaintest.WantCode(t, err, "")
				if (e != nil) != tc.found {
					t.Fatalf("found %v, want %v", e != nil, tc.found)
				}
			})
		}
		n, err := fx.Audit.Count(t.Context(), fx.Admin, store.AuditFilter{})
		domaintest.WantCode(t, err, "")
		if want := fx.Events(t); n != want {
			t.Fatalf("Count = %d, the team has %d events", n, want)
		}
	})
}
