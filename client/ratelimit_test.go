package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
)

// A query refused with 429 is sent again after Retry-After, within the
// client's bounds; a mutation never is; and once the retries are spent the
// error is ErrRateLimited, with the wait the server asked for.
func TestRateLimitRetries(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		// One request a second per key, no burst: each 429 asks for 1 s.
		s := start(t, d, func(c *config.Config) { c.RateLimitRPS, c.RateLimitBurst = 1, 1 })
		ctx := context.Background()
		kp, rec := s.recorded(s.admin)
		list := func(c *client.Client) error {
			_, err := c.Devices(ctx, client.DeviceFilter{}, client.PageOptions{})
			return err
		}
		statuses := func() string {
			var out []string
			for _, ex := range rec.seen() {
				out = append(out, http.StatusText(ex.Status))
			}
			return strings.Join(out, ", ")
		}

		// The first query spends the key's budget; the second is refused,
		// waits out Retry-After, and succeeds.
		if err := list(kp); err != nil {
			t.Fatal(err)
		}
		rec.reset()
		if err := list(kp); err != nil {
			t.Fatalf("a retried query: %v", err)
		}
		seen := rec.seen()
		if len(seen) != 2 || seen[0].Status != http.StatusTooManyRequests || seen[1].Status != http.StatusOK {
			t.Fatalf("a query over the rate: %s", statuses())
		}
		if seen[0].RetryAfter != "1" || seen[1].At.Sub(seen[0].At) < time.Second {
			t.Fatalf("retried %v after a Retry-After of %q", seen[1].At.Sub(seen[0].At), seen[0].RetryAfter)
		}

		// A mutation over the rate is sent once, and fails.
		rec.reset()
		_, err := kp.CreateDevice(ctx, client.CreateDeviceInput{Name: "cam", SerialNumber: "SN-1"})
		var e *client.Error
		if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &e) || e.RetryAfter != time.Second || e.StatusCode != 429 {
			t.Fatalf("a mutation over the rate: %v", err)
		}
		if n := len(rec.seen()); n != 1 {
			t.Fatalf("a mutation was sent %d times: %s", n, statuses())
		}

		// A Retry-After past the client's time budget is not waited for.
		time.Sleep(1100 * time.Millisecond)
		impatient := kp.With(client.WithRetries(3, 500*time.Millisecond))
		if err := list(impatient); err != nil {
			t.Fatal(err)
		}
		rec.reset()
		if err := list(impatient); !errors.Is(err, client.ErrRateLimited) {
			t.Fatalf("a query whose wait exceeds the budget: %v", err)
		}
		if n := len(rec.seen()); n != 1 {
			t.Fatalf("a wait past the budget was waited for: %s", statuses())
		}

		// Retrying is bounded in count: when another holder of the key
		// spends each second's budget first, the client gives up after
		// its retries, with the server's last Retry-After.
		time.Sleep(1100 * time.Millisecond)
		if err := list(kp); err != nil {
			t.Fatal(err)
		}
		rec.reset()
		rival := s.client(s.admin, client.WithRetries(0, 0))
		rec.before = func(n int, _ *http.Request) {
			if n > 0 {
				_ = list(rival) // the refill goes to the rival
			}
		}
		twice := kp.With(client.WithRetries(2, 10*time.Second))
		start := time.Now()
		err = list(twice)
		rec.before = nil
		if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &e) || e.RetryAfter != time.Second {
			t.Fatalf("a query whose retries are spent: %v", err)
		}
		if n := len(rec.seen()); n != 3 || time.Since(start) < 2*time.Second {
			t.Fatalf("2 retries took %d requests in %v: %s", n, time.Since(start), statuses())
		}
	})
}
