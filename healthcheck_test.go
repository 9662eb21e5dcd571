package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// healthServer answers /readyz and /healthz with the given statuses.
func healthServer(t *testing.T, ready, live int, delay time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(ready)
		case "/healthz":
			w.WriteHeader(live)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestHealthcheck(t *testing.T) {
	tests := []struct {
		name     string
		listen   func(t *testing.T) string
		args     []string
		wantCode int
		stderr   string
	}{
		{"ready", func(t *testing.T) string { return healthServer(t, 200, 200, 0) }, nil, 0, "/readyz: 200"},
		{"not ready", func(t *testing.T) string { return healthServer(t, 503, 200, 0) }, nil, 1, "/readyz: 503"},
		{"not ready, but live", func(t *testing.T) string { return healthServer(t, 503, 200, 0) }, []string{"--live"}, 0, "/healthz: 200"},
		{"a redirect is not health", func(t *testing.T) string { return healthServer(t, 302, 200, 0) }, nil, 1, "302"},
		{"nothing listens", freeAddr, nil, 1, "refused"},
		{"too slow", func(t *testing.T) string { return healthServer(t, 200, 200, 600*time.Millisecond) }, []string{"--timeout", "100ms"}, 1, "Timeout"},
		{"any interface: asks the loopback", func(t *testing.T) string {
			_, port, _ := net.SplitHostPort(healthServer(t, 200, 200, 0))
			return ":" + port
		}, nil, 0, "http://127.0.0.1:"},
		{"bad LISTEN_ADDR: 1, never Docker's reserved 2", func(*testing.T) string { return "nonsense" }, nil, 1, "LISTEN_ADDR"},
		{"bad flag", func(t *testing.T) string { return healthServer(t, 200, 200, 0) }, []string{"--frobnicate"}, 1, "frobnicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("LISTEN_ADDR", tc.listen(t))
			start := time.Now()
			code, stdout, stderr := runCLI(append([]string{"healthcheck"}, tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.wantCode, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q does not mention %q", stderr, tc.stderr)
			}
			if tc.name != "bad flag" && strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr)
			}
			if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
				t.Errorf("took %v", elapsed)
			}
		})
	}
}

// The healthcheck against the real server: healthy while it serves, not
// once it has stopped.
func TestHealthcheckAgainstServe(t *testing.T) {
	dbURL := cleanEnv(t)
	c := spawnServe(t, "DATABASE_URL="+dbURL)
	t.Setenv("LISTEN_ADDR", c.listen)
	if code, _, stderr := runCLI("healthcheck"); code != 0 {
		t.Errorf("healthcheck on a ready server: exit %d, stderr %q", code, stderr)
	}
	c.stop(t)
	if code, _, stderr := runCLI("healthcheck"); code != 1 {
		t.Errorf("healthcheck on a stopped server: exit %d, want 1; stderr %q", code, stderr)
	}
}

func TestHealthURL(t *testing.T) {
	tests := []struct{ listen, want string }{
		{":8080", "http://127.0.0.1:8080/readyz"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080/readyz"},
		{"[::]:8080", "http://127.0.0.1:8080/readyz"},
		{"127.0.0.1:9000", "http://127.0.0.1:9000/readyz"},
		{"[::1]:9000", "http://[::1]:9000/readyz"},
		{"localhost:9000", "http://localhost:9000/readyz"},
		{"10.1.2.3:80", "http://10.1.2.3:80/readyz"},
	}
	for _, tc := range tests {
		got, err := healthURL(tc.listen, "/readyz")
		if err != nil || got != tc.want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", tc.listen, got, err, tc.want)
		}
	}
	for _, bad := range []string{"8080", ":0", "host:"} {
		if _, err := healthURL(bad, "/readyz"); err == nil {
			t.Errorf("healthURL(%q): no error", bad)
		}
	}
}
