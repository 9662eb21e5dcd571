// Package browsertest drives Debian's Chromium for the browser tests of the
// playground and of the examples. Start launches a headless Chromium on a
// fresh profile with one tab that may talk to one origin only: every request
// elsewhere fails and fails the test. The tab records every request and
// response it sees, with their headers and bodies (Exchanges), and an
// exception, an error on its console or a policy violation fails the test
// too (AssertClean).
//
// Where Chromium is missing, Chromium skips the test, unless
// KEYPLANE_REQUIRE_BROWSER=1 (CI sets it) makes that a failure.
package browsertest

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Chromium returns the path of Debian's chromium, or skips the test.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("KEYPLANE_REQUIRE_BROWSER") == "1" {
		t.Fatal("KEYPLANE_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); set KEYPLANE_REQUIRE_BROWSER=1 to fail instead")
	return ""
}

// Browser is one Chromium tab on a fresh profile, whose requests off one
// origin fail and are recorded.
type Browser struct {
	ctx    context.Context
	origin string

	mu        sync.Mutex
	offsite   []string
	problems  []string
	exchanges []*Exchange
	latest    map[network.RequestID]*Exchange // the last exchange of each request id: a redirect starts another
	fetching  int                             // bodies being read
}

// Exchange is one request the page made and the answer it got, as the
// browser saw them.
type Exchange struct {
	Method, URL     string
	RequestHeaders  map[string]string // as the page set them, and as they went on the wire
	RequestBody     []byte
	Status          int               // 0 when no answer came
	ResponseHeaders map[string]string // as the browser read them, and as they came on the wire
	ResponseBody    []byte
	// Failed is why the request failed, such as net::ERR_BLOCKED_BY_CLIENT;
	// BodyError, why its response body could not be read.
	Failed, BodyError string

	id   network.RequestID
	done bool // finished or failed
}

// String is the whole exchange as text, headers and bodies included, for
// searching and for messages.
func (e *Exchange) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", e.Method, e.URL)
	writeHeaders(&b, e.RequestHeaders)
	fmt.Fprintf(&b, "\n%s\n", e.RequestBody)
	switch {
	case e.Failed != "":
		fmt.Fprintf(&b, "failed: %s\n", e.Failed)
	default:
		fmt.Fprintf(&b, "HTTP %d\n", e.Status)
		writeHeaders(&b, e.ResponseHeaders)
		fmt.Fprintf(&b, "\n%s\n", e.ResponseBody)
	}
	return b.String()
}

func writeHeaders(b *strings.Builder, h map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(h)) {
		fmt.Fprintf(b, "%s: %s\n", k, h[k])
	}
}

// Start launches Chromium, headless, on a fresh profile, with one tab that
// may reach only the origin of serverURL: every other request fails and is
// noted. The browser ends with the test.
func Start(t testing.TB, chromium, serverURL string) *Browser {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil || u.Host == "" {
		t.Fatalf("the server's URL %q has no origin: %v", serverURL, err)
	}
	// A fresh profile, and a temporary folder of its own for what Chromium
	// leaves behind (its shared memory and singleton files), removed after.
	dir, err := os.MkdirTemp("", "keyplane-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	profile, tmp := filepath.Join(dir, "profile"), filepath.Join(dir, "tmp")
	for _, d := range []string{profile, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.Env("TMPDIR="+tmp),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	b := &Browser{ctx: ctx, origin: u.Scheme + "://" + u.Host, latest: map[network.RequestID]*Exchange{}}

	// Every request of the tab pauses here: one to the origin goes on, any
	// other fails and fails the test.
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if b.sameOrigin(ev.Request.URL) {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				continue
			}
			b.note(&b.offsite, ev.Request.URL)
			_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
		}
	}()
	// The Network domain reports every request, also the kinds the Fetch
	// domain does not see (WebSockets), in the order they happen.
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("listen to the tab: %v", err)
	}
	// An exception, an error on the console or a policy violation fails the
	// test too.
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.note(&b.problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
			}
		}
	}()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		t.Fatalf("Fetch.enable: %v", err)
	}
	return b
}

