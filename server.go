// Command keyplane is a self-hosted GraphQL control plane for a team's API
// keys, devices and members.
//
//	keyplane [serve]                          migrate, then serve HTTP
//	keyplane bootstrap --team NAME [--key-name N]  create a team; print only its key
//	keyplane migrate [up|status]              migrations without serving
//	keyplane healthcheck [--live]             exit 0 if the local server is ready
//	keyplane version                          version, commit, Go version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/app"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/httpapi"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
)

// Set at build time: -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

// Exit codes.
const (
	exitFailure = 1
	exitConfig  = 2
)

// firstTeamName names the team made at the first start on an empty database.
const firstTeamName = "My team"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "bootstrap":
		return bootstrap(args, stdout, stderr)
	case "migrate":
		return migrate(args, stdout, stderr)
	case "healthcheck":
		return healthcheck(args, stderr)
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "keyplane: unknown command %q\n%s", cmd, usage)
		return exitConfig
	}
}

const usage = `usage:
  keyplane [serve]                               apply migrations, then serve HTTP
  keyplane bootstrap --team NAME [--key-name N]  create a team; print only its key on stdout
  keyplane migrate [up|status]                   apply or list migrations
  keyplane healthcheck [--live] [--timeout D]    exit 0 if the server on LISTEN_ADDR is ready (GET /readyz), else 1
  keyplane version                               print version, commit and Go version
`

func versionLine() string {
	c := commit
	if c == "" {
		c = "unknown"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	return fmt.Sprintf("keyplane %s (commit %s, %s)", version, c, runtime.Version())
}

// setup loads the configuration, makes the logger and opens and migrates the
// database. It prints its own failure and returns the exit code to use.
func setup(ctx context.Context, stderr io.Writer) (config.Config, *slog.Logger, *store.Store, int) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "keyplane: %v\n", err)
		return cfg, nil, nil, exitConfig
	}
	log := newLogger(cfg, stderr)
	d, err := db.Open(ctx, cfg.DatabaseURL, db.Pool{Timeout: cfg.DBTimeout})
	if err != nil {
		fmt.Fprintf(stderr, "keyplane: %v\n", err)
		return cfg, log, nil, exitFailure
	}
	st := store.New(d)
	applied, err := db.Migrate(ctx, d)
	if err != nil {
		_ = st.Close()
		fmt.Fprintf(stderr, "keyplane: %v\n", err)
		return cfg, log, nil, exitFailure
	}
	if applied > 0 {
		log.Info("applied migrations", "count", applied, "dialect", d.Dialect)
	}
	return cfg, log, st, 0
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// tuneGC trades memory the server does not need for CPU it does: a request
// allocates little that lives, so collecting a quarter as often costs tens
// of MiB and saves a sixth of a request's CPU. The soft limit makes the
// collector work harder again well before memory matters. GOGC and
// GOMEMLIMIT, when set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(256 << 20)
	}
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, log, st, code := setup(ctx, stderr)
	if code != 0 {
		return code
	}
	defer st.Close()

	if err := firstStart(ctx, cfg, log, st, stderr); err != nil {
		log.Error("first start", "err", err)
		return exitFailure
	}

	a, err := app.New(ctx, cfg, st, log)
	if err != nil {
		log.Error("start", "err", err)
		return exitFailure
	}
	background, cancelBackground := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { a.Run(background); close(done) }()

	drain := &drainer{}
	srv := &http.Server{
		Addr:              cfg.ListenAddr,
		Handler:           drain.wrap(a.Handler),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	// Live streams end as the shutdown begins, rather than hold it.
	srv.RegisterOnShutdown(a.Live.Close)
	a.SetBuild(version, commit)
	errs := make(chan error, 3)
	go func() { errs <- srv.ListenAndServe() }()
	log.Info("serving", "addr", cfg.ListenAddr, "dialect", st.Dialect(), "playground", cfg.Playground, "version", version)
	if cfg.PprofAddr != "" {
		pprofServer := &http.Server{Addr: cfg.PprofAddr, Handler: httpapi.NewDebugHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { errs <- pprofServer.ListenAndServe() }()
		defer pprofServer.Close()
		log.Info("serving pprof", "addr", cfg.PprofAddr)
	}
	if cfg.MetricsAddr != "" {
		// /metrics is served here only; the public listener answers 404.
		metricsServer := &http.Server{Addr: cfg.MetricsAddr, Handler: a.Metrics, ReadHeaderTimeout: 5 * time.Second}
		go func() { errs <- metricsServer.ListenAndServe() }()
		defer metricsServer.Close()
		log.Info("serving metrics", "addr", cfg.MetricsAddr)
	}

	exit := 0
	select {
	case err := <-errs:
		log.Error("serve", "err", err)
		exit = exitFailure
	case <-ctx.Done():
		log.Info("shutting down")
		drain.wait(cfg.ShutdownDrain, log)
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Error("shutdown", "err", err)
		}
		cancel()
	}
	cancelBackground()
	<-done
	return exit
}

