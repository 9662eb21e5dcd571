// Command fleet-dashboard is a backend for a frontend: a small server that
// holds a Keyplane key and serves a page showing the team's devices, by
// status and by when they were last seen, live. The browser gets derived
// figures from this server and never talks to Keyplane, so it never holds
// the key. One subscription to Keyplane's device status changes, held by
// this server, keeps every open page up to date over GET /events.
//
//	KEYPLANE_KEY=kp_… go run ./examples/fleet-dashboard
//
// It reads KEYPLANE_KEY (a team API key; DEVICES_READ is all it needs),
// KEYPLANE_URL (default http://localhost:8080/graphql) and LISTEN_ADDR
// (default 127.0.0.1:8090). See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keyplane/keyplane/client"
)

// The defaults of the environment.
const (
	defaultKeyplaneURL = "http://localhost:8080/graphql"
	defaultListenAddr  = "127.0.0.1:8090"
)

// The exit codes: a setting to fix, or a failure while running.
const (
	exitConfig  = 2
	exitFailure = 1
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Getenv, os.Stderr))
}

// run serves until ctx ends, and returns the exit code.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	key := client.NewSecret(strings.TrimSpace(getenv("KEYPLANE_KEY")))
	keyplaneURL := orDefault(getenv("KEYPLANE_URL"), defaultKeyplaneURL)
	addr := orDefault(getenv("LISTEN_ADDR"), defaultListenAddr)
	switch {
	case key.IsZero():
		fmt.Fprintln(stderr, "fleet-dashboard: set KEYPLANE_KEY to a Keyplane team API key (kp_…) with the DEVICES_READ scope")
		return exitConfig
	case !strings.HasPrefix(key.Reveal(), "kp_"):
		fmt.Fprintf(stderr, "fleet-dashboard: KEYPLANE_KEY (%s) is not a team API key: it must start with kp_\n", key)
		return exitConfig
	}

	kp := client.New(keyplaneURL,
		client.WithKey(key.Reveal()),
		client.WithUserAgent("fleet-dashboard"),
		client.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}),
	)
	// A key Keyplane refuses, or one without DEVICES_READ, is a setting to
	// fix: say so now rather than on every refresh. Keyplane being down is
	// not: the page says so until it is back.
	if err := check(ctx, kp); err != nil {
		if errors.Is(err, client.ErrUnauthenticated) || errors.Is(err, client.ErrForbidden) {
			fmt.Fprintf(stderr, "fleet-dashboard: Keyplane at %s refuses KEYPLANE_KEY (%s): %v\n", keyplaneURL, key, err)
			return exitConfig
		}
		log.Warn("Keyplane does not answer yet; the page will say so until it does", "keyplane", keyplaneURL, "err", err)
	}

	listener, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "fleet-dashboard: LISTEN_ADDR: %v\n", err)
		return exitConfig
	}
	dashboard := newServer(kp, options{Logger: log})
	srv := &http.Server{
		Handler:           dashboard,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(listener) }()
	log.Info("serving", "url", "http://"+listener.Addr().String()+"/", "keyplane", keyplaneURL, "key", key)

	// One subscription for the whole dashboard. Its HTTP client has no
	// overall timeout, since a stream lasts; a Keyplane that does not
	// answer the request at all is given up on after 15 seconds.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = 15 * time.Second
	followCtx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		dashboard.follow(followCtx, keyplaneStream{URL: keyplaneURL, Key: key, HTTP: &http.Client{Transport: transport}})
	}()
	defer func() { stopFollowing(); <-followed }()

	select {
	case err := <-errs:
		log.Error("serve", "err", err)
		return exitFailure
	case <-ctx.Done():
	}
	// The pages' event streams never end by themselves: end them first, or
	// Shutdown would wait for them until its timeout.
	dashboard.closeEvents()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Error("shut down", "err", err)
		return exitFailure
	}
	return 0
}

// check asks Keyplane for one device, as the page's reading will.
func check(ctx context.Context, kp *client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := kp.Devices(ctx, client.DeviceFilter{}, client.PageOptions{First: 1})
	return err
}

// orDefault returns v, or def when v is empty.
func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v != "" {
		return v
	}
	return def
}
