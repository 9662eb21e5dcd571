package live

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/stack"
	"github.com/keyplane/keyplane/internal/store"
)

// subscription is one subscriber. Until it is registered with its team,
// its own goroutine replays into out; after, only the hub sends, under
// h.mu, so out is closed under h.mu by whoever ends it.
type subscription struct {
	hub *Hub
	req Request
	// principal is the key as last read; cursor the last event offered.
	principal  *auth.Principal
	cursor     uuid.UUID
	registered bool
	ended      bool
	err        error
	offer      func(Event) bool
	close      func()
	drain      func()
	timer      *time.Timer
	cancel     context.CancelFunc
	stop       func() bool
}

// Stream is a subscriber's handle: the events arrive on the channel
// Subscribe returns; once it is closed, Err tells why.
type Stream struct {
	s *subscription
}

// Err is why the stream ended: nil when its client left or the server is
// stopping, the refusal otherwise (UNAUTHENTICATED once its key stops
// working, FORBIDDEN once it may no longer read, RATE_LIMITED when it fell
// behind).
func (st Stream) Err() error {
	st.s.hub.mu.Lock()
	defer st.s.hub.mu.Unlock()
	return st.s.err
}

// Principal is the subscriber's key as last read, for resolving the fields
// of the next event with the power the key has now.
func (st Stream) Principal() *auth.Principal {
	st.s.hub.mu.Lock()
	defer st.s.hub.mu.Unlock()
	return st.s.principal
}

