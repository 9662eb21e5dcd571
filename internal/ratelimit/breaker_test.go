package ratelimit

import (
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBreakerOpensAfterThresholdAndProbes(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	b := NewBreaker(3, 5*time.Second)
	b.now = clock.now
	var changes []string
	b.onChange = func(from, to BreakerState) { changes = append(changes, from.String()+"→"+to.String()) }

	fail := func() {
		t.Helper()
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("a call was refused in state %v", b.State())
		}
		b.Failed(tk)
	}
	succeed := func() {
		t.Helper()
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("a call was refused in state %v", b.State())
		}
		b.Succeeded(tk)
	}

	// Failures must be in a row: a success in between starts over.
	fail()
	fail()
	succeed()
	fail()
	fail()
	if b.State() != BreakerClosed {
		t.Fatalf("2 failures in a row opened a breaker of threshold 3: %v", b.State())
	}
	fail()
	if b.State() != BreakerOpen {
		t.Fatalf("3 failures in a row: state %v, want open", b.State())
	}

	// Open: nothing goes through until the cool-down has passed.
	for range 100 {
		if _, ok := b.Allow(); ok {
			t.Fatal("an open breaker let a call through")
		}
	}
	clock.advance(5*time.Second - time.Nanosecond)
	if _, ok := b.Allow(); ok {
		t.Fatal("the breaker let a call through before its cool-down ended")
	}

	// Half-open: exactly one probe; a failed probe opens it again.
	clock.advance(time.Nanosecond)
	probe, ok := b.Allow()
	if !ok || b.State() != BreakerHalfOpen {
		t.Fatalf("after the cool-down: allowed %v, state %v; want one probe, half-open", ok, b.State())
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("a second call went through while the probe was out")
	}
	b.Failed(probe)
	if b.State() != BreakerOpen {
		t.Fatalf("a failed probe left the breaker %v, want open", b.State())
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("a failed probe did not start a new cool-down")
	}

	// An abandoned probe hands its turn to the next call.
	clock.advance(5 * time.Second)
	probe, _ = b.Allow()
	b.Abandoned(probe)
	if b.State() != BreakerHalfOpen {
		t.Fatalf("an abandoned probe moved the breaker to %v", b.State())
	}
	probe, ok = b.Allow()
	if !ok {
		t.Fatal("the call after an abandoned probe may not probe")
	}

	// A late failure from before the probe does not reopen it; the probe's
	// success closes it.
	b.Failed(Ticket{})
	b.Succeeded(probe)
	if b.State() != BreakerClosed {
		t.Fatalf("a successful probe left the breaker %v, want closed", b.State())
	}
	succeed()

	want := []string{"closed→open", "open→half-open", "half-open→open", "open→half-open", "half-open→closed"}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("changes %v, want %v", changes, want)
		}
	}
}
