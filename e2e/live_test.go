package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The live tests subscribe as a backend does, over both transports, and
// change the team over plain POSTs meanwhile.

const (
	liveAudit = `subscription($after: String, $filter: AuditEventFilter) {
  auditEvents(after: $after, filter: $filter) { cursor node { id action targetId } }
}`
	liveCreateDevice = `mutation($name: String!) { createDevice(input: {name: $name, serialNumber: $name}) { device { id name } token } }`
	liveRevokeKey    = `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id } } }`
)

// forEachLive runs a test for each dialect and each transport.
func forEachLive(t *testing.T, test func(t *testing.T, d db.Dialect, tr transport)) {
	for _, d := range testdb.Dialects(t) {
		for _, tr := range transports {
			t.Run(string(d)+"/"+tr.name, func(t *testing.T) { test(t, d, tr) })
		}
	}
}

// createDevices makes n devices named prefix-i and returns their ids.
func (e *env) createDevices(prefix string, n int) []string {
	e.t.Helper()
	out := make([]string, n)
	for i := range n {
		out[i] = e.ok(e.admin, liveCreateDevice, map[string]any{"name": fmt.Sprintf("%s-%d", prefix, i)}).str("createDevice.device.id")
	}
	return out
}

// TestLiveResumesExactlyOnce: a subscriber sees 5 events, drops, 10 more
// commit, and it resumes with the last cursor it saw: exactly those 10
// arrive, in the order they committed, and nothing else; a cursor from the
// auditEvents connection resumes the same way.
func TestLiveResumesExactlyOnce(t *testing.T) {
	forEachLive(t, func(t *testing.T, d db.Dialect, tr transport) {
		e := newEnv(t, d)
		filter := map[string]any{"action": "device.create"}
		first := tr.open(e, t, e.admin, liveAudit, map[string]any{"filter": filter})
		time.Sleep(100 * time.Millisecond) // let it register before the changes commit
		before := e.createDevices("a", 5)
		var cursor string
		for i, id := range before {
			r := first.event(t, 2*time.Second)
			if got := r.str("auditEvents.node.targetId"); got != id {
				t.Fatalf("event %d is about %s, want %s: %s", i, got, id, r.Raw)
			}
			cursor = r.str("auditEvents.cursor")
		}
		first.stop()
		after := e.createDevices("b", 10)

		for _, from := range []string{cursor, e.cursorOf(before[4])} {
			resumed := tr.open(e, t, e.admin, liveAudit, map[string]any{"after": from, "filter": filter})
			for i, id := range after {
				r := resumed.event(t, 2*time.Second)
				if got := r.str("auditEvents.node.targetId"); got != id {
					t.Fatalf("resumed event %d is about %s, want %s", i, got, id)
				}
			}
			resumed.quiet(t, 300*time.Millisecond)
			resumed.stop()
		}
	})
}

// cursorOf returns the auditEvents connection's cursor of the event about
// target.
func (e *env) cursorOf(target string) string {
	e.t.Helper()
	r := e.ok(e.admin, `query($t: ID) { team { auditEvents(first: 1, filter: {targetId: $t}) { edges { cursor } } } }`, map[string]any{"t": target})
	edges := r.list("team.auditEvents.edges")
	if len(edges) != 1 {
		e.t.Fatalf("no event about %s: %s", target, r.Raw)
	}
	return edges[0].(map[string]any)["cursor"].(string)
}

