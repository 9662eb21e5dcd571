package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testserver"
)

// keyplane is a real Keyplane server, in process, on a fresh database of one
// dialect, with one team.
type keyplane struct {
	url   string // its GraphQL endpoint
	ts    *testserver.Server
	db    *testdb.Database
	admin *client.Client // the team's first key: every scope
	// secrets are the credentials and ids the test has seen, which must
	// never reach the browser.
	secrets []string
	tokens  map[string]string // each seeded device's, by name
}

func startKeyplane(t *testing.T, d db.Dialect) *keyplane {
	t.Helper()
	return startKeyplaneWrapped(t, d, nil)
}

// startKeyplaneWrapped starts Keyplane as startKeyplane does, its handler
// wrapped by wrap (when not nil) to watch or cut requests.
func startKeyplaneWrapped(t *testing.T, d db.Dialect, wrap func(http.Handler) http.Handler) *keyplane {
	t.Helper()
	database := testdb.New(t, d)
	ts := testserver.StartWith(t, database, testserver.Options{Team: "Acme Robotics", Wrap: wrap, Configure: []func(*config.Config){
		func(c *config.Config) {
			c.UsageFlushInterval = time.Hour
			// Some tests fail credentials on purpose, all from 127.0.0.1.
			c.RateLimitRPS, c.AuthFailureRPS = 0, 0
		},
	}})
	k := &keyplane{url: ts.URL + "/graphql", ts: ts, db: database, tokens: map[string]string{}}
	k.admin = k.client(ts.Admin)
	k.secrets = append(k.secrets, ts.Admin)
	return k
}

// client returns a client of the server with a key.
func (k *keyplane) client(key string) *client.Client {
	return client.New(k.url, client.WithKey(key))
}

// dashboardKey creates a key with the scopes given, as the README does
// (DEVICES_READ), and returns its secret.
func (k *keyplane) dashboardKey(t *testing.T, scopes ...client.Scope) string {
	t.Helper()
	created, err := k.admin.CreateApiKey(context.Background(), client.CreateApiKeyInput{Name: "fleet-dashboard", Scopes: scopes})
	if err != nil {
		t.Fatalf("create the dashboard's key: %v", err)
	}
	secret := created.Secret.Reveal()
	k.secrets = append(k.secrets, secret, created.ApiKey.Id)
	return secret
}

// seedDevice is one device the fleet starts with.
type seedDevice struct {
	name   string
	status client.DeviceStatus
	// age is how long ago it was last seen; 0 for never.
	age time.Duration
	// enroll makes it enroll itself with an enrollment key rather than be
	// created by the team.
	enroll bool
}

// fleetSeed is the fleet of the tests, in every state: devices created and
// never seen (PENDING), one of them enrolled by itself; seen within the
// online window (ONLINE); seen long ago (OFFLINE); revoked (REVOKED), one
// after it was seen. One is named with a credential, which the page must
// not show.
var fleetSeed = []seedDevice{
	{name: "Dock 1", status: client.DeviceStatusOnline, age: 10 * time.Second},
	{name: "Dock 2", status: client.DeviceStatusOnline, age: 20 * time.Second},
	{name: "Dock 3", status: client.DeviceStatusOnline, age: 30 * time.Second},
	{name: "Aisle 7 <b>left</b>", status: client.DeviceStatusOnline, age: 40 * time.Second},
	{name: "Aisle 8", status: client.DeviceStatusOnline, age: 50 * time.Second},
	{name: "Aisle 9", status: client.DeviceStatusOnline, age: 60 * time.Second},
	{name: "Gate north", status: client.DeviceStatusOnline, age: 70 * time.Second},
	{name: "Gate south", status: client.DeviceStatusOnline, age: 80 * time.Second},
	{name: "Yard east", status: client.DeviceStatusOnline, age: 90 * time.Second},
	{name: "Yard west", status: client.DeviceStatusOnline, age: 100 * time.Second},
	{name: "Roof", status: client.DeviceStatusOnline, age: 110 * time.Second},
	{name: "Cellar", status: client.DeviceStatusOnline, age: 120 * time.Second},
	{name: "Loading bay", status: client.DeviceStatusOffline, age: time.Hour},
	{name: "Old office", status: client.DeviceStatusOffline, age: 30 * 24 * time.Hour},
	{name: "Spare A", status: client.DeviceStatusPending},
	{name: "Spare B", status: client.DeviceStatusPending},
	{name: "Field kit", status: client.DeviceStatusPending, enroll: true},
	{name: "Stolen van", status: client.DeviceStatusRevoked, age: 25 * time.Second},
	{name: "Broken lens", status: client.DeviceStatusRevoked},
	{name: "", status: client.DeviceStatusOnline, age: 5 * time.Second}, // named with an enrollment key, below
}

