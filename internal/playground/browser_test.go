package playground_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/browsertest"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/live"
	"github.com/keyplane/keyplane/internal/playground"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testserver"
)

// TestBrowser drives the playground in Chromium, as a person would, against
// the real server on its own database, with every request off the server's
// origin blocked: the page must work offline. Where Chromium is missing it
// skips, unless KEYPLANE_REQUIRE_BROWSER=1 (CI sets it).
//
// The screenshot it takes is kept in a temporary folder whose path it logs;
// with KEYPLANE_UPDATE_SCREENSHOT=1 it also writes docs/playground.png, the
// README's.
func TestBrowser(t *testing.T) {
	chromium := browsertest.Chromium(t)
	s := startServer(t)
	s.seedDevices(t)

	b := browser{browsertest.Start(t, chromium, s.srv.URL)}
	page := s.srv.URL + "/"

	// 1. The page loads, offline, and its schema with it.
	b.Do(t, "open the page", chromedp.EmulateViewport(1600, 1000), chromedp.Navigate(page))
	b.WaitText(t, "the notice", `document.getElementById('keyplane-notice')`, playground.Notice)
	b.waitSchema(t)
	if got := b.editorValue(t, "headers"); got != playground.HeadersTemplate {
		t.Errorf("the Headers pane holds %q, want the template %q", got, playground.HeadersTemplate)
	}

	// 2. The Docs pane reads the schema: the type Team, with its description
	// and its fields.
	b.clickLink(t, ".graphiql-doc-explorer", "Team")
	docs := b.WaitText(t, "the Docs pane on Team", `document.querySelector('.graphiql-doc-explorer')`,
		"A team: the tenant that owns API keys, devices and members.")
	for _, want := range []string{"devices", "DeviceConnection", "auditEvents", "apiKeys"} {
		if !strings.Contains(docs, want) {
			t.Errorf("the Docs pane on Team does not show %q:\n%s", want, docs)
		}
	}

	// 3. A key typed into the Headers pane runs the devices query.
	headers := fmt.Sprintf(`{"Authorization": "Bearer %s"}`, s.key)
	b.typeInto(t, "headers", headers)
	if got := b.editorValue(t, "headers"); got != headers {
		t.Fatalf("the Headers pane holds %q after typing, want %q", got, headers)
	}
	b.Do(t, "run the query", chromedp.Click(chromedp.CSS(`button.graphiql-execute-button`)))
	// The pane's whole content: CodeMirror draws only the lines in view.
	result := b.WaitText(t, "the result pane", `document.querySelector('.result-window .CodeMirror')?.CodeMirror`, `"totalCount": 3`)
	for _, want := range []string{`"nodes": [`, `"name": "OAK-D Pro W · dock 1"`, `"serialNumber": "18443010C1A2B3C400"`,
		`"status": "ONLINE"`, `"status": "PENDING"`, `"hasNextPage": false`, `"endCursor": "`} {
		if !strings.Contains(result, want) {
			t.Errorf("the result pane does not show %s:\n%s", want, result)
		}
	}
	if strings.Contains(result, `"errors"`) {
		t.Errorf("the result pane shows errors:\n%s", result)
	}

	// What reached the server: the schema without a key (the template is
	// never sent), the devices query with it.
	sent := s.requests()
	if len(sent) < 2 {
		t.Fatalf("the server saw %d GraphQL requests, want the introspection and the query", len(sent))
	}
	for _, r := range sent {
		if strings.Contains(r.authorization, "paste") || strings.Contains(r.authorization, "<") {
			t.Errorf("%s was sent with the template as its Authorization: %q", r.operation, r.authorization)
		}
		if strings.Contains(r.accept, "text/event-stream") {
			t.Errorf("%s, a query, asked for an event stream (Accept: %s)", r.operation, r.accept)
		}
	}
	if first := sent[0]; first.operation != "IntrospectionQuery" || first.authorization != "" {
		t.Errorf("the first request is %s with Authorization %q; want the introspection, without one", first.operation, first.authorization)
	}
	if last := sent[len(sent)-1]; last.operation != "Devices" || last.authorization != "Bearer "+s.key {
		t.Errorf("the last request is %s with Authorization %q; want Devices with the key", last.operation, last.authorization)
	}

	// 4. The screenshot: the Docs pane, the query and its result, with the
	// Variables pane in front, so that the key is not in the picture.
	b.Do(t, "show the Variables pane", chromedp.Click(chromedp.CSS(`.graphiql-editor-tools button[data-name="variables"]`)))
	b.Eval(t, `(() => { // the top of the Docs pane, which the click on Team scrolled
		for (const el of document.querySelectorAll('.graphiql-plugin, .graphiql-plugin *')) el.scrollTop = 0;
		return '';
	})()`)
	shot, err := chromedp.Run(b.Context(), chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	saveScreenshot(t, shot)

	// 5. Nothing in the browser holds the key: not before a reload, not
	// after. The history and the tabs are stored, without it.
	// GraphiQL saves the tabs half a second after a change: wait for it.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b.Eval(t, `localStorage.getItem('keyplane:graphiql:tabState') ? 'saved' : ''`) == "saved" {
			break
		}
	}
	stored := b.scanForKey(t, s.key, "after running the query")
	for _, want := range []string{`"keyplane:graphiql:queries"`, `"keyplane:graphiql:tabState"`, `query Devices`} {
		if !strings.Contains(stored, want) {
			t.Errorf("the page did not store %s, so the scan proves little:\n%s", want, stored)
		}
	}
	b.Do(t, "reload", chromedp.Reload())
	b.waitSchema(t)
	if got := b.editorValue(t, "headers"); got != playground.HeadersTemplate {
		t.Errorf("after a reload the Headers pane holds %q, want the template", got)
	}
	if got := b.Eval(t, `[...document.querySelectorAll('.graphiql-tab-button')].map(b => b.innerText).join(', ')`); got != "Devices, CreateScopedKey, RotateKey, AuditLog" {
		t.Errorf("after a reload the tabs are %s, want the four tabs as they were", got)
	}
	b.Do(t, "open another tab", chromedp.Click(chromedp.CSS(`#graphiql-session-tab-1`)))
	if got := b.editorValue(t, "headers"); got != playground.HeadersTemplate {
		t.Errorf("after a reload another tab's Headers pane holds %q, want the template", got)
	}
	b.scanForKey(t, s.key, "after a reload")

	// A dialog writes GraphiQL's one inline <style>, which the page's
	// policy allows by its nonce: no violation is reported.
	b.Do(t, "open the settings", chromedp.Click(chromedp.CSS(`button[aria-label="Open settings dialog"]`)))
	b.WaitText(t, "the settings dialog", `document.querySelector('[role="dialog"]')`, "Clear storage")
	if got := b.Eval(t, `document.querySelector('style[nonce]') ? 'yes' : ''`); got != "yes" {
		t.Error("the dialog wrote no <style> with the nonce: the test no longer checks the policy's nonce")
	}
	if got := b.Eval(t, `document.body.innerText`); strings.Contains(got, "Persist headers") {
		t.Error("the settings offer to persist headers")
	}
	b.Do(t, "close the settings", chromedp.KeyEvent(kb.Escape))

	b.AssertClean(t)
}

