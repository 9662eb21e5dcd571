package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testlog"
)

// get asks the dashboard for a path and returns the answer and its body.
func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, []byte) {
	t.Helper()
	return httpGet(t, srv.URL+path)
}

// TestFleet reads a seeded fleet through the example, with a key that holds
// DEVICES_READ only, on each dialect: the counts by status, the ten most
// recently seen devices, and nothing Keyplane would not show a browser.
func TestFleet(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		k := startKeyplane(t, d)
		seen := k.seedFleet(t)
		srv := dashboard(t, k.client(k.dashboardKey(t, client.ScopeDevicesRead)), options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

		before := time.Now().UTC().Truncate(time.Second)
		res, body := get(t, srv, "/api/fleet")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/fleet: %d %s", res.StatusCode, body)
		}
		for header, want := range map[string]string{
			"Content-Type":            "application/json; charset=utf-8",
			"Cache-Control":           "no-store",
			"Content-Security-Policy": contentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
		} {
			if got := res.Header.Get(header); got != want {
				t.Errorf("%s: %q, want %q", header, got, want)
			}
		}

		view := decodeFleet(t, body)
		if view.Counts != wantCounts {
			t.Errorf("counts %+v, want %+v", view.Counts, wantCounts)
		}
		var names []string
		for _, d := range view.Recent {
			names = append(names, d.Name)
			if want, ok := seen[d.Name]; !ok || !d.LastSeenAt.Equal(want) {
				t.Errorf("%s: last seen %s, want %s", d.Name, d.LastSeenAt, want)
			}
			wantStatus := string(client.DeviceStatusOnline)
			if d.Name == "Stolen van" {
				wantStatus = string(client.DeviceStatusRevoked)
			}
			if d.Status != wantStatus {
				t.Errorf("%s: status %s, want %s", d.Name, d.Status, wantStatus)
			}
		}
		if !slices.Equal(names, wantRecent) {
			t.Errorf("the ten most recently seen:\n got %q\nwant %q", names, wantRecent)
		}
		if view.GeneratedAt.Before(before) || view.GeneratedAt.After(time.Now()) {
			t.Errorf("generatedAt %s is not the time of the request", view.GeneratedAt)
		}
		if view.RefreshSeconds != 5 {
			t.Errorf("refreshSeconds %d, want the default 5", view.RefreshSeconds)
		}

		// Nothing that identifies or authenticates: no credential, no key or
		// device id, no serial number; the JSON holds the page's fields and
		// no more.
		if found := k.leaks(string(body)); len(found) > 0 {
			t.Errorf("the payload holds %q:\n%s", found, body)
		}
		if regexp.MustCompile(`SN-\d+`).Match(body) {
			t.Errorf("the payload holds serial numbers:\n%s", body)
		}
	})
}

// TestFleetManyPages reads a fleet of many pages, seen in no particular
// order, with a small page size: the counts cover every page, and the ten
// most recently seen are found wherever they are.
func TestFleetManyPages(t *testing.T) {
	k := startKeyplane(t, db.SQLite)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	const n = 95
	// Device i was seen age(i) minutes ago, 1 to 95 in the order of a
	// shuffle, or never when age(i) is 0.
	age := func(i int) int {
		if i%5 == 4 {
			return 0
		}
		return 1 + (i*37)%n
	}
	var want statusCounts
	for i := range n {
		serial := fmt.Sprintf("BULK-%03d", i)
		if _, err := k.admin.CreateDevice(ctx, client.CreateDeviceInput{Name: "cam " + serial, SerialNumber: serial}); err != nil {
			t.Fatal(err)
		}
		switch minutes := age(i); {
		case minutes == 0:
			want.add(client.DeviceStatusPending)
		default:
			k.db.Exec(t, "UPDATE devices SET last_seen_at = ? WHERE serial_number = ?", now.Add(-time.Duration(minutes)*time.Minute), serial)
			if minutes < 5 { // the online window
				want.add(client.DeviceStatusOnline)
			} else {
				want.add(client.DeviceStatusOffline)
			}
		}
	}
	srv := dashboard(t, k.client(k.dashboardKey(t, client.ScopeDevicesRead)).With(client.WithPageSize(7)), options{})
	_, body := get(t, srv, "/api/fleet")
	view := decodeFleet(t, body)
	if view.Counts != want || want.Online == 0 || want.Pending == 0 {
		t.Errorf("counts %+v, want %+v", view.Counts, want)
	}
	var got []string
	for _, d := range view.Recent {
		got = append(got, fmt.Sprintf("%s %s", d.Name, now.Sub(d.LastSeenAt)))
	}
	var wantRecent []string
	for minutes := 1; len(wantRecent) < recentCount; minutes++ {
		for i := range n {
			if age(i) == minutes {
				wantRecent = append(wantRecent, fmt.Sprintf("cam BULK-%03d %s", i, time.Duration(minutes)*time.Minute))
			}
		}
	}
	if !slices.Equal(got, wantRecent) {
		t.Errorf("the ten most recently seen:\n got %q\nwant %q", got, wantRecent)
	}
}

