// Package testserver starts a real Keyplane server in process, on a test's
// database, for tests of the server over HTTP (e2e, the client, the
// examples, the playground). It is imported only by tests.
package testserver

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyplane/keyplane/internal/app"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testlog"
)

// Server is one running server.
type Server struct {
	URL    string // the server's base URL, without /graphql
	HTTP   *httptest.Server
	App    *app.App
	DB     *testdb.Database
	Config config.Config
	// Admin is the first key of the team the server bootstrapped, with
	// every scope (or Options.Admin, on a replica).
	Admin string
	// Logs is the server's JSON log, safe to read while it runs.
	Logs *testlog.Buffer
}

// Options are the less common settings of StartWith.
type Options struct {
	// Configure changes the settings, which start as config.Load's with
	// no environment.
	Configure []func(*config.Config)
	// Level is the level the server logs at; nil is debug.
	Level slog.Leveler
	// Wrap, if set, wraps the server's handler (to record requests, say).
	Wrap func(http.Handler) http.Handler
	// Team is the name of the team bootstrapped; "" is "Acme".
	Team string
	// Admin, if set, is the key of a team already bootstrapped on the
	// database: the server is another replica on it and bootstraps none.
	Admin string
}

// Start starts a server on database with one bootstrapped team, "Acme";
// configure, if given, changes the settings first. The server stops when
// the test ends.
func Start(t testing.TB, database *testdb.Database, configure ...func(*config.Config)) *Server {
	t.Helper()
	return StartWith(t, database, Options{Configure: configure})
}

// StartWith starts a server as Start does, with more options.
func StartWith(t testing.TB, database *testdb.Database, opts Options) *Server {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	for _, c := range opts.Configure {
		c(&cfg)
	}
	level := opts.Level
	if level == nil {
		level = slog.LevelDebug
	}
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	a, err := app.New(context.Background(), cfg, database.Store, log)
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	var handler http.Handler = a.Handler
	if opts.Wrap != nil {
		handler = opts.Wrap(handler)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	// The background work (live events, presence, usage), stopped before
	// the server closes (cleanups run last first), so that no live stream
	// holds the close.
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { a.Run(ctx); close(ran) }()
	t.Cleanup(func() { a.Live.Close(); cancel(); <-ran })
	s := &Server{URL: srv.URL, HTTP: srv, App: a, DB: database, Config: cfg, Admin: opts.Admin, Logs: logs}
	if s.Admin == "" {
		team := opts.Team
		if team == "" {
			team = "Acme"
		}
		s.Admin = Bootstrap(t, database, team)
	}
	return s
}

// Bootstrap creates a team on database and returns its first key's secret.
func Bootstrap(t testing.TB, database *testdb.Database, team string) string {
	t.Helper()
	_, issued, err := teams.NewService(database.Store).Bootstrap(context.Background(), team, "admin")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return issued.Secret
}
