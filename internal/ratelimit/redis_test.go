package ratelimit

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyplane/keyplane/internal/ratelimit/redisfake"
	"github.com/keyplane/keyplane/internal/testlog"
)

// fakeDeadline is the deadline of each call to the fake Redis. The tests
// count calls, not time; the deadline only has to pass.
const fakeDeadline = 20 * time.Millisecond

// sickRedis is a limiter on a fake Redis, with the breaker on a clock the
// test moves.
type sickRedis struct {
	srv     *redisfake.Server
	backend *RedisBackend
	clock   *fakeClock
	logs    *testlog.Buffer
}

func newSickRedis(t *testing.T, mode redisfake.Mode) *sickRedis {
	t.Helper()
	srv, err := redisfake.Start(mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	FailFast(opts, fakeDeadline)
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	logs := &testlog.Buffer{}
	b := NewRedisBackend(client, fakeDeadline, slog.New(slog.NewTextHandler(logs, nil)))
	clock := &fakeClock{t: time.Unix(1000, 0)}
	b.breaker.now = clock.now
	return &sickRedis{srv: srv, backend: b, clock: clock, logs: logs}
}

// call makes one decision and checks that it let the request through (the
// fake answers 0, and a sick Redis fails open), and that it came back
// within a generous multiple of the deadline: a call that waited for the
// client's own timeouts (3 s, retried) would not.
func (s *sickRedis) call(t *testing.T, ctx context.Context, l Limiter, take bool) {
	t.Helper()
	start := time.Now()
	var d Decision
	var err error
	if take {
		d, err = l.Take(ctx, "k")
	} else {
		d, err = l.Peek(ctx, "k")
	}
	if err != nil || !d.Allowed {
		t.Fatalf("want the request let through, got %+v %v", d, err)
	}
	if took := time.Since(start); took > 50*fakeDeadline {
		t.Fatalf("one call took %v with a deadline of %v", took, fakeDeadline)
	}
}

// seen is how many connections and commands the fake has had.
func (s *sickRedis) seen() [2]int64 { return [2]int64{s.srv.Dials(), s.srv.Commands()} }

func TestRedisThatStopsAnswering(t *testing.T) {
	ctx := context.Background()
	s := newSickRedis(t, redisfake.Answer)
	l := NewRedis(s.backend, "p:", 1, 5)

	s.call(t, ctx, l, true)
	if s.srv.Commands() == 0 || s.backend.FailOpens() != 0 {
		t.Fatalf("a healthy Redis: %d commands, %d fail-opens", s.srv.Commands(), s.backend.FailOpens())
	}

	// Redis stops answering: each call waits for one deadline, no retry,
	// and fails open; BreakerThreshold of them open the breaker.
	s.srv.SetMode(redisfake.Hang)
	for i := range BreakerThreshold {
		before := s.srv.Commands()
		s.call(t, ctx, l, i%2 == 0)
		if n := s.srv.Commands() - before; n != 1 {
			t.Fatalf("failed call %d sent %d commands, want 1 (no retry)", i+1, n)
		}
	}
	if st := s.backend.BreakerState(); st != BreakerOpen {
		t.Fatalf("after %d failures in a row the breaker is %v, want open", BreakerThreshold, st)
	}

	// Open: Redis is not even dialled.
	before := s.seen()
	for i := range 100 {
		s.call(t, ctx, l, i%2 == 0)
	}
	if after := s.seen(); after != before {
		t.Fatalf("while the breaker is open the fake saw %v (dials, commands), want %v", after, before)
	}
	if got, want := s.backend.FailOpens(), uint64(BreakerThreshold+100); got != want {
		t.Fatalf("FailOpens() = %d, want %d", got, want)
	}

	// After the cool-down one probe goes; still hung, so the breaker opens
	// again and the next calls skip Redis.
	s.clock.advance(BreakerCooldown)
	before = s.seen()
	s.call(t, ctx, l, true)
	if n := s.srv.Commands() - before[1]; n != 1 {
		t.Fatalf("the probe sent %d commands, want 1", n)
	}
	if st := s.backend.BreakerState(); st != BreakerOpen {
		t.Fatalf("after a failed probe the breaker is %v, want open", st)
	}
	before = s.seen()
	for range 10 {
		s.call(t, ctx, l, true)
	}
	if after := s.seen(); after != before {
		t.Fatalf("after a failed probe the fake saw %v, want %v", after, before)
	}

	// Redis is back: the next probe closes the breaker, and Redis decides
	// again (a wait of 5 ms refuses).
	s.srv.SetMode(redisfake.Answer)
	s.clock.advance(BreakerCooldown)
	s.call(t, ctx, l, true)
	if st := s.backend.BreakerState(); st != BreakerClosed {
		t.Fatalf("after a good probe the breaker is %v, want closed", st)
	}
	s.srv.SetReply(5000)
	d, err := l.Take(ctx, "k")
	if err != nil || d.Allowed || d.RetryAfter != 5*time.Millisecond {
		t.Fatalf("Redis's answer after recovery: %+v %v, want a refusal for 5ms", d, err)
	}

	logs := s.logs.String()
	for _, want := range []string{"redis did not answer", "circuit breaker open", "circuit breaker closed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line %q in:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "redis did not answer"); n != BreakerThreshold+1 {
		t.Errorf("%d log lines for failed calls, want one per call that went to Redis (%d), none per skipped call", n, BreakerThreshold+1)
	}
}

func TestRedisThatHangsUp(t *testing.T) {
	ctx := context.Background()
	s := newSickRedis(t, redisfake.Hangup)
	l := NewRedis(s.backend, "p:", 1, 5)
	for range BreakerThreshold {
		s.call(t, ctx, l, true)
	}
	if st := s.backend.BreakerState(); st != BreakerOpen {
		t.Fatalf("after %d hang-ups the breaker is %v, want open", BreakerThreshold, st)
	}
	before := s.srv.Dials()
	for range 50 {
		s.call(t, ctx, l, true)
	}
	if after := s.srv.Dials(); after != before {
		t.Fatalf("the breaker is open, yet Redis was dialled %d times", after-before)
	}
}

func TestRedisThatIsGone(t *testing.T) {
	ctx := context.Background()
	s := newSickRedis(t, redisfake.Answer)
	l := NewRedis(s.backend, "p:", 1, 5)
	s.call(t, ctx, l, true)
	s.srv.Close()
	for range BreakerThreshold {
		s.call(t, ctx, l, true)
	}
	if st := s.backend.BreakerState(); st != BreakerOpen {
		t.Fatalf("after %d refused connections the breaker is %v, want open", BreakerThreshold, st)
	}
	if got := s.backend.FailOpens(); got != BreakerThreshold {
		t.Fatalf("FailOpens() = %d, want %d", got, BreakerThreshold)
	}
}

// TestOneDeadlinePerRequest checks that a request pays for a sick Redis
// once: after its first call fails, its other limits do not ask.
func TestOneDeadlinePerRequest(t *testing.T) {
	s := newSickRedis(t, redisfake.Hang)
	requests, failures := NewRedis(s.backend, "req:", 1, 5), NewRedis(s.backend, "fail:", 1, 5)
	ctx := WithRequest(context.Background())
	before := s.srv.Commands()
	s.call(t, ctx, failures, false)
	s.call(t, ctx, requests, false)
	s.call(t, ctx, requests, true)
	if n := s.srv.Commands() - before; n != 1 {
		t.Fatalf("one request sent %d commands to a hung Redis, want 1", n)
	}
	if s.backend.FailOpens() != 3 || s.backend.BreakerState() != BreakerClosed {
		t.Fatalf("fail-opens %d, breaker %v: want 3, closed (one failure is not %d)", s.backend.FailOpens(), s.backend.BreakerState(), BreakerThreshold)
	}
}

// TestAbandonedCallsAreNoVerdict checks that requests whose client gave up
// do not open the breaker: Redis did nothing wrong.
func TestAbandonedCallsAreNoVerdict(t *testing.T) {
	s := newSickRedis(t, redisfake.Answer)
	l := NewRedis(s.backend, "p:", 1, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 3 * BreakerThreshold {
		s.call(t, ctx, l, true)
	}
	if st := s.backend.BreakerState(); st != BreakerClosed {
		t.Fatalf("abandoned calls moved the breaker to %v", st)
	}
}
