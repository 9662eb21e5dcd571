// Package live streams what commits to subscribers as it commits: a team's
// audit log, and its devices' status changes, which are audit events too.
//
// The audit log is the stream. A Hub is the one reader of a process: rung
// by a doorbell (PostgreSQL's NOTIFY from any replica, the store's commit
// hook in this one) or by a slow poll, it reads each team's new events once,
// in the order they committed, and hands them to every subscriber of that
// team, each behind its own cursor. A missed ring loses nothing: the next
// read starts from the last event handed out. A subscriber that does not
// keep up is dropped, never buffered without bound; one that resumes with
// the cursor of the last event it saw gets every later event exactly once.
//
// Who may see what is decided as for a query: the request's check (the
// domain service's own) when it subscribes, and again whenever an event may
// have changed the key's power (a revocation, a rotation, a change of its
// owner), from the database once per key, not per subscriber or event. A
// key's expiry and the end of a rotation's grace window end its
// subscriptions on a timer.
package live

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/audit"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
)

// Options bound a Hub. Every field must be positive; internal/config holds
// the defaults.
type Options struct {
	// PerKey is how many subscriptions one key may hold in this process.
	PerKey int
	// Max is how many subscriptions this process holds at most.
	Max int
	// Buffer is how many events may wait for one subscriber; one more
	// drops it.
	Buffer int
	// Poll is how often every subscribed team's log is read even when no
	// doorbell rang: the safety net.
	Poll time.Duration
	// Window is how recently a device must have been seen to be ONLINE,
	// for the status filter of deviceStatusChanged.
	Window time.Duration
	Logger *slog.Logger
}

// Event is what a subscriber receives: an audit event, or a device whose
// status changed, as it is now.
type Event struct {
	Audit  *store.AuditEvent
	Device *store.Device
}

// Request is what to subscribe to, for whom.
type Request struct {
	Principal *auth.Principal
	// Client is the subscriber's address, which the key's allowed networks
	// must admit for as long as the subscription lasts.
	Client string
	// Check is the domain's read rule for this subscription; it is asked
	// again with the key as it is now whenever the key may have changed.
	Check func(p *auth.Principal) error
	// Audit asks for the audit log's events that match it; After, when
	// set, replays those after that event first.
	Audit *store.AuditFilter
	After *uuid.UUID
	// Devices asks for the status changes of the devices that match it.
	Devices *store.DeviceFilter
}

// readPage is how many events the hub reads at once.
const readPage = 500

// retryRead is how soon a failed read of a team's log is tried again.
const retryRead = 100 * time.Millisecond

// Hub is a process's one reader of the live events.
type Hub struct {
	store *store.Store
	o     Options

	mu    sync.Mutex
	teams map[uuid.UUID]*team
	// all is every subscription admitted, replaying or registered; subs
	// counts them and conns the WebSocket connections, each held to the
	// limits (PerKey, Max).
	all    map[*subscription]struct{}
	subs   quota
	conns  quota
	dirty  map[uuid.UUID]struct{}
	closed bool
	// dropped counts subscribers ended for falling behind.
	dropped int64

	wake chan struct{}
}

// team is the subscribers of one team and how far its log has been read.
type team struct {
	head uuid.UUID
	subs map[*subscription]struct{}
}

// NewHub returns a hub on s; Run starts it.
func NewHub(s *store.Store, o Options) *Hub {
	return &Hub{store: s, o: o, teams: map[uuid.UUID]*team{}, all: map[*subscription]struct{}{}, subs: quota{per: map[uuid.UUID]int{}}, conns: quota{per: map[uuid.UUID]int{}},
		dirty: map[uuid.UUID]struct{}{}, wake: make(chan struct{}, 1)}
}

// Ring tells the hub that team's log grew. It never blocks.
func (h *Hub) Ring(teamID uuid.UUID) {
	h.mu.Lock()
	if _, ok := h.teams[teamID]; ok {
		h.dirty[teamID] = struct{}{}
	}
	h.mu.Unlock()
	h.signal()
}

