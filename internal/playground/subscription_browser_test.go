package playground_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/internal/browsertest"
)

// TestBrowserSubscription runs a subscription in the playground, as a
// person would: the page posts it with Accept: text/event-stream, shows
// each event as it comes, and Stop ends it on the server. The key stays out
// of the browser's storage throughout.
func TestBrowserSubscription(t *testing.T) {
	chromium := browsertest.Chromium(t)
	s := startServer(t)
	b := browser{browsertest.Start(t, chromium, s.srv.URL)}

	b.Do(t, "open the page", chromedp.EmulateViewport(1600, 1000), chromedp.Navigate(s.srv.URL+"/"))
	b.waitSchema(t)

	// 1. The page's own parsers, on the page: which operation a document
	// runs, and Server-Sent Events cut anywhere.
	checkParsers(t, b)

	// 2. The key, then the subscription, typed in and run.
	b.typeInto(t, "headers", fmt.Sprintf(`{"Authorization": "Bearer %s"}`, s.key))
	b.typeQuery(t, `subscription { deviceStatusChanged { name status } }`, "<untitled>")
	b.Do(t, "run the subscription", chromedp.Click(chromedp.CSS(`button.graphiql-execute-button`)))
	s.waitSubscriptions(t, 1)
	sent := s.requests()
	if len(sent) == 0 {
		t.Fatal("the server saw no GraphQL request")
	}
	if last := sent[len(sent)-1]; last.accept != "text/event-stream" || last.authorization != "Bearer "+s.key {
		t.Errorf("the subscription went with Accept %q and Authorization %q; want text/event-stream and the key", last.accept, last.authorization)
	}
	for _, r := range sent[:len(sent)-1] {
		if strings.Contains(r.accept, "text/event-stream") {
			t.Errorf("%s, a query, asked for an event stream (Accept: %s)", r.operation, r.accept)
		}
	}

	// 3. A camera is registered and sends its first heartbeat, outside the
	// browser: the result pane shows it ONLINE.
	//
	// The server counts a subscription a moment before it reads the point
	// in the log it starts from (internal/live: admit, then start), and
	// over Server-Sent Events nothing tells a client that moment has
	// passed: a heartbeat sent in between is not streamed. Should that
	// happen, another camera comes online, up to three.
	var name, result string
	for attempt := 1; ; attempt++ {
		name = fmt.Sprintf("OAK-D S2 · bay %d", attempt)
		data := s.gql(t, s.key, `mutation($input: CreateDeviceInput!) { createDevice(input: $input) { token } }`,
			map[string]any{"input": map[string]any{"name": name, "serialNumber": fmt.Sprintf("18443010F4A5B6C7%02d", attempt), "model": "OAK-D S2"}})
		token, _ := data["createDevice"].(map[string]any)["token"].(string)
		if token == "" {
			t.Fatalf("createDevice returned no token: %v", data)
		}
		s.gql(t, token, `mutation { deviceHeartbeat(input: {}) { device { id } } }`, nil)
		if attempt == 3 {
			result = b.waitResult(t, 5*time.Second, `"name": "`+name+`"`, `"status": "ONLINE"`)
			break
		}
		var shown bool
		if shown, result = b.showsResult(t, 5*time.Second, `"name": "`+name+`"`, `"status": "ONLINE"`); shown {
			break
		}
		t.Logf("%s came online before the subscription started; the pane shows:\n%s", name, result)
	}
	if strings.Contains(result, `"errors"`) {
		t.Errorf("the result pane shows errors:\n%s", result)
	}
	if got := b.Eval(t, `document.querySelector('button.graphiql-execute-button').getAttribute('aria-label')`); !strings.HasPrefix(got, "Stop") {
		t.Errorf("while the subscription runs, the run button reads %q, want Stop", got)
	}

	// 4. Stop ends the subscription on the server too.
	b.Do(t, "stop the subscription", chromedp.Click(chromedp.CSS(`button.graphiql-execute-button`)))
	s.waitSubscriptions(t, 0)
	waitFor(t, "the run button to read Execute again", 10*time.Second, func() (bool, string) {
		got := b.Eval(t, `document.querySelector('button.graphiql-execute-button').getAttribute('aria-label')`)
		return strings.HasPrefix(got, "Execute"), got
	})
	if got := b.Eval(t, `document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()`); !strings.Contains(got, name) {
		t.Errorf("after Stop the result pane no longer shows the last event:\n%s", got)
	}

	// 5. Nothing in the browser holds the key, before a reload or after;
	// the history, which is stored, holds the subscription without it.
	waitFor(t, "the history to be stored", 5*time.Second, func() (bool, string) {
		got := b.Eval(t, `localStorage.getItem('keyplane:graphiql:queries') || ''`)
		return strings.Contains(got, "deviceStatusChanged"), got
	})
	b.scanForKey(t, s.key, "after stopping the subscription")
	b.Do(t, "reload", chromedp.Reload())
	b.waitSchema(t)
	b.scanForKey(t, s.key, "after a reload")

	b.AssertClean(t)
}

