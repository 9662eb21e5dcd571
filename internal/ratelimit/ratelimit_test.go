package ratelimit

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// limiters returns the limiters to test: in process always, and Redis when
// it answers (REDIS_URL, default the machine's 127.0.0.1:6379).
func limiters(t *testing.T, rate float64, burst int) map[string]Limiter {
	out := map[string]Limiter{"local": NewLocal(rate, burst)}
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Logf("Redis does not answer; testing the in-process limiter only: %v", err)
		return out
	}
	backend := NewRedisBackend(client, time.Second, slog.New(slog.DiscardHandler))
	out["redis"] = NewRedis(backend, "keyplane-test:"+t.Name()+":"+time.Now().Format(time.RFC3339Nano)+":", rate, burst)
	return out
}

func TestBurstThenRefusal(t *testing.T) {
	ctx := context.Background()
	for name, l := range limiters(t, 1, 5) {
		t.Run(name, func(t *testing.T) {
			for i := range 5 {
				if d, err := l.Take(ctx, "k"); err != nil || !d.Allowed {
					t.Fatalf("request %d of the burst refused: %+v %v", i+1, d, err)
				}
			}
			d, err := l.Take(ctx, "k")
			if err != nil || d.Allowed {
				t.Fatalf("request past the burst allowed: %+v %v", d, err)
			}
			if d.RetryAfter <= 0 || d.RetryAfter > time.Second {
				t.Fatalf("RetryAfter = %v, want within one interval (1s)", d.RetryAfter)
			}
			// Another key has its own bucket; Peek spends nothing.
			for range 10 {
				if d, _ := l.Peek(ctx, "other"); !d.Allowed {
					t.Fatal("Peek spent a token")
				}
			}
			if d, _ := l.Peek(ctx, "k"); d.Allowed {
				t.Fatal("Peek on an empty bucket allowed")
			}
		})
	}
}

func TestLocalRefillsAndForgets(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLocal(10, 2)
	l.now = func() time.Time { return now }
	takes := func(n int) []bool {
		out := make([]bool, n)
		for i := range out {
			d, _ := l.Take(context.Background(), "k")
			out[i] = d.Allowed
		}
		return out
	}
	if got := takes(3); !got[0] || !got[1] || got[2] {
		t.Fatalf("a burst of 2 should pass twice, then refuse: %v", got)
	}
	now = now.Add(100 * time.Millisecond)
	if got := takes(2); !got[0] || got[1] {
		t.Fatalf("one token should come back every 100ms: %v", got)
	}
	now = now.Add(2 * time.Minute)
	takes(1)
	if len(l.tat) != 1 {
		t.Fatalf("full buckets are not forgotten: %d kept", len(l.tat))
	}
}
