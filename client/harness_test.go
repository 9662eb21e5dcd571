package client_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testserver"
)

// server is a real Keyplane server, in process, on a fresh database of one
// dialect, with one bootstrapped team.
type server struct {
	t     *testing.T
	db    *testdb.Database
	url   string
	admin string // the team's first key: every scope
}

// start starts a server; configure, if given, changes its settings first.
// Rate limits are off unless a test turns them on.
func start(t *testing.T, d db.Dialect, configure ...func(*config.Config)) *server {
	t.Helper()
	configure = append([]func(*config.Config){func(c *config.Config) {
		c.UsageFlushInterval = time.Hour
		c.RateLimitRPS, c.AuthFailureRPS = 0, 0
	}}, configure...)
	database := testdb.New(t, d)
	ts := testserver.Start(t, database, configure...)
	return &server{t: t, db: database, url: ts.URL + "/graphql", admin: ts.Admin}
}

// bootstrap creates another team and returns its first key.
func (s *server) bootstrap(name string) string {
	s.t.Helper()
	return testserver.Bootstrap(s.t, s.db, name)
}

// client returns a client of the server with a key.
func (s *server) client(key string, opts ...client.Option) *client.Client {
	return client.New(s.url, append([]client.Option{client.WithKey(key)}, opts...)...)
}

// exchange is one request a recorder saw, and its answer.
type exchange struct {
	Authorization string
	UserAgent     string
	Status        int
	RetryAfter    string
	At            time.Time
}

// recorder is an http.RoundTripper that records every request that goes
// through it to the real server. before, if set, runs before each request.
type recorder struct {
	mu        sync.Mutex
	exchanges []exchange
	before    func(n int, req *http.Request)
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	n := len(r.exchanges)
	before := r.before
	r.mu.Unlock()
	if before != nil {
		before(n, req)
	}
	ex := exchange{
		Authorization: req.Header.Get("Authorization"),
		UserAgent:     req.Header.Get("User-Agent"),
		At:            time.Now(),
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		ex.Status = res.StatusCode
		ex.RetryAfter = res.Header.Get("Retry-After")
	}
	r.mu.Lock()
	r.exchanges = append(r.exchanges, ex)
	r.mu.Unlock()
	return res, err
}

// seen returns a copy of the exchanges so far.
func (r *recorder) seen() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.exchanges...)
}

// reset forgets the exchanges so far.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exchanges = nil
}

// recorded returns a client whose requests go through a new recorder.
func (s *server) recorded(key string, opts ...client.Option) (*client.Client, *recorder) {
	rec := &recorder{}
	opts = append([]client.Option{client.WithHTTPClient(&http.Client{Transport: rec})}, opts...)
	return s.client(key, opts...), rec
}

// must returns v, failing the test on an error: must(kp.Devices(…))(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