// checkParsers tries the page's operationType and eventStream on cases a
// subscription must not be mistaken in, and on a stream cut at every pair
// of places, with each kind of line end.
func checkParsers(t *testing.T, b browser) {
	t.Helper()
	for _, c := range []struct {
		query, operationName, want string // want "" is null: the page cannot tell
	}{
		{`subscription { deviceStatusChanged { name status } }`, "", "subscription"},
		{"subscription($f: DeviceFilter = {status: ONLINE}) {\r\n  deviceStatusChanged(filter: $f) { name }\r\n}", "", "subscription"},
		{`query { subscription }`, "", "query"},
		{`{ subscription: __typename }`, "", "query"},
		{`query subscription { a }`, "", "query"},
		{`query Q @subscription { a }`, "", "query"},
		{"# subscription { auditEvents { cursor } }\n{ devices { totalCount } }", "", "query"},
		{`mutation M($note: String = "subscription {") { a }`, "", "mutation"},
		{`""" subscription { a } \""" """ query { a }`, "", "query"},
		{`fragment F on Subscription { a } subscription { ...F }`, "", "subscription"},
		{`query A { a } subscription B { b }`, "B", "subscription"},
		{`query A { a } subscription B { b }`, "A", "query"},
		{`query A { a } subscription B { b }`, "", ""},
		{`query A { a } subscription B { b }`, "C", ""},
		{`subscription { a(s: "unterminated) }`, "", ""},
		{`subscription { a `, "", ""},
	} {
		args, _ := json.Marshal([]string{c.query, c.operationName})
		got := b.Eval(t, `String(KeyplanePlayground.operationType(...`+string(args)+`) ?? '')`)
		if got != c.want {
			t.Errorf("operationType(%q, %q) = %q, want %q", c.query, c.operationName, got, c.want)
		}
	}

	stream := ":\n\nevent: next\ndata: {\"data\":{\"a\":1}}\n\n: ping\n\nid: 7\nretry: 10\nevent: next\ndata: {\"data\":\ndata: {\"b\":\"é\"}}\n\nevent: complete\n\n"
	want := `[["next","{\"data\":{\"a\":1}}"],["next","{\"data\":\n{\"b\":\"é\"}}"],["complete",""]]`
	for _, end := range []string{"\n", "\r\n", "\r"} {
		text, _ := json.Marshal(strings.ReplaceAll(stream, "\n", end))
		wantJS, _ := json.Marshal(want)
		got := b.Eval(t, `(() => {
			const text = `+string(text)+`, want = `+string(wantJS)+`;
			const parse = pieces => {
				const events = [], p = KeyplanePlayground.eventStream((type, data) => events.push([type, data]));
				pieces.forEach(piece => p.push(piece));
				p.end();
				return JSON.stringify(events);
			};
			for (let i = 0; i <= text.length; i++) {
				for (let j = i; j <= text.length; j++) {
					const got = parse([text.slice(0, i), text.slice(i, j), text.slice(j)]);
					if (got !== want) return 'cut at ' + i + ' and ' + j + ': ' + got;
				}
			}
			// An event that no blank line ends is dropped.
			const cut = parse([text.slice(0, text.lastIndexOf('event: complete'))]);
			return cut === want.replace(',["complete",""]', '') ? '' : 'without its end: ' + cut;
		})()`)
		if got != "" {
			t.Errorf("eventStream with lines ending %q, %s", end, got)
		}
	}
}