// RingAll tells the hub that any log may have grown, as when its doorbell
// was away.
func (h *Hub) RingAll() {
	h.mu.Lock()
	for id := range h.teams {
		h.dirty[id] = struct{}{}
	}
	h.mu.Unlock()
	h.signal()
}

func (h *Hub) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Run reads and hands out events until ctx ends, then ends every
// subscription, so that the streams finish and the server can stop.
func (h *Hub) Run(ctx context.Context) {
	poll := time.NewTicker(h.o.Poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			h.Close()
			return
		case <-h.wake:
		case <-poll.C:
			h.RingAll()
		}
		for _, id := range h.takeDirty() {
			if err := h.pump(ctx, id); err != nil && ctx.Err() == nil {
				// Read from the same place again soon; the connection
				// that failed has left the pool.
				h.o.Logger.WarnContext(ctx, "live events: read the audit log", "team", ids.Encode(ids.Team, id), "err", err)
				time.AfterFunc(retryRead, func() { h.Ring(id) })
			}
		}
	}
}

// Subscriptions reports how many subscriptions the process holds, and how
// many were dropped for falling behind.
func (h *Hub) Subscriptions() (active int, dropped int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subs.total, h.dropped
}

func (h *Hub) takeDirty() []uuid.UUID {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]uuid.UUID, 0, len(h.dirty))
	for id := range h.dirty {
		out = append(out, id)
		delete(h.dirty, id)
	}
	return out
}

// pump reads a team's events after the last one handed out and hands each
// to the team's subscribers, in order.
func (h *Hub) pump(ctx context.Context, teamID uuid.UUID) error {
	for {
		h.mu.Lock()
		t := h.teams[teamID]
		if t == nil {
			h.mu.Unlock()
			return nil
		}
		head := t.head
		h.mu.Unlock()
		events, err := h.store.EventsAfter(ctx, teamID, head, readPage)
		if err != nil || len(events) == 0 {
			return err
		}
		devices, err := h.devicesOf(ctx, teamID, events)
		if err != nil {
			return err
		}
		now := time.Now()
		for i := range events {
			e := &events[i]
			if changesKeys(e.Action) {
				h.reauthorize(ctx, teamID, e)
			}
			h.mu.Lock()
			t := h.teams[teamID]
			if t == nil {
				h.mu.Unlock()
				return nil
			}
			for s := range t.subs {
				h.offer(s, e, devices, now)
			}
			t.head = e.ID
			h.mu.Unlock()
		}
		if len(events) < readPage {
			return nil
		}
	}
}

// statusActions are the events that change what a device's status is.
var statusActions = map[string]bool{audit.DeviceOnline: true, audit.DeviceOffline: true, audit.DeviceRevoke: true}

