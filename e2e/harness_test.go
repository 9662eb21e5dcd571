// Package e2e drives the real server over HTTP and JSON, the way a team's
// backend does, on SQLite and on PostgreSQL.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/app"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/live"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testlog"
	"github.com/keyplane/keyplane/internal/testserver"
)

// env is one running server on its own database, with one bootstrapped team.
type env struct {
	t     *testing.T
	db    *testdb.Database
	app   *app.App
	srv   *httptest.Server
	admin string          // the team's first key: every scope
	logs  *testlog.Buffer // its JSON log, at debug
}

// testConfig returns the settings of a test server: no rate limits, usage flushed by hand.
func testConfig() config.Config {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	testSettings(&cfg)
	return cfg
}

// testSettings changes settings to testConfig's.
func testSettings(cfg *config.Config) {
	cfg.UsageFlushInterval = time.Hour // tests flush by hand
	// Rate limits are off unless a test is about them: many tests fail
	// credentials on purpose, all from 127.0.0.1.
	cfg.RateLimitRPS, cfg.AuthFailureRPS = 0, 0
}

// newEnv starts a server on a fresh database of the dialect; configure, if
// given, changes the settings first.
func newEnv(t *testing.T, d db.Dialect, configure ...func(*config.Config)) *env {
	t.Helper()
	database := testdb.New(t, d)
	return startEnv(t, database, configure...)
}

// startEnv starts a server on a database, as newEnv does.
func startEnv(t *testing.T, database *testdb.Database, configure ...func(*config.Config)) *env {
	t.Helper()
	return serveEnv(t, database, testserver.Options{Configure: configure})
}

// serveEnv starts a server on a database with testConfig's settings, then
// opts.Configure's.
func serveEnv(t *testing.T, database *testdb.Database, opts testserver.Options) *env {
	t.Helper()
	opts.Configure = append([]func(*config.Config){testSettings}, opts.Configure...)
	s := testserver.StartWith(t, database, opts)
	return &env{t: t, db: database, app: s.App, srv: s.HTTP, admin: s.Admin, logs: s.Logs}
}

// bootstrap creates another team and returns its first key.
func (e *env) bootstrap(name string) string {
	e.t.Helper()
	return testserver.Bootstrap(e.t, e.db, name)
}

// gqlError is one error of a GraphQL response.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// code returns the error's extensions.code.
func (g gqlError) code() string { s, _ := g.Extensions["code"].(string); return s }

// response is what the server answered.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Data   map[string]any
	Errors []gqlError
}

// code returns the first error's code, or "" when there is none.
func (r *response) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].code()
}

// get walks the data by a dotted path, such as "team.apiKeys.totalCount".
func (r *response) get(path string) any {
	var cur any = r.Data
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// str returns the string at path, or "".
func (r *response) str(path string) string { s, _ := r.get(path).(string); return s }

// list returns the list at path, or nil.
func (r *response) list(path string) []any { l, _ := r.get(path).([]any); return l }

// ext returns an extension of the first error as a string, or "".
func (r *response) ext(name string) string {
	if len(r.Errors) == 0 {
		return ""
	}
	s, _ := r.Errors[0].Extensions[name].(string)
	return s
}

// request sends a raw HTTP request to the server.
func (e *env) request(method, path string, body io.Reader, header map[string]string) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return e.do(e.t, req)
}

// do sends a built request, failing t when no answer comes, and decodes
// the answer.
func (e *env) do(t testing.TB, req *http.Request) *response {
	t.Helper()
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.RequestURI(), err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := decodeResponse(raw)
	out.Status, out.Header = res.StatusCode, res.Header
	return out
}

// jsonHeader returns the headers of a JSON request with a Bearer key ("" sends none).
func jsonHeader(key string) map[string]string {
	header := map[string]string{"Content-Type": "application/json"}
	if key != "" {
		header["Authorization"] = "Bearer " + key
	}
	return header
}