// TestLiveEndsWhenItsKeyStops: a subscription ends with UNAUTHENTICATED
// within a second of its key being revoked, expiring, rotated without
// grace, or the grace of a rotation ending; and of its owner's removal.
func TestLiveEndsWhenItsKeyStops(t *testing.T) {
	forEachLive(t, func(t *testing.T, d db.Dialect, tr transport) {
		e := newEnv(t, d)
		type stopper func(id string) time.Time // stops the key, and says when it stops working
		cases := []struct {
			name   string
			reason string
			stop   stopper
			expiry time.Duration
		}{
			{name: "revoked", reason: "REVOKED", stop: func(id string) time.Time {
				e.ok(e.admin, liveRevokeKey, map[string]any{"id": id})
				return time.Now()
			}},
			{name: "rotated without grace", reason: "REVOKED", stop: func(id string) time.Time {
				e.ok(e.admin, `mutation($id: ID!) { rotateApiKey(input: {id: $id}) { secret } }`, map[string]any{"id": id})
				return time.Now()
			}},
			{name: "rotated with 1 s of grace", reason: "REVOKED", stop: func(id string) time.Time {
				e.ok(e.admin, `mutation($id: ID!) { rotateApiKey(input: {id: $id, gracePeriodSeconds: 1}) { secret } }`, map[string]any{"id": id})
				return time.Now().Add(time.Second)
			}},
			{name: "expired", reason: "EXPIRED", expiry: 1500 * time.Millisecond},
		}
		for _, c := range cases {
			in := map[string]any{"name": c.name, "scopes": []string{"AUDIT_READ"}}
			var expires time.Time
			if c.expiry > 0 {
				expires = time.Now().Add(c.expiry).UTC()
				in["expiresAt"] = expires.Format(time.RFC3339Nano)
			}
			r := e.ok(e.admin, createKey, map[string]any{"in": in})
			id, secret := r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
			s := tr.open(e, t, secret, liveAudit, nil)
			time.Sleep(100 * time.Millisecond)
			e.createDevices("before-"+strings.ReplaceAll(c.name, " ", "-"), 1)
			if r := s.event(t, 2*time.Second); r.str("auditEvents.node.action") != "device.create" {
				t.Fatalf("%s: first event %s", c.name, r.Raw)
			}
			stopsAt := expires
			if c.stop != nil {
				stopsAt = c.stop(id)
			}
			wait := time.Until(stopsAt) + time.Second
			end := s.endsWith(t, "UNAUTHENTICATED", wait)
			if late := time.Since(stopsAt); late > time.Second {
				t.Errorf("%s: the stream ended %s after the key stopped working", c.name, late)
			}
			if reason := end.ext("reason"); reason != c.reason {
				t.Errorf("%s: reason %q, want %q: %s", c.name, reason, c.reason, end.Raw)
			}
		}
	})
}

// TestLiveEndsWithItsOwner: a member's personal key streams until the
// member is removed.
func TestLiveEndsWithItsOwner(t *testing.T) {
	forEachLive(t, func(t *testing.T, d db.Dialect, tr transport) {
		e := newEnv(t, d)
		member := e.ok(e.admin, `mutation { addMember(input: {email: "dev@example.com", role: DEVELOPER}) { member { id } } }`, nil).str("addMember.member.id")
		personal := e.ok(e.admin, createKey, map[string]any{"in": map[string]any{"name": "dev", "ownerId": member, "scopes": []string{"AUDIT_READ"}}}).str("createApiKey.secret")
		s := tr.open(e, t, personal, liveAudit, nil)
		time.Sleep(100 * time.Millisecond)
		e.ok(e.admin, `mutation($id: ID!) { removeMember(input: {id: $id}) { member { id } } }`, map[string]any{"id": member})
		removed := time.Now()
		// The removal's own event is not shown to the key it revoked.
		s.endsWith(t, "UNAUTHENTICATED", time.Second)
		if late := time.Since(removed); late > time.Second {
			t.Errorf("the stream ended %s after the removal", late)
		}
	})
}

// TestLiveAcrossReplicas: an event committed through one replica reaches a
// subscriber of the other within a second, on both transports, by NOTIFY
// (the poll is set far longer than that).
func TestLiveAcrossReplicas(t *testing.T) {
	requirePostgres(t)
	a, b, _ := rpPair(t, func(c *config.Config) { c.EventsPoll = time.Minute })
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := tr.open(b, t, b.admin, liveAudit, nil)
			time.Sleep(200 * time.Millisecond)
			for i := range 3 {
				start := time.Now()
				id := a.ok(a.admin, liveCreateDevice, map[string]any{"name": fmt.Sprintf("%s-%d", tr.name, i)}).str("createDevice.device.id")
				r := s.event(t, time.Second)
				if got := r.str("auditEvents.node.targetId"); got != id {
					t.Fatalf("event about %s, want %s", got, id)
				}
				t.Logf("%s: committed on a, received on b after %s", tr.name, time.Since(start))
			}
		})
	}
}

