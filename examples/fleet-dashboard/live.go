package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/keyplane/keyplane/client"
)

// This file makes the page live. The dashboard holds one subscription to
// Keyplane, whatever the number of pages open (follow), and passes on to
// every page, over its own GET /events, what the page draws and nothing
// else (pages):
//
//	Keyplane ──one SSE stream, Bearer kp_…──▶ dashboard ──GET /events, no key──▶ each page
//
// GET /events is a stream of Server-Sent Events, each with one line of
// JSON:
//
//	event: device   a device's status changed: its name, status, when it
//	                was last seen and when the dashboard heard of it; each
//	                has an id, so that a page that reconnects gets those it
//	                missed (Last-Event-ID), among the last ten
//	event: fleet    the figures of GET /api/fleet, read again after devices
//	                changed status (once for every page)
//	event: live     {"live": true} while the dashboard follows Keyplane
//	: keep-alive    a comment, when nothing else was sent for a while

// deviceStatusSubscription is what the dashboard asks Keyplane to stream.
// It asks for no id: the page does not need one.
const deviceStatusSubscription = `subscription FleetDashboard { deviceStatusChanged { name status lastSeenAt } }`

// changeView is the data of an "event: device": a status change as the page
// shows it. Like fleetView, it is written field by field.
type changeView struct {
	Name       string     `json:"name"`
	Status     string     `json:"status"`
	LastSeenAt *time.Time `json:"lastSeenAt,omitempty"`
	// At is when the dashboard heard of the change.
	At time.Time `json:"at"`
}

// liveView is the data of an "event: live".
type liveView struct {
	Live bool `json:"live"`
}