// gql posts a GraphQL operation with a Bearer key ("" sends none).
func (e *env) gql(key, query string, vars map[string]any) *response {
	e.t.Helper()
	return e.gqlWith(key, query, vars, nil)
}

// gqlWith is gql with extra headers, such as X-Forwarded-For.
func (e *env) gqlWith(key, query string, vars map[string]any, extra map[string]string) *response {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	header := jsonHeader(key)
	maps.Copy(header, extra)
	return e.request(http.MethodPost, "/graphql", bytes.NewReader(body), header)
}

// ok posts an operation that must succeed, and returns its response.
func (e *env) ok(key, query string, vars map[string]any) *response {
	e.t.Helper()
	r := e.gql(key, query, vars)
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		e.t.Fatalf("want success, got %d: %s", r.Status, r.Raw)
	}
	return r
}

// fails posts an operation that must fail with an error code, and returns it.
func (e *env) fails(key, query string, vars map[string]any, code string) *response {
	e.t.Helper()
	r := e.gql(key, query, vars)
	if r.code() != code {
		e.t.Fatalf("want error %s, got %d: %s", code, r.Status, r.Raw)
	}
	return r
}

const createKey = `mutation($in: CreateApiKeyInput!) {
  createApiKey(input: $in) { secret clientMutationId apiKey { id name description scopes status start expiresAt allowedCidrs createdBy { id } } }
}`

// newKey creates a key with the given scopes (none: every scope) through the
// API and returns its id and secret.
func (e *env) newKey(by, name string, scopes ...string) (id, secret string) {
	e.t.Helper()
	in := map[string]any{"name": name}
	if len(scopes) > 0 {
		in["scopes"] = scopes
	}
	r := e.ok(by, createKey, map[string]any{"in": in})
	return r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
}

// authStatus reports how the server answers a key: the HTTP status and, for
// a 401, the reason.
func (e *env) authStatus(key string) (int, string) {
	e.t.Helper()
	r := e.gql(key, `{ viewer { id } }`, nil)
	if r.Status == http.StatusUnauthorized {
		reason, _ := r.Errors[0].Extensions["reason"].(string)
		return r.Status, reason
	}
	if len(r.Errors) > 0 {
		e.t.Fatalf("viewer: %s", r.Raw)
	}
	return r.Status, ""
}

// flushUsage writes the batched last-use times now.
func (e *env) flushUsage() {
	e.t.Helper()
	if err := e.app.Usage.Flush(context.Background()); err != nil {
		e.t.Fatalf("flush usage: %v", err)
	}
}