// server is Keyplane, started as the binary starts it, on a fresh SQLite
// database with one team.
type server struct {
	srv  *httptest.Server
	key  string    // the team's first key: every scope
	live *live.Hub // the server's subscriptions

	mu   sync.Mutex
	seen []graphQLRequest
}

// graphQLRequest is what the server saw of one request to /graphql.
type graphQLRequest struct {
	operation, authorization, accept string
}

func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{}
	ts := testserver.StartWith(t, testdb.New(t, db.SQLite), testserver.Options{
		Team:      "Acme Robotics",
		Wrap:      s.record,
		Configure: []func(*config.Config){func(c *config.Config) { c.UsageFlushInterval = time.Hour }},
	})
	s.srv, s.key, s.live = ts.HTTP, ts.Admin, ts.App.Live
	return s
}

// record notes the operation and Authorization of each POST /graphql.
func (s *server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/graphql" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var params struct {
				OperationName string `json:"operationName"`
			}
			_ = json.Unmarshal(body, &params)
			s.mu.Lock()
			s.seen = append(s.seen, graphQLRequest{operation: params.OperationName,
				authorization: r.Header.Get("Authorization"), accept: r.Header.Get("Accept")})
			s.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) requests() []graphQLRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]graphQLRequest(nil), s.seen...)
}

