package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testlog"
)

// decodeChange reads the data of an "event: device", refusing any field
// the page does not use.
func decodeChange(t *testing.T, data []byte) changeView {
	t.Helper()
	return decodeStrict[changeView](t, data)
}

// changeOf matches the change of a device by name and status.
func changeOf(name, status string) func([]byte) bool {
	return func(data []byte) bool {
		var c changeView
		return json.Unmarshal(data, &c) == nil && c.Name == name && c.Status == status
	}
}

// TestEvents: a device's first heartbeat reaches every page following GET
// /events as ONLINE, then the figures read again, on each dialect; the
// stream holds no credential, id or serial number, keeps itself alive, and
// a page that reconnects gets the changes it missed and no others.
func TestEvents(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		k := startKeyplane(t, d)
		key := k.dashboardKey(t, client.ScopeDevicesRead)
		logs := &testlog.Buffer{}
		srv := k.liveDashboard(t, key, liveOptions(logs))
		before := time.Now().UTC().Truncate(time.Second)

		es := openEvents(t, srv.URL+"/events", nil)
		for header, want := range map[string]string{
			"Content-Type":            "text/event-stream",
			"Cache-Control":           "no-store",
			"Content-Security-Policy": contentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
		} {
			if got := es.res.Header.Get(header); got != want {
				t.Errorf("%s: %q, want %q", header, got, want)
			}
		}
		es.waitLive(t, true)
		k.waitSubscribed(t, 1)

		token := k.newDevice(t, "Dock 9")
		if _, err := k.client(token).DeviceHeartbeat(context.Background(), client.DeviceHeartbeatInput{}); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		ev := es.waitFor(t, 5*time.Second, "device", changeOf("Dock 9", "ONLINE"))
		change := decodeChange(t, ev.Data)
		if change.LastSeenAt == nil || change.LastSeenAt.Before(before) || change.At.Before(before) {
			t.Errorf("the change %s is not of now", ev.Data)
		}
		if ev.ID == "" {
			t.Errorf("the change has no id, so a page that reconnects cannot say what it got: %+v", ev)
		}
		fleet := es.waitFor(t, 5*time.Second, "fleet", func(data []byte) bool { return strings.Contains(string(data), `"online":1`) })
		if view := decodeFleet(t, fleet.Data); len(view.Recent) != 1 || view.Recent[0].Name != "Dock 9" || view.Recent[0].Status != "ONLINE" {
			t.Errorf("the figures pushed after the change: %s", fleet.Data)
		}
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(es.text(), "\n: keep-alive\n"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no keep-alive comment; it read:\n%s", es.text())
			}
		}

		// Nothing that identifies or authenticates: no credential prefix,
		// no secret, key or device id, no serial number.
		if found := k.leaks(es.text()); len(found) > 0 {
			t.Errorf("GET /events holds %q:\n%s", found, es.text())
		}
		if regexp.MustCompile(`SN-`).MatchString(es.text()) {
			t.Errorf("GET /events holds a serial number:\n%s", es.text())
		}
		if strings.Contains(logs.String(), key) {
			t.Errorf("the log holds the key:\n%s", logs)
		}

		// A page that connects later gets the last changes; one that
		// reconnects after the last change it got gets only the next.
		later := openEvents(t, srv.URL+"/events", nil)
		later.waitFor(t, 5*time.Second, "device", changeOf("Dock 9", "ONLINE"))
		again := openEvents(t, srv.URL+"/events", http.Header{"Last-Event-ID": {ev.ID}})
		again.waitLive(t, true)
		if _, err := k.client(k.newDevice(t, "Dock 10")).DeviceHeartbeat(context.Background(), client.DeviceHeartbeatInput{}); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		again.waitFor(t, 5*time.Second, "device", changeOf("Dock 10", "ONLINE"))
		if strings.Contains(again.text(), "event: device\ndata: {\"name\":\"Dock 9\"") {
			t.Errorf("a page that had Dock 9's change got it again:\n%s", again.text())
		}
	})
}

// subscriptionGate wraps Keyplane to watch the dashboard's subscriptions
// (POST /graphql with Accept: text/event-stream): it counts them, ends
// those under way (cut), and refuses new ones while blocked.
type subscriptionGate struct {
	mu         sync.Mutex
	blocked    bool
	subscribed int
	refused    int
	cancels    map[*http.Request]context.CancelFunc
}