// race sends n requests at once, released together, and returns their
// responses in the order of i.
func (e *env) race(n int, send func(i int) *response) []*response {
	e.t.Helper()
	out := make([]*response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = send(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts responses by their first error code, "" for a success.
func tally(rs []*response) map[string]int {
	codes := map[string]int{}
	for _, r := range rs {
		codes[r.code()]++
	}
	return codes
}

// collect returns the non-empty strings at path in the responses.
func collect(rs []*response, path string) []string {
	var out []string
	for _, r := range rs {
		if s := r.str(path); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// sub returns the env with t as its test, so that a subtest's failures
// stop that subtest and not its parent.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// uuidOf returns the UUID behind a global id of the kind, for direct SQL.
func uuidOf(t testing.TB, kind ids.Kind, id string) uuid.UUID {
	t.Helper()
	u, err := ids.DecodeAs(kind, id)
	if err != nil {
		t.Fatalf("decode %q: %v", id, err)
	}
	return u
}

// strs reads a JSON list of strings.
func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, s := range l {
		str, _ := s.(string)
		out = append(out, str)
	}
	return out
}

// pluck returns one string field of every object of a list ("" for a null).
func pluck(list []any, field string) []string {
	out := make([]string, 0, len(list))
	for _, item := range list {
		m, _ := item.(map[string]any)
		s, _ := m[field].(string)
		out = append(out, s)
	}
	return out
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// flip returns a base62 character other than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// padded returns a valid JSON request body of exactly size bytes: the
// query {__typename} and an unused variable padded with 'a'.
func padded(t testing.TB, size int) []byte {
	t.Helper()
	const head = `{"query":"{__typename}","variables":{"pad":"`
	const tail = `"}}`
	n := size - len(head) - len(tail)
	if n < 0 {
		t.Fatalf("size %d too small", size)
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte("a"), n)...)
	b = append(b, tail...)
	if len(b) != size {
		t.Fatalf("padded body is %d bytes, want %d", len(b), size)
	}
	return b
}

// page is one page of a connection as the client sees it.
type page struct {
	total            int
	ids              []string
	cursors          []string
	hasNext, hasPrev bool
	start, end       any // a string, or nil when the page is empty
}

// readPage reads the connection at path (such as "team.apiKeys") of a
// successful response, and checks that its nodes, edges and cursors agree.
func readPage(t testing.TB, r *response, path string) page {
	t.Helper()
	conn, ok := r.get(path).(map[string]any)
	if !ok {
		t.Fatalf("no connection at %s: %s", path, r.Raw)
	}
	var p page
	total, ok := conn["totalCount"].(float64)
	if !ok {
		t.Fatalf("totalCount missing: %s", r.Raw)
	}
	p.total = int(total)
	nodes, _ := conn["nodes"].([]any)
	for _, n := range nodes {
		p.ids = append(p.ids, n.(map[string]any)["id"].(string))
	}
	edges, _ := conn["edges"].([]any)
	if len(edges) != len(nodes) {
		t.Fatalf("%d edges for %d nodes: %s", len(edges), len(nodes), r.Raw)
	}
	for i, e := range edges {
		edge := e.(map[string]any)
		if id := edge["node"].(map[string]any)["id"].(string); id != p.ids[i] {
			t.Fatalf("edge %d is %s, node %d is %s", i, id, i, p.ids[i])
		}
		c, _ := edge["cursor"].(string)
		if c == "" {
			t.Fatalf("edge %d has no cursor: %s", i, r.Raw)
		}
		p.cursors = append(p.cursors, c)
	}
	info := conn["pageInfo"].(map[string]any)
	p.hasNext, _ = info["hasNextPage"].(bool)
	p.hasPrev, _ = info["hasPreviousPage"].(bool)
	p.start, p.end = info["startCursor"], info["endCursor"]
	if len(p.cursors) == 0 {
		if p.start != nil || p.end != nil {
			t.Fatalf("empty page with cursors %v, %v", p.start, p.end)
		}
	} else if p.start != p.cursors[0] || p.end != p.cursors[len(p.cursors)-1] {
		t.Fatalf("startCursor/endCursor %v/%v are not the first/last edge cursors %v", p.start, p.end, p.cursors)
	}
	return p
}

// auditQuery lists up to 100 of the team's audit events, oldest first: the
// log reads newest first unless asked otherwise.
const auditQuery = `query($filter: AuditEventFilter) {
  team { auditEvents(first: 100, filter: $filter, order: OLDEST_FIRST) {
    totalCount
    nodes { id createdAt action actor { id } actorDevice { id } targetId ip userAgent }
  } }
}`

// event is one audit event as the client reads it; a null reads as "".
type event struct {
	ID, CreatedAt, Action string
	Actor, ActorDevice    string // the acting key's and device's ids
	Target                string
	IP, UserAgent         string
}

// events reads the team's audit events with a filter (nil: none), oldest
// first, and checks that totalCount agrees with the page.
func (e *env) events(key string, filter map[string]any) []event {
	e.t.Helper()
	var vars map[string]any
	if filter != nil {
		vars = map[string]any{"filter": filter}
	}
	r := e.ok(key, auditQuery, vars)
	str := func(v any) string { s, _ := v.(string); return s }
	id := func(v any) string { m, _ := v.(map[string]any); return str(m["id"]) }
	var out []event
	for _, n := range r.list("team.auditEvents.nodes") {
		m, _ := n.(map[string]any)
		out = append(out, event{
			ID: str(m["id"]), CreatedAt: str(m["createdAt"]), Action: str(m["action"]),
			Actor: id(m["actor"]), ActorDevice: id(m["actorDevice"]), Target: str(m["targetId"]),
			IP: str(m["ip"]), UserAgent: str(m["userAgent"]),
		})
	}
	if total, _ := r.get("team.auditEvents.totalCount").(float64); int(total) != len(out) {
		e.t.Errorf("filter %v: totalCount %v, but the page (of up to 100) holds %d", filter, total, len(out))
	}
	return out
}

// newEnvWithDBTimeout starts a server whose database calls have the given
// deadline, as KEYPLANE_DB_TIMEOUT sets it: the store is opened with it.
func newEnvWithDBTimeout(t *testing.T, d db.Dialect, timeout time.Duration, configure ...func(*config.Config)) *env {
	t.Helper()
	database := testdb.NewWithTimeout(t, d, timeout)
	setTimeout := func(c *config.Config) { c.DBTimeout = timeout }
	return startEnv(t, database, append([]func(*config.Config){setTimeout}, configure...)...)
}

// gqlWithin is gql for a request that must not hang: past limit the client
// gives up, and the test fails saying so.
func (e *env) gqlWithin(limit time.Duration, key, query string, vars map[string]any) *response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range jsonHeader(key) {
		req.Header.Set(k, v)
	}
	return e.do(e.t, req)
}

// requirePostgres skips a test that only PostgreSQL can run, unless
// KEYPLANE_REQUIRE_POSTGRES=1 makes an absent PostgreSQL fail it.
func requirePostgres(t *testing.T) {
	t.Helper()
	if !slices.Contains(testdb.Dialects(t), db.Postgres) {
		t.Skip("PostgreSQL does not answer")
	}
}

// openStore opens a database of its own on a URL, with the deadline of each
// call that KEYPLANE_DB_TIMEOUT sets: a second server process on the same
// database, or the same database reached through a pgProxy. Its pool is
// smaller than the server's, as the machine's PostgreSQL serves many tests.
func openStore(t *testing.T, url string, timeout time.Duration) *testdb.Database {
	t.Helper()
	opened, err := db.Open(context.Background(), url, db.Pool{MaxOpen: 8, Timeout: timeout})
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	st := store.New(opened)
	t.Cleanup(func() { _ = st.Close() })
	return &testdb.Database{Dialect: opened.Dialect, URL: url, Store: st}
}

// startReplica starts another server on a database that a first one
// bootstrapped, as a second replica behind a load balancer: admin is the
// first server's admin key.
func startReplica(t *testing.T, database *testdb.Database, admin string, configure ...func(*config.Config)) *env {
	t.Helper()
	return serveEnv(t, database, testserver.Options{Configure: configure, Admin: admin})
}

// status returns the status of a GET on the server, or 0 with the error
// when no answer came within limit.
func (e *env) status(path string, limit time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		return 0, err
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}

// waitReady polls /readyz until it answers 200, and fails the test if it
// has not within a minute: a server that does not recover by itself.
func (e *env) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		status, err := e.status("/readyz", 10*time.Second)
		if status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer 200 within a minute: last %d %v", status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pgProxy is a TCP proxy between a server and PostgreSQL that a test cuts
// and restores: a database fault made in process, without ever touching the
// machine's PostgreSQL service. It reads the frontend's protocol messages
// on their way, so that a cut can fall between two statements of one
// transaction.
type pgProxy struct {
	t        testing.TB
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]struct{} // both ends of every open pair
	// resume is closed when a stall ends.
	resume chan struct{}
	// cutAt, when armed, sees the SQL of every statement about to be sent
	// and cuts the proxy before sending the first one it returns true for.
	cutAt func(sql string) bool
	fired chan struct{}
	// seen is the SQL the armed trigger saw, up to and including its cut.
	seen []string
}

type proxyMode int

const (
	proxyUp proxyMode = iota
	// proxyCut has closed every connection, and resets new ones at once:
	// a database that went away.
	proxyCut
	// proxyStalled forwards nothing and answers nothing: a database that
	// stopped answering, or a network that drops every packet.
	proxyStalled
)

// newPGProxy starts a proxy to the host and port of a postgres URL.
func newPGProxy(t testing.TB, pgURL string) *pgProxy {
	t.Helper()
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatalf("parse %q: %v", pgURL, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{t: t, ln: ln, upstream: u.Host, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
	})
	return p
}

// url returns pgURL with its host the proxy's, and without TLS, whose
// bytes the proxy could not read.
func (p *pgProxy) url(pgURL string) string {
	u, err := url.Parse(pgURL)
	if err != nil {
		p.t.Fatalf("parse %q: %v", pgURL, err)
	}
	u.Host = p.ln.Addr().String()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String()
}

// Cut closes every connection and resets every new one until Restore.
func (p *pgProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked()
}

func (p *pgProxy) cutLocked() {
	if p.mode == proxyStalled {
		close(p.resume)
	}
	p.mode = proxyCut
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Stall stops forwarding anything, either way, on every connection, open
// or new, until Restore.
func (p *pgProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode != proxyStalled {
		p.resume = make(chan struct{})
	}
	p.mode = proxyStalled
}

// Restore lets connections through again. The connections a stall held
// are closed, as their clients' deadlines have given up on them: what they
// held back is never delivered late.
func (p *pgProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == proxyStalled {
		p.cutLocked()
	}
	p.mode = proxyUp
	p.cutAt, p.fired = nil, nil
}

// CutAt arms a cut: before the first statement for which at returns true
// is sent, the proxy cuts (as Cut does) instead. The channel is closed
// once it has.
func (p *pgProxy) CutAt(at func(sql string) bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAt, p.fired, p.seen = at, make(chan struct{}), nil
	return p.fired
}

// Seen returns the SQL of the statements the last armed trigger saw, in
// the order they were about to be sent, up to and including where it cut.
func (p *pgProxy) Seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

func (p *pgProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// track registers an open connection, unless the proxy is cut.
func (p *pgProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == proxyCut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// gate blocks while the proxy is stalled, and reports whether the
// connection may go on: false once it was cut.
func (p *pgProxy) gate(c net.Conn) bool {
	for {
		p.mu.Lock()
		_, open := p.conns[c]
		mode, resume := p.mode, p.resume
		p.mu.Unlock()
		switch {
		case !open || mode == proxyCut:
			return false
		case mode == proxyUp:
			return true
		}
		<-resume
	}
}

// serve forwards one client connection.
func (p *pgProxy) serve(client net.Conn) {
	if !p.track(client) {
		if tcp, ok := client.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // a reset, as from a database that is gone
		}
		_ = client.Close()
		return
	}
	if !p.gate(client) {
		_ = client.Close()
		return
	}
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(server) {
		_ = server.Close()
		_ = client.Close()
		return
	}
	go func() {
		p.pipe(server, client, server)
		p.drop(client, server)
	}()
	p.frontend(client, server)
	p.drop(client, server)
}

func (p *pgProxy) drop(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// pipe copies the backend's bytes to the client, held back while stalled.
func (p *pgProxy) pipe(src, dst, self net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && (!p.gate(self) || !writeAll(dst, buf[:n])) {
			return
		}
		if err != nil {
			return
		}
	}
}

func writeAll(w io.Writer, b []byte) bool {
	_, err := w.Write(b)
	return err == nil
}

// The frontend's untyped start-up requests that the server answers before
// the StartupMessage itself (protocol 3.0's codes).
const (
	pgSSLRequest    = 80877103
	pgGSSENCRequest = 80877104
)

// frontend forwards the client's messages one at a time, noting the SQL
// of each prepared statement (Parse) so that it knows what a Bind runs,
// and cuts where an armed trigger says.
func (p *pgProxy) frontend(client, server net.Conn) {
	r := bufio.NewReader(client)
	for { // start-up: untyped messages, length first
		var head [8]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[:4]))
		if n < 8 {
			return
		}
		msg := make([]byte, n)
		copy(msg, head[:])
		if _, err := io.ReadFull(r, msg[8:]); err != nil {
			return
		}
		if !p.gate(client) || !writeAll(server, msg) {
			return
		}
		if code := binary.BigEndian.Uint32(head[4:]); code != pgSSLRequest && code != pgGSSENCRequest {
			break
		}
	}
	statements := map[string]string{}
	for {
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:]))
		if n < 4 {
			return
		}
		msg := make([]byte, 1+n)
		copy(msg, head[:])
		if _, err := io.ReadFull(r, msg[5:]); err != nil {
			return
		}
		body := msg[5:]
		switch head[0] {
		case 'P': // Parse: statement name, SQL, …
			name, rest := cString(body)
			sql, _ := cString(rest)
			statements[name] = sql
		case 'B': // Bind: portal, statement name, …: the statement runs
			_, rest := cString(body)
			name, _ := cString(rest)
			if p.cuts(statements[name]) {
				return
			}
		case 'Q': // a simple query, such as COMMIT
			sql, _ := cString(body)
			if p.cuts(sql) {
				return
			}
		}
		if !p.gate(client) || !writeAll(server, msg) {
			return
		}
	}
}

