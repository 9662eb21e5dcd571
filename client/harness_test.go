package client_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/app"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
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
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.UsageFlushInterval = time.Hour
	cfg.RateLimitRPS, cfg.AuthFailureRPS = 0, 0
	for _, c := range configure {
		c(&cfg)
	}
	database := testdb.New(t, d)
	a, err := app.New(context.Background(), cfg, database.Store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	s := &server{t: t, db: database, url: srv.URL + "/graphql"}
	s.admin = s.bootstrap("Acme")
	return s
}

// bootstrap creates another team and returns its first key.
func (s *server) bootstrap(name string) string {
	s.t.Helper()
	_, issued, err := teams.NewService(s.db.Store).Bootstrap(context.Background(), name, "admin")
	if err != nil {
		s.t.Fatalf("bootstrap: %v", err)
	}
	return issued.Secret
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