func (g *subscriptionGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			next.ServeHTTP(w, r)
			return
		}
		g.mu.Lock()
		if g.blocked {
			g.refused++
			g.mu.Unlock()
			http.Error(w, "closed for the test", http.StatusServiceUnavailable)
			return
		}
		g.subscribed++
		ctx, cancel := context.WithCancel(r.Context())
		g.cancels[r] = cancel
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.cancels, r)
			g.mu.Unlock()
			cancel()
		}()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// cut ends the subscriptions under way, as Keyplane does when it stops:
// each ends with "event: complete".
func (g *subscriptionGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, cancel := range g.cancels {
		cancel()
	}
}

func (g *subscriptionGate) block(blocked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked = blocked
}

func (g *subscriptionGate) counts() (subscribed, refused, inFlight int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.subscribed, g.refused, len(g.cancels)
}

// waitResubscribed waits until the dashboard has subscribed n times in all
// and holds one subscription, the last, registered with Keyplane's hub.
func (g *subscriptionGate) waitResubscribed(t *testing.T, k *keyplane, n int) {
	t.Helper()
	var subscribed, inFlight, active int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		subscribed, _, inFlight = g.counts()
		if active, _ = k.ts.App.Live.Subscriptions(); subscribed == n && inFlight == 1 && active == 1 {
			return
		}
	}
	t.Fatalf("the dashboard subscribed %d times and holds %d requests, %d registered; want %d, 1, 1", subscribed, inFlight, active, n)
}

// TestEventsResubscribe: when its stream from Keyplane ends, or its
// connection drops, or Keyplane refuses it for a while, the dashboard
// subscribes again, by itself and once; the pages see it stop and start
// being live, changes flow again, and what changed while no stream was
// open reaches them in the figures read when the new stream opens.
func TestEventsResubscribe(t *testing.T) {
	gate := &subscriptionGate{cancels: map[*http.Request]context.CancelFunc{}}
	k := startKeyplaneWrapped(t, db.SQLite, gate.wrap)
	logs := &testlog.Buffer{}
	srv := k.liveDashboard(t, k.dashboardKey(t, client.ScopeDevicesRead), liveOptions(logs))
	es := openEvents(t, srv.URL+"/events", nil)
	es.waitLive(t, true)
	gate.waitResubscribed(t, k, 1)

	heartbeat := func(name string) {
		t.Helper()
		if _, err := k.client(k.newDevice(t, name)).DeviceHeartbeat(context.Background(), client.DeviceHeartbeatInput{}); err != nil {
			t.Fatalf("heartbeat of %s: %v", name, err)
		}
	}
	for i, tc := range []struct {
		name string
		end  func()
	}{
		{"Keyplane ends the stream", gate.cut},
		{"the connection drops", k.ts.HTTP.CloseClientConnections},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.end()
			es.waitLive(t, false)
			es.waitLive(t, true)
			gate.waitResubscribed(t, k, i+2) // once more
			name := fmt.Sprintf("Resumed %d", i)
			heartbeat(name)
			es.waitFor(t, 5*time.Second, "device", changeOf(name, "ONLINE"))
		})
	}

	t.Run("changes while no stream is open", func(t *testing.T) {
		gate.block(true)
		gate.cut()
		es.waitLive(t, false)
		k.waitSubscribed(t, 0)
		heartbeat("Unseen")
		// Refused, it asks again and again, with a wait between.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, refused, _ := gate.counts(); refused >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the dashboard did not subscribe again while refused")
			}
		}
		gate.block(false)
		es.waitLive(t, true)
		gate.waitResubscribed(t, k, 4)
		fleet := es.waitFor(t, 5*time.Second, "fleet", func(data []byte) bool { return strings.Contains(string(data), `"Unseen"`) })
		if view := decodeFleet(t, fleet.Data); view.Counts.Online != 3 || view.Recent[0].Name != "Unseen" || view.Recent[0].Status != "ONLINE" {
			t.Errorf("the figures read as the stream opened again: %s", fleet.Data)
		}
		if strings.Contains(es.text(), "event: device\ndata: {\"name\":\"Unseen\"") {
			t.Errorf("a change made while no stream was open came as an event; the test proves nothing:\n%s", es.text())
		}
	})

	if !strings.Contains(logs.String(), "subscribing again") {
		t.Errorf("the log does not say that the stream ended:\n%s", logs)
	}
	if found := k.leaks(es.text()); len(found) > 0 {
		t.Errorf("GET /events holds %q:\n%s", found, es.text())
	}
}