// cuts asks the armed trigger about a statement about to run, and cuts
// the proxy if it says so.
func (p *pgProxy) cuts(sql string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutAt == nil {
		return false
	}
	p.seen = append(p.seen, sql)
	if !p.cutAt(sql) {
		return false
	}
	p.cutLocked()
	close(p.fired)
	p.cutAt = nil
	return true
}

// cString splits a NUL-terminated string off b.
func cString(b []byte) (string, []byte) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return string(b), nil
	}
	return string(b[:i]), b[i+1:]
}

// stream is one live subscription as a client sees it, over either
// transport: each event's response arrives on next; ended is closed once
// the server ended the stream (complete, an error, or a closed connection),
// after any last response was sent on next.
type stream struct {
	next  chan *response
	ended chan struct{}
	stop  func()
	// closed is the code a WebSocket was closed with, once ended.
	closed websocket.StatusCode
}

// transport opens a subscription with a key.
type transport struct {
	name string
	open func(e *env, t *testing.T, key, query string, vars map[string]any) *stream
}

// transports are the two ways to subscribe: the key in the WebSocket's
// connection_init, and Server-Sent Events with the key in the header.
var transports = []transport{
	{"websocket", (*env).subscribeWS},
	{"sse", (*env).subscribeSSE},
}

func newStream(stop func()) *stream {
	return &stream{next: make(chan *response, 1024), ended: make(chan struct{}), stop: stop}
}

