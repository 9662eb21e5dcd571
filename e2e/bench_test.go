package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyplane/keyplane/internal/app"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
)

// BenchmarkRequest serves the hot request in process, through the whole
// handler chain, on each dialect: credential check, one keyset page of 20
// devices, JSON out. Compare runs with benchstat.
func BenchmarkRequest(b *testing.B) {
	for _, d := range testdb.Dialects(b) {
		b.Run(string(d), func(b *testing.B) {
			database := testdb.New(b, d)
			a, err := app.New(context.Background(), testConfig(), database.Store, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			team, issued, err := teams.NewService(database.Store).Bootstrap(context.Background(), "bench", "admin")
			if err != nil {
				b.Fatal(err)
			}
			hotSeed(b, database, team.ID, 50)
			body := []byte(`{"query":"query { team { devices(first: 20) { nodes { id name } } } }"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+issued.Secret)
				rec := httptest.NewRecorder()
				a.Handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkAuthenticate is the work of the auth middleware on every
// request: parse the key, look it up by id (one statement), compare the
// hash in constant time, check status, expiry and the owner's role.
func BenchmarkAuthenticate(b *testing.B) {
	for _, d := range testdb.Dialects(b) {
		b.Run(string(d), func(b *testing.B) {
			database := testdb.New(b, d)
			_, issued, err := teams.NewService(database.Store).Bootstrap(context.Background(), "bench", "admin")
			if err != nil {
				b.Fatal(err)
			}
			authn := auth.NewAuthenticator(database.Store, nil)
			client := auth.Client{IP: "127.0.0.1"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := authn.Authenticate(context.Background(), issued.Secret, client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