// gql posts an operation with the team's key, outside the browser.
func (s *server) gql(t *testing.T, key, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Data   map[string]any   `json:"data"`
		Errors []map[string]any `json:"errors"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || len(out.Errors) > 0 {
		t.Fatalf("%s: %v %v", query, err, out.Errors)
	}
	return out.Data
}

// waitSubscriptions waits until the server holds want subscriptions.
func (s *server) waitSubscriptions(t *testing.T, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the server to hold %d subscriptions", want), 10*time.Second, func() (bool, string) {
		active, _ := s.live.Subscriptions()
		return active == want, fmt.Sprintf("it holds %d", active)
	})
}

// seedDevices registers three cameras; two send a heartbeat.
func (s *server) seedDevices(t *testing.T) {
	t.Helper()
	const create = `mutation($input: CreateDeviceInput!) { createDevice(input: $input) { token } }`
	devices := []map[string]any{
		{"name": "OAK-D Pro W · dock 1", "serialNumber": "18443010C1A2B3C400", "model": "OAK-D Pro W", "tags": []string{"warehouse", "dock"}},
		{"name": "OAK-D Lite · aisle 7", "serialNumber": "19443010D2B3C4D500", "model": "OAK-D Lite", "tags": []string{"warehouse"}},
		{"name": "OAK-1 Max · gate", "serialNumber": "14442C10E3C4D5E600", "model": "OAK-1 Max", "tags": []string{"gate"}},
	}
	for i, d := range devices {
		data := s.gql(t, s.key, create, map[string]any{"input": d})
		token, _ := data["createDevice"].(map[string]any)["token"].(string)
		if i < 2 {
			s.gql(t, token, `mutation { deviceHeartbeat(input: { firmwareVersion: "2.30.0" }) { device { id } } }`, nil)
		}
	}
	s.mu.Lock()
	s.seen = nil // only the browser's requests count
	s.mu.Unlock()
}

// browser is the playground's tab, with the steps that know GraphiQL.
type browser struct{ *browsertest.Browser }

// waitSchema opens the Docs pane, if it is closed, and waits until it lists
// the schema's root types. A schema that failed to load fails the test with
// what the page shows.
func (b browser) waitSchema(t *testing.T) {
	t.Helper()
	b.WaitText(t, "GraphiQL", `document.querySelector('.graphiql-container')`, "Headers")
	if b.Eval(t, `document.querySelector('button[aria-label="Show Documentation Explorer"]') ? 'closed' : ''`) == "closed" {
		b.Do(t, "open the Docs pane", chromedp.Click(chromedp.CSS(`button[aria-label="Show Documentation Explorer"]`)))
	}
	deadline := time.Now().Add(30 * time.Second)
	var state string
	for time.Now().Before(deadline) {
		state = b.Eval(t, `(() => {
			const docs = document.querySelector('.graphiql-doc-explorer');
			const result = document.querySelector('.result-window .CodeMirror-code');
			return (docs ? docs.innerText : '') + '\n---\n' + (result ? result.innerText : '');
		})()`)
		docs, result, _ := strings.Cut(state, "\n---\n")
		if strings.Contains(docs, "Root Types") && strings.Contains(docs, "Query") {
			return
		}
		if strings.Contains(docs, "Error fetching schema") || strings.Contains(result, `"errors"`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.AssertClean(t)
	t.Fatalf("the schema did not load; the page shows:\n%s", state)
}

// waitResult waits until the result pane shows every one of want, and
// returns what it shows; past within it fails the test.
func (b browser) waitResult(t *testing.T, within time.Duration, want ...string) string {
	t.Helper()
	shown, got := b.showsResult(t, within, want...)
	if !shown {
		t.Fatalf("waited %v for the result pane to show %s; it shows:\n%s", within, strings.Join(want, " and "), got)
	}
	return got
}

// showsResult waits until the result pane shows every one of want, for at
// most within, and returns whether it did and what it shows.
func (b browser) showsResult(t *testing.T, within time.Duration, want ...string) (bool, string) {
	t.Helper()
	return poll(within, func() (bool, string) {
		// The pane's whole content: CodeMirror draws only the lines in view.
		got := b.Eval(t, `document.querySelector('.result-window .CodeMirror')?.CodeMirror.getValue() ?? ''`)
		for _, w := range want {
			if !strings.Contains(got, w) {
				return false, got
			}
		}
		return true, got
	})
}

// waitFor asks cond every 50ms until it holds, for at most within, and
// returns what it last saw; past within it fails the test with that.
func waitFor(t *testing.T, what string, within time.Duration, cond func() (bool, string)) string {
	t.Helper()
	ok, saw := poll(within, cond)
	if !ok {
		t.Fatalf("waited %v for %s; last saw:\n%s", within, what, saw)
	}
	return saw
}

// poll asks cond every 50ms until it holds, for at most within, and
// returns whether it did and what it last saw.
func poll(within time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(within)
	for {
		ok, saw := cond()
		if ok || time.Now().After(deadline) {
			return ok, saw
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clickLink clicks the first link in container whose text is text.
func (b browser) clickLink(t *testing.T, container, text string) {
	t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll(%q)].flatMap(c => [...c.querySelectorAll('a')]).find(a => a.textContent.trim() === %q)`, container, text)
	b.Do(t, "click "+text, chromedp.Click(chromedp.JSPath(js)))
}

