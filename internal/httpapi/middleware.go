package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/netaddr"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/reqlog"
	"github.com/keyplane/keyplane/internal/requestid"
	"github.com/keyplane/keyplane/internal/stack"
)

// withRequestID adopts a well-formed X-Request-Id or makes one, and echoes it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestid.Header)
		if !requestid.Valid(id) {
			id = requestid.New()
		}
		w.Header().Set(requestid.Header, id)
		next.ServeHTTP(w, r.WithContext(requestid.With(r.Context(), id)))
	})
}

// securityHeaders marks every response uncacheable (it may carry a secret)
// and not to be sniffed.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// recoverPanics answers 500 with the request id, and logs the stack.
func recoverPanics(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					id := requestid.From(r.Context())
					log.ErrorContext(r.Context(), "handler panicked", "request_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					writeError(w, r, http.StatusInternalServerError, string(apperr.Internal), "internal error; quote request id "+id+" to the operator", map[string]any{"requestId": id})
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// requireJSON refuses a POST whose body is not JSON with 415, as GraphQL
// over HTTP asks, instead of gqlgen's bare "transport not supported".
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mediaType != "application/json" {
				w.Header().Set("Accept", "application/json")
				writeError(w, r, http.StatusUnsupportedMediaType, string(apperr.BadUserInput), "send the request as Content-Type: application/json", nil)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody refuses a body over maxBytes with 413, before anything parses it.
func limitBody(maxBytes int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > maxBytes {
				writeError(w, r, http.StatusRequestEntityTooLarge, string(apperr.BadUserInput), fmt.Sprintf("the request body exceeds %d bytes", maxBytes), nil)
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					writeError(w, r, http.StatusRequestEntityTooLarge, string(apperr.BadUserInput), fmt.Sprintf("the request body exceeds %d bytes", maxBytes), nil)
					return
				}
				if err != nil {
					writeError(w, r, http.StatusBadRequest, string(apperr.BadUserInput), "the request body could not be read", nil)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Limits are the rate limits the HTTP layer applies; a nil limiter is off.
type Limits struct {
	// Requests bounds the requests of one credential.
	Requests ratelimit.Limiter
	// Failures bounds the failed credentials of one client address, and is
	// checked before any database work.
	Failures ratelimit.Limiter
	// Anonymous bounds the requests without a credential of one client
	// address, checked before the body is read or parsed.
	Anonymous ratelimit.Limiter
	// Redis, when the limiters keep their buckets there, reports how often
	// they failed open and where its circuit breaker stands (metrics).
	Redis *ratelimit.RedisBackend
}

// maxFailureWait caps the Retry-After of the failure limit: a storm of bad
// guesses from an address must not lock the real holder out for long.
const maxFailureWait = 10 * time.Second

// withLimiterBudget marks the request as one for the rate limiters: once a
// Redis call of it fails, its other limits fail open without waiting again.
func withLimiterBudget(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(ratelimit.WithRequest(r.Context())))
	})
}

// limitAnonymous spends a token of the client address's anonymous budget
// for a request that presents no credential (introspection, enrollDevice,
// __typename), and refuses it with 429 when there is none, before its body
// is read or parsed. A request with a credential is left to authenticate.
func limitAnonymous(limiter ratelimit.Limiter, log *slog.Logger, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if limiter == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, presented := credentialOf(r); !presented {
				ctx := r.Context()
				d, err := limiter.Take(ctx, "anon:"+netaddr.Budget(auth.ClientFrom(ctx).IP))
				if refused(w, r, log, m.refusedAnonymous, d, err, "too many requests without a credential from this address") {
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// authenticate turns the request's credential into a principal. A request
// without one runs unauthenticated (guarded fields refuse it); a credential
// that does not authenticate stops here with 401, before anything executes.
// The checks are the gate's (check), which a WebSocket's connection_init
// passes through too.
func authenticate(a Authenticator, limits Limits, log *slog.Logger, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			client := auth.ClientFrom(ctx)
			g := &gate{a: a, limits: limits, log: log, m: m, client: client,
				guard: failureGuard{limiter: limits.Failures, key: "fail:" + netaddr.Budget(client.IP), log: log, refused: m.refusedFailures}}
			ctx = auth.WithGate(auth.WithGuard(ctx, g.guard), g)
			token, presented := credentialOf(r)
			if !presented {
				next.ServeHTTP(w, r.WithContext(ctx))
				return
			}
			// An event stream's goroutine lives as long as the stream: the
			// lookup runs off it, so that it keeps a small stack.
			p, no := g.check(ctx, token, strings.Contains(r.Header.Get("Accept"), "text/event-stream"))
			if no != nil {
				no.write(w, r)
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(ctx, p)))
		})
	}
}

// gate admits a credential, for a request's header (authenticate) and for
// one presented inside a connection, as a WebSocket's connection_init
// carries it (auth.Gate). Before the database is asked anything, an
// address that failed too often is refused, and so is a credential whose
// bucket is empty: its id is read from the token, and the bucket only
// peeked at, since anyone can write a token with someone else's id. The
// bucket is spent once the credential authenticated; a forged one is
// charged to its address.
type gate struct {
	a      Authenticator
	limits Limits
	guard  failureGuard
	log    *slog.Logger
	m      *metrics
	client auth.Client
}

// check admits token, or says why not. shallow runs the lookup off the
// calling goroutine (stack.Shallow).
func (g *gate) check(ctx context.Context, token string, shallow bool) (*auth.Principal, *refusal) {
	if wait, blocked := g.guard.Blocked(ctx); blocked {
		return nil, &refusal{status: http.StatusTooManyRequests, wait: wait, message: "too many failed credentials from this address"}
	}
	if claim, ok := auth.ClaimOf(token); ok && g.limits.Requests != nil {
		d, err := g.limits.Requests.Peek(ctx, bucket(claim.Kind, claim.ID))
		if no := overRate(ctx, g.log, g.m.refusedRequests, d, err, "this credential is over its request rate"); no != nil {
			return nil, no
		}
	}
	var p *auth.Principal
	var err error
	if shallow {
		p, err = authenticateShallow(ctx, g.a, token, g.client)
	} else {
		p, err = g.a.Authenticate(ctx, token, g.client)
	}
	entry := reqlog.From(ctx)
	var failure *auth.Failure
	switch {
	case errors.As(err, &failure):
		g.guard.Failed(ctx)
		g.m.authFailure(failure.Reason).Inc()
		if entry != nil {
			entry.Reason = string(failure.Reason)
		}
		return nil, &refusal{status: http.StatusUnauthorized, reason: string(failure.Reason), message: failure.Error()}
	case err != nil:
		id := requestid.From(ctx)
		g.log.ErrorContext(ctx, "authenticate", "request_id", id, "err", err)
		return nil, &refusal{status: http.StatusInternalServerError, requestID: id, message: "internal error; quote request id " + id + " to the operator"}
	}
	if entry != nil {
		entry.Principal = p
	}
	return p, g.take(ctx, p)
}

// take spends a token of the credential's request bucket.
func (g *gate) take(ctx context.Context, p *auth.Principal) *refusal {
	if g.limits.Requests == nil {
		return nil
	}
	d, err := g.limits.Requests.Take(ctx, principalKey(p))
	return overRate(ctx, g.log, g.m.refusedRequests, d, err, "this credential is over its request rate")
}

func (g *gate) Authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	p, no := g.check(ctx, token, true)
	if no != nil {
		return nil, no.err()
	}
	return p, nil
}

