package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/keyplane/keyplane/client"
)

// This file reads a Keyplane subscription over Server-Sent Events, with
// net/http alone. The request is an ordinary GraphQL POST that asks for an
// event stream:
//
//	POST /graphql
//	Content-Type: application/json
//	Accept: text/event-stream
//	Authorization: Bearer kp_…
//
//	{"query": "subscription { deviceStatusChanged { name status lastSeenAt } }"}
//
// Keyplane answers 200 with Content-Type text/event-stream and then writes,
// as things happen, events separated by a blank line:
//
//	event: next
//	data: {"data":{"deviceStatusChanged":{"name":"Dock 1","status":"ONLINE",…}}}
//
//	: ping                      ← a comment, sent when the stream is idle
//
//	event: complete             ← the end
//
// When Keyplane ends a stream for a reason, the last "next" carries errors
// instead of data, with extensions.code: UNAUTHENTICATED once the key stops
// working, FORBIDDEN once it may no longer read what it asked for,
// RATE_LIMITED when the subscriber fell behind or holds too many
// subscriptions. A key Keyplane refuses at once gets an HTTP error (401,
// 429) with a JSON body, as a query would.

// keyplaneStream is where and with what key the dashboard subscribes.
type keyplaneStream struct {
	// URL is Keyplane's GraphQL endpoint.
	URL string
	// Key is the dashboard's key. It goes in the Authorization header of
	// the request and nowhere else.
	Key client.Secret
	// HTTP sends the request. It must have no overall Timeout (a stream
	// lasts as long as it lasts); nil means http.DefaultClient.
	HTTP *http.Client
	// Idle is how long a stream may stay silent, Keyplane's keep-alive
	// comments included, before it is taken for dead and dropped; 0 means
	// 45 seconds, three of Keyplane's default keep-alive intervals.
	Idle time.Duration
}

// errSilent drops a stream that stayed silent for longer than Idle: the
// connection is dead without either side having noticed (a NAT or a proxy
// forgot it, say).
var errSilent = errors.New("the event stream from Keyplane stayed silent too long")

// errNoComplete is a stream that ended without "event: complete": the
// connection dropped.
var errNoComplete = errors.New("the event stream from Keyplane ended without completing")

// maxEventBytes bounds one line of the stream; a device is far smaller.
const maxEventBytes = 1 << 20

// subscribe sends one subscription and hands the "data" of each result to
// next, in order, until the stream ends. opened is called once Keyplane has
// accepted the request. It returns
//   - nil when Keyplane completed the stream without a reason (it is
//     stopping, say);
//   - a *client.Error when Keyplane refused the subscription or ended it
//     for a reason: errors.Is(err, client.ErrRateLimited) and the like
//     work as for the typed client's errors;
//   - another error when the connection failed, dropped or went silent;
//   - ctx's error once ctx ends.
//
// In every case the caller may subscribe again; see follow.
func (k keyplaneStream) subscribe(ctx context.Context, query string, opened func(), next func(data json.RawMessage)) error {
	body, err := json.Marshal(map[string]string{"query": query})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", "fleet-dashboard")
	req.Header.Set("Authorization", "Bearer "+k.Key.Reveal())
	httpc := k.HTTP
	if httpc == nil {
		httpc = http.DefaultClient
	}
	res, err := httpc.Do(req)
	if err != nil {
		return err // a *url.Error: it names the URL, never the header
	}
	defer res.Body.Close()
	if mediaType, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); res.StatusCode != http.StatusOK || mediaType != "text/event-stream" {
		return refusal(res)
	}
	opened()

	// The watchdog: each line read, pings included, winds it up again;
	// silence past Idle cancels the request, which ends the read below.
	idle := k.Idle
	if idle <= 0 {
		idle = 45 * time.Second
	}
	watchdog := time.AfterFunc(idle, func() { cancel(errSilent) })
	defer watchdog.Stop()

	lines := bufio.NewScanner(res.Body)
	lines.Buffer(make([]byte, 0, 64<<10), maxEventBytes)
	var event string // the event's type: "next", "complete"
	var data []byte  // its data lines, joined by \n
	for lines.Scan() {
		watchdog.Reset(idle)
		line := lines.Bytes()
		switch {
		case len(line) == 0: // a blank line ends an event
			switch event {
			case "next":
				if err := result(data, res.Header.Get("X-Request-Id"), next); err != nil {
					return err
				}
			case "complete":
				return nil
			}
			event, data = "", data[:0]
		case line[0] == ':': // a comment: Keyplane's keep-alive
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				event = string(value)
			case "data":
				if len(data) > 0 {
					data = append(data, '\n')
				}
				data = append(data, value...)
			}
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx) // ctx ended, or the watchdog fired
	}
	if err := lines.Err(); err != nil {
		return fmt.Errorf("read the event stream from Keyplane: %w", err)
	}
	return errNoComplete
}

// graphqlResult is one result of the stream, as GraphQL writes it.
type graphqlResult struct {
	Data   json.RawMessage `json:"data"`
	Errors gqlerror.List   `json:"errors"`
}

// result hands a result's data to next, or returns its error: a result
// without data is the one that ends the stream.
func result(raw []byte, requestID string, next func(json.RawMessage)) error {
	var r graphqlResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("decode a result of the event stream: %w", err)
	}
	if len(r.Errors) > 0 && (len(r.Data) == 0 || string(r.Data) == "null") {
		// The error as the typed client returns it, so that
		// errors.Is(err, client.ErrUnauthenticated) and logFailure work
		// the same.
		return client.ErrorOf(r.Errors[0], http.StatusOK, requestID)
	}
	next(r.Data)
	return nil
}

// refusal reads an answer that is not an event stream: Keyplane refused
// the request (401 for a bad key, 429 when rate limited) or something in
// between answered.
func refusal(res *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return client.StatusError(res.StatusCode, res.Header, raw)
	}
	return &client.Error{StatusCode: res.StatusCode, RequestID: res.Header.Get("X-Request-Id"),
		Message: fmt.Sprintf("Keyplane answered %s, not an event stream: is it older than subscriptions?", res.Header.Get("Content-Type"))}
}