// TestLiveFieldsObeyReadScopes: a key holding only AUDIT_READ streams the
// log, but every edge to another type reads null with FORBIDDEN, as in a
// query; it cannot subscribe to devices at all.
func TestLiveFieldsObeyReadScopes(t *testing.T) {
	forEachLive(t, func(t *testing.T, d db.Dialect, tr transport) {
		e := newEnv(t, d)
		_, auditor := e.newKey(e.admin, "auditor", "AUDIT_READ")
		s := tr.open(e, t, auditor, `subscription { auditEvents { node { action actor { id name scopes } actorDevice { id name } } } }`, nil)
		time.Sleep(100 * time.Millisecond)
		_, token := e.createDeviceWithToken("scoped")
		e.ok(token, `mutation { deviceHeartbeat(input: {}) { device { id } } }`, nil)
		for range 2 { // device.create by the admin key, device.online by the device
			r := s.event(t, 2*time.Second)
			node, _ := r.get("auditEvents.node").(map[string]any)
			if node["actor"] != nil || node["actorDevice"] != nil {
				t.Fatalf("an AUDIT_READ key read an actor: %s", r.Raw)
			}
			for _, err := range r.Errors {
				if err.code() != "FORBIDDEN" {
					t.Fatalf("error %s: %s", err.code(), r.Raw)
				}
			}
			if len(r.Errors) == 0 {
				t.Fatalf("no FORBIDDEN for the refused edge: %s", r.Raw)
			}
		}
		refused := tr.open(e, t, auditor, `subscription { deviceStatusChanged { id } }`, nil)
		refused.endsWith(t, "FORBIDDEN", 2*time.Second)
	})
}

// createDeviceWithToken makes a device and returns its id and token.
func (e *env) createDeviceWithToken(name string) (id, token string) {
	e.t.Helper()
	r := e.ok(e.admin, liveCreateDevice, map[string]any{"name": name})
	return r.str("createDevice.device.id"), r.str("createDevice.token")
}

// TestLiveDeviceStatus: deviceStatusChanged tells a heartbeat's ONLINE, a
// silence's OFFLINE and a revocation's REVOKED, filtered as asked.
func TestLiveDeviceStatus(t *testing.T) {
	forEachLive(t, func(t *testing.T, d db.Dialect, tr transport) {
		e := newEnv(t, d, func(c *config.Config) {
			c.DeviceOnlineWindow, c.PresenceSweepInterval = 500*time.Millisecond, 50*time.Millisecond
		})
		all := tr.open(e, t, e.admin, `subscription { deviceStatusChanged { id name status } }`, nil)
		online := tr.open(e, t, e.admin, `subscription { deviceStatusChanged(filter: {status: ONLINE, search: "pump"}) { name status } }`, nil)
		time.Sleep(100 * time.Millisecond)
		id, token := e.createDeviceWithToken("pump-1")
		_, other := e.createDeviceWithToken("valve-1")
		for _, tok := range []string{token, other} {
			e.ok(tok, `mutation { deviceHeartbeat(input: {}) { device { id } } }`, nil)
		}
		want := func(s *stream, name, status string) {
			t.Helper()
			r := s.event(t, 3*time.Second)
			if r.str("deviceStatusChanged.name") != name || r.str("deviceStatusChanged.status") != status {
				t.Fatalf("got %s, want %s %s", r.Raw, name, status)
			}
		}
		want(all, "pump-1", "ONLINE")
		want(all, "valve-1", "ONLINE")
		want(online, "pump-1", "ONLINE")
		online.quiet(t, 100*time.Millisecond)
		want(all, "pump-1", "OFFLINE") // the window is 0.5 s; the sweep runs every 50 ms
		want(all, "valve-1", "OFFLINE")
		e.ok(e.admin, `mutation($id: ID!) { revokeDevice(input: {id: $id}) { device { id } } }`, map[string]any{"id": id})
		want(all, "pump-1", "REVOKED")
		online.quiet(t, 200*time.Millisecond)
	})
}

