// Command floor is the floor of the load run (bench/run.sh): the least
// gqlgen server that answers
//
//	query { team { devices(first: 20) { nodes { id name } } } }
//
// with a Bearer key. It runs the same gqlgen as Keyplane, generated with
// Keyplane's settings, lists marshalled in turn
// (graph/internal/seqlists), GOGC=400, and does the same work as the bare
// baseline (bench/baseline): the same key format and check (credential.ParseKind,
// one lookup by the key's id, a constant-time hash compare, revocation and
// expiry), the same keyset SQL through pgx, the same JSON. It has none of
// Keyplane's features: no limits, logging, metrics or rate limits.
//
// Its schema (schema.graphqls) has only the fields of that request. A
// missing or bad credential is 401 before gqlgen runs, as in the baseline.
//
// Settings: DATABASE_URL (required, postgres://…) and FLOOR_ADDR
// (default 127.0.0.1:8091); FLOOR_PPROF_ADDR serves Go's profiler there.
// GOGC, when set, wins over 400.
package main

import (
	"context"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/bench/floor/generated"
	"github.com/keyplane/keyplane/bench/internal/keycheck"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
)

const (
	// maxBody is Keyplane's default body limit.
	maxBody = config.DefaultMaxBodyBytes
	// queryCacheSize is Keyplane's: parsed and validated documents kept.
	queryCacheSize = 1000
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		log.Fatal("floor: DATABASE_URL is required")
	}
	addr := os.Getenv("FLOOR_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8091"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		log.Fatalf("floor: DATABASE_URL: %v", err)
	}
	cfg.MaxConns = int32(db.PoolSize()) // Keyplane's default pool
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatalf("floor: %v", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		log.Fatalf("floor: connect: %v", err)
	}

	gql := handler.New(generated.NewExecutableSchema(generated.Config{Resolvers: &resolver{pool: pool}}))
	gql.AddTransport(transport.POST{})
	gql.SetQueryCache(lru.New[*ast.QueryDocument](queryCacheSize))

	mux := http.NewServeMux()
	mux.Handle("POST /graphql", &server{pool: pool, gql: gql})
	srv := &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errs := make(chan error, 2)
	go func() { errs <- srv.ListenAndServe() }()
	log.Printf("floor: serving on %s", addr)
	if pprofAddr := os.Getenv("FLOOR_PPROF_ADDR"); pprofAddr != "" {
		// Go's profiler, to compare with Keyplane's (KEYPLANE_PPROF_ADDR)
		// under the same load; keep it on loopback.
		profiler := &http.Server{Addr: pprofAddr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go func() { errs <- profiler.ListenAndServe() }()
	}
	select {
	case err := <-errs:
		log.Fatalf("floor: %v", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}
}

// server authenticates the key, then hands the request to gqlgen with the
// key's team in its context.
type server struct {
	pool *pgxpool.Pool
	gql  http.Handler
}

type teamKey struct{}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	team, ok, err := keycheck.Authenticate(ctx, s.pool, r.Header.Get("Authorization"))
	if err != nil {
		log.Printf("floor: authenticate: %v", err)
		keycheck.Fail(w, http.StatusInternalServerError, "INTERNAL", "internal error")
		return
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		keycheck.Fail(w, http.StatusUnauthorized, "UNAUTHENTICATED", "this credential is not valid")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.gql.ServeHTTP(w, r.WithContext(context.WithValue(ctx, teamKey{}, team)))
}
