package ratelimit

import (
	"sync"
	"time"
)

// BreakerState is where a circuit breaker stands.
type BreakerState int32

// The states, with the values the metrics report.
const (
	// BreakerClosed lets every call through.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen lets one probe through, to learn whether the
	// dependency is back.
	BreakerHalfOpen
	// BreakerOpen lets nothing through until its cool-down has passed.
	BreakerOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	default:
		return "open"
	}
}

// The breaker in front of Redis opens after BreakerThreshold failures in a
// row and skips Redis for BreakerCooldown, then lets one probe through.
const (
	BreakerThreshold = 5
	BreakerCooldown  = 5 * time.Second
)

// Breaker is a circuit breaker: after threshold failures in a row it opens
// and refuses calls for cooldown; then one call, the probe, goes through,
// and its outcome closes the breaker or opens it again.
type Breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	// onChange, when set, hears of every change of state, outside the lock.
	onChange func(from, to BreakerState)

	mu       sync.Mutex
	state    BreakerState
	failures int       // in a row, while closed
	until    time.Time // while open: when the probe may go
	probing  bool      // while half-open: the probe is out
}

// NewBreaker returns a closed breaker.
func NewBreaker(threshold int, cooldown time.Duration) *Breaker {
	return &Breaker{threshold: max(threshold, 1), cooldown: cooldown, now: time.Now}
}

// Ticket is a permission to call, handed back with the call's outcome.
type Ticket struct{ probe bool }

// Allow reports whether a call may go now, and hands out its ticket.
func (b *Breaker) Allow() (Ticket, bool) {
	b.mu.Lock()
	from := b.state
	var t Ticket
	ok := true
	switch b.state {
	case BreakerOpen:
		if b.now().Before(b.until) {
			ok = false
			break
		}
		b.state, b.probing, t.probe = BreakerHalfOpen, true, true
	case BreakerHalfOpen:
		if b.probing {
			ok = false
			break
		}
		b.probing, t.probe = true, true
	}
	to := b.state
	b.mu.Unlock()
	b.changed(from, to)
	return t, ok
}

// Succeeded records a call that got its answer.
func (b *Breaker) Succeeded(t Ticket) {
	b.mu.Lock()
	from := b.state
	switch {
	case b.state == BreakerClosed:
		b.failures = 0
	case t.probe && b.state == BreakerHalfOpen:
		b.state, b.probing, b.failures = BreakerClosed, false, 0
	}
	to := b.state
	b.mu.Unlock()
	b.changed(from, to)
}

// Failed records a call that got no answer in time, or a broken one.
func (b *Breaker) Failed(t Ticket) {
	b.mu.Lock()
	from := b.state
	switch {
	case b.state == BreakerClosed:
		b.failures++
		if b.failures >= b.threshold {
			b.open()
		}
	case t.probe && b.state == BreakerHalfOpen:
		b.open()
	}
	to := b.state
	b.mu.Unlock()
	b.changed(from, to)
}

// Abandoned hands back a ticket whose call ended without a verdict on the
// dependency (its caller gave up first): a probe lets the next call probe.
func (b *Breaker) Abandoned(t Ticket) {
	b.mu.Lock()
	if t.probe && b.state == BreakerHalfOpen {
		b.probing = false
	}
	b.mu.Unlock()
}

// State returns where the breaker stands. An open breaker whose cool-down
// has passed still reads open until a call probes.
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *Breaker) open() {
	b.state, b.probing, b.failures = BreakerOpen, false, 0
	b.until = b.now().Add(b.cooldown)
}

func (b *Breaker) changed(from, to BreakerState) {
	if from != to && b.onChange != nil {
		b.onChange(from, to)
	}
}