// decodeResponse reads a GraphQL response from JSON.
func decodeResponse(raw []byte) *response {
	out := &response{Status: http.StatusOK, Raw: raw}
	var decoded struct {
		Data   map[string]any `json:"data"`
		Errors []gqlError     `json:"errors"`
	}
	if json.Unmarshal(raw, &decoded) == nil {
		out.Data, out.Errors = decoded.Data, decoded.Errors
	}
	return out
}

// subscribeSSE subscribes with POST and Accept: text/event-stream.
func (e *env) subscribeSSE(t *testing.T, key, query string, vars map[string]any) *stream {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/graphql", bytes.NewReader(body))
	for k, v := range jsonHeader(key) {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	s := newStream(func() { cancel() })
	t.Cleanup(s.stop)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		r := decodeResponse(raw)
		r.Status = res.StatusCode
		s.next <- r
		close(s.ended)
		return s
	}
	go func() {
		defer close(s.ended)
		defer res.Body.Close()
		lines := bufio.NewScanner(res.Body)
		lines.Buffer(make([]byte, 1<<16), 1<<22)
		var event string
		for lines.Scan() {
			line := lines.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
				if event == "complete" {
					return
				}
			case strings.HasPrefix(line, "data: ") && event == "next":
				s.next <- decodeResponse([]byte(strings.TrimPrefix(line, "data: ")))
			}
		}
	}()
	return s
}

