package config

import (
	"errors"
	"testing"
	"time"
)

// TestShutdownDrain: KEYPLANE_SHUTDOWN_DRAIN is a duration, 5 s unless set,
// and 0 turns the drain off; a negative or unreadable value is refused,
// naming the variable.
func TestShutdownDrain(t *testing.T) {
	load := func(v string) (Config, error) {
		return Load(func(name string) string {
			if name == "KEYPLANE_SHUTDOWN_DRAIN" {
				return v
			}
			return ""
		})
	}
	for v, want := range map[string]time.Duration{"": DefaultShutdownDrain, "0": 0, "0s": 0, "250ms": 250 * time.Millisecond, "30s": 30 * time.Second} {
		c, err := load(v)
		if err != nil || c.ShutdownDrain != want {
			t.Errorf("KEYPLANE_SHUTDOWN_DRAIN=%q: %v, %v; want %v", v, c.ShutdownDrain, err, want)
		}
	}
	if DefaultShutdownDrain != 5*time.Second {
		t.Errorf("the default drain is %v, want 5s", DefaultShutdownDrain)
	}
	for _, v := range []string{"-1s", "soon", "5"} {
		_, err := load(v)
		var cfgErr *Error
		if !errors.As(err, &cfgErr) || cfgErr.Var != "KEYPLANE_SHUTDOWN_DRAIN" {
			t.Errorf("KEYPLANE_SHUTDOWN_DRAIN=%q: want an error naming the variable, got %v", v, err)
		}
	}
}