func (g *gate) Charge(ctx context.Context, p *auth.Principal) error {
	if p == nil {
		return nil
	}
	if no := g.take(ctx, p); no != nil {
		return no.err()
	}
	return nil
}

// refusal is why a credential or a request was not admitted: answered by
// HTTP with its status (write), or reported by a connection's operations
// as an error with the same code and message (err).
type refusal struct {
	status    int
	wait      time.Duration // 429: when to retry
	reason    string        // 401: why the credential failed
	requestID string        // 500
	message   string
}

func (no *refusal) write(w http.ResponseWriter, r *http.Request) {
	switch no.status {
	case http.StatusTooManyRequests:
		seconds := retrySeconds(no.wait)
		w.Header().Set("Retry-After", strconv.Itoa(seconds))
		writeError(w, r, no.status, string(apperr.RateLimited), fmt.Sprintf("%s; retry in %d s", no.message, seconds), map[string]any{"retryAfter": seconds})
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeError(w, r, no.status, string(apperr.Unauthenticated), no.message, map[string]any{"reason": no.reason})
	default:
		writeError(w, r, http.StatusInternalServerError, string(apperr.Internal), no.message, map[string]any{"requestId": no.requestID})
	}
}

func (no *refusal) err() error {
	switch no.status {
	case http.StatusTooManyRequests:
		return apperr.New(apperr.RateLimited, "%s; retry in %d s", no.message, retrySeconds(no.wait))
	case http.StatusUnauthorized:
		return &apperr.Error{Code: apperr.Unauthenticated, Reason: no.reason, Message: no.message}
	default:
		return &apperr.Error{Code: apperr.Internal, Message: no.message}
	}
}