// TestLiveLimits: subscriptions per key, queries and mutations kept off the
// live transports, connection_init without a key or with a bad one, a
// page of another site, and an oversized message.
func TestLiveLimits(t *testing.T) {
	e := newEnv(t, db.SQLite, func(c *config.Config) { c.SubscriptionsPerKey, c.MaxWebsocketMessage = 2, 4096 })
	_, key := e.newKey(e.admin, "limited", "AUDIT_READ")
	for _, tr := range transports {
		t.Run("per key/"+tr.name, func(t *testing.T) {
			a, b := tr.open(e, t, key, liveAudit, nil), tr.open(e, t, key, liveAudit, nil)
			time.Sleep(100 * time.Millisecond)
			third := tr.open(e, t, key, liveAudit, nil)
			if tr.name == "websocket" {
				// A connection counts as a subscription would: the third
				// is refused at connection_init.
				select {
				case <-third.ended:
				case <-time.After(2 * time.Second):
					t.Fatal("the third connection of a key limited to two was not closed")
				}
				if third.closed != 4403 {
					t.Fatalf("the third connection closed with %d, want 4403", third.closed)
				}
			} else {
				third.endsWith(t, "RATE_LIMITED", 2*time.Second)
			}
			a.stop()
			b.stop()
			time.Sleep(200 * time.Millisecond)
			again := tr.open(e, t, key, liveAudit, nil)
			again.quiet(t, 200*time.Millisecond) // admitted again: nothing ends it
		})
		t.Run("mutation/"+tr.name, func(t *testing.T) {
			s := tr.open(e, t, e.admin, `mutation { updateTeam(input: {name: "Taken"}) { team { name } } }`, nil)
			r := s.event(t, 2*time.Second)
			if len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "only subscriptions") {
				t.Fatalf("a mutation ran over %s: %s", tr.name, r.Raw)
			}
			if name := e.ok(e.admin, `{ team { name } }`, nil).str("team.name"); name == "Taken" {
				t.Fatalf("the mutation over %s changed the team", tr.name)
			}
		})
	}
	t.Run("websocket without a key", func(t *testing.T) {
		if code := closeCode(t, e, nil, map[string]any{"type": "connection_init"}); code != 4403 {
			t.Fatalf("close code %d, want 4403", code)
		}
	})
	t.Run("websocket with a bad key", func(t *testing.T) {
		init := map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer kp_notakey"}}
		if code := closeCode(t, e, nil, init); code != 4403 {
			t.Fatalf("close code %d, want 4403", code)
		}
	})
	t.Run("websocket from another site", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/graphql",
			&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
		if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
			t.Fatalf("a page of another site opened a websocket: %v %v", err, res)
		}
	})
	t.Run("websocket message too large", func(t *testing.T) {
		init := map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + e.admin, "pad": strings.Repeat("x", 8192)}}
		if code := closeCode(t, e, nil, init); code != int(websocket.StatusMessageTooBig) {
			t.Fatalf("close code %d, want %d", code, websocket.StatusMessageTooBig)
		}
	})
}

// closeCode sends one message on a fresh websocket and returns the code the
// server closes it with.
func closeCode(t *testing.T, e *env, header http.Header, message any) int {
	t.Helper()
	conn := e.dialWS(t, header)
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, conn, message); err != nil {
		t.Fatal(err)
	}
	for {
		var m json.RawMessage
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			return int(websocket.CloseStatus(err))
		}
	}
}