// devicesOf reads, in one query, the devices whose status the events
// changed: a subscriber may register for them while the page is handed out.
func (h *Hub) devicesOf(ctx context.Context, teamID uuid.UUID, events []store.AuditEvent) (map[string]*store.Device, error) {
	var want []uuid.UUID
	for _, e := range events {
		if statusActions[e.Action] && e.TargetID != nil {
			if id, err := ids.DecodeAs(ids.Device, *e.TargetID); err == nil {
				want = append(want, id)
			}
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	rows, err := h.store.DevicesByID(ctx, teamID, want)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*store.Device, len(rows))
	for i := range rows {
		out[ids.Encode(ids.Device, rows[i].ID)] = &rows[i]
	}
	return out, nil
}

// offer hands one event to one subscriber, if it is past the subscriber's
// cursor and passes its filter; a subscriber whose buffer is full is
// dropped. h.mu is held.
func (h *Hub) offer(s *subscription, e *store.AuditEvent, devices map[string]*store.Device, now time.Time) {
	if bytes.Compare(e.ID[:], s.cursor[:]) <= 0 {
		return
	}
	s.cursor = e.ID
	var ev Event
	switch {
	case s.req.Audit != nil:
		if !s.req.Audit.Matches(e) {
			return
		}
		ev.Audit = e
	case s.req.Devices != nil:
		if !statusActions[e.Action] || e.TargetID == nil {
			return
		}
		d := devices[*e.TargetID]
		if d == nil || !s.req.Devices.Matches(d, now, h.o.Window) {
			return
		}
		ev.Device = d
	}
	if !s.offer(ev) {
		h.dropped++
		h.endLocked(s, apperr.New(apperr.RateLimited,
			"this subscription fell %d events behind and was dropped; subscribe again, with after: the cursor of the last event received", h.o.Buffer))
	}
}

// changesKeys tells whether an event may change what a key may do: a key
// revoked, rotated or limited to other networks, a member demoted or
// removed (and their personal keys with them).
func changesKeys(action string) bool {
	return strings.HasPrefix(action, "apiKey.") && action != audit.APIKeyCreate ||
		action == audit.MemberUpdate || action == audit.MemberRemove
}

// reauthorize reads again, once each, the keys of the team's subscribers
// that an event is about, and ends or narrows their subscriptions.
func (h *Hub) reauthorize(ctx context.Context, teamID uuid.UUID, e *store.AuditEvent) {
	if e.TargetID == nil {
		return
	}
	keys := map[uuid.UUID]*auth.Principal{}
	h.mu.Lock()
	if t := h.teams[teamID]; t != nil {
		for s := range t.subs {
			if s.about(e) {
				keys[s.principal.KeyID] = s.principal
			}
		}
	}
	h.mu.Unlock()
	for keyID, p := range keys {
		fresh, err := auth.Refresh(ctx, h.store, p)
		h.mu.Lock()
		if t := h.teams[teamID]; t != nil {
			for s := range t.subs {
				if s.principal.KeyID == keyID {
					h.rule(s, fresh, err)
				}
			}
		}
		h.mu.Unlock()
	}
}

// rule applies a key read again to one of its subscriptions: it ends when
// the key no longer authenticates, no longer may read what it asked for, or
// no longer admits the subscriber's address; otherwise it goes on with the
// key as it is now. h.mu is held.
func (h *Hub) rule(s *subscription, fresh *auth.Principal, err error) {
	switch {
	case err != nil:
	case !fresh.Admits(s.req.Client):
		err = &apperr.Error{Code: apperr.Unauthenticated, Reason: string(auth.ReasonIPNotAllowed), Message: "this key no longer admits this address"}
	default:
		err = s.req.Check(fresh)
	}
	if err != nil {
		h.endLocked(s, err)
		return
	}
	s.setPrincipal(fresh)
}

// Connect counts a WebSocket connection of a key against the limits of its
// subscriptions (PerKey for one key, Max in all): a connection costs memory
// whether or not it subscribes. release, called once the connection
// closes, gives the place back; calling it again does nothing.
func (h *Hub) Connect(key uuid.UUID) (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.take(&h.conns, key, "connections", "close one first"); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.conns.give(key)
		})
	}, nil
}

// quota counts what each key holds, and all of it.
type quota struct {
	per   map[uuid.UUID]int
	total int
}

// take counts one more of what for key in q, unless the hub is closing or
// q is at a limit; h.mu is held.
func (h *Hub) take(q *quota, key uuid.UUID, what, hint string) error {
	switch {
	case h.closed:
		return apperr.New(apperr.RateLimited, "the server is stopping; try again")
	case q.total >= h.o.Max:
		return apperr.New(apperr.RateLimited, "this server holds its most %s (%d); retry later, or on another replica", what, h.o.Max)
	case q.per[key] >= h.o.PerKey:
		return apperr.New(apperr.RateLimited, "this key holds its most %s on this server (%d); %s", what, h.o.PerKey, hint)
	}
	q.total++
	q.per[key]++
	return nil
}

// give counts one fewer for key.
func (q *quota) give(key uuid.UUID) {
	q.total--
	if q.per[key]--; q.per[key] <= 0 {
		delete(q.per, key)
	}
}

// Close ends every subscription and refuses new ones, as the server stops:
// streams finish, so that the server's shutdown need not wait for them.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.all {
		h.endLocked(s, nil)
	}
}
