package ratelimit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript runs one GCRA step atomically in Redis, on Redis's clock, so
// that replicas with skewed clocks still share one fair bucket. Times are in
// microseconds, which Lua's doubles hold exactly. It returns the wait, 0
// when the request may pass.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + interval
local allow_at = new - tolerance
if allow_at > now then return allow_at - now end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000))
end
return 0
`)

// RedisBackend is one Redis shared by the limiters kept in it, and what
// stands between them and a sick Redis. Every call has a deadline; a
// request whose call failed does not call again; after BreakerThreshold
// failures in a row a circuit breaker skips Redis for BreakerCooldown, then
// lets one probe through. Whenever Redis does not answer, the limiters fail
// open: a sick Redis costs a request at most one deadline, and while the
// breaker is open nothing at all.
type RedisBackend struct {
	client  redis.Scripter
	timeout time.Duration
	breaker *Breaker
	log     *slog.Logger

	failOpen atomic.Uint64
}

// NewRedisBackend returns the backend of a Redis client; timeout is the
// deadline of each call. The client should not retry on its own: the
// breaker is the retry policy, and a retry would double the deadline.
func NewRedisBackend(client redis.Scripter, timeout time.Duration, log *slog.Logger) *RedisBackend {
	b := &RedisBackend{client: client, timeout: timeout, breaker: NewBreaker(BreakerThreshold, BreakerCooldown), log: log}
	b.breaker.onChange = func(from, to BreakerState) {
		switch to {
		case BreakerOpen:
			b.log.Error("redis circuit breaker open: rate limits fail open, Redis is skipped", "for", BreakerCooldown, "after", from.String())
		case BreakerClosed:
			b.log.Info("redis circuit breaker closed: rate limits are enforced again")
		}
	}
	return b
}

// FailOpens returns how many decisions were let through because Redis did
// not answer, or was skipped.
func (b *RedisBackend) FailOpens() uint64 { return b.failOpen.Load() }

// BreakerState returns where the breaker in front of Redis stands.
func (b *RedisBackend) BreakerState() BreakerState { return b.breaker.State() }

// call runs fn against Redis under the deadline and the breaker, and
// reports whether it got an answer; when not, the caller fails open.
func (b *RedisBackend) call(ctx context.Context, fn func(ctx context.Context) error) bool {
	req, _ := ctx.Value(requestKey{}).(*requestState)
	if req != nil && req.redisFailed.Load() {
		b.failOpen.Add(1)
		return false
	}
	ticket, ok := b.breaker.Allow()
	if !ok {
		b.failOpen.Add(1)
		return false
	}
	callCtx, cancel := context.WithTimeout(ctx, b.timeout)
	err := fn(callCtx)
	cancel()
	switch {
	case err == nil:
		b.breaker.Succeeded(ticket)
		return true
	case ctx.Err() != nil:
		// The request was abandoned or ran out of time of its own: no
		// verdict on Redis.
		b.breaker.Abandoned(ticket)
	default:
		b.breaker.Failed(ticket)
		b.log.WarnContext(ctx, "redis did not answer; rate limit fails open", "err", err, "deadline", b.timeout)
	}
	if req != nil {
		req.redisFailed.Store(true)
	}
	b.failOpen.Add(1)
	return false
}

// FailFast sets a Redis client's options for the limiters: every step of a
// call (the wait for a connection, the dial, TLS included, which does not
// heed the call's context, each write and read) gives up after timeout,
// and the client never retries on its own. The breaker decides when Redis
// is tried again; a retry would only double the deadline.
func FailFast(opts *redis.Options, timeout time.Duration) {
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = timeout, timeout, timeout, timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1
}

type requestKey struct{}

// requestState is what the limiters remember for one request.
type requestState struct {
	redisFailed atomic.Bool
}

// WithRequest returns ctx marked as one request's: once a Redis call of
// the request fails, its later calls fail open at once instead of waiting
// for a deadline each.
func WithRequest(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestKey{}, &requestState{})
}

// Redis keeps the buckets in Redis, shared by every replica.
type Redis struct {
	backend *RedisBackend
	prefix  string
	g       gcra
}

// NewRedis returns a limiter whose buckets live in the backend's Redis
// under prefix.
func NewRedis(backend *RedisBackend, prefix string, rate float64, burst int) *Redis {
	return &Redis{backend: backend, prefix: prefix, g: newGCRA(rate, burst)}
}

// Take implements Limiter.
func (r *Redis) Take(ctx context.Context, key string) (Decision, error) {
	return r.decide(ctx, key, "1")
}

// Peek implements Limiter.
func (r *Redis) Peek(ctx context.Context, key string) (Decision, error) {
	return r.decide(ctx, key, "0")
}

// decide runs one GCRA step; without an answer from Redis it allows.
func (r *Redis) decide(ctx context.Context, key, take string) (Decision, error) {
	us := func(ns int64) int64 { return max(ns/1000, 1) }
	var wait int64
	answered := r.backend.call(ctx, func(ctx context.Context) error {
		var err error
		wait, err = gcraScript.Run(ctx, r.backend.client, []string{r.prefix + key}, us(r.g.interval), us(r.g.tolerance), take).Int64()
		return err
	})
	if !answered || wait <= 0 {
		return Decision{Allowed: true}, nil
	}
	return Decision{RetryAfter: time.Duration(wait) * time.Microsecond}, nil
}
