package store

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/db"
)

// EventsChannel is the PostgreSQL channel on which a committed change
// names its team, so that every replica's live readers wake up.
const EventsChannel = "keyplane_events"

// bell calls back, once a change commits, with the team whose audit log
// grew: the doorbell of the live readers in this process. PostgreSQL also
// rings every other replica's through EventsChannel.
type bell struct {
	mu   sync.RWMutex
	ring func(team uuid.UUID)
	// quiet is set on an engine that refuses pg_notify: the other
	// replicas then learn of a change by their poll alone.
	quiet atomic.Bool
}

// CheckNotify asks PostgreSQL for a NOTIFY once, as the server starts. An
// engine that refuses it (a PostgreSQL-compatible one without LISTEN and
// NOTIFY) is not asked again, so that no change fails for it; the error
// says why, for the log.
func (s *Store) CheckNotify(ctx context.Context) error {
	if s.dialect != db.Postgres {
		return nil
	}
	err := s.with(ctx).Exec("SELECT pg_notify(?, '')", EventsChannel).Error
	s.bell.quiet.Store(err != nil)
	return err
}

// OnEvents sets the function told of every team whose audit log grew,
// once what grew it has committed. It is called after the commit, on the
// committing goroutine, and must not block.
func (s *Store) OnEvents(ring func(team uuid.UUID)) {
	s.bell.mu.Lock()
	defer s.bell.mu.Unlock()
	s.bell.ring = ring
}

// announce rings the bell for team once the events written through s commit.
func (s *Store) announce(ctx context.Context, team uuid.UUID) error {
	if s.dialect == db.Postgres && !s.bell.quiet.Load() {
		// Sent at the commit, to every replica, or not at all.
		if err := s.with(ctx).Exec("SELECT pg_notify(?, ?)", EventsChannel, team.String()).Error; err != nil {
			return translate(err, "audit event")
		}
	}
	s.AfterCommit(func() {
		s.bell.mu.RLock()
		ring := s.bell.ring
		s.bell.mu.RUnlock()
		if ring != nil {
			ring(team)
		}
	})
	return nil
}

// EventsAfter reads up to limit of a team's events after the one with id
// after, in the order they committed (see InsertAuditEvents).
func (s *Store) EventsAfter(ctx context.Context, teamID, after uuid.UUID, limit int) ([]AuditEvent, error) {
	page, err := s.ListAuditEvents(ctx, teamID, AuditFilter{}, PageArgs{Limit: limit, After: &after})
	return page.Items, err
}

// LastEvent returns the id of a team's latest committed event, or the nil
// id when it has none.
func (s *Store) LastEvent(ctx context.Context, teamID uuid.UUID) (uuid.UUID, error) {
	var last []uuid.UUID
	err := s.with(ctx).Model(&AuditEvent{}).Where("team_id = ?", teamID).Order("id DESC").Limit(1).Pluck("id", &last).Error
	if err != nil || len(last) == 0 {
		return uuid.Nil, translate(err, "audit event")
	}
	return last[0], nil
}

// Matches reports whether an event passes the filter, as the audit log's
// SQL conditions (auditQuery) would decide.
func (f AuditFilter) Matches(e *AuditEvent) bool {
	switch {
	case f.Action != "" && e.Action != f.Action,
		f.ActorKeyID != nil && (e.ActorKeyID == nil || *e.ActorKeyID != *f.ActorKeyID),
		f.ActorDeviceID != nil && (e.ActorDeviceID == nil || *e.ActorDeviceID != *f.ActorDeviceID),
		f.TargetID != "" && (e.TargetID == nil || *e.TargetID != f.TargetID),
		f.Since != nil && e.CreatedAt.Before(*f.Since),
		f.Until != nil && !e.CreatedAt.Before(*f.Until):
		return false
	}
	return true
}

// Matches reports whether a device passes the filter at now, as the device
// list's SQL conditions (deviceConditions) would decide.
func (f DeviceFilter) Matches(d *Device, now time.Time, window time.Duration) bool {
	if f.Status != "" && d.StatusAt(now, window) != f.Status {
		return false
	}
	if f.Tag != "" && !strings.Contains(d.Tags, JoinTags([]string{f.Tag})) {
		return false
	}
	if f.Search != "" {
		needle := strings.ToLower(f.Search)
		return strings.Contains(strings.ToLower(d.Name), needle) || strings.Contains(strings.ToLower(d.SerialNumber), needle)
	}
	return true
}
