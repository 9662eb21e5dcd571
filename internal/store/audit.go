package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
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

// InsertAuditEvents writes events; call it inside the mutation's transaction.
func (s *Store) InsertAuditEvents(ctx context.Context, events []AuditEvent) error {
	return translate(s.with(ctx).CreateInBatches(events, 200).Error, "audit event")
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
