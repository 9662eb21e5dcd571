package main

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeMetricsAddr runs `keyplane serve` with KEYPLANE_METRICS_ADDR:
// /metrics answers there, with the build's version, and the public
// listener answers 404 for it.
func TestServeMetricsAddr(t *testing.T) {
	dbURL := cleanEnv(t)
	t.Setenv("KEYPLANE_METRICS_ADDR", "")
	listen, metricsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$")
	cmd.Env = append(os.Environ(), "KEYPLANE_SERVE_CHILD=1", "DATABASE_URL="+dbURL,
		"LISTEN_ADDR="+listen, "KEYPLANE_METRICS_ADDR="+metricsAddr)
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
		if status, _ := get(t, "http://"+metricsAddr+"/metrics"); status == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited early (%v):\n%s", err, output.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer on %s:\n%s", metricsAddr, output.String())
		}
	}

	status, body := get(t, "http://"+metricsAddr+"/metrics")
	if status != http.StatusOK || !strings.Contains(body, `keyplane_build_info{commit=`) || !strings.Contains(body, `version="`+version+`"`) {
		t.Errorf("metrics address: GET /metrics = %d, want 200 with keyplane_build_info of version %s:\n%.2000s", status, version, body)
	}
	if status, _ := get(t, "http://"+listen+"/metrics"); status != http.StatusNotFound {
		t.Errorf("public address: GET /metrics = %d, want 404", status)
	}
	if status, _ := get(t, "http://"+listen+"/healthz"); status != http.StatusOK {
		t.Errorf("public address: GET /healthz = %d, want 200", status)
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
