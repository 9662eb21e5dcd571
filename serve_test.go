package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testlog"
)

// TestServeChild is the server process of TestServeProcess; alone it skips.
func TestServeChild(t *testing.T) {
	if os.Getenv("KEYPLANE_SERVE_CHILD") != "1" {
		t.Skip("runs only as TestServeProcess's child")
	}
	os.Exit(run([]string{"serve"}, os.Stdout, os.Stderr))
}

// TestServeProcess runs `keyplane serve` as its own process: it answers on
// LISTEN_ADDR, serves the profiler only on KEYPLANE_PPROF_ADDR, and exits 0
// on SIGTERM.
func TestServeProcess(t *testing.T) {
	dbURL := cleanEnv(t)
	pprofAddr := freeAddr(t)
	c := spawnServe(t, "DATABASE_URL="+dbURL, "KEYPLANE_PPROF_ADDR="+pprofAddr)
	listen := c.listen

	if status, body := get(t, "http://"+pprofAddr+"/debug/pprof/"); status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof address: GET /debug/pprof/ = %d, want 200 with the profile index", status)
	}
	if status, _ := get(t, "http://"+listen+"/debug/pprof/"); status != http.StatusNotFound {
		t.Errorf("public address: GET /debug/pprof/ = %d, want 404", status)
	}

	c.stop(t)
}

// servedChild is `keyplane serve` running as its own process (see
// TestServeChild), with stderr a pipe: not a terminal.
type servedChild struct {
	cmd    *exec.Cmd
	output *testlog.Buffer
	// exited is closed once the child has exited, with err how.
	exited chan struct{}
	err    error
	listen string
}

// spawnServe starts `keyplane serve` on a fresh address with env added to
// the test's environment, and waits until it answers /healthz.
func spawnServe(t *testing.T, env ...string) *servedChild {
	t.Helper()
	c := startServe(t, env...)
	c.waitFor(t, "http://"+c.listen+"/healthz")
	return c
}

// startServe starts `keyplane serve` as spawnServe does, without waiting.
func startServe(t *testing.T, env ...string) *servedChild {
	t.Helper()
	c := &servedChild{output: &testlog.Buffer{}, exited: make(chan struct{}), listen: freeAddr(t)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestServeChild$")
	c.cmd.Env = append(append(os.Environ(), "KEYPLANE_SERVE_CHILD=1", "LISTEN_ADDR="+c.listen), env...)
	c.cmd.Stdout, c.cmd.Stderr = c.output, c.output
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); <-c.exited })
	return c
}

// waitFor waits until a GET of url answers 200, and fails the test if the
// child exits first or nothing answers within 30s.
func (c *servedChild) waitFor(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, _ := get(t, url); status == http.StatusOK {
			return
		}
		select {
		case <-c.exited:
			t.Fatalf("serve exited early (%v):\n%s", c.err, c.output.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer on %s:\n%s", url, c.output.String())
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (c *servedChild) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
		if c.err != nil {
			t.Errorf("after SIGTERM serve exited with %v, want 0:\n%s", c.err, c.output.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM:\n%s", c.output.String())
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// get returns a GET's status and body, or 0 when nothing answers.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
