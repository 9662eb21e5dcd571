package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/keyplane/keyplane/db"
)

// Member is a person in a team. Removal is soft: RemovedAt hides the member
// everywhere, frees the email, and keeps the personal keys' provenance.
type Member struct {
	ID        uuid.UUID
	TeamID    uuid.UUID
	Email     string
	EmailKey  string
	Name      *string
	Role      string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
	RemovedAt *time.Time
}

// MemberFilter narrows a list of members; zero fields match everything.
type MemberFilter struct {
	Role   string
	Status string
	Search string
}

// CreateMember inserts a member; a live member with the same email in the
// team is ErrConflict.
func (s *Store) CreateMember(ctx context.Context, m *Member) error {
	return translate(s.with(ctx).Create(m).Error, "a member with this email")
}

// Member reads one of a team's current members.
func (s *Store) Member(ctx context.Context, teamID, id uuid.UUID) (*Member, error) {
	var m Member
	err := s.with(ctx).Where("id = ? AND team_id = ? AND removed_at IS NULL", id, teamID).Take(&m).Error
	if err != nil {
		return nil, translate(err, "member")
	}
	return &m, nil
}

// LockMember reads one of a team's current members and locks the row until
// the transaction ends, so that a change which depends on the member (a
// personal key made for them) cannot interleave with their removal. On
// PostgreSQL a removal running meanwhile makes this wait, then find no
// member; SQLite's transactions already hold the write lock from BEGIN.
// FOR NO KEY UPDATE leaves inserting a key that references the member free.
func (s *Store) LockMember(ctx context.Context, teamID, id uuid.UUID) (*Member, error) {
	var m Member
	err := s.with(ctx).Clauses(clause.Locking{Strength: "NO KEY UPDATE"}).
		Where("id = ? AND team_id = ? AND removed_at IS NULL", id, teamID).Take(&m).Error
	if err != nil {
		return nil, translate(err, "member")
	}
	return &m, nil
}

// MembersByID reads several of a team's current members in one query.
func (s *Store) MembersByID(ctx context.Context, teamID uuid.UUID, ids []uuid.UUID) ([]Member, error) {
	var out []Member
	err := s.with(ctx).Where("team_id = ? AND id IN ? AND removed_at IS NULL", teamID, ids).Find(&out).Error
	return out, translate(err, "member")
}

// MemberRoles reads the roles of several of a team's current members in one
// query; removed and unknown members are absent.
func (s *Store) MemberRoles(ctx context.Context, teamID uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	var rows []struct {
		ID   uuid.UUID
		Role string
	}
	err := s.with(ctx).Model(&Member{}).Select("id, role").
		Where("team_id = ? AND id IN ? AND removed_at IS NULL", teamID, ids).Scan(&rows).Error
	if err != nil {
		return nil, translate(err, "member")
	}
	out := make(map[uuid.UUID]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Role
	}
	return out, nil
}

// UpdateMember writes the given columns of a current member.
func (s *Store) UpdateMember(ctx context.Context, teamID, id uuid.UUID, columns map[string]any, now time.Time) error {
	columns["updated_at"] = now
	res := s.with(ctx).Model(&Member{}).Where("id = ? AND team_id = ? AND removed_at IS NULL", id, teamID).Updates(columns)
	if res.Error == nil && res.RowsAffected == 0 {
		return notFound("member")
	}
	return translate(res.Error, "member")
}

// RemoveMember marks a member removed and revokes their personal keys, in
// the caller's transaction.
func (s *Store) RemoveMember(ctx context.Context, teamID, id uuid.UUID, now time.Time) error {
	if err := s.UpdateMember(ctx, teamID, id, map[string]any{"removed_at": now}, now); err != nil {
		return err
	}
	err := s.with(ctx).Model(&APIKey{}).
		Where("team_id = ? AND owner_id = ? AND revoked_at IS NULL", teamID, id).
		Updates(map[string]any{
			"revoked_at": now, "previous_secret_hash": nil, "previous_secret_expires_at": nil,
			"updated_at": now, "version": gorm.Expr("version + 1"),
		}).Error
	return translate(err, "api key")
}

// CountMembersWithRole counts a team's current members holding a role.
func (s *Store) CountMembersWithRole(ctx context.Context, teamID uuid.UUID, role string) (int64, error) {
	var n int64
	err := s.with(ctx).Model(&Member{}).Where("team_id = ? AND role = ? AND removed_at IS NULL", teamID, role).Count(&n).Error
	return n, translate(err, "member")
}

func (s *Store) memberQuery(ctx context.Context, teamID uuid.UUID, f MemberFilter) *gorm.DB {
	q := s.with(ctx).Model(&Member{}).Where("team_id = ? AND removed_at IS NULL", teamID)
	if f.Role != "" {
		q = q.Where("role = ?", f.Role)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Search != "" {
		p, lower := likeContains(f.Search), db.UnicodeLower(s.dialect)
		q = q.Where(`(email_key LIKE ? ESCAPE '\' OR `+lower+`(COALESCE(name, '')) LIKE ? ESCAPE '\')`, p, p)
	}
	return q
}

// ListMembers reads one keyset page of a team's current members.
func (s *Store) ListMembers(ctx context.Context, teamID uuid.UUID, f MemberFilter, args PageArgs) (Page[Member], error) {
	return keysetPage[Member](s, s.memberQuery(ctx, teamID, f), args, "member")
}

// CountMembers counts a team's current members that match a filter.
func (s *Store) CountMembers(ctx context.Context, teamID uuid.UUID, f MemberFilter) (int64, error) {
	var n int64
	err := s.memberQuery(ctx, teamID, f).Count(&n).Error
	return n, translate(err, "member")
}