// subscribeWS subscribes over graphql-transport-ws, the key in
// connection_init's payload ("" sends none).
func (e *env) subscribeWS(t *testing.T, key, query string, vars map[string]any) *stream {
	t.Helper()
	payload := map[string]any{}
	if key != "" {
		payload["Authorization"] = "Bearer " + key
	}
	conn := e.dialWS(t, nil)
	s := newStream(func() { _ = conn.CloseNow() })
	t.Cleanup(s.stop)
	ctx := context.Background()
	send := func(v any) {
		if err := wsjson.Write(ctx, conn, v); err != nil {
			t.Logf("websocket write: %v", err)
		}
	}
	send(map[string]any{"type": "connection_init", "payload": payload})
	send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}})
	go func() {
		defer close(s.ended)
		for {
			var m struct {
				Type    string          `json:"type"`
				Payload json.RawMessage `json:"payload"`
			}
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				s.closed = websocket.CloseStatus(err)
				return
			}
			switch m.Type {
			case "ping":
				send(map[string]any{"type": "pong"})
			case "next":
				s.next <- decodeResponse(m.Payload)
			case "error":
				r := &response{Status: http.StatusOK, Raw: m.Payload}
				_ = json.Unmarshal(m.Payload, &r.Errors)
				s.next <- r
				return
			case "complete":
				return
			}
		}
	}()
	return s
}

