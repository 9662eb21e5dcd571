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
	listen, pprofAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$")
	cmd.Env = append(os.Environ(), "KEYPLANE_SERVE_CHILD=1", "DATABASE_URL="+dbURL,
		"LISTEN_ADDR="+listen, "KEYPLANE_PPROF_ADDR="+pprofAddr)
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, _ := get(t, "http://"+listen+"/healthz"); status == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited early (%v):\n%s", err, output.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer on %s:\n%s", listen, output.String())
		}
	}

	if status, body := get(t, "http://"+pprofAddr+"/debug/pprof/"); status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof address: GET /debug/pprof/ = %d, want 200 with the profile index", status)
	}
	if status, _ := get(t, "http://"+listen+"/debug/pprof/"); status != http.StatusNotFound {
		t.Errorf("public address: GET /debug/pprof/ = %d, want 404", status)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM serve exited with %v, want 0:\n%s", err, output.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM:\n%s", output.String())
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
