package config

import (
	"errors"
	"testing"
	"time"
)

// TestPresenceSweepInterval: KEYPLANE_PRESENCE_SWEEP_INTERVAL is a positive
// duration, 5 s unless set; zero, a negative or an unreadable value is
// refused, naming the variable.
func TestPresenceSweepInterval(t *testing.T) {
	load := func(v string) (Config, error) {
		return Load(func(name string) string {
			if name == "KEYPLANE_PRESENCE_SWEEP_INTERVAL" {
				return v
			}
			return ""
		})
	}
	for v, want := range map[string]time.Duration{"": DefaultPresenceSweepInterval, "250ms": 250 * time.Millisecond, "1m": time.Minute} {
		c, err := load(v)
		if err != nil || c.PresenceSweepInterval != want {
			t.Errorf("KEYPLANE_PRESENCE_SWEEP_INTERVAL=%q: %v, %v; want %v", v, c.PresenceSweepInterval, err, want)
		}
	}
	if DefaultPresenceSweepInterval != 5*time.Second {
		t.Errorf("the default sweep interval is %v, want 5s", DefaultPresenceSweepInterval)
	}
	for _, v := range []string{"0", "0s", "-1s", "often", "5"} {
		_, err := load(v)
		var cfgErr *Error
		if !errors.As(err, &cfgErr) || cfgErr.Var != "KEYPLANE_PRESENCE_SWEEP_INTERVAL" {
			t.Errorf("KEYPLANE_PRESENCE_SWEEP_INTERVAL=%q: want an error naming the variable, got %v", v, err)
		}
	}
}
