// Command baseline is the reference server of the load run (bench/run.sh):
// bare net/http and pgx doing the work Keyplane does for
//
//	query { team { devices(first: 20) { nodes { id name } } } }
//
// with the least code that stays correct. It authenticates a kp_ key the
// way Keyplane does (the same credential package: checksum before the
// database, one primary-key lookup, SHA-256 and a constant-time compare,
// then revocation and expiry), reads one keyset page of the key's team's
// devices and writes the same JSON. The request body is read (up to 1 MiB)
// and otherwise ignored: every POST /graphql is that query. An optional
// ?after=<cursor> query parameter, a cursor as Keyplane encodes it, reads
// the page after that row.
//
// Settings: DATABASE_URL (required, postgres://…) and BASELINE_ADDR
// (default 127.0.0.1:8090).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyplane/keyplane/bench/internal/keycheck"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/ids"
)

const (
	// maxBody is Keyplane's default body limit.
	maxBody = config.DefaultMaxBodyBytes
	// pageSize is first: 20; the queries read one row more (LIMIT 21) to
	// learn whether another page follows, as Keyplane's keyset pages do.
	pageSize = 20
)

func main() {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		log.Fatal("baseline: DATABASE_URL is required")
	}
	addr := os.Getenv("BASELINE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8090"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		log.Fatalf("baseline: DATABASE_URL: %v", err)
	}
	cfg.MaxConns = int32(db.PoolSize()) // Keyplane's default pool
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatalf("baseline: %v", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		log.Fatalf("baseline: connect: %v", err)
	}

	mux := http.NewServeMux()
	mux.Handle("POST /graphql", &server{pool: pool})
	srv := &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errs := make(chan error, 1)
	go func() { errs <- srv.ListenAndServe() }()
	log.Printf("baseline: serving on %s", addr)
	select {
	case err := <-errs:
		log.Fatalf("baseline: %v", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}
}

type server struct{ pool *pgxpool.Pool }

// The response, shaped as Keyplane's GraphQL answer.
type (
	node struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	response struct {
		Data struct {
			Team struct {
				Devices struct {
					Nodes []node `json:"nodes"`
				} `json:"devices"`
			} `json:"team"`
		} `json:"data"`
	}
)

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			keycheck.Fail(w, http.StatusRequestEntityTooLarge, "BAD_REQUEST", "request body too large")
			return
		}
		keycheck.Fail(w, http.StatusBadRequest, "BAD_REQUEST", "cannot read the request body")
		return
	}
	var after *uuid.UUID
	if c := r.URL.Query().Get("after"); c != "" {
		id, err := model.DecodeCursor("after", c)
		if err != nil {
			keycheck.Fail(w, http.StatusBadRequest, "BAD_USER_INPUT", "after is not a cursor returned by this API")
			return
		}
		after = &id
	}

	ctx := r.Context()
	team, ok, err := keycheck.Authenticate(ctx, s.pool, r.Header.Get("Authorization"))
	if err != nil {
		log.Printf("baseline: authenticate: %v", err)
		keycheck.Fail(w, http.StatusInternalServerError, "INTERNAL", "internal error")
		return
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		keycheck.Fail(w, http.StatusUnauthorized, "UNAUTHENTICATED", "this credential is not valid")
		return
	}

	var rows pgx.Rows
	if after == nil {
		rows, err = s.pool.Query(ctx, `SELECT id, name FROM devices WHERE team_id = $1 ORDER BY id LIMIT 21`, team)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT id, name FROM devices WHERE team_id = $1 AND id > $2 ORDER BY id LIMIT 21`,
			team, pgtype.UUID{Bytes: *after, Valid: true})
	}
	var out response
	out.Data.Team.Devices.Nodes = make([]node, 0, pageSize+1)
	if err == nil {
		var id pgtype.UUID
		var name string
		_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
			out.Data.Team.Devices.Nodes = append(out.Data.Team.Devices.Nodes, node{ID: ids.Encode(ids.Device, id.Bytes), Name: name})
			return nil
		})
	}
	if err != nil {
		log.Printf("baseline: list devices: %v", err)
		keycheck.Fail(w, http.StatusInternalServerError, "INTERNAL", "internal error")
		return
	}
	// The extra row only says whether another page follows.
	if n := &out.Data.Team.Devices.Nodes; len(*n) > pageSize {
		*n = (*n)[:pageSize]
	}
	body, err := json.Marshal(&out)
	if err != nil {
		keycheck.Fail(w, http.StatusInternalServerError, "INTERNAL", "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