// TestFleetRefreshes: within MaxAge an answer is served again without
// asking Keyplane, after it Keyplane is asked again.
func TestFleetRefreshes(t *testing.T) {
	k := startKeyplane(t, db.SQLite)
	k.seedFleet(t)
	now := time.Now()
	clock := func() time.Time { return now }
	srv := dashboard(t, k.client(k.dashboardKey(t, client.ScopeDevicesRead)), options{MaxAge: 2 * time.Second, Now: clock})

	_, first := get(t, srv, "/api/fleet")
	k.heartbeat(t, "Spare A")
	now = now.Add(time.Second)
	if _, again := get(t, srv, "/api/fleet"); !bytes.Equal(again, first) {
		t.Errorf("within MaxAge the answer changed:\n%s\n%s", first, again)
	}
	now = now.Add(2 * time.Second)
	_, later := get(t, srv, "/api/fleet")
	view := decodeFleet(t, later)
	if view.Counts.Pending != wantCounts.Pending-1 || view.Counts.Online != wantCounts.Online+1 {
		t.Errorf("after MaxAge the counts are %+v; want one device more online, one less pending", view.Counts)
	}
	if len(view.Recent) == 0 || view.Recent[0].Name != "Spare A" {
		t.Errorf("after MaxAge the most recently seen is %+v, want Spare A", view.Recent)
	}
}