// retrySeconds is a wait in whole seconds, at least one.
func retrySeconds(wait time.Duration) int { return max(int((wait+time.Second-1)/time.Second), 1) }

// authenticateShallow authenticates off the calling goroutine: an event
// stream's lives as long as the stream, and keeps a small stack so.
func authenticateShallow(ctx context.Context, a Authenticator, token string, client auth.Client) (*auth.Principal, error) {
	return stack.Shallow(func() (*auth.Principal, error) { return a.Authenticate(ctx, token, client) })
}

// principalKey names a credential's bucket; a key keeps it across rotations.
func principalKey(p *auth.Principal) string {
	if p.Kind == auth.KindDevice {
		return bucket(auth.KindDevice, p.DeviceID)
	}
	return bucket(auth.KindAPIKey, p.KeyID)
}

// bucket names the request bucket of a key or a device, the same whether
// the id was read from the token or from the authenticated principal.
func bucket(kind auth.Kind, id uuid.UUID) string {
	if kind == auth.KindDevice {
		return "dev:" + id.String()
	}
	return "key:" + id.String()
}

// failureGuard is the failure limit of one client address, shared by the
// header check here and by enrollDevice through the request's context.
// Each refusal counts in refused.
type failureGuard struct {
	limiter ratelimit.Limiter
	key     string
	log     *slog.Logger
	refused prometheus.Counter
}

func (g failureGuard) Blocked(ctx context.Context) (time.Duration, bool) {
	if g.limiter == nil {
		return 0, false
	}
	d, err := g.limiter.Peek(ctx, g.key)
	if err != nil {
		g.log.WarnContext(ctx, "rate limit unavailable; letting the request through", "err", err)
		return 0, false
	}
	if !d.Allowed {
		g.refused.Inc()
	}
	return min(d.RetryAfter, maxFailureWait), !d.Allowed
}

func (g failureGuard) Failed(ctx context.Context) {
	if g.limiter == nil {
		return
	}
	if _, err := g.limiter.Take(ctx, g.key); err != nil {
		g.log.WarnContext(ctx, "rate limit unavailable", "err", err)
	}
}

// refused answers 429 and reports true when a limiter's decision refuses
// the request (overRate).
func refused(w http.ResponseWriter, r *http.Request, log *slog.Logger, counter prometheus.Counter, d ratelimit.Decision, err error, message string) bool {
	no := overRate(r.Context(), log, counter, d, err, message)
	if no != nil {
		no.write(w, r)
	}
	return no != nil
}

// overRate is the refusal a limiter's decision makes, counted in counter,
// or nil. A limiter that could not decide lets the request through, and
// says so in the log: a rate limit must not take the control plane down.
func overRate(ctx context.Context, log *slog.Logger, counter prometheus.Counter, d ratelimit.Decision, err error, message string) *refusal {
	if err != nil {
		log.WarnContext(ctx, "rate limit unavailable; letting the request through", "err", err)
		return nil
	}
	if d.Allowed {
		return nil
	}
	counter.Inc()
	return &refusal{status: http.StatusTooManyRequests, wait: d.RetryAfter, message: message}
}

// credentialOf reads Authorization: Bearer <credential>, or X-API-Key. A
// header that is present but holds no bearer credential still counts as
// presented, so that it is refused rather than ignored; so does a request
// with more than one credential header, where a proxy and this server might
// not pick the same one.
func credentialOf(r *http.Request) (string, bool) {
	authorization, apiKey := r.Header.Values("Authorization"), r.Header.Values("X-Api-Key")
	switch {
	case len(authorization)+len(apiKey) == 0:
		return "", false
	case len(authorization)+len(apiKey) > 1:
		return "", true
	case len(apiKey) == 1:
		return strings.TrimSpace(apiKey[0]), true
	}
	scheme, token, ok := strings.Cut(authorization[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(token), true
}

// writeError writes a GraphQL-shaped error body with one error, and notes
// its code in the request's log entry.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string, extra map[string]any) {
	if entry := reqlog.From(r.Context()); entry != nil {
		entry.AddCode(code)
	}
	ext := map[string]any{"code": code}
	for k, v := range extra {
		ext[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"message": message, "extensions": ext}}})
}