// record notes the Network domain's events. It runs on the goroutine that
// reads the tab's messages, so it only records, and leaves reading a body
// to a goroutine of its own.
func (b *Browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if !b.sameOrigin(ev.Request.URL) && !strings.HasPrefix(ev.Request.URL, "data:") {
			b.offsite = append(b.offsite, ev.Request.URL)
		}
		if prev := b.latest[ev.RequestID]; prev != nil && ev.RedirectResponse != nil {
			prev.Status, prev.done = int(ev.RedirectResponse.Status), true
			mergeHeaders(&prev.ResponseHeaders, ev.RedirectResponse.Headers)
		}
		e := b.exchange(ev.RequestID, true)
		e.Method, e.URL = ev.Request.Method, ev.Request.URL
		e.done = strings.HasPrefix(e.URL, "data:") // nothing goes on the wire
		mergeHeaders(&e.RequestHeaders, ev.Request.Headers)
		for _, entry := range ev.Request.PostDataEntries {
			e.RequestBody = append(e.RequestBody, entry.Bytes...)
		}
		if ev.Request.HasPostData && len(ev.Request.PostDataEntries) == 0 {
			b.read(e, func(ctx context.Context) ([]byte, error) {
				res, err := chromedp.Call(ctx, network.GetRequestPostData, network.GetRequestPostDataParams{RequestID: e.id})
				return res.PostData, err
			}, &e.RequestBody)
		}
	case *network.EventRequestWillBeSentExtraInfo:
		mergeHeaders(&b.exchange(ev.RequestID, false).RequestHeaders, ev.Headers)
	case *network.EventResponseReceived:
		e := b.exchange(ev.RequestID, false)
		e.Status = int(ev.Response.Status)
		mergeHeaders(&e.ResponseHeaders, ev.Response.Headers)
	case *network.EventResponseReceivedExtraInfo:
		mergeHeaders(&b.exchange(ev.RequestID, false).ResponseHeaders, ev.Headers)
	case *network.EventLoadingFinished:
		e := b.exchange(ev.RequestID, false)
		b.read(e, func(ctx context.Context) ([]byte, error) {
			res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: e.id})
			return res.Body, err
		}, &e.ResponseBody)
		e.done = true
	case *network.EventLoadingFailed:
		e := b.exchange(ev.RequestID, false)
		e.Failed, e.done = ev.ErrorText, true
	case *network.EventWebSocketCreated:
		b.offsite = append(b.offsite, ev.URL)
	}
}

// exchange returns the exchange of a request id, making it when the id is
// new or fresh is set. Call it with b.mu held.
func (b *Browser) exchange(id network.RequestID, fresh bool) *Exchange {
	e := b.latest[id]
	if e == nil || fresh && e.URL != "" {
		e = &Exchange{id: id}
		b.latest[id] = e
		b.exchanges = append(b.exchanges, e)
	}
	return e
}

// read fills *into with what get returns, on a goroutine of its own: get
// sends a command to the tab, which record's goroutine must not wait for.
// Call it with b.mu held.
func (b *Browser) read(e *Exchange, get func(context.Context) ([]byte, error), into *[]byte) {
	b.fetching++
	go func() {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		body, err := get(ctx)
		b.mu.Lock()
		defer b.mu.Unlock()
		b.fetching--
		if err != nil {
			e.BodyError = err.Error()
			return
		}
		*into = append(*into, body...)
	}()
}

func mergeHeaders(into *map[string]string, h network.Headers) {
	if *into == nil {
		*into = map[string]string{}
	}
	for k, v := range h {
		(*into)[strings.ToLower(k)] = fmt.Sprint(v)
	}
}

