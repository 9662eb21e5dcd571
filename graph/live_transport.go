package graph

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/live"
	"github.com/keyplane/keyplane/internal/stack"
)

// LiveOptions tune the live transports.
type LiveOptions struct {
	// KeepAlive is how often an idle stream is pinged: a WebSocket with
	// graphql-transport-ws's ping, which the client must answer within two
	// intervals, and a Server-Sent Events stream with a comment.
	KeepAlive time.Duration
	// WriteTimeout bounds each write to a client: one that stops reading is
	// disconnected then, rather than holding its connection forever.
	WriteTimeout time.Duration
	// MaxMessageBytes bounds a WebSocket message from the client.
	MaxMessageBytes int64
	// Origins are the host patterns (path.Match) of the web pages, other
	// than the server's own, that may open a WebSocket; see websocketOrigin.
	Origins []string
}

// streamedKey marks an operation that arrived over a live transport, where
// only subscriptions run: queries and mutations go through POST and GET,
// whose limits count each request. Its value tells whether the transport
// is a WebSocket, whose operations chargeStreamed charges one by one (an
// event stream is one request, charged as the HTTP layer admitted it).
type streamedKey struct{}

// onlySubscriptions refuses a query or mutation sent over a live transport.
func onlySubscriptions(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx).Operation
	if ctx.Value(streamedKey{}) != nil && op != nil && op.Operation != ast.Subscription {
		return graphql.OneShot(graphql.ErrorResponse(ctx, "only subscriptions run over this transport: send queries and mutations with POST /graphql"))
	}
	return next(ctx)
}

// websocketTransport is graphql-transport-ws (and the older graphql-ws) on
// coder/websocket. The key comes in connection_init's payload, as
// {"Authorization": "Bearer …"}, or on the upgrade request, and is checked
// as a header's is (auth.Gate). Each subscribe message is charged to the
// key's rate limit.
//
// Origins: a browser sends its page's Origin on the upgrade, and one that
// is neither this server's host nor in o.Origins is refused (403).
// Even a page let through could do nothing a page cannot already do with
// fetch: Keyplane sets no cookie and reads no ambient credential (no
// cookie, no HTTP authentication, no client certificate), so a socket
// opened cross-site carries no power until its page sends a key it holds.
func websocketTransport(o LiveOptions, hub *live.Hub) websocketOrigin {
	limit := o.MaxMessageBytes
	init := initWebsocket{hub: hub}
	return websocketOrigin{origins: o.Origins, Websocket: transport.Websocket{
		Implementation: timedWebsocket{
			// The origin is checked before (websocketOrigin).
			inner:   transport.CoderWebsocketImplementation{AcceptOptions: websocket.AcceptOptions{InsecureSkipVerify: true}},
			timeout: o.WriteTimeout,
		},
		InitFunc:              init.init,
		CloseFunc:             init.closed,
		InitTimeout:           10 * time.Second,
		KeepAlivePingInterval: o.KeepAlive,
		PingPongInterval:      o.KeepAlive,
		PayloadReadLimit:      &limit,
	}}
}

// initWebsocket authenticates a WebSocket connection: with the key in the
// payload, or else the one on the upgrade request. A connection without a
// key is refused at once, since every subscription needs one; so is one
// past its key's limit of connections (live.Hub.Connect).
type initWebsocket struct {
	hub *live.Hub
}

// releaseKey holds, in a connection's context, what gives its place back.
type releaseKey struct{}

func (i initWebsocket) init(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	ctx = context.WithValue(ctx, streamedKey{}, true)
	p := auth.FromContext(ctx)
	if value := payload.Authorization(); value != "" {
		scheme, token, ok := strings.Cut(value, " ")
		gate := auth.GateFrom(ctx)
		if !ok || !strings.EqualFold(scheme, "Bearer") || gate == nil {
			return i.refuse(ctx, apperr.New(apperr.Unauthenticated, `the Authorization value must read "Bearer <key>"`))
		}
		// Off the connection's goroutine, which lives as long as it does.
		var err error
		if p, err = stack.Shallow(func() (*auth.Principal, error) { return gate.Authenticate(ctx, strings.TrimSpace(token)) }); err != nil {
			return i.refuse(ctx, err)
		}
	}
	if p == nil {
		return i.refuse(ctx, apperr.New(apperr.Unauthenticated, `send the key in connection_init's payload: {"Authorization": "Bearer <key>"}`))
	}
	release, err := i.hub.Connect(p.KeyID)
	if err != nil {
		return i.refuse(ctx, err)
	}
	ctx = context.WithValue(ctx, releaseKey{}, release)
	return auth.WithPrincipal(ctx, p), nil, nil
}