// printFirstKey shows the first admin key once, boxed, on stderr, when
// that is a terminal (see firstStart).
func printFirstKey(w io.Writer, team, secret, listenAddr string) {
	lines := []string{
		fmt.Sprintf("Keyplane created the team %q and its first admin key.", team),
		"It is shown this once and never again: store it now.",
		"",
		secret,
		"",
		"Open " + playgroundURL(listenAddr) + " and send it as: Authorization: Bearer <key>",
	}
	width := 0
	for _, l := range lines {
		width = max(width, len([]rune(l)))
	}
	bar := strings.Repeat("─", width+2)
	fmt.Fprintf(w, "\n┌%s┐\n", bar)
	for _, l := range lines {
		fmt.Fprintf(w, "│ %s%s │\n", l, strings.Repeat(" ", width-len([]rune(l))))
	}
	fmt.Fprintf(w, "└%s┘\n\n", bar)
}

// playgroundURL is where a person on this machine finds the playground.
func playgroundURL(listenAddr string) string {
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return "http://localhost:8080/"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

func bootstrap(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	team := fs.String("team", "", "name of the team to create (required)")
	keyName := fs.String("key-name", teams.DefaultKeyName, "name of its first key")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if strings.TrimSpace(*team) == "" {
		fmt.Fprintln(stderr, "keyplane bootstrap: --team NAME is required")
		return exitConfig
	}
	ctx := context.Background()
	_, _, st, code := setup(ctx, stderr)
	if code != 0 {
		return code
	}
	defer st.Close()
	created, issued, err := teams.NewService(st).Bootstrap(ctx, *team, *keyName)
	if err != nil {
		fmt.Fprintf(stderr, "keyplane bootstrap: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "created team %q with key %q; its secret follows on stdout, shown once\n", created.Name, issued.Key.Name)
	fmt.Fprintln(stdout, issued.Secret)
	return 0
}

func migrate(args []string, stdout, stderr io.Writer) int {
	sub := "up"
	if len(args) > 0 {
		sub = args[0]
	}
	if sub != "up" && sub != "status" {
		fmt.Fprintf(stderr, "keyplane migrate: unknown subcommand %q (want up or status)\n", sub)
		return exitConfig
	}
	ctx := context.Background()
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "keyplane: %v\n", err)
		return exitConfig
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, db.Pool{MaxOpen: 2, Timeout: cfg.DBTimeout})
	if err != nil {
		fmt.Fprintf(stderr, "keyplane: %v\n", err)
		return exitFailure
	}
	st := store.New(d)
	defer st.Close()
	if sub == "up" {
		n, err := db.Migrate(ctx, d)
		if err != nil {
			fmt.Fprintf(stderr, "keyplane migrate: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "applied %d migration(s)\n", n)
		return 0
	}
	states, err := db.Status(ctx, d)
	if err != nil {
		fmt.Fprintf(stderr, "keyplane migrate: %v\n", err)
		return exitFailure
	}
	for _, s := range states {
		state := "pending"
		if s.Applied {
			state = "applied"
		}
		fmt.Fprintf(stdout, "%05d  %-8s %s\n", s.Version, state, s.Source)
	}
	return 0
}