// The page's figures for fleetSeed.
var (
	wantCounts = statusCounts{Pending: 3, Online: 13, Offline: 2, Revoked: 2, Total: 20}
	// wantRecent are the ten most recently seen, newest first.
	wantRecent = []string{hiddenName, "Dock 1", "Dock 2", "Stolen van", "Dock 3",
		"Aisle 7 <b>left</b>", "Aisle 8", "Aisle 9", "Gate north", "Gate south"}
)

// seedFleet registers fleetSeed, sends each seen device's heartbeat with
// its own token, moves its last heartbeat back by its age, and revokes the
// revoked ones. It returns when each device was last seen, by name
// (hiddenName for the one named with a credential).
func (k *keyplane) seedFleet(t *testing.T) map[string]time.Time {
	t.Helper()
	ctx := context.Background()
	enrollment, err := k.admin.CreateEnrollmentKey(ctx, client.CreateEnrollmentKeyInput{Description: "field kits", Reusable: true})
	if err != nil {
		t.Fatalf("create an enrollment key: %v", err)
	}
	enrollmentKey := enrollment.Secret.Reveal()
	k.secrets = append(k.secrets, enrollmentKey)

	// Seconds are what every dialect keeps of a time.
	now := time.Now().UTC().Truncate(time.Second)
	seen := map[string]time.Time{}
	for i, d := range fleetSeed {
		name, serial := d.name, fmt.Sprintf("SN-%03d", i)
		if name == "" {
			name = enrollmentKey // a secret pasted by mistake
		}
		var id, token string
		if d.enroll {
			enrolled, err := k.admin.EnrollDevice(ctx, client.EnrollDeviceInput{EnrollmentKey: enrollmentKey, SerialNumber: serial, Name: name})
			if err != nil {
				t.Fatalf("enroll %s: %v", name, err)
			}
			id, token = enrolled.Device.Id, enrolled.Token.Reveal()
		} else {
			created, err := k.admin.CreateDevice(ctx, client.CreateDeviceInput{Name: name, SerialNumber: serial, Model: "OAK-D"})
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			id, token = created.Device.Id, created.Token.Reveal()
		}
		k.secrets = append(k.secrets, token, id)
		k.tokens[name] = token
		if d.age > 0 {
			if _, err := k.client(token).DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{FirmwareVersion: "2.30.0"}); err != nil {
				t.Fatalf("heartbeat of %s: %v", name, err)
			}
			at := now.Add(-d.age)
			k.db.Exec(t, "UPDATE devices SET last_seen_at = ? WHERE serial_number = ?", at, serial)
			seen[displayName(name)] = at
		}
		if d.status == client.DeviceStatusRevoked {
			if _, err := k.admin.RevokeDevice(ctx, id); err != nil {
				t.Fatalf("revoke %s: %v", name, err)
			}
		}
	}
	return seen
}

// heartbeat makes a seeded device report in now: it is then the most
// recently seen.
func (k *keyplane) heartbeat(t *testing.T, name string) {
	t.Helper()
	if _, err := k.client(k.tokens[name]).DeviceHeartbeat(context.Background(), client.DeviceHeartbeatInput{}); err != nil {
		t.Fatalf("heartbeat of %s: %v", name, err)
	}
}

// leaks returns what of Keyplane's credentials and ids text holds: any
// credential prefix, id prefix, or secret or id the test has seen.
func (k *keyplane) leaks(text string) []string {
	var found []string
	for _, s := range append([]string{"kp_", "kpd_", "kpe_", "key_", "dev_"}, k.secrets...) {
		if strings.Contains(text, s) {
			found = append(found, s)
		}
	}
	return found
}

