// Package usage records when each API key was last used without a database
// write per request: touches collect in memory and are flushed in batches.
package usage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/store"
)

// Recorder batches key usage. The zero value is not usable; call New.
type Recorder struct {
	store    *store.Store
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[uuid.UUID]store.KeyUsage
}

// New returns a Recorder that writes through s every interval once Run is
// running. interval is taken as given and must be positive; internal/config
// holds its default.
func New(s *store.Store, log *slog.Logger, interval time.Duration) *Recorder {
	return &Recorder{store: s, log: log, interval: interval, pending: make(map[uuid.UUID]store.KeyUsage)}
}

// Touch notes one use of a key; only the latest per key is kept.
func (r *Recorder) Touch(u store.KeyUsage) {
	r.mu.Lock()
	if prev, ok := r.pending[u.KeyID]; !ok || prev.At.Before(u.At) {
		r.pending[u.KeyID] = u
	}
	r.mu.Unlock()
}

// Flush writes everything pending now.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return nil
	}
	batch := make([]store.KeyUsage, 0, len(r.pending))
	for _, u := range r.pending {
		batch = append(batch, u)
	}
	r.pending = make(map[uuid.UUID]store.KeyUsage, len(batch))
	r.mu.Unlock()
	return r.store.RecordKeyUsage(ctx, batch)
}

// Run flushes every interval until ctx ends, then flushes once more so that
// a clean shutdown loses nothing.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := r.Flush(ctx); err != nil {
				r.log.Error("record key usage", "err", err)
			}
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := r.Flush(final); err != nil {
				r.log.Error("record key usage at shutdown", "err", err)
			}
			cancel()
			return
		}
	}
}
