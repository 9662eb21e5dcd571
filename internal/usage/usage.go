// Package usage records when each API key was last used without a database
// write per request: touches collect in memory and are flushed in batches.
package usage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyplane/keyplane/internal/store"
)

// Recorder batches key usage. The zero value is not usable; call New.
type Recorder struct {
	store    *store.Store
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[uuid.UUID]store.KeyUsage

	// Each flush that had something to write, for metrics (Register).
	flushKeys     prometheus.Histogram
	flushDuration prometheus.Histogram
	flushErrors   prometheus.Counter
}

// New returns a Recorder that writes through s every interval once Run is
// running. interval is taken as given and must be positive; internal/config
// holds its default.
func New(s *store.Store, log *slog.Logger, interval time.Duration) *Recorder {
	return &Recorder{
		store: s, log: log, interval: interval, pending: make(map[uuid.UUID]store.KeyUsage),
		flushKeys: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "keyplane_usage_flush_keys", Help: "Keys whose last use one flush of the usage batch wrote.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "keyplane_usage_flush_duration_seconds", Help: "Time to write one flush of the usage batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyplane_usage_flush_errors_total", Help: "Flushes of the usage batch that failed; their last-use times are lost.",
		}),
	}
}

// Register adds the batch's metrics to reg: the size and duration of each
// flush, its failures, and how many keys wait for the next one.
func (r *Recorder) Register(reg prometheus.Registerer) error {
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keyplane_usage_pending_keys", Help: "Keys whose last use waits for the next flush of the usage batch.",
	}, func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(len(r.pending))
	})
	for _, c := range []prometheus.Collector{r.flushKeys, r.flushDuration, r.flushErrors, pending} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
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
	start := time.Now()
	err := r.store.RecordKeyUsage(ctx, batch)
	r.flushDuration.Observe(time.Since(start).Seconds())
	r.flushKeys.Observe(float64(len(batch)))
	if err != nil {
		r.flushErrors.Inc()
	}
	return err
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