// dialWS opens a WebSocket to /graphql speaking graphql-transport-ws.
func (e *env) dialWS(t *testing.T, header http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: header})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial the websocket: %v (status %d)", err, status)
	}
	conn.SetReadLimit(1 << 22)
	return conn
}

// event waits up to within for the stream's next response.
func (s *stream) event(t *testing.T, within time.Duration) *response {
	t.Helper()
	select {
	case r := <-s.next:
		return r
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
		return nil
	}
}

// quiet checks that nothing arrives for a while.
func (s *stream) quiet(t *testing.T, for_ time.Duration) {
	t.Helper()
	select {
	case r := <-s.next:
		t.Fatalf("unexpected event: %s", r.Raw)
	case <-time.After(for_):
	}
}

// endsWith waits up to within for the stream to end with an error of
// code, and returns that error's response.
func (s *stream) endsWith(t *testing.T, code string, within time.Duration) *response {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case r := <-s.next:
			if r.code() == code {
				select {
				case <-s.ended:
				case <-deadline:
					t.Fatalf("the stream sent %s but did not end", code)
				}
				return r
			}
			if len(r.Errors) > 0 {
				t.Fatalf("stream error %s, want %s: %s", r.code(), code, r.Raw)
			}
		case <-s.ended:
			select {
			case r := <-s.next:
				if r.code() == code {
					return r
				}
				t.Fatalf("the stream ended with %s, want %s: %s", r.code(), code, r.Raw)
			default:
			}
			t.Fatalf("the stream ended without an error, want %s", code)
		case <-deadline:
			t.Fatalf("the stream did not end with %s within %s", code, within)
		}
	}
}

