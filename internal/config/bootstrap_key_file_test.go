package config

import (
	"errors"
	"testing"
)

func TestBootstrapKeyFile(t *testing.T) {
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == "KEYPLANE_BOOTSTRAP_KEY_FILE" {
				return v
			}
			return ""
		}
	}

	c, err := Load(env(""))
	if err != nil {
		t.Fatalf("unset: %v", err)
	}
	if c.BootstrapKeyFile != "" {
		t.Errorf("unset: BootstrapKeyFile %q, want empty", c.BootstrapKeyFile)
	}

	for _, path := range []string{"/var/lib/keyplane/first-key", "first-key", "secrets/first-key"} {
		c, err := Load(env(path))
		if err != nil {
			t.Errorf("%q: %v", path, err)
			continue
		}
		if c.BootstrapKeyFile != path {
			t.Errorf("%q: BootstrapKeyFile %q", path, c.BootstrapKeyFile)
		}
	}

	for _, path := range []string{"/var/lib/keyplane/", ".", "..", "/", "keys/.."} {
		_, err := Load(env(path))
		var e *Error
		if !errors.As(err, &e) || e.Var != "KEYPLANE_BOOTSTRAP_KEY_FILE" {
			t.Errorf("%q: err %v, want one naming KEYPLANE_BOOTSTRAP_KEY_FILE", path, err)
		}
	}
}
