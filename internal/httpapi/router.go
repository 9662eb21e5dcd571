// Package httpapi is Keyplane's HTTP surface: the router, and the middleware
// every request passes through (request id, logging, security headers, body
// limit, credential to principal) before the GraphQL handler sees it.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/playground"
)

// Authenticator turns a presented credential into a principal.
type Authenticator interface {
	Authenticate(ctx context.Context, token string, client auth.Client) (*auth.Principal, error)
}

// Pinger reports whether the database answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options are what the router is built from.
type Options struct {
	GraphQL       http.Handler
	Authenticator Authenticator
	Database      Pinger
	Logger        *slog.Logger
	Registry      *prometheus.Registry
	// MetricsApart leaves /metrics off this surface, which then answers
	// 404 for it: it is served on a listener of its own
	// (KEYPLANE_METRICS_ADDR, NewMetricsHandler).
	MetricsApart bool
	Playground   bool
	// Schema is the schema in SDL, served as GET /schema.graphql for
	// codegen tools; empty, as when introspection is off, the path is 404.
	Schema string
	// MaxBodyBytes is the largest request body accepted. It is taken as
	// given and must be positive; internal/config holds its default.
	MaxBodyBytes int64
	Limits       Limits
	// TrustedProxies are the networks whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
}

// NewRouter returns the whole HTTP surface of the contract.
func NewRouter(o Options) http.Handler {
	m := newMetrics(o.Registry)
	mux := http.NewServeMux()

	registerLimitMetrics(o.Registry, o.Limits.Redis)
	graphql := chain(o.GraphQL, withLimiterBudget, limitAnonymous(o.Limits.Anonymous, o.Logger, m), requireJSON, limitBody(o.MaxBodyBytes), authenticate(o.Authenticator, o.Limits, o.Logger, m))
	mux.Handle("POST /graphql", graphql)
	mux.Handle("GET /graphql", graphql)
	mux.HandleFunc("HEAD /graphql", methodNotAllowed("GET, POST"))
	mux.HandleFunc("/graphql", methodNotAllowed("GET, POST"))

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := o.Database.Ping(ctx); err != nil {
			o.Logger.WarnContext(ctx, "readiness: database does not answer", "err", err)
			writeText(w, http.StatusServiceUnavailable, "database unavailable\n")
			return
		}
		writeText(w, http.StatusOK, "ready\n")
	})
	if !o.MetricsApart {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
	}
	if o.Schema != "" {
		mux.HandleFunc("GET /schema.graphql", func(w http.ResponseWriter, _ *http.Request) {
			writeText(w, http.StatusOK, o.Schema)
		})
	}
	if o.Playground {
		mux.Handle("GET /{$}", playgroundHandler())
		mux.Handle("GET "+playground.AssetPath, playgroundHandler())
	}
	return chain(mux, withRequestID, withClient(canonicalProxies(o.TrustedProxies), o.Logger), observe(o.Logger, m), recoverPanics(o.Logger), securityHeaders)
}

// playgroundHandler serves GraphiQL with the Authorization header ready to
// be filled in, under a policy that lets the page load only its own scripts.
func playgroundHandler() http.Handler {
	return playground.Handler(playground.Options{Endpoint: "/graphql", Title: "Keyplane"})
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeError(w, r, http.StatusMethodNotAllowed, string(apperr.BadUserInput), "use "+allow+" on this path", nil)
	}
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// chain wraps h in middleware, the first listed outermost.
func chain(h http.Handler, mw ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}
