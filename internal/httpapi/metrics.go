package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/requestid"
)

// metrics counts requests and times them, by route and status.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyplane_http_requests_total", Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keyplane_http_request_duration_seconds", Help: "Time to serve an HTTP request, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// registerLimitMetrics reports, when the rate limits live in Redis, how
// often they failed open and where the circuit breaker in front of Redis
// stands.
func registerLimitMetrics(reg *prometheus.Registry, b *ratelimit.RedisBackend) {
	if b == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyplane_ratelimit_fail_open_total",
			Help: "Rate-limit decisions let through because Redis did not answer in time or was skipped by its circuit breaker.",
		}, func() float64 { return float64(b.FailOpens()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyplane_ratelimit_redis_breaker_state",
			Help: "The circuit breaker in front of Redis: 0 closed (Redis asked), 1 half-open (one probe out), 2 open (Redis skipped, limits fail open).",
		}, func() float64 { return float64(b.BreakerState()) }),
	)
}

// route names a path for labels; unknown paths share one label, so that a
// scan of random paths cannot grow the series without bound.
func route(path string) string {
	switch path {
	case "/graphql", "/healthz", "/readyz", "/metrics", "/":
		return path
	default:
		return "other"
	}
}

// observe writes one log line per request and counts and times it. It logs
// the path, never the query string or headers, which may hold a credential.
func observe(log *slog.Logger, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			elapsed := time.Since(start)
			rt := route(r.URL.Path)
			m.requests.WithLabelValues(rt, strconv.Itoa(sw.status)).Inc()
			m.duration.WithLabelValues(rt).Observe(elapsed.Seconds())
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", requestid.From(r.Context())),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.status),
				slog.Duration("duration", elapsed),
				slog.String("remote", auth.ClientFrom(r.Context()).IP),
			)
		})
	}
}
