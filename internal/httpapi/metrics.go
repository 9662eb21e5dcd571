package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/reqlog"
	"github.com/keyplane/keyplane/internal/requestid"
)

// metrics counts requests and times them, by route and status; counts the
// credentials refused, by reason, and the requests the rate limits refused,
// by limit. Every label value is fixed in advance, and each child is made
// once here, so that the hot path hashes no label.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	authFailureVec *prometheus.CounterVec
	authFailures   map[auth.Reason]prometheus.Counter

	refusedRequests, refusedFailures, refusedAnonymous prometheus.Counter
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
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyplane_auth_failures_total",
		Help: "Credentials refused with 401, by reason: INVALID, REVOKED, EXPIRED, IP_NOT_ALLOWED.",
	}, []string{"reason"})
	m.authFailures = map[auth.Reason]prometheus.Counter{}
	for _, r := range []auth.Reason{auth.ReasonInvalid, auth.ReasonRevoked, auth.ReasonExpired, auth.ReasonIPNotAllowed} {
		m.authFailures[r] = failures.WithLabelValues(string(r))
	}
	m.authFailureVec = failures
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyplane_ratelimit_refusals_total",
		Help: "Requests refused by a rate limit (429, or RATE_LIMITED for enrollDevice), by limit: requests (per credential), failures (failed credentials per address), anonymous (requests without a credential per address).",
	}, []string{"limit"})
	m.refusedRequests = refusals.WithLabelValues("requests")
	m.refusedFailures = refusals.WithLabelValues("failures")
	m.refusedAnonymous = refusals.WithLabelValues("anonymous")
	reg.MustRegister(m.requests, m.duration, failures, refusals)
	return m
}

// authFailure returns the counter of a reason. The reasons are auth's own,
// so an unknown one can only be a new one: it counts as "other" until it
// is listed in newMetrics.
func (m *metrics) authFailure(r auth.Reason) prometheus.Counter {
	if c, ok := m.authFailures[r]; ok {
		return c
	}
	return m.authFailureVec.WithLabelValues("other")
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
// The layers inside fill in the request's reqlog.Entry: the caller's id
// (never its secret), the GraphQL operation and error codes, the reason of
// a 401. At debug level the line also tells how many statements the request
// sent and how long the database took; below it, nothing is counted.
func observe(log *slog.Logger, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ctx := r.Context()
			entry := &reqlog.Entry{Log: log}
			if log.Enabled(ctx, slog.LevelDebug) {
				entry.DB = new(db.RequestStats)
				ctx = db.WithRequestStats(ctx, entry.DB)
			}
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r.WithContext(reqlog.With(ctx, entry)))
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			elapsed := time.Since(start)
			rt := route(r.URL.Path)
			m.requests.WithLabelValues(rt, strconv.Itoa(sw.status)).Inc()
			m.duration.WithLabelValues(rt).Observe(elapsed.Seconds())
			if !log.Enabled(ctx, slog.LevelInfo) {
				return
			}
			var buf [16]slog.Attr
			attrs := append(buf[:0],
				slog.String("request_id", requestid.From(ctx)),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.status),
				slog.Float64("duration_ms", milliseconds(elapsed)),
				slog.String("remote", auth.ClientFrom(ctx).IP),
			)
			if entry.OpType != "" {
				attrs = append(attrs, slog.String("op_type", entry.OpType), slog.String("op_field", entry.OpField))
			}
			if entry.OpName != "" {
				attrs = append(attrs, slog.String("op_name", entry.OpName))
			}
			if actor := entry.Actor(); actor != "" {
				attrs = append(attrs, slog.String("actor", actor))
			}
			if len(entry.Codes) > 0 {
				attrs = append(attrs, slog.Any("errors", entry.Codes))
			}
			if entry.Reason != "" {
				attrs = append(attrs, slog.String("reason", entry.Reason))
			}
			if entry.DB != nil {
				attrs = append(attrs, slog.Int64("db_statements", entry.DB.Statements()), slog.Float64("db_ms", milliseconds(entry.DB.Time())))
			}
			log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
		})
	}
}

// milliseconds is d in milliseconds, to the microsecond.
func milliseconds(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// NewMetricsHandler serves the registry's metrics as GET /metrics, and
// nothing else: for a listener of its own (KEYPLANE_METRICS_ADDR), with
// Options.MetricsApart set on the public surface.
func NewMetricsHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}
