// Package ratelimit holds token buckets, one per key: in process by default,
// or in Redis so that every replica shares them. Both use GCRA (the generic
// cell rate algorithm): a bucket is one timestamp, the theoretical arrival
// time of the next request, so a check is one read and one write.
package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"
)

// Decision is the answer for one request.
type Decision struct {
	Allowed bool
	// RetryAfter is how long until a token is back, when not allowed.
	RetryAfter time.Duration
}

// Limiter is a set of buckets refilling at a rate, each holding up to burst.
// A limiter that cannot decide lets the request through: the Redis one
// does so itself (it logs and counts it), and a caller given an error does.
type Limiter interface {
	// Take spends one token of key's bucket, if there is one.
	Take(ctx context.Context, key string) (Decision, error)
	// Peek reports whether key's bucket holds a token, spending nothing:
	// a check that anyone may make without costing the bucket's owner.
	Peek(ctx context.Context, key string) (Decision, error)
}

// gcra is the arithmetic both limiters share, in nanoseconds: interval is
// the time one token takes to come back, tolerance the time burst tokens do.
type gcra struct {
	interval  int64
	tolerance int64
}

// maxInterval bounds the time one token takes to come back (about a year),
// so that a tiny rate cannot overflow the arithmetic into no limit at all.
const maxInterval = float64(365 * 24 * time.Hour)

func newGCRA(rate float64, burst int) gcra {
	interval := math.Min(math.Max(float64(time.Second)/rate, 1), maxInterval)
	tolerance := math.Min(interval*float64(max(burst, 1)), math.MaxInt64/4)
	return gcra{interval: int64(interval), tolerance: int64(tolerance)}
}

// next returns the arrival time a request at now would leave behind, and
// how long it must wait first (0 when it may pass).
func (g gcra) next(tat, now int64) (newTAT int64, wait time.Duration) {
	tat = max(tat, now)
	newTAT = tat + g.interval
	if allowAt := newTAT - g.tolerance; allowAt > now {
		return tat, time.Duration(allowAt - now)
	}
	return newTAT, 0
}

// Local keeps the buckets in this process.
type Local struct {
	g   gcra
	now func() time.Time

	mu      sync.Mutex
	tat     map[string]int64
	lastGC  int64
	gcEvery int64
}

// NewLocal returns an in-process limiter; rate is tokens per second.
func NewLocal(rate float64, burst int) *Local {
	return &Local{g: newGCRA(rate, burst), now: time.Now, tat: map[string]int64{}, gcEvery: int64(time.Minute)}
}

// Take implements Limiter.
func (l *Local) Take(_ context.Context, key string) (Decision, error) {
	return l.decide(key, true), nil
}

// Peek implements Limiter.
func (l *Local) Peek(_ context.Context, key string) (Decision, error) {
	return l.decide(key, false), nil
}

func (l *Local) decide(key string, take bool) Decision {
	now := l.now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.collect(now)
	newTAT, wait := l.g.next(l.tat[key], now)
	if wait > 0 {
		return Decision{RetryAfter: wait}
	}
	if take {
		l.tat[key] = newTAT
	}
	return Decision{Allowed: true}
}

// collect forgets full buckets now and then, so that a flood of distinct
// keys (addresses, guessed ids) cannot grow the map without bound: a bucket
// whose arrival time has passed is full, the same as one never seen.
func (l *Local) collect(now int64) {
	if now-l.lastGC < l.gcEvery {
		return
	}
	l.lastGC = now
	for k, tat := range l.tat {
		if tat <= now {
			delete(l.tat, k)
		}
	}
}
