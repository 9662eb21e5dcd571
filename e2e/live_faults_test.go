package e2e

// Live events under attack and under faults: revocations that land while a
// subscription replays, a shutdown while it replays, a subscription whose
// client leaves as it starts, a database that drops for a moment, and a
// LISTEN connection lost again and again.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/live"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
)

// TestLiveReplayEndsOnRevocation: a subscription still replaying
// (auditEvents with after:, read slowly) whose key is revoked meanwhile
// ends with UNAUTHENTICATED, as a registered one does, and never streams
// what commits after the revocation.
func TestLiveReplayEndsOnRevocation(t *testing.T) {
	for _, d := range testdb.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			e := newEnv(t, d, func(c *config.Config) { c.SubscriptionBuffer = 1 })
			victimID, victim := e.newKey(e.admin, "victim", "AUDIT_READ")
			backlog := e.createDevices("old", 5)
			// Another subscriber of the team (any key, here the admin's) keeps
			// the hub reading the team's log.
			keeper := e.subscribeWS(t, e.admin, liveAudit, nil)
			// The victim key's plain subscription: the control, which does end.
			control := e.subscribeWS(t, victim, liveAudit, nil)
			time.Sleep(200 * time.Millisecond)
			ch, st := e.replaying(t, victim, e.cursorOf(backlog[0]))

			e.ok(e.admin, liveRevokeKey, map[string]any{"id": victimID})
			control.endsWith(t, "UNAUTHENTICATED", 2*time.Second)
			if status, _ := e.authStatus(victim); status != 401 {
				t.Fatalf("the revoked key still authenticates: %d", status)
			}
			later := e.createDevices("after-revoke", 1)[0]
			for {
				if r := keeper.event(t, 2*time.Second); r.str("auditEvents.node.targetId") == later {
					break
				}
			}

			got, closed := drain(ch, 2*time.Second)
			for _, ev := range got {
				if ev.TargetID != nil && *ev.TargetID == later {
					t.Errorf("a subscription of a revoked key received %s %s, committed after the revocation", ev.Action, *ev.TargetID)
				}
			}
			if !closed {
				t.Errorf("the subscription of the revoked key is still open after %d events", len(got))
			} else if ae, ok := apperr.As(st.Err()); !ok || ae.Code != apperr.Unauthenticated {
				t.Errorf("it ended with %v, want UNAUTHENTICATED", st.Err())
			}
		})
	}
}

// TestLiveCloseEndsReplaying: Hub.Close (the HTTP server's OnShutdown)
// ends the subscriptions still replaying too, so that no stream holds a
// shutdown or stays open on a hub that no longer reads.
func TestLiveCloseEndsReplaying(t *testing.T) {
	e := newEnv(t, db.SQLite, func(c *config.Config) { c.SubscriptionBuffer = 1 })
	backlog := e.createDevices("old", 5)
	ch, _ := e.replaying(t, e.admin, e.cursorOf(backlog[0]))
	e.app.Live.Close()
	got, closed := drain(ch, 2*time.Second)
	if !closed {
		active, _ := e.app.Live.Subscriptions()
		t.Errorf("after Close the replaying subscription is still open (%d events read, %d active)", len(got), active)
	}
}

// TestLiveSubscribeRacesItsEnd (run with -race): a subscription whose
// client leaves while it is being set up (a WebSocket client that sends
// complete at once) ends cleanly: no race on its fields, no expiry timer
// left armed on it.
func TestLiveSubscribeRacesItsEnd(t *testing.T) {
	e := newEnv(t, db.SQLite)
	r := e.ok(e.admin, createKey, map[string]any{"in": map[string]any{"name": "expiring", "scopes": []string{"AUDIT_READ"},
		"expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	p := e.principalOf(t, r.str("createApiKey.secret"))
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		f := store.AuditFilter{}
		req := live.Request{Principal: p, Client: "127.0.0.1", Audit: &f,
			// The client leaves while the subscription is being set up.
			Check: func(*auth.Principal) error { cancel(); return nil }}
		ch, _, err := live.Subscribe(ctx, e.app.Live, req, func(ev live.Event) *store.AuditEvent { return ev.Audit })
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("subscribe: %v", err)
			}
			continue
		}
		for range ch {
		}
	}
}

// TestLiveRecoversFromADatabaseBlip: after a 20 ms loss of the database,
// the hub's catch-up read may fail on a pooled connection that died with
// it; it is tried again within a moment, not left to the poll (here a
// minute), so events, and the revocations that end subscriptions, still
// arrive within a second.
func TestLiveRecoversFromADatabaseBlip(t *testing.T) {
	_, proxy, arrival := rpProxied(t)
	if took := arrival("before"); took > time.Second {
		t.Fatalf("before any outage: %s", took)
	}
	proxy.Cut()
	time.Sleep(20 * time.Millisecond)
	proxy.Restore()
	// Committed while b's LISTEN reconnects (100 ms): its catch-up read,
	// on reconnecting, is the one that fails.
	if took := arrival("after"); took > 2*time.Second {
		t.Errorf("after a 20 ms outage, a commit on another replica took %s to reach a subscriber", took)
	}
}

// TestListenBackoffResets: db.Listen's pause after a lost connection
// starts short again once a LISTEN has succeeded, so that after many drops
// over a process's life (restarts, failovers, idle-connection reapers) a
// replica is not deaf to the others' commits for long when the database is
// back at once.
func TestListenBackoffResets(t *testing.T) {
	b, proxy, arrival := rpProxied(t)
	var took time.Duration
	for i := range 8 { // brief outages, each healed at once
		proxy.Cut()
		time.Sleep(20 * time.Millisecond)
		proxy.Restore()
		// Rid b's pool of the connections the outage killed (see
		// TestLiveRecoversFromADatabaseBlip).
		for range 20 {
			if r := b.gql(b.admin, `{ viewer { id } }`, nil); r.Status == 200 && len(r.Errors) == 0 {
				break
			}
		}
		took = arrival(fmt.Sprintf("after-cut-%d", i))
		t.Logf("outage %d: a's commit reached b's subscriber after %s", i, took)
	}
	if took > 2*time.Second {
		t.Errorf("after a 20 ms outage, a commit on another replica took %s to reach a subscriber", took)
	}
}