// follow keeps the dashboard subscribed to Keyplane's device status changes
// until ctx ends, and sends the pages what comes. A stream ends sooner or
// later: Keyplane restarts, the connection drops, Keyplane drops the
// dashboard for falling behind (RATE_LIMITED). follow then subscribes
// again, after a wait that doubles after each failure (RetryMin to
// RetryMax, with jitter) and starts over once a stream has lasted a
// minute.
//
// deviceStatusChanged has no cursor to resume from: what changed while no
// stream was open is lost as events. So each time a stream opens, the
// fleet is read again and sent to the pages: the figures catch up, and
// only the list of changes has a gap.
func (s *server) follow(ctx context.Context, k keyplaneStream) {
	pushed := make(chan struct{})
	go func() { defer close(pushed); s.pushFleet(ctx) }()
	defer func() { <-pushed }()

	wait := s.opts.RetryMin
	for {
		started := time.Now()
		err := k.subscribe(ctx, deviceStatusSubscription, func() {
			s.pages.setLive(true)
			s.log.Info("following Keyplane's device status", "keyplane", k.URL)
			s.fleetChanged() // catch up on what changed while no stream was open
		}, s.deviceChanged)
		s.pages.setLive(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			wait = s.opts.RetryMin
		}
		if err == nil {
			err = errors.New("the stream completed: Keyplane is stopping, or ended it")
		}
		refused := errors.Is(err, client.ErrUnauthenticated) || errors.Is(err, client.ErrForbidden)
		var e *client.Error
		switch {
		case refused:
			wait = s.opts.RetryMax // a setting to fix: asking often will not help
		case errors.As(err, &e) && e.RetryAfter > wait:
			wait = min(e.RetryAfter, s.opts.RetryMax)
		}
		pause := wait/2 + rand.N(wait/2+1)
		again := []any{"again_in", pause.Round(time.Millisecond)}
		if refused {
			s.logFailure("follow Keyplane's device status", err, again...)
		} else {
			s.log.Warn("the stream of device status from Keyplane ended; subscribing again", append([]any{"err", err}, again...)...)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		wait = min(2*wait, s.opts.RetryMax)
	}
}

// deviceChanged passes one change on to the pages, and has the figures
// read again.
func (s *server) deviceChanged(data json.RawMessage) {
	var r struct {
		DeviceStatusChanged client.Device `json:"deviceStatusChanged"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		s.log.Warn("a device status change Keyplane sent could not be read", "err", err)
		return
	}
	d := r.DeviceStatusChanged
	change := changeView{Name: displayName(d.Name), Status: string(d.Status), At: s.opts.Now().UTC()}
	if d.LastSeenAt != nil {
		seen := d.LastSeenAt.UTC()
		change.LastSeenAt = &seen
	}
	body, err := json.Marshal(change)
	if err != nil {
		return
	}
	s.pages.publishChange(body)
	s.fleetChanged()
}

// fleetChanged asks pushFleet to read the fleet again. It never blocks:
// changes that come while a reading is under way make one more reading.
func (s *server) fleetChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// pushFleet reads the fleet when devices changed and sends the figures to
// every page: one reading for all of them, at most one every MaxAge, so
// that a burst of changes costs Keyplane a reading or two.
func (s *server) pushFleet(ctx context.Context) {
	gap := max(s.opts.MaxAge, 100*time.Millisecond)
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(last.Add(gap))):
		}
		last = time.Now()
		if body, err := s.fleet(ctx, true); err == nil {
			s.pages.publish(frame(0, "fleet", body))
		}
	}
}

// frame is one Server-Sent Event: an id (none when 0), a type and one line
// of JSON (encoding/json writes no raw newline).
func frame(id uint64, event string, data []byte) []byte {
	var b []byte
	if id > 0 {
		b = fmt.Appendf(b, "id: %d\n", id)
	}
	return fmt.Appendf(b, "event: %s\ndata: %s\n\n", event, data)
}

// pages are the browsers following GET /events. Each has a buffer of
// BrowserBuffer messages; one whose buffer is full when a message comes is
// dropped (its stream ends, and its page reconnects and catches up), so
// that a slow page costs the others nothing and holds no memory without
// bound.
type pages struct {
	buffer, max int

	mu      sync.Mutex
	open    map[*page]struct{}
	closed  bool
	live    bool
	seq     uint64      // the id of the last change
	recent  []sentFrame // the last changes, for a page that (re)connects
	dropped int
}

// page is one GET /events.
type page struct {
	frames chan []byte
	gone   chan struct{} // closed when the page is dropped or the dashboard stops
}

type sentFrame struct {
	id    uint64
	frame []byte
}

// join adds a page. It gets at once whether the dashboard is live and the
// last changes after lastEventID (all of them when there is none, or when
// it is from before a restart). ok is false when the dashboard is stopping
// or follows too many pages.
func (p *pages) join(lastEventID string) (pg *page, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.open) >= p.max {
		return nil, false
	}
	pg = &page{frames: make(chan []byte, p.buffer+recentCount+1), gone: make(chan struct{})}
	pg.frames <- p.liveFrame()
	after, err := strconv.ParseUint(lastEventID, 10, 64)
	if err != nil || after > p.seq {
		after = 0
	}
	for _, f := range p.recent {
		if f.id > after {
			pg.frames <- f.frame
		}
	}
	p.open[pg] = struct{}{}
	return pg, true
}

// leave removes a page whose stream ended.
func (p *pages) leave(pg *page) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropLocked(pg)
}

func (p *pages) dropLocked(pg *page) {
	if _, ok := p.open[pg]; ok {
		delete(p.open, pg)
		close(pg.gone)
	}
}

// publish sends a message to every page, dropping those that fell behind.
func (p *pages) publish(f []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publishLocked(f)
}

func (p *pages) publishLocked(f []byte) {
	for pg := range p.open {
		select {
		case pg.frames <- f:
		default:
			p.dropLocked(pg)
			p.dropped++
		}
	}
}

// publishChange sends a device's change to every page, and keeps it among
// the last ones for pages that connect later.
func (p *pages) publishChange(data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	f := frame(p.seq, "device", data)
	p.recent = append(p.recent, sentFrame{p.seq, f})
	if len(p.recent) > recentCount {
		p.recent = p.recent[1:]
	}
	p.publishLocked(f)
}

// setLive tells the pages whether the dashboard follows Keyplane now.
func (p *pages) setLive(live bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live != live {
		p.live = live
		p.publishLocked(p.liveFrame())
	}
}

func (p *pages) liveFrame() []byte {
	body, _ := json.Marshal(liveView{Live: p.live})
	return frame(0, "live", body)
}

// close ends every page's stream and refuses new ones, as the dashboard
// stops: an open stream would hold http.Server.Shutdown until its timeout.
func (p *pages) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for pg := range p.open {
		p.dropLocked(pg)
	}
}

// stats says how many pages follow, and how many were dropped for falling
// behind.
func (p *pages) stats() (open, dropped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.open), p.dropped
}

// eventsWriteTimeout bounds each write to a page: one whose connection
// stopped reading is cut then.
const eventsWriteTimeout = 10 * time.Second

// serveEvents is GET /events: the stream of one page.
func (s *server) serveEvents(w http.ResponseWriter, r *http.Request) {
	pg, ok := s.pages.join(r.Header.Get("Last-Event-ID"))
	if !ok {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the dashboard follows too many pages, or is stopping", http.StatusServiceUnavailable)
		return
	}
	defer s.pages.leave(pg)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold the stream back
	rc := http.NewResponseController(w)
	write := func(b []byte) error {
		// Each write has a deadline of its own, which also lifts the
		// server's WriteTimeout, meant for answers that end.
		_ = rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	// A page whose stream ends reconnects by itself after retry ms.
	if write([]byte("retry: 2000\n\n")) != nil {
		return
	}
	keepAlive := time.NewTicker(s.opts.KeepAlive)
	defer keepAlive.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-pg.gone:
			return
		case f := <-pg.frames:
			err = write(f)
			keepAlive.Reset(s.opts.KeepAlive)
		case <-keepAlive.C:
			err = write([]byte(": keep-alive\n\n"))
		}
		if err != nil {
			return
		}
	}
}