// TestLiveDropsWhoDoesNotRead: a subscriber that stops reading is dropped
// with its buffer full, and its connection closed once a write has waited
// too long; the server's memory does not grow with what it did not read.
func TestLiveDropsWhoDoesNotRead(t *testing.T) {
	e := newEnv(t, db.SQLite, func(c *config.Config) {
		c.SubscriptionBuffer, c.StreamWriteTimeout, c.StreamKeepAlive = 16, 500*time.Millisecond, 2*time.Second
	})
	// A raw websocket that subscribes and then never reads a byte again.
	conn := e.dialWS(t, nil)
	ctx := context.Background()
	_ = wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + e.admin}})
	_ = wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription { auditEvents { cursor node { id action targetId createdAt ip userAgent } } }`}})
	time.Sleep(200 * time.Millisecond)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	devices := make([]map[string]any, 1000)
	for round := range 20 { // 20,000 events: far more than its buffer, and than the socket's buffers hold
		for i := range devices {
			devices[i] = map[string]any{"name": fmt.Sprintf("d-%d-%d", round, i), "serialNumber": fmt.Sprintf("s-%d-%d", round, i)}
		}
		e.ok(e.admin, `mutation($in: CreateDevicesInput!) { createDevices(input: $in) { devices { id } } }`, map[string]any{"in": map[string]any{"devices": devices}})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		active, dropped := e.app.Live.Subscriptions()
		if active == 0 && dropped == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader that does not read is still subscribed: %d active, %d dropped", active, dropped)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
		t.Fatalf("the heap grew by %d MiB for a subscriber that read nothing", grew>>20)
	}
	// Its connection is closed once it has not answered the keep-alive
	// pings (two intervals): a read gets what the buffers held, then the
	// close.
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		if _, _, err := conn.Read(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("the connection of the dropped subscriber stays open")
			}
			break
		}
	}
}

// TestLiveWithoutNotify: on an engine that delivers no NOTIFY, a replica
// still gets the other's events, by its poll.
func TestLiveWithoutNotify(t *testing.T) {
	requirePostgres(t)
	a, b, _ := rpPair(t, func(c *config.Config) { c.EventsPoll = 300 * time.Millisecond })
	a.db.Store.QuietForTest()
	s := b.subscribeSSE(t, b.admin, liveAudit, nil)
	time.Sleep(200 * time.Millisecond)
	id := a.ok(a.admin, liveCreateDevice, map[string]any{"name": "polled"}).str("createDevice.device.id")
	if got := s.event(t, 2*time.Second).str("auditEvents.node.targetId"); got != id {
		t.Fatalf("event about %s, want %s", got, id)
	}
}

// TestLiveOutlastsTheReadTimeout: an event stream lives past the server's
// ReadTimeout, which bounds reading a request, not answering it.
func TestLiveOutlastsTheReadTimeout(t *testing.T) {
	e := newEnv(t, db.SQLite)
	srv := httptest.NewUnstartedServer(e.app.Handler)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(e.app.Live.Close) // before srv.Close: cleanups run last first
	short := *e
	short.srv = srv
	s := short.subscribeSSE(t, e.admin, liveAudit, nil)
	time.Sleep(time.Second)
	id := e.ok(e.admin, liveCreateDevice, map[string]any{"name": "late"}).str("createDevice.device.id")
	if got := s.event(t, 2*time.Second).str("auditEvents.node.targetId"); got != id {
		t.Fatalf("event about %s, want %s", got, id)
	}
}

// TestSubscriptionByPlainPost: a subscription sent as an ordinary POST is
// refused, rather than held open until its first event.
func TestSubscriptionByPlainPost(t *testing.T) {
	e := newEnv(t, db.SQLite)
	r := e.gql(e.admin, liveAudit, nil)
	if r.Status != http.StatusBadRequest || len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "text/event-stream") {
		t.Fatalf("a subscription by plain POST answered %d: %s", r.Status, r.Raw)
	}
	if active, _ := e.app.Live.Subscriptions(); active != 0 {
		t.Fatalf("%d subscriptions open after a refused POST", active)
	}
}
