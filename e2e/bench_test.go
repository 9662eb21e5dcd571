package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyplane/keyplane/internal/app"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
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
			fleet := make([]store.Device, 50)
			for i := range fleet {
				now := store.Now()
				fleet[i] = store.Device{ID: ids.New(), TeamID: team.ID, Name: fmt.Sprintf("device-%d", i), SerialNumber: fmt.Sprintf("SN-%d", i), Version: 1, CreatedAt: now, UpdatedAt: now}
			}
			if err := database.Store.CreateDevices(context.Background(), fleet); err != nil {
				b.Fatal(err)
			}
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