// TestPagesDropSlow: a page that does not read is dropped once its buffer
// is full, without holding up the others, and a page may not join a
// dashboard that is stopping.
func TestPagesDropSlow(t *testing.T) {
	p := &pages{buffer: 4, max: 2, open: map[*page]struct{}{}}
	slow, ok := p.join("")
	if !ok {
		t.Fatal("join")
	}
	quick, _ := p.join("")
	if _, ok := p.join(""); ok {
		t.Error("a third page joined, past MaxBrowsers")
	}
	got := 0
	for i := range 20 {
		p.publishChange(fmt.Appendf(nil, `{"name":"d%d"}`, i))
		for len(quick.frames) > 0 {
			<-quick.frames
			got++
		}
	}
	select {
	case <-slow.gone:
	default:
		t.Error("the page that does not read is still followed")
	}
	if open, dropped := p.stats(); open != 1 || dropped != 1 {
		t.Errorf("%d pages open, %d dropped; want 1 and 1", open, dropped)
	}
	if got != 21 { // whether it was live, and 20 changes
		t.Errorf("the page that reads got %d messages, want 21", got)
	}
	// The slow page reconnects, saying what it got: the changes after
	// that, among the last ten, come first.
	back, _ := p.join("12")
	<-back.frames // whether the dashboard is live
	if f := string(<-back.frames); !strings.HasPrefix(f, "id: 13\n") {
		t.Errorf("after Last-Event-ID 12 it got %q first, want change 13", f)
	}
	p.close()
	if _, ok := p.join(""); ok {
		t.Error("a page joined a dashboard that is stopping")
	}
	for _, pg := range []*page{quick, back} {
		select {
		case <-pg.gone:
		default:
			t.Error("close left a page followed")
		}
	}
}

// TestStream reads Keyplane's event streams as Keyplane writes them: data
// over several lines, comments, a stream ended for a reason, refusals, a
// stream that drops or goes silent. No error holds the key.
func TestStream(t *testing.T) {
	const key = "kp_0351sYg4NCngT9UiL1J5oQ_secretsecretsecret"
	stream := func(body string, then func(*http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+key || r.Header.Get("Accept") != "text/event-stream" {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, body)
			w.(http.Flusher).Flush()
			if then != nil {
				then(r)
			}
		}
	}
	next := `event: next` + "\n" + `data: {"data":{"n":1}}` + "\n\n"
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    []string // the data handed on
		check   func(error) bool
	}{
		{"completed", stream(":\n\n"+next+": ping\n\nevent: next\ndata: {\"data\":\ndata: {\"n\":2}}\n\nevent: other\ndata: x\n\nevent: complete\n\n", nil),
			[]string{`{"n":1}`, `{"n":2}`}, func(err error) bool { return err == nil }},
		{"ended by Keyplane", stream(next+`event: next`+"\n"+`data: {"data":null,"errors":[{"message":"fell behind","extensions":{"code":"RATE_LIMITED","retryAfter":2}}]}`+"\n\nevent: complete\n\n", nil),
			[]string{`{"n":1}`}, func(err error) bool {
				var e *client.Error
				return errors.Is(err, client.ErrRateLimited) && errors.As(err, &e) && e.RetryAfter == 2*time.Second && e.Message == "fell behind"
			}},
		{"refused", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"message":"revoked","extensions":{"code":"UNAUTHENTICATED","reason":"REVOKED"}}]}`)
		}, nil, func(err error) bool {
			var e *client.Error
			return errors.Is(err, client.ErrUnauthenticated) && errors.As(err, &e) && e.Reason == client.ReasonRevoked && e.StatusCode == 401
		}},
		{"not a stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":null}`)
		}, nil, func(err error) bool { return err != nil && strings.Contains(err.Error(), "not an event stream") }},
		{"dropped", stream(next, nil), []string{`{"n":1}`}, func(err error) bool { return errors.Is(err, errNoComplete) }},
		{"silent", stream(next, func(r *http.Request) { <-r.Context().Done() }), []string{`{"n":1}`}, func(err error) bool { return errors.Is(err, errSilent) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			var got []string
			opened := false
			k := keyplaneStream{URL: srv.URL, Key: client.NewSecret(key), Idle: 200 * time.Millisecond}
			err := k.subscribe(context.Background(), deviceStatusSubscription, func() { opened = true }, func(data json.RawMessage) {
				got = append(got, string(data))
			})
			if !tc.check(err) {
				t.Errorf("error %v", err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("handed on %q, want %q", got, tc.want)
			}
			if opened != (tc.want != nil) {
				t.Errorf("opened %t", opened)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("the error holds the key: %v", err)
			}
		})
	}
}
