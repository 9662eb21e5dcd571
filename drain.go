package main

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// drainer keeps a stopping server serving while load balancers notice that
// it is going: once wait has begun, /readyz answers 503 and every response
// asks its client to close the connection, so that the client's next
// request opens one to another replica. The listener stays open until the
// drain ends; only then does the server stop accepting and finish what is
// in flight.
type drainer struct{ on atomic.Bool }

// wrap answers /readyz itself during the drain; next serves everything
// else, and /readyz before it.
func (d *drainer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.on.Load() {
			w.Header().Set("Connection", "close")
			if r.URL.Path == "/readyz" {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "shutting down\n")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// wait starts the drain and returns once period has passed, or at once on
// a second SIGTERM or interrupt (a second Ctrl-C).
func (d *drainer) wait(period time.Duration, log *slog.Logger) {
	d.on.Store(true)
	if period <= 0 {
		return
	}
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	log.Info("draining: /readyz answers 503 while requests are still served", "drain", period.String())
	timer := time.NewTimer(period)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-again:
		log.Info("a second signal: the drain ends now")
	}
}