// decodeStrict reads one JSON value of T, refusing any field T does not
// have: what the page is sent must be what it uses, and no more.
func decodeStrict[T any](t *testing.T, data []byte) T {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

// dashboard starts the example in process, with a key of its own, without
// following Keyplane's live events (liveDashboard does).
func dashboard(t *testing.T, kp *client.Client, opts options) *httptest.Server {
	t.Helper()
	srv, _ := startDashboard(t, kp, opts)
	return srv
}

func startDashboard(t *testing.T, kp *client.Client, opts options) (*httptest.Server, *server) {
	t.Helper()
	s := newServer(kp, opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(s.closeEvents) // first: srv.Close waits for the streams
	return srv, s
}

// decodeFleet reads a body of GET /api/fleet, refusing any field the page
// does not use.
func decodeFleet(t *testing.T, body []byte) fleetView {
	t.Helper()
	return decodeStrict[fleetView](t, body)
}

// liveOptions are the options of the live tests: quick retries and
// keep-alives, and a log to read.
func liveOptions(logs io.Writer) options {
	return options{
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
		MaxAge:    -1,
		KeepAlive: 100 * time.Millisecond,
		RetryMin:  20 * time.Millisecond,
		RetryMax:  200 * time.Millisecond,
	}
}

// liveDashboard starts the example with a key of its own, following
// Keyplane's live events as main does, until the test ends.
func (k *keyplane) liveDashboard(t *testing.T, key string, opts options) *httptest.Server {
	t.Helper()
	srv, s := startDashboard(t, k.client(key), opts)
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		s.follow(ctx, keyplaneStream{URL: k.url, Key: client.NewSecret(key)})
	}()
	t.Cleanup(func() { cancel(); <-followed })
	return srv
}

// waitSubscribed waits until Keyplane holds n live subscriptions: one
// registered is one that gets what commits from then on.
func (k *keyplane) waitSubscribed(t *testing.T, n int) {
	t.Helper()
	var active int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if active, _ = k.ts.App.Live.Subscriptions(); active == n {
			return
		}
	}
	t.Fatalf("Keyplane holds %d subscriptions, want %d", active, n)
}

// newDevice registers a device and returns its token; both it and the
// device's id are secrets the browser must never see.
func (k *keyplane) newDevice(t *testing.T, name string) string {
	t.Helper()
	created, err := k.admin.CreateDevice(context.Background(), client.CreateDeviceInput{Name: name, SerialNumber: "SN-" + name})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	token := created.Token.Reveal()
	k.secrets = append(k.secrets, token, created.Device.Id)
	k.tokens[name] = token
	return token
}

// sseEvent is one event of GET /events.
type sseEvent struct {
	ID, Event string
	Data      []byte
}

// eventStream is a GET /events, read as a page reads it.
type eventStream struct {
	res    *http.Response
	events chan sseEvent
	ended  chan struct{}

	mu  sync.Mutex
	raw bytes.Buffer // every byte read, comments included
}

// openEvents opens GET /events with the headers given, and reads it until
// the test ends.
func openEvents(t *testing.T, url string, header http.Header) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	es := &eventStream{res: res, events: make(chan sseEvent, 1024), ended: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-es.ended })
	go func() {
		defer close(es.ended)
		defer res.Body.Close()
		lines := bufio.NewScanner(res.Body)
		var ev sseEvent
		for lines.Scan() {
			line := lines.Text()
			es.mu.Lock()
			es.raw.WriteString(line + "\n")
			es.mu.Unlock()
			field, value, _ := strings.Cut(line, ": ")
			switch {
			case line == "":
				if ev.Event != "" {
					es.events <- ev
				}
				ev = sseEvent{}
			case field == "id":
				ev.ID = value
			case field == "event":
				ev.Event = value
			case field == "data":
				ev.Data = []byte(value)
			}
		}
	}()
	return es
}

// text is everything read so far.
func (es *eventStream) text() string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.raw.String()
}

// waitFor waits up to within for an event of the type given whose data
// match, skipping the others, and returns it.
func (es *eventStream) waitFor(t *testing.T, within time.Duration, event string, match func(data []byte) bool) sseEvent {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-es.events:
			if ev.Event == event && match(ev.Data) {
				return ev
			}
		case <-es.ended:
			t.Fatalf("GET /events ended before an event %q came; it read:\n%s", event, es.text())
		case <-deadline:
			t.Fatalf("no event %q that matches within %s; it read:\n%s", event, within, es.text())
		}
	}
}

// waitLive waits for the dashboard to say that it follows Keyplane, or
// that it does not.
func (es *eventStream) waitLive(t *testing.T, live bool) {
	t.Helper()
	want := fmt.Sprintf(`{"live":%t}`, live)
	es.waitFor(t, 5*time.Second, "live", func(data []byte) bool { return string(data) == want })
}
