package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// EnrollmentKey lets devices join a team by themselves. A one-use key is
// stored with MaxUses 1.
type EnrollmentKey struct {
	ID          uuid.UUID
	TeamID      uuid.UUID
	Description *string
	Tags        string
	Reusable    bool
	MaxUses     *int
	UsesCount   int
	SecretHash  []byte
	ExpiresAt   *time.Time
	RevokedAt   *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// CreateEnrollmentKey inserts an enrollment key.
func (s *Store) CreateEnrollmentKey(ctx context.Context, k *EnrollmentKey) error {
	return translate(s.with(ctx).Create(k).Error, "enrollment key")
}

// EnrollmentKeyForAuth reads the key an enrollment secret names; not scoped
// to a team, since the team is what it finds out.
func (s *Store) EnrollmentKeyForAuth(ctx context.Context, id uuid.UUID) (*EnrollmentKey, error) {
	var k EnrollmentKey
	if err := s.with(ctx).Where("id = ?", id).Take(&k).Error; err != nil {
		return nil, translate(err, "enrollment key")
	}
	return &k, nil
}

// EnrollmentKey reads one of a team's enrollment keys.
func (s *Store) EnrollmentKey(ctx context.Context, teamID, id uuid.UUID) (*EnrollmentKey, error) {
	var k EnrollmentKey
	if err := s.with(ctx).Where("id = ? AND team_id = ?", id, teamID).Take(&k).Error; err != nil {
		return nil, translate(err, "enrollment key")
	}
	return &k, nil
}

// EnrollmentKeysByID reads several of a team's enrollment keys in one
// query; ids of other teams and unknown ids are simply absent.
func (s *Store) EnrollmentKeysByID(ctx context.Context, teamID uuid.UUID, ids []uuid.UUID) ([]EnrollmentKey, error) {
	var out []EnrollmentKey
	err := s.with(ctx).Where("team_id = ? AND id IN ?", teamID, ids).Find(&out).Error
	return out, translate(err, "enrollment key")
}

// UseEnrollmentKey counts one use of a key, but only while it is live: not
// revoked, not expired, and under its use limit. The condition is what makes
// maxUses hold under concurrent enrollments on both dialects; it reports
// false when the key could not be used.
func (s *Store) UseEnrollmentKey(ctx context.Context, id uuid.UUID, now time.Time) (bool, error) {
	res := s.with(ctx).Model(&EnrollmentKey{}).
		Where("id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) AND (max_uses IS NULL OR uses_count < max_uses)", id, now).
		Updates(map[string]any{"uses_count": gorm.Expr("uses_count + 1"), "updated_at": now})
	return res.RowsAffected > 0, translate(res.Error, "enrollment key")
}

// RevokeEnrollmentKey marks a key revoked, once.
func (s *Store) RevokeEnrollmentKey(ctx context.Context, teamID, id uuid.UUID, now time.Time) (bool, error) {
	res := s.with(ctx).Model(&EnrollmentKey{}).
		Where("id = ? AND team_id = ? AND revoked_at IS NULL", id, teamID).
		Updates(map[string]any{"revoked_at": now, "updated_at": now})
	return res.RowsAffected > 0, translate(res.Error, "enrollment key")
}

// ListEnrollmentKeys reads one keyset page of a team's enrollment keys.
func (s *Store) ListEnrollmentKeys(ctx context.Context, teamID uuid.UUID, args PageArgs) (Page[EnrollmentKey], error) {
	return keysetPage[EnrollmentKey](s, s.with(ctx).Model(&EnrollmentKey{}).Where("team_id = ?", teamID), args, "enrollment key")
}

// CountEnrollmentKeys counts a team's enrollment keys.
func (s *Store) CountEnrollmentKeys(ctx context.Context, teamID uuid.UUID) (int64, error) {
	var n int64
	err := s.with(ctx).Model(&EnrollmentKey{}).Where("team_id = ?", teamID).Count(&n).Error
	return n, translate(err, "enrollment key")
}
