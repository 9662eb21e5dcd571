package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestServeMetricsAddr runs `keyplane serve` with KEYPLANE_METRICS_ADDR:
// /metrics answers there, with the build's version, and the public
// listener answers 404 for it.
func TestServeMetricsAddr(t *testing.T) {
	dbURL := cleanEnv(t)
	t.Setenv("KEYPLANE_METRICS_ADDR", "")
	metricsAddr := freeAddr(t)
	c := startServe(t, "DATABASE_URL="+dbURL, "KEYPLANE_METRICS_ADDR="+metricsAddr)
	c.waitFor(t, "http://"+metricsAddr+"/metrics")
	listen := c.listen

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

	c.stop(t)
}
