package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/browsertest"
)

// TestBrowser opens the dashboard in Chromium, against a real Keyplane and
// a seeded fleet: the page shows the counts and the names, follows the
// fleet as it changes, and shows a device's status change as it happens,
// pushed over /events, without a reload. It never talks to Keyplane, and
// nothing the page sends or receives, in headers, bodies or pushed events,
// holds a credential's prefix. Where Chromium is missing it skips, unless
// KEYPLANE_REQUIRE_BROWSER=1.
func TestBrowser(t *testing.T) {
	chromium := browsertest.Chromium(t)
	k := startKeyplane(t, db.SQLite)
	seen := k.seedFleet(t)
	opts := liveOptions(io.Discard)
	opts.Refresh = time.Second
	srv := k.liveDashboard(t, k.dashboardKey(t, client.ScopeDevicesRead), opts)

	b := browsertest.Start(t, chromium, srv.URL)
	// Every message the page's EventSource receives, as Chromium saw it:
	// the recorded exchanges hold no body for a stream.
	var mu sync.Mutex
	var pushed []string
	if err := chromedp.Listen(b.Context(), func(ev any) {
		if m, ok := ev.(*network.EventEventSourceMessageReceived); ok {
			mu.Lock()
			pushed = append(pushed, fmt.Sprintf("id: %s\nevent: %s\ndata: %s\n", m.EventID, m.EventName, m.Data))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	b.Do(t, "open the page", chromedp.Navigate(srv.URL+"/"))
	b.WaitText(t, "the first figures", `document.getElementById('updated')`, "Updated at")
	assertPage(t, b, wantCounts, wantRecent, seen)

	// Live: once the dashboard follows Keyplane, a pending device's first
	// heartbeat shows on the same page, without a reload: in the list of
	// changes, which only /events feeds, and at the top of the list.
	b.WaitText(t, "the page is live", `document.getElementById('live')`, "Live")
	k.waitSubscribed(t, 1)
	b.Eval(t, `String(window.sameDocument = 'yes')`)
	k.heartbeat(t, "Spare A")
	b.WaitText(t, "the change pushed", `document.querySelector('#changes li')`, "Spare A")
	if got := b.Eval(t, `document.querySelector('#changes li').innerText`); !strings.Contains(got, "ONLINE") {
		t.Errorf("the change shows %q, want Spare A ONLINE", got)
	}
	b.WaitText(t, "the figures pushed", `document.querySelector('#recent tbody tr')`, "Spare A")
	changed := wantCounts
	changed.Pending--
	changed.Online++
	assertPage(t, b, changed, append([]string{"Spare A"}, wantRecent[:recentCount-1]...), nil)

	// What changes no status, such as a device registered, comes with the
	// next refresh.
	k.newDevice(t, "Spare C")
	changed.Pending++
	changed.Total++
	b.WaitText(t, "the refreshed figures", `document.querySelector('[data-count=total]')`, strconv.Itoa(changed.Total))
	assertPage(t, b, changed, append([]string{"Spare A"}, wantRecent[:recentCount-1]...), nil)
	if got := b.Eval(t, `String(window.sameDocument)`); got != "yes" {
		t.Errorf("the page was loaded again (window.sameDocument is %q): it must change in place", got)
	}
	if found := k.leaks(b.Stored(t)); len(found) > 0 {
		t.Errorf("the page stored %q", found)
	}

	// What came over /events, and how.
	mu.Lock()
	events := strings.Join(pushed, "\n")
	mu.Unlock()
	if !strings.Contains(events, `event: device`+"\n"+`data: {"name":"Spare A","status":"ONLINE"`) {
		t.Errorf("the page got no change of Spare A over /events; it got:\n%s", events)
	}
	if found := k.leaks(events); len(found) > 0 {
		t.Errorf("/events pushed %q to the page:\n%s", found, events)
	}
	closeEventSources(t, b)

	// Everything the page sent and received, on its own origin only, and
	// without a credential.
	var asked []string
	for _, e := range b.Exchanges(t) {
		asked = append(asked, e.Method+" "+strings.TrimPrefix(e.URL, srv.URL))
		text := e.String()
		if !strings.HasPrefix(e.URL, srv.URL+"/") || strings.Contains(text, k.url) {
			t.Errorf("the page asked %s, off the dashboard's origin %s", e.URL, srv.URL)
		}
		if strings.HasSuffix(e.URL, "/events") {
			// A stream: it was open until the page left, and its body is
			// the messages above.
			if e.Status != http.StatusOK || e.ResponseHeaders["content-type"] != "text/event-stream" || e.Failed != "" && e.Failed != "net::ERR_ABORTED" {
				t.Errorf("%s %s: HTTP %d, %s, failed %q", e.Method, e.URL, e.Status, e.ResponseHeaders["content-type"], e.Failed)
			}
		} else if e.Status != http.StatusOK || e.Failed != "" || e.BodyError != "" {
			t.Errorf("%s %s: HTTP %d, failed %q, body unread %q", e.Method, e.URL, e.Status, e.Failed, e.BodyError)
		}
		if found := k.leaks(text); len(found) > 0 {
			t.Errorf("%s %s holds %q:\n%s", e.Method, e.URL, found, text)
		}
		if strings.HasSuffix(e.URL, "/api/fleet") && !strings.Contains(string(e.ResponseBody), `"counts"`) {
			t.Errorf("GET /api/fleet answered %s, so the scan proves little", e.ResponseBody)
		}
	}
	for _, want := range []string{"GET /", "GET /app.js", "GET /style.css", "GET /api/fleet", "GET /events"} {
		if !slices.Contains(asked, want) {
			t.Errorf("the page did not ask %s; it asked %q", want, asked)
		}
	}
	if n := len(slices.DeleteFunc(slices.Clone(asked), func(s string) bool { return s != "GET /api/fleet" })); n < 2 {
		t.Errorf("the page asked for /api/fleet %d times, want at least 2: it must refresh", n)
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

// closeEventSources closes the page's EventSource, as DevTools' console
// could (queryObjects), without a hook in app.js: its request then ends
// (net::ERR_ABORTED), so that every exchange of the page is over.
func closeEventSources(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	ctx := b.Context()
	proto, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: "EventSource.prototype"})
	if err != nil || proto.Result == nil {
		t.Fatalf("find EventSource: %v", err)
	}
	sources, err := chromedp.Call(ctx, runtime.QueryObjects, runtime.QueryObjectsParams{PrototypeObjectID: proto.Result.ObjectID})
	if err != nil {
		t.Fatalf("find the page's EventSource: %v", err)
	}
	closed, err := chromedp.Call(ctx, runtime.CallFunctionOn, runtime.CallFunctionOnParams{
		ObjectID:            sources.Objects.ObjectID,
		FunctionDeclaration: `function() { for (const s of this) s.close(); return String(this.length); }`,
	})
	if err != nil || closed.Result == nil || string(closed.Result.Value) != `"1"` {
		t.Fatalf("close the page's EventSource: %v %+v", err, closed)
	}
}