// toolEditor is the CodeMirror of the editor tool in front (Variables or
// Headers).
const toolEditor = `.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror`

// editorValue returns what the Headers or Variables pane holds.
func (b browser) editorValue(t *testing.T, tool string) string {
	t.Helper()
	b.Do(t, "show the "+tool+" pane", chromedp.Click(chromedp.CSS(`.graphiql-editor-tools button[data-name="`+tool+`"]`)))
	return b.Eval(t, `document.querySelector('`+toolEditor+`').CodeMirror.getValue()`)
}

// typeInto selects all of a pane and types text over it, as a person
// pasting would.
func (b browser) typeInto(t *testing.T, tool, text string) {
	t.Helper()
	show := chromedp.Click(chromedp.CSS(`.graphiql-editor-tools button[data-name="` + tool + `"]`))
	b.Do(t, "type into the "+tool+" pane", append([]chromedp.Action[chromedp.Void]{show}, typeOver(toolEditor, text)...)...)
}

// queryEditor is the CodeMirror of the operation being edited.
const queryEditor = `.graphiql-query-editor .CodeMirror`

// typeQuery selects all of the query editor and types text over it, then
// waits until the tab is named title: GraphiQL reads an edit a moment
// later, and until then would run the operation named before.
func (b browser) typeQuery(t *testing.T, text, title string) {
	t.Helper()
	b.Do(t, "type into the query editor", typeOver(queryEditor, text)...)
	if got := b.Eval(t, `document.querySelector('`+queryEditor+`').CodeMirror.getValue()`); got != text {
		t.Fatalf("the query editor holds %q after typing, want %q", got, text)
	}
	waitFor(t, "the tab to be named "+title, 5*time.Second, func() (bool, string) {
		got := b.Eval(t, `document.querySelector('.graphiql-tab-active .graphiql-tab-button')?.innerText ?? ''`)
		return got == title, got
	})
}

// typeOver clicks into the CodeMirror editor, selects all of it and types
// text over it, as one paste.
func typeOver(editor, text string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Click(chromedp.CSS(editor + ` .CodeMirror-lines`)),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, input.InsertText, input.InsertTextParams{Text: text})
			return err
		}),
	}
}

// scanForKey looks for the key in every store of the page: localStorage,
// sessionStorage, IndexedDB, the Cache API, cookies, the URL and the tab's
// history. It returns what it read.
func (b browser) scanForKey(t *testing.T, key, when string) string {
	t.Helper()
	all := b.Stored(t)
	// The key, and any long piece of it, would give it away.
	secret := strings.TrimPrefix(key, "kp_")
	for _, piece := range []string{key, secret[:16], secret[len(secret)-16:]} {
		if strings.Contains(all, piece) {
			t.Errorf("%s, the browser holds the key (%s…):\n%s", when, piece[:6], all)
			break
		}
	}
	return all
}

// saveScreenshot keeps the screenshot in a temporary folder, and in
// docs/playground.png when KEYPLANE_UPDATE_SCREENSHOT=1.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	dir, err := os.MkdirTemp("", "keyplane-playground-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "playground.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if os.Getenv("KEYPLANE_UPDATE_SCREENSHOT") == "1" {
		const docs = "../../docs/playground.png"
		if err := os.WriteFile(docs, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", docs)
	}
}