// Exchanges returns every request the tab has made so far with its
// answer, once none is under way and every body is read; a request still
// under way after ten seconds fails the test.
func (b *Browser) Exchanges(t testing.TB) []Exchange {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		var busy []string
		for _, e := range b.exchanges {
			if !e.done {
				busy = append(busy, e.Method+" "+e.URL)
			}
		}
		if len(busy) == 0 && b.fetching == 0 {
			out := make([]Exchange, len(b.exchanges))
			for i, e := range b.exchanges {
				out[i] = *e
			}
			b.mu.Unlock()
			return out
		}
		b.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("requests still under way after 10s: %v", busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Context is the tab's chromedp context, for actions of one's own.
func (b *Browser) Context() context.Context { return b.ctx }

func (b *Browser) sameOrigin(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme+"://"+u.Host == b.origin
}

func (b *Browser) note(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

// AssertClean fails the test for each request off the origin and each
// error the page reported.
func (b *Browser) AssertClean(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.offsite {
		t.Errorf("the page asked for %s, off the origin %s", u, b.origin)
	}
	for _, p := range b.problems {
		t.Errorf("the page reported %s", p)
	}
}

// Do runs steps, within 30 seconds; a failure fails the test, after
// reporting what AssertClean would.
func (b *Browser) Do(t testing.TB, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.AssertClean(t)
		t.Fatalf("%s: %v", what, err)
	}
}

// Eval evaluates an expression in the page, awaiting a promise, and
// returns its string value.
func (b *Browser) Eval(t testing.TB, js string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return out
}

// WaitText waits until the text of what elementJS finds (the innerText of
// an element, or the content of a CodeMirror editor) contains want, and
// returns that text. (chromedp's Poll builds its predicate with new
// Function, which a strict Content-Security-Policy refuses; this asks from
// Go.)
func (b *Browser) WaitText(t testing.TB, what, elementJS, want string) string {
	t.Helper()
	js := `(() => { const el = ` + elementJS + `; return !el ? '' : el.getValue ? el.getValue() : el.innerText; })()`
	deadline := time.Now().Add(30 * time.Second)
	var text string
	for time.Now().Before(deadline) {
		if text = b.Eval(t, js); strings.Contains(text, want) {
			return text
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.AssertClean(t)
	t.Fatalf("%s: %q did not appear; it shows:\n%s", what, want, text)
	return ""
}

// Stored returns, as text, everything the page has stored and could hand
// back later: localStorage, sessionStorage, IndexedDB, the Cache API,
// cookies, the URL and the tab's history.
func (b *Browser) Stored(t testing.TB) string {
	t.Helper()
	dump := b.Eval(t, `(async () => {
		const out = {url: location.href, localStorage: {}, sessionStorage: {}, indexedDB: {}, caches: {}};
		for (let i = 0; i < localStorage.length; i++) {
			const k = localStorage.key(i); out.localStorage[k] = localStorage.getItem(k);
		}
		for (let i = 0; i < sessionStorage.length; i++) {
			const k = sessionStorage.key(i); out.sessionStorage[k] = sessionStorage.getItem(k);
		}
		for (const info of await indexedDB.databases()) {
			const db = await new Promise((ok, fail) => {
				const req = indexedDB.open(info.name); req.onsuccess = () => ok(req.result); req.onerror = () => fail(req.error);
			});
			const stores = {};
			for (const name of db.objectStoreNames) {
				stores[name] = await new Promise((ok, fail) => {
					const req = db.transaction(name).objectStore(name).getAll();
					req.onsuccess = () => ok(req.result); req.onerror = () => fail(req.error);
				});
			}
			out.indexedDB[info.name] = stores;
			db.close();
		}
		for (const name of await caches.keys()) {
			const cache = await caches.open(name);
			out.caches[name] = (await cache.keys()).map(r => r.url);
		}
		out.documentCookie = document.cookie;
		return JSON.stringify(out, null, 1);
	})()`)
	cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatalf("cookies: %v", err)
	}
	entries, err := chromedp.Run(b.ctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatalf("navigation history: %v", err)
	}
	var all strings.Builder
	all.WriteString(dump)
	for _, c := range cookies.Cookies {
		fmt.Fprintf(&all, "\ncookie %s=%s", c.Name, c.Value)
	}
	for _, e := range entries.Entries {
		fmt.Fprintf(&all, "\nhistory %s", e.URL)
	}
	return all.String()
}
