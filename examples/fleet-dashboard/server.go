package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/keyplane/keyplane/client"
)

// static is the page: index.html, app.js, style.css and the icon.
//
//go:embed static
var static embed.FS

// contentSecurityPolicy lets the page load its own files and call its own
// server, and nothing else: no inline script or style, no other origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// options tune the server; the zero value is what main uses.
type options struct {
	// Logger receives what went wrong with Keyplane, in full; the browser
	// only learns that something did. Nil means slog.Default().
	Logger *slog.Logger
	// Timeout bounds one reading of the fleet (every page of it); 0 means
	// 20 seconds.
	Timeout time.Duration
	// MaxAge is how long an answer is served again without asking Keyplane,
	// so that many open pages cost Keyplane no more than one; 0 means 2
	// seconds, a negative value asks every time.
	MaxAge time.Duration
	// Refresh is how often the page asks again; 0 means 5 seconds.
	Refresh time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// The live updates (live.go). KeepAlive is how often an idle GET
	// /events stream gets a comment, so that the browser and proxies keep
	// it open; 0 means 15 seconds. BrowserBuffer is how many messages may
	// wait for one page before it is dropped; 0 means 32. MaxBrowsers
	// bounds the streams open at once; 0 means 1000.
	KeepAlive     time.Duration
	BrowserBuffer int
	MaxBrowsers   int
	// RetryMin and RetryMax bound the wait before subscribing to Keyplane
	// again, which doubles after each failure; 0 means 1 second and 1
	// minute.
	RetryMin, RetryMax time.Duration
}

// server is the dashboard's backend: it holds the Keyplane client, and with
// it the key, and gives the browser derived figures only.
type server struct {
	http.Handler
	kp   *client.Client
	opts options
	log  *slog.Logger

	pages   *pages        // the browsers following GET /events
	changed chan struct{} // devices changed: read the fleet again (pushFleet)

	mu     sync.Mutex // held while Keyplane is asked, so that one request asks at a time
	body   []byte     // the last answer, encoded
	err    error      // or why there is none
	readAt time.Time
}

// newServer returns the dashboard's handler: GET /api/fleet, GET /events
// and the page. kp must hold a key with DEVICES_READ. The events come once
// follow runs; closeEvents ends their streams.
func newServer(kp *client.Client, opts options) *server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = 2 * time.Second
	}
	if opts.Refresh == 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.BrowserBuffer <= 0 {
		opts.BrowserBuffer = 32
	}
	if opts.MaxBrowsers <= 0 {
		opts.MaxBrowsers = 1000
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	s := &server{kp: kp, opts: opts, log: opts.Logger, changed: make(chan struct{}, 1),
		pages: &pages{buffer: opts.BrowserBuffer, max: opts.MaxBrowsers, open: map[*page]struct{}{}}}
	page, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is there, or this does not compile
	}
	files := http.FileServerFS(page)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/fleet", s.serveFleet)
	mux.HandleFunc("GET /events", s.serveEvents)
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	s.Handler = withHeaders(mux)
	return s
}

// closeEvents ends every GET /events stream and refuses new ones, before
// the server shuts down.
func (s *server) closeEvents() { s.pages.close() }

// withHeaders sets the headers every answer carries.
func withHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// errorView is the body of a failed GET /api/fleet. It says nothing of
// the cause: that is in the server's log.
type errorView struct {
	Error string `json:"error"`
}

// keyplaneFailed is all the browser learns when Keyplane fails.
const keyplaneFailed = "Keyplane did not answer; the dashboard's log says why."

func (s *server) serveFleet(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	body, err := s.fleet(r.Context(), false)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		_ = json.NewEncoder(w).Encode(errorView{Error: keyplaneFailed})
		return
	}
	_, _ = w.Write(body)
}

// fleet returns the encoded fleetView, asking Keyplane when the last
// answer is older than MaxAge, or always when fresh is set (devices
// changed). A failure is logged when it happens and served, like an
// answer, for MaxAge.
func (s *server) fleet(ctx context.Context, fresh bool) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if !fresh && !s.readAt.IsZero() && now.Sub(s.readAt) < s.opts.MaxAge {
		return s.body, s.err
	}
	// The reading is shared by every request waiting on the lock: it goes
	// on when the browser that started it goes away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	view, err := readFleet(ctx, s.kp, now)
	if err == nil {
		view.RefreshSeconds = max(int(s.opts.Refresh/time.Second), 1)
		s.body, err = json.Marshal(view)
	}
	if err != nil {
		s.body = nil
		s.logFailure("read the fleet from Keyplane", err)
	}
	s.err, s.readAt = err, now
	return s.body, s.err
}

// logFailure logs what failed with Keyplane, and why. The client's errors
// carry the server's message, code, reason, missing scope and request id,
// and never the key.
func (s *server) logFailure(what string, err error, more ...any) {
	attrs := append([]any{"err", err}, more...)
	switch {
	case errors.Is(err, client.ErrUnauthenticated):
		attrs = append(attrs, "hint", "Keyplane refuses KEYPLANE_KEY: it is wrong, revoked or expired")
	case errors.Is(err, client.ErrForbidden):
		attrs = append(attrs, "hint", "KEYPLANE_KEY needs the DEVICES_READ scope")
	}
	var e *client.Error
	if errors.As(err, &e) && e.RequestID != "" {
		attrs = append(attrs, "request_id", e.RequestID)
	}
	s.log.Error(what, attrs...)
}
