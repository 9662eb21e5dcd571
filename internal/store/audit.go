package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/keyplane/keyplane/internal/ids"
)

// AuditEvent records one committed change to a team.
type AuditEvent struct {
	ID            uuid.UUID
	TeamID        uuid.UUID
	Action        string
	ActorKeyID    *uuid.UUID
	ActorDeviceID *uuid.UUID
	TargetID      *string
	IP            *string `gorm:"column:ip"`
	UserAgent     *string
	CreatedAt     time.Time
}

// AuditFilter narrows the audit log; zero fields match everything.
type AuditFilter struct {
	Action        string
	ActorKeyID    *uuid.UUID
	ActorDeviceID *uuid.UUID
	TargetID      string
	Since         *time.Time
	Until         *time.Time
}

// InsertAuditEvents writes one team's events, in the order given; call it
// inside the change's transaction. It holds the team's lock to the commit
// and gives each event an id after the team's last one, so that a team's
// log in id order is the order its changes committed in: a reader that has
// seen every event up to an id will never see an earlier one appear. Live
// subscriptions resume from an id on that promise. Take the team's lock
// first in a change that also locks other rows, as auth.InTx does, so that
// two changes cannot wait on each other.
func (s *Store) InsertAuditEvents(ctx context.Context, events []AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	team := events[0].TeamID
	if err := s.LockTeam(ctx, team); err != nil {
		return err
	}
	prev, err := s.LastEvent(ctx, team)
	if err != nil {
		return err
	}
	for i := range events {
		if events[i].TeamID != team {
			return fmt.Errorf("store: audit events of two teams in one insert")
		}
		events[i].ID = ids.After(prev)
		prev = events[i].ID
	}
	if err := s.with(ctx).CreateInBatches(events, 200).Error; err != nil {
		return translate(err, "audit event")
	}
	return s.announce(ctx, team)
}

// AuditEventsByID reads several of a team's events in one query; ids of
// other teams and unknown ids are simply absent.
func (s *Store) AuditEventsByID(ctx context.Context, teamID uuid.UUID, ids []uuid.UUID) ([]AuditEvent, error) {
	var out []AuditEvent
	err := s.with(ctx).Where("team_id = ? AND id IN ?", teamID, ids).Find(&out).Error
	return out, translate(err, "audit event")
}

func (s *Store) auditQuery(ctx context.Context, teamID uuid.UUID, f AuditFilter) *gorm.DB {
	q := s.with(ctx).Model(&AuditEvent{}).Where("team_id = ?", teamID)
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.ActorKeyID != nil {
		q = q.Where("actor_key_id = ?", *f.ActorKeyID)
	}
	if f.ActorDeviceID != nil {
		q = q.Where("actor_device_id = ?", *f.ActorDeviceID)
	}
	if f.TargetID != "" {
		q = q.Where("target_id = ?", f.TargetID)
	}
	if f.Since != nil {
		q = q.Where("created_at >= ?", *f.Since)
	}
	if f.Until != nil {
		q = q.Where("created_at < ?", *f.Until)
	}
	return q
}

// ListAuditEvents reads one keyset page of a team's audit log.
func (s *Store) ListAuditEvents(ctx context.Context, teamID uuid.UUID, f AuditFilter, args PageArgs) (Page[AuditEvent], error) {
	return keysetPage[AuditEvent](s, s.auditQuery(ctx, teamID, f), args, "audit event")
}

// CountAuditEvents counts a team's events that match a filter.
func (s *Store) CountAuditEvents(ctx context.Context, teamID uuid.UUID, f AuditFilter) (int64, error) {
	var n int64
	err := s.auditQuery(ctx, teamID, f).Count(&n).Error
	return n, translate(err, "audit event")
}