// Subscribe starts a subscription for req until ctx ends. conv turns each
// event into what the channel carries. The key is read again first, so a
// connection opened long ago subscribes with the key as it is now.
func Subscribe[T any](ctx context.Context, h *Hub, req Request, conv func(Event) T) (<-chan T, Stream, error) {
	if req.Principal == nil || req.Principal.Kind != auth.KindAPIKey {
		return nil, Stream{}, apperr.New(apperr.Unauthenticated, "a subscription needs a team API key")
	}
	// Where the stream starts is read before the key is: a change of the
	// key that commits before it is seen by the read of the key, and one
	// after it is among the events the stream reads, each of which is
	// checked (changesKeys).
	// Both reads run off this goroutine, which lives as long as the stream
	// (stack.Shallow).
	type begun struct {
		start uuid.UUID
		p     *auth.Principal
	}
	b, err := stack.Shallow(func() (begun, error) {
		start, err := h.store.LastEvent(ctx, req.Principal.TeamID)
		if err != nil {
			return begun{}, err
		}
		p, err := auth.Refresh(ctx, h.store, req.Principal)
		return begun{start, p}, err
	})
	if err != nil {
		return nil, Stream{}, err
	}
	start, p := b.start, b.p
	if !p.Admits(req.Client) {
		return nil, Stream{}, &apperr.Error{Code: apperr.Unauthenticated, Reason: string(auth.ReasonIPNotAllowed), Message: "this key does not admit this address"}
	}
	if err := req.Check(p); err != nil {
		return nil, Stream{}, err
	}
	out := make(chan T, h.o.Buffer)
	s := &subscription{hub: h, req: req, principal: p,
		offer: func(e Event) bool {
			select {
			case out <- conv(e):
				return true
			default:
				return false
			}
		},
		close: func() { close(out) },
		drain: func() {
			for {
				select {
				case <-out:
				default:
					return
				}
			}
		},
	}
	if err := h.admit(s); err != nil {
		return nil, Stream{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	h.mu.Lock()
	s.cancel = cancel
	s.stop = context.AfterFunc(ctx, func() { h.end(s, nil) })
	if !s.ended {
		s.setPrincipal(p)
	}
	h.mu.Unlock()
	go s.start(ctx, start, func(e Event) bool {
		select {
		case out <- conv(e):
			return true
		case <-ctx.Done():
			return false
		}
	})
	return out, Stream{s}, nil
}

// admit counts a new subscription against the limits.
func (h *Hub) admit(s *subscription) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.take(&h.subs, s.principal.KeyID, "subscriptions", "end one first"); err != nil {
		return err
	}
	h.all[s] = struct{}{}
	return nil
}

// start replays what the subscriber asked for, then registers it with its
// team so that the hub hands it what commits next. Should the hub have
// handed out events past the replay meanwhile, it replays those too. Each
// replayed event that may have changed the key is checked as the hub
// checks it (reauthorize), so a subscription that is still replaying is
// ended by a revocation as one that is registered is.
func (s *subscription) start(ctx context.Context, cursor uuid.UUID, send func(Event) bool) {
	h, teamID := s.hub, s.principal.TeamID
	var err error
	from := cursor
	if s.req.Audit != nil && s.req.After != nil {
		from = *s.req.After
	}
	for err == nil {
		if s.req.Audit != nil {
			cursor, err = s.replay(ctx, from, cursor, send)
			if err != nil {
				break
			}
		}
		h.mu.Lock()
		if s.ended {
			break
		}
		t := h.teams[teamID]
		if t == nil {
			t = &team{head: cursor, subs: map[*subscription]struct{}{}}
			h.teams[teamID] = t
		}
		if bytes.Compare(t.head[:], cursor[:]) <= 0 || s.req.Audit == nil {
			t.subs[s] = struct{}{}
			s.registered, s.cursor = true, cursor
			h.mu.Unlock()
			return
		}
		from, cursor = cursor, t.head
		h.mu.Unlock()
	}
	if err != nil {
		h.end(s, err)
		h.mu.Lock()
	}
	// Ended before it was registered: out is this goroutine's to close.
	s.close()
	h.mu.Unlock()
}

// replay sends the events after from and up to through that the
// subscriber asked for, and returns through. Every event of the range is
// read, not only those the filter passes, so that each change of the key
// among them is seen.
func (s *subscription) replay(ctx context.Context, from, through uuid.UUID, send func(Event) bool) (uuid.UUID, error) {
	h := s.hub
	for bytes.Compare(from[:], through[:]) < 0 {
		events, err := h.store.EventsAfter(ctx, s.principal.TeamID, from, readPage)
		if err != nil {
			return from, err
		}
		for i := range events {
			e := &events[i]
			if bytes.Compare(e.ID[:], through[:]) > 0 {
				return through, nil
			}
			from = e.ID
			if changesKeys(e.Action) && s.about(e) {
				fresh, err := auth.Refresh(ctx, h.store, s.principal)
				h.mu.Lock()
				h.rule(s, fresh, err)
				ended := s.ended
				h.mu.Unlock()
				if ended {
					return from, context.Canceled
				}
			}
			if s.req.Audit.Matches(e) && !send(Event{Audit: e}) {
				return from, ctx.Err()
			}
		}
		if len(events) < readPage {
			break
		}
	}
	return through, nil
}

// about tells whether an event is about the subscriber's key or its owner.
func (s *subscription) about(e *store.AuditEvent) bool {
	p := s.principal
	return e.TargetID != nil && (*e.TargetID == ids.Encode(ids.APIKey, p.KeyID) ||
		p.OwnerID != nil && *e.TargetID == ids.Encode(ids.Member, *p.OwnerID))
}

// end ends a subscription once, with why.
func (h *Hub) end(s *subscription, why error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endLocked(s, why)
}

// endLocked ends a subscription; h.mu is held. A registered one's channel
// is closed here; one still replaying closes its own as it stops.
func (h *Hub) endLocked(s *subscription, why error) {
	if s.ended {
		return
	}
	s.ended, s.err = true, why
	if errors.Is(why, context.Canceled) {
		s.err = nil
	}
	if s.err != nil {
		// Events waiting in the buffer were meant for the key as it was.
		s.drain()
	}
	delete(h.all, s)
	h.subs.give(s.principal.KeyID)
	if s.registered {
		teamID := s.principal.TeamID
		if t := h.teams[teamID]; t != nil {
			delete(t.subs, s)
			if len(t.subs) == 0 {
				delete(h.teams, teamID)
				delete(h.dirty, teamID)
			}
		}
		s.close()
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.stop != nil {
		s.stop()
	}
	if s.cancel != nil {
		s.cancel()
	}
}

// setPrincipal takes the key as last read, and ends the subscription by
// itself when the key expires or its secret's grace window ends. h.mu is
// held.
func (s *subscription) setPrincipal(p *auth.Principal) {
	s.principal = p
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	until := p.Until()
	if until == nil {
		return
	}
	expired := p.ExpiresAt != nil && !p.ExpiresAt.After(*until)
	s.timer = time.AfterFunc(time.Until(*until), func() {
		if expired {
			s.hub.end(s, &apperr.Error{Code: apperr.Unauthenticated, Reason: string(auth.ReasonExpired), Message: "this key expired"})
			return
		}
		s.hub.end(s, &apperr.Error{Code: apperr.Unauthenticated, Reason: string(auth.ReasonRevoked), Message: "this key's secret was rotated away: its grace window ended"})
	})
}
