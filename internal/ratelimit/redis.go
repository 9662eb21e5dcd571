package ratelimit

import (
	"context"
	"fmt"
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

// Redis keeps the buckets in Redis, shared by every replica.
type Redis struct {
	client *redis.Client
	prefix string
	g      gcra
}

// NewRedis returns a limiter whose buckets live in Redis under prefix.
func NewRedis(client *redis.Client, prefix string, rate float64, burst int) *Redis {
	return &Redis{client: client, prefix: prefix, g: newGCRA(rate, burst)}
}

// Take implements Limiter.
func (r *Redis) Take(ctx context.Context, key string) (Decision, error) {
	return r.decide(ctx, key, "1")
}

// Peek implements Limiter.
func (r *Redis) Peek(ctx context.Context, key string) (Decision, error) {
	return r.decide(ctx, key, "0")
}

func (r *Redis) decide(ctx context.Context, key, take string) (Decision, error) {
	us := func(ns int64) int64 { return max(ns/1000, 1) }
	wait, err := gcraScript.Run(ctx, r.client, []string{r.prefix + key}, us(r.g.interval), us(r.g.tolerance), take).Int64()
	if err != nil {
		return Decision{Allowed: true}, fmt.Errorf("rate limit in redis: %w", err)
	}
	if wait > 0 {
		return Decision{RetryAfter: time.Duration(wait) * time.Microsecond}, nil
	}
	return Decision{Allowed: true}, nil
}
