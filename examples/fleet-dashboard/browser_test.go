package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/browsertest"
)

// TestBrowser opens the dashboard in Chromium, against a real Keyplane and
// a seeded fleet: the page shows the counts and the names, and follows the
// fleet as it changes. It never talks to Keyplane, and nothing the page
// sends or receives, in headers or bodies, holds a credential's prefix.
// Where Chromium is missing it skips, unless KEYPLANE_REQUIRE_BROWSER=1.
func TestBrowser(t *testing.T) {
	chromium := browsertest.Chromium(t)
	k := startKeyplane(t, db.SQLite)
	seen := k.seedFleet(t)
	kp := k.client(k.dashboardKey(t, client.ScopeDevicesRead))
	srv := dashboard(t, kp, options{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxAge:  -1,
		Refresh: time.Second,
	})

	b := browsertest.Start(t, chromium, srv.URL)
	b.Do(t, "open the page", chromedp.Navigate(srv.URL+"/"))
	b.WaitText(t, "the first figures", `document.getElementById('updated')`, "Updated at")
	assertPage(t, b, wantCounts, wantRecent, seen)

	// The page follows the fleet: a pending device reports in, and shows
	// at the top of the list at the next refresh.
	k.heartbeat(t, "Spare A")
	b.WaitText(t, "the refreshed list", `document.querySelector('#recent tbody tr')`, "Spare A")
	changed := wantCounts
	changed.Pending--
	changed.Online++
	assertPage(t, b, changed, append([]string{"Spare A"}, wantRecent[:recentCount-1]...), nil)

	// Everything the page sent and received, on its own origin only, and
	// without a credential.
	var asked []string
	for _, e := range b.Exchanges(t) {
		asked = append(asked, e.Method+" "+strings.TrimPrefix(e.URL, srv.URL))
		text := e.String()
		if !strings.HasPrefix(e.URL, srv.URL+"/") || strings.Contains(text, k.url) {
			t.Errorf("the page asked %s, off the dashboard's origin %s", e.URL, srv.URL)
		}
		if e.Status != http.StatusOK || e.Failed != "" || e.BodyError != "" {
			t.Errorf("%s %s: HTTP %d, failed %q, body unread %q", e.Method, e.URL, e.Status, e.Failed, e.BodyError)
		}
		if found := k.leaks(text); len(found) > 0 {
			t.Errorf("%s %s holds %q:\n%s", e.Method, e.URL, found, text)
		}
		if strings.HasSuffix(e.URL, "/api/fleet") && !strings.Contains(string(e.ResponseBody), `"counts"`) {
			t.Errorf("GET /api/fleet answered %s, so the scan proves little", e.ResponseBody)
		}
	}
	for _, want := range []string{"GET /", "GET /app.js", "GET /style.css", "GET /api/fleet"} {
		if !slices.Contains(asked, want) {
			t.Errorf("the page did not ask %s; it asked %q", want, asked)
		}
	}
	if n := len(slices.DeleteFunc(slices.Clone(asked), func(s string) bool { return s != "GET /api/fleet" })); n < 2 {
		t.Errorf("the page asked for /api/fleet %d times, want at least 2: it must refresh", n)
	}
	if found := k.leaks(b.Stored(t)); len(found) > 0 {
		t.Errorf("the page stored %q", found)
	}
	b.AssertClean(t)
}

// assertPage checks the counts and the list the page shows; seen, if not
// nil, gives when each listed device was last seen.
func assertPage(t *testing.T, b *browsertest.Browser, counts statusCounts, names []string, seen map[string]time.Time) {
	t.Helper()
	var shown struct {
		Counts map[string]string
		Rows   [][]string // name, status, datetime
	}
	raw := b.Eval(t, `JSON.stringify({
		counts: Object.fromEntries([...document.querySelectorAll('[data-count]')].map(el => [el.dataset.count, el.textContent])),
		rows: [...document.querySelectorAll('#recent tbody tr')].map(tr => [
			tr.cells[0].textContent, tr.cells[1].textContent, tr.querySelector('time').dateTime]),
	})`)
	if err := json.Unmarshal([]byte(raw), &shown); err != nil {
		t.Fatalf("read the page: %v\n%s", err, raw)
	}
	want := map[string]string{}
	for name, n := range map[string]int{"pending": counts.Pending, "online": counts.Online, "offline": counts.Offline, "revoked": counts.Revoked, "total": counts.Total} {
		want[name] = strconv.Itoa(n)
	}
	if !maps.Equal(shown.Counts, want) {
		t.Errorf("the page shows the counts %v, want %v", shown.Counts, want)
	}
	var got []string
	for _, row := range shown.Rows {
		got = append(got, row[0])
		wantStatus := "ONLINE"
		if row[0] == "Stolen van" {
			wantStatus = "REVOKED"
		}
		if row[1] != wantStatus {
			t.Errorf("the page shows %s as %s, want %s", row[0], row[1], wantStatus)
		}
		if at, ok := seen[row[0]]; ok && row[2] != at.Format(time.RFC3339) {
			t.Errorf("the page shows %s last seen at %s, want %s", row[0], row[2], at.Format(time.RFC3339))
		}
	}
	if !slices.Equal(got, names) {
		t.Errorf("the page lists\n %q\nwant\n %q", got, names)
	}
}
