package audit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/audit"
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
			{Name: "ByID unknown", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Audit.ByID(ctx, p, []uuid.UUID{uuid.New()})
			}},
			{Name: "ByID no ids", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Audit.ByID(ctx, p, nil) }},
			{Name: "ByID", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Audit.ByID(ctx, p, []uuid.UUID{event})
			}},
		})
	})
}

// TestFindEventByID checks who reads which event: another team's event
// reads exactly like an unknown one, a key without AUDIT_READ or a device
// is refused whatever the id, and counts leave other teams' events out.
func TestFindEventByID(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		other, otherAdmin := fx.Other(t)
		own, foreign := firstEvent(t, fx, fx.Team.ID), firstEvent(t, fx, other.ID)
		_, device := fx.Device(t)
		blind := fx.As(t, scope.APIKeysWrite, scope.DevicesWrite, scope.MembersWrite)
		lookups := []domaintest.Lookup{
			{Name: "own event", P: fx.Admin, ID: own, Found: true},
			{Name: "other team's event", P: fx.Admin, ID: foreign},
			{Name: "own event from the other team", P: otherAdmin, ID: own},
			{Name: "unknown id", P: fx.Admin, ID: uuid.New()},
			{Name: "own event without AUDIT_READ", P: blind, ID: own, Code: apperr.Forbidden},
			{Name: "other team's event without AUDIT_READ", P: blind, ID: foreign, Code: apperr.Forbidden},
			{Name: "own event from a device", P: device, ID: own, Code: apperr.Forbidden},
		}
		domaintest.Lookups(t, fx.Audit.ByID, lookups)
		n, err := fx.Audit.Count(t.Context(), fx.Admin, store.AuditFilter{})
		domaintest.WantCode(t, err, "")
		if want := fx.Events(t); n != want {
			t.Fatalf("Count = %d, the team has %d events", n, want)
		}
	})
}

// TestLogInIDOrderIsCommitOrder tails the log by id, as a live subscription
// does, while changes commit concurrently, each holding its transaction
// open for a while after writing its event: the reader must see every
// event once, never one that appears behind where it has read to.
func TestLogInIDOrderIsCommitOrder(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		ctx := t.Context()
		const writers, each = 8, 10
		start := firstEvent(t, fx, fx.Team.ID)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					err := fx.Store.InTx(ctx, func(tx *store.Store) error {
						if err := audit.Record(ctx, tx, fx.Team.ID, fx.Admin, "test.write", fmt.Sprintf("w%d-%d", w, i)); err != nil {
							return err
						}
						time.Sleep(time.Duration(i%3) * time.Millisecond)
						return nil
					})
					if err != nil {
						t.Errorf("write: %v", err)
						return
					}
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		seen := map[string]bool{}
		cursor := start
		for finished := false; ; {
			select {
			case <-done:
				finished = true
			default:
			}
			page, err := fx.Store.ListAuditEvents(ctx, fx.Team.ID, store.AuditFilter{Action: "test.write"}, store.PageArgs{Limit: 100, After: &cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Items {
				if seen[*e.TargetID] {
					t.Fatalf("event %s read twice", *e.TargetID)
				}
				seen[*e.TargetID] = true
				cursor = e.ID
			}
			if finished && len(page.Items) == 0 {
				break
			}
		}
		if len(seen) != writers*each {
			t.Fatalf("the reader saw %d of %d events: some committed behind its cursor", len(seen), writers*each)
		}
	})
}