// principalOf authenticates a secret as the HTTP layer would, from 127.0.0.1.
func (e *env) principalOf(t *testing.T, secret string) *auth.Principal {
	t.Helper()
	p, err := auth.NewAuthenticator(e.db.Store, nil).Authenticate(context.Background(), secret, auth.Client{IP: "127.0.0.1"})
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return p
}

// replaying opens, on the server's own hub, the subscription the resolver of
// Subscription.auditEvents opens for auditEvents(after: cursor), and does not
// read it: with a buffer of one event, its replay stays in progress, as it
// does for any client slower than the backlog it asked for.
func (e *env) replaying(t *testing.T, secret, cursor string) (<-chan *store.AuditEvent, live.Stream) {
	t.Helper()
	after, err := model.DecodeCursor("after", cursor)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := store.AuditFilter{}
	req := live.Request{Principal: e.principalOf(t, secret), Client: "127.0.0.1", Audit: &f, After: &after,
		Check: func(p *auth.Principal) error { return p.Need(scope.AuditRead) }}
	ch, st, err := live.Subscribe(ctx, e.app.Live, req, func(ev live.Event) *store.AuditEvent { return ev.Audit })
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // the replay fills the buffer and waits
	return ch, st
}

// drain reads ch until it closes or stays quiet for quiet; it reports what
// arrived and whether ch closed.
func drain(ch <-chan *store.AuditEvent, quiet time.Duration) (got []*store.AuditEvent, closed bool) {
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return got, true
			}
			got = append(got, e)
		case <-time.After(quiet):
			return got, false
		}
	}
}

// rpProxied starts two replicas on one PostgreSQL database, b reaching it
// through a proxy, both polling their logs only once a minute, and a
// subscriber on b; arrival commits on a and says how long the event took to
// reach b's subscriber.
func rpProxied(t *testing.T) (b *env, proxy *pgProxy, arrival func(name string) time.Duration) {
	requirePostgres(t)
	poll := func(c *config.Config) { c.EventsPoll = time.Minute }
	direct := testdb.New(t, db.Postgres)
	a := startEnv(t, openStore(t, direct.URL, config.DefaultDBTimeout), poll)
	proxy = newPGProxy(t, direct.URL)
	b = startReplica(t, openStore(t, proxy.url(direct.URL), config.DefaultDBTimeout), a.admin, poll)
	s := b.subscribeSSE(t, b.admin, liveAudit, nil)
	time.Sleep(200 * time.Millisecond)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("b's warnings:\n%s", grepLog(b, `"level":"WARN"`))
		}
	})
	return b, proxy, func(name string) time.Duration {
		t.Helper()
		start := time.Now()
		id := a.ok(a.admin, liveCreateDevice, map[string]any{"name": name}).str("createDevice.device.id")
		for {
			select {
			case r := <-s.next:
				if r.str("auditEvents.node.targetId") == id {
					return time.Since(start)
				}
			case <-time.After(10 * time.Second):
				return time.Since(start)
			}
		}
	}
}

// grepLog returns the lines of a server's log that contain what.
func grepLog(e *env, what string) string {
	var out []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, what) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// metricLine is one sample of the text exposition format.
var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// sample is one metric sample.
type sample struct {
	labels map[string]string
	value  float64
}

// scrape GETs /metrics from h and returns its samples by metric name.
func scrape(t *testing.T, h http.Handler) (map[string][]sample, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	out := map[string][]sample{}
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		m := metricLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		s := sample{labels: map[string]string{}, value: v}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out[m[1]] = append(out[m[1]], s)
	}
	return out, rec.Body.String()
}

// value returns the sample of a metric with the labels given (others may
// be anything), and whether there is one.
func value(samples map[string][]sample, name string, labels map[string]string) (float64, bool) {
	for _, s := range samples[name] {
		match := true
		for k, v := range labels {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// metric reads one sample of the server's /metrics without labels, or -1
// when there is none.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	samples, _ := scrape(e.t, e.app.Handler)
	if v, ok := value(samples, name, nil); ok {
		return v
	}
	return -1
}