// TestFleetKeyplaneFails: whatever goes wrong with Keyplane, the browser
// gets a 502 that says nothing of it, and the log says what, without the
// key.
func TestFleetKeyplaneFails(t *testing.T) {
	k := startKeyplane(t, db.SQLite)
	k.seedFleet(t)
	ctx := context.Background()

	revoked := k.dashboardKey(t, client.ScopeDevicesRead)
	created, err := k.admin.ApiKeys(ctx, client.ApiKeyFilter{Search: "fleet-dashboard"}, client.PageOptions{})
	if err != nil || len(created.Nodes) != 1 {
		t.Fatalf("find the key: %v %+v", err, created)
	}
	if _, err := k.admin.RevokeApiKey(ctx, created.Nodes[0].Id); err != nil {
		t.Fatal(err)
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	for _, tc := range []struct {
		name string
		kp   *client.Client
		key  string
		log  []string // what the log must say
	}{
		{"a key without DEVICES_READ", nil, k.dashboardKey(t, client.ScopeMembersRead), []string{"FORBIDDEN", "scope DEVICES_READ", "needs the DEVICES_READ scope"}},
		{"a revoked key", nil, revoked, []string{"UNAUTHENTICATED", "reason REVOKED", "refuses KEYPLANE_KEY"}},
		{"a wrong key", nil, "kp_0351sYg4NCngT9UiL1J5oQ_" + strings.Repeat("x", 49), []string{"UNAUTHENTICATED", "reason INVALID"}},
		{"Keyplane down", client.New(down.URL, client.WithKey(revoked)), revoked, []string{"connection refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kp := tc.kp
			if kp == nil {
				kp = k.client(tc.key)
			}
			logs := &testlog.Buffer{}
			srv := dashboard(t, kp, options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			res, body := get(t, srv, "/api/fleet")
			if res.StatusCode != http.StatusBadGateway {
				t.Errorf("status %d, want 502", res.StatusCode)
			}
			var e errorView
			if err := json.Unmarshal(body, &e); err != nil || e.Error != keyplaneFailed {
				t.Errorf("body %s, want {\"error\": %q}", body, keyplaneFailed)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			for _, want := range tc.log {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log does not say %q:\n%s", want, logs)
				}
			}
			secret := tc.key[len("kp_0351sYg4NCngT9UiL1J5oQ_"):]
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the log holds the key:\n%s", logs)
			}
		})
	}
}

// TestPage: the page is its three files and an icon, under a policy that
// lets it load nothing else and run no inline script; other methods and
// paths are refused.
func TestPage(t *testing.T) {
	srv := dashboard(t, client.New("http://127.0.0.1:1/graphql"), options{})
	for path, contentType := range map[string]string{
		"/":            "text/html; charset=utf-8",
		"/app.js":      "text/javascript; charset=utf-8",
		"/style.css":   "text/css; charset=utf-8",
		"/favicon.svg": "image/svg+xml",
	} {
		res, body := get(t, srv, path)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != contentType {
			t.Errorf("GET %s: %d %s, want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), contentType)
		}
		if got := res.Header.Get("Content-Security-Policy"); got != contentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q", path, got)
		}
		for _, prefix := range credentialPrefixes {
			if strings.Contains(string(body), prefix) {
				t.Errorf("GET %s: the file holds %s", path, prefix)
			}
		}
	}
	for _, want := range []string{"script-src 'self'", "connect-src 'self'", "default-src 'none'"} {
		if !strings.Contains(contentSecurityPolicy, want) {
			t.Errorf("the policy lacks %s", want)
		}
	}
	_, html := get(t, srv, "/")
	scripts := regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`).FindAllSubmatch(html, -1)
	if len(scripts) != 1 {
		t.Errorf("index.html has %d scripts, want app.js alone", len(scripts))
	}
	for _, s := range scripts {
		if !bytes.Contains(s[1], []byte(`src="app.js"`)) || len(bytes.TrimSpace(s[2])) > 0 {
			t.Errorf("index.html has an inline script %q, which the policy refuses", s[0])
		}
	}
	if m := regexp.MustCompile(`\son[a-z]+=|\sstyle=|<style`).Find(html); m != nil {
		t.Errorf("index.html has inline code %q, which the policy refuses", m)
	}

	res, err := srv.Client().Post(srv.URL+"/api/fleet", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/fleet: %d, want 405", res.StatusCode)
	}
	if res, _ := get(t, srv, "/api/keys"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/keys: %d, want 404", res.StatusCode)
	}
}

// TestRun starts the command as main does, against a real Keyplane, and
// checks its settings: a missing key, a key of the wrong kind, a key
// Keyplane refuses or one without DEVICES_READ stop it with exit code 2,
// naming the key only in its redacted form.
func TestRun(t *testing.T) {
	k := startKeyplane(t, db.SQLite)
	k.seedFleet(t)
	good := k.dashboardKey(t, client.ScopeDevicesRead)
	env := func(key string) func(string) string {
		return func(name string) string {
			return map[string]string{"KEYPLANE_KEY": key, "KEYPLANE_URL": k.url, "LISTEN_ADDR": "127.0.0.1:0"}[name]
		}
	}

	for _, tc := range []struct {
		name, key, want string
	}{
		{"no key", "", "set KEYPLANE_KEY"},
		{"a device token", k.tokens["Dock 1"], "KEYPLANE_KEY (kpd_…[redacted]) is not a team API key"},
		{"a key without DEVICES_READ", k.dashboardKey(t, client.ScopeAuditRead), "scope DEVICES_READ"},
		{"a wrong key", "kp_0351sYg4NCngT9UiL1J5oQ_" + strings.Repeat("x", 49), "reason INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out testlog.Buffer
			if code := run(context.Background(), env(tc.key), &out); code != exitConfig {
				t.Errorf("exit code %d, want %d; it said:\n%s", code, exitConfig, out.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("it said %q, want %q", out.String(), tc.want)
			}
			if tc.key != "" && strings.Contains(out.String(), tc.key) {
				t.Errorf("it printed the key: %s", out.String())
			}
		})
	}

	t.Run("serves", func(t *testing.T) {
		url, out, stop := startRun(t, env(good))
		res, body := httpGet(t, url+"api/fleet")
		if view := decodeFleet(t, body); res.StatusCode != http.StatusOK || view.Counts != wantCounts {
			t.Errorf("GET /api/fleet: %d, counts %+v, want %+v", res.StatusCode, view.Counts, wantCounts)
		}
		// It follows Keyplane, and a page's open stream does not hold its
		// stop.
		es := openEvents(t, url+"events", nil)
		es.waitLive(t, true)
		stopped := time.Now()
		if code := stop(); code != 0 {
			t.Errorf("exit code %d after the signal, want 0", code)
		}
		if took := time.Since(stopped); took > 5*time.Second {
			t.Errorf("it took %s to stop", took)
		}
		select {
		case <-es.ended:
		case <-time.After(5 * time.Second):
			t.Error("the page's stream is still open after the stop")
		}
		if !strings.Contains(out.String(), "key=kp_…[redacted]") || strings.Contains(out.String(), good) {
			t.Errorf("the log shows the key other than redacted:\n%s", out.String())
		}
	})

	t.Run("Keyplane down", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		url, out, stop := startRun(t, func(name string) string {
			if name == "KEYPLANE_URL" {
				return down.URL + "/graphql"
			}
			return env(good)(name)
		})
		if !strings.Contains(out.String(), "Keyplane does not answer yet") {
			t.Errorf("it did not warn that Keyplane is down:\n%s", out.String())
		}
		if res, _ := httpGet(t, url+"api/fleet"); res.StatusCode != http.StatusBadGateway {
			t.Errorf("GET /api/fleet: %d, want 502", res.StatusCode)
		}
		if code := stop(); code != 0 {
			t.Errorf("exit code %d after the signal, want 0", code)
		}
	})
}

// startRun runs the command as main does, until stop, which returns its
// exit code; url is where it serves, out what it logged.
func startRun(t *testing.T, getenv func(string) string) (url string, out *testlog.Buffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out = &testlog.Buffer{}
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, getenv, out) }()
	serving := regexp.MustCompile(`msg=serving url=(http://\S+/)`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := serving.FindStringSubmatch(out.String()); m != nil {
			return m[1], out, func() int { cancel(); return <-exited }
		}
	}
	t.Fatalf("it did not start serving:\n%s", out.String())
	return "", nil, nil
}

// httpGet gets a URL and returns the answer and its body.
func httpGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}