// closed gives the connection's place back.
func (initWebsocket) closed(ctx context.Context, _ int) {
	if release, ok := ctx.Value(releaseKey{}).(func()); ok {
		release()
	}
}

// refuse closes the connection with 4403, graphql-transport-ws's
// "Forbidden", and the refusal's message. The gate and the hub refuse with
// coded errors only; a fault of the server was logged by the gate, and its
// message says no more than a request id.
func (initWebsocket) refuse(ctx context.Context, err error) (context.Context, *transport.InitPayload, error) {
	return transport.WithWebsocketCloseCode(ctx, 4403), nil, err
}

// chargeStreamed charges each operation of a WebSocket connection to its
// key's rate limit, as each POST is.
func chargeStreamed(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if ws, _ := ctx.Value(streamedKey{}).(bool); ws {
		if gate, p := auth.GateFrom(ctx), auth.FromContext(ctx); gate != nil && p != nil {
			if err := gate.Charge(ctx, p); err != nil {
				graphql.AddError(ctx, err)
				return graphql.OneShot(&graphql.Response{Errors: graphql.GetErrors(ctx)})
			}
		}
	}
	return next(ctx)
}

// timedWebsocket bounds each write: a client that stops reading fills its
// socket's buffers, and the write that would wait for it forever closes the
// connection instead once the timeout passes.
type timedWebsocket struct {
	inner   transport.WebsocketImplementation
	timeout time.Duration
}

// websocketOrigin refuses, with 403, an upgrade from a page whose origin
// may not open a websocket here, before gqlgen's transport would.
type websocketOrigin struct {
	transport.Websocket
	origins []string
}

func (t websocketOrigin) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !originAllowed(r, t.origins) {
		http.Error(w, "this page's origin may not open a websocket here", http.StatusForbidden)
		return
	}
	t.Websocket.Do(w, r, exec)
}

// originAllowed lets a request without an Origin (not a browser), one from
// a page of this very host, or one whose host matches a pattern of
// origins (path.Match, as "*.example.com").
func originAllowed(r *http.Request, origins []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, pattern := range origins {
		if ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

func (t timedWebsocket) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	c, err := t.inner.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	return &timedConn{WebsocketConn: c, timeout: t.timeout}, nil
}

type timedConn struct {
	transport.WebsocketConn
	timeout time.Duration
}

func (c *timedConn) WriteJSON(v any) error {
	stuck := time.AfterFunc(c.timeout, func() { _ = c.Close() })
	defer stuck.Stop()
	return c.WebsocketConn.WriteJSON(v)
}

// SetReadLimit and SetReadDeadline pass on what the transport asks of the
// connection underneath.
func (c *timedConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *timedConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// sseTransport is GraphQL over Server-Sent Events (gqlgen's transport.SSE)
// for subscriptions: POST /graphql with Accept: text/event-stream, the key
// in the Authorization header. The body is first held to the same strict
// decoding as a POST's, and each write to the client is bounded.
type sseTransport struct {
	sse     transport.SSE
	timeout time.Duration
	r       responder
}

func newSSETransport(o LiveOptions, r responder) sseTransport {
	return sseTransport{sse: transport.SSE{KeepAlivePingInterval: o.KeepAlive}, timeout: o.WriteTimeout, r: r}
}

func (t sseTransport) Supports(r *http.Request) bool { return t.sse.Supports(r) }

func (t sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.r.refuse(w, r, exec, http.StatusBadRequest, "the request body could not be read")
		return
	}
	if problem := decodeBody(bytes.NewReader(body), &graphql.RawParams{}); problem != "" {
		t.r.refuse(w, r, exec, http.StatusBadRequest, problem)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r = r.WithContext(context.WithValue(r.Context(), streamedKey{}, false))
	t.sse.Do(deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: t.timeout}, r, exec)
}

// deadlineWriter sets a write deadline before each write and flush.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d deadlineWriter) Write(b []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.ResponseWriter.Write(b)
}

func (d deadlineWriter) Flush() {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	_ = d.rc.Flush()
}
