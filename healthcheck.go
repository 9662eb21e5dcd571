package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/keyplane/keyplane/internal/config"
)

// Exit codes of healthcheck, as a container runtime reads them: 0 healthy,
// 1 unhealthy. (Docker reserves 2, so a bad LISTEN_ADDR is 1 as well.)
const (
	healthy   = 0
	unhealthy = 1
)

// healthcheck asks the server on this machine whether it is ready: GET
// /readyz (or /healthz with --live) on LISTEN_ADDR's port, exit 0 on 200 and
// 1 otherwise, with one line on stderr. It is the image's HEALTHCHECK, since
// a minimal image has no curl.
//
// Readiness, not liveness, is the default: a container's health gates what
// depends on it (depends_on: service_healthy, a proxy's choice of replica),
// and a replica that cannot reach its database, or is shutting down, has
// nothing to serve. It recovers by itself once the database answers.
func healthcheck(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	live := fs.Bool("live", false, "ask /healthz (the process answers) instead of /readyz (it reaches its database)")
	if err := fs.Parse(args); err != nil {
		return unhealthy
	}
	path := "/readyz"
	if *live {
		path = "/healthz"
	}
	listen := os.Getenv("LISTEN_ADDR")
	if listen == "" {
		listen = config.DefaultListenAddr
	}
	url, err := healthURL(listen, path)
	if err != nil {
		fmt.Fprintf(stderr, "keyplane healthcheck: LISTEN_ADDR: %v\n", err)
		return unhealthy
	}
	client := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "keyplane healthcheck: %v\n", err)
		return unhealthy
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	fmt.Fprintf(stderr, "keyplane healthcheck: GET %s: %s\n", url, resp.Status)
	if resp.StatusCode != http.StatusOK {
		return unhealthy
	}
	return healthy
}

// healthURL is where a process on this machine reaches the server that
// listens on listenAddr: the loopback address when it listens on every
// interface, else the host it names.
func healthURL(listenAddr, path string) (string, error) {
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", listenAddr)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("%q has no fixed port to ask", listenAddr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
