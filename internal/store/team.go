package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm/clause"

	"github.com/keyplane/keyplane/db"
)

// Team is a tenant: every other row belongs to exactly one.
type Team struct {
	ID        uuid.UUID
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// CreateTeam inserts a team.
func (s *Store) CreateTeam(ctx context.Context, t *Team) error {
	return translate(s.with(ctx).Create(t).Error, "team")
}

// Team reads one team.
func (s *Store) Team(ctx context.Context, id uuid.UUID) (*Team, error) {
	var t Team
	if err := s.with(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
		return nil, translate(err, "team")
	}
	return &t, nil
}

// HasTeams reports whether any team exists (the first start creates one).
func (s *Store) HasTeams(ctx context.Context) (bool, error) {
	var n int64
	err := s.with(ctx).Model(&Team{}).Limit(1).Count(&n).Error
	return n > 0, translate(err, "team")
}

// RenameTeam sets a team's name.
func (s *Store) RenameTeam(ctx context.Context, id uuid.UUID, name string, now time.Time) error {
	res := s.with(ctx).Model(&Team{}).Where("id = ?", id).Updates(map[string]any{"name": name, "updated_at": now})
	if res.Error == nil && res.RowsAffected == 0 {
		return notFound("team")
	}
	return translate(res.Error, "team")
}

// LockTeam serialises the team's rule-checking mutations inside a
// transaction: rules such as "one key with API_KEYS_WRITE stays active" read
// then write, and two of them must not interleave. PostgreSQL takes a row
// lock; SQLite drops the clause, and its transactions already hold the
// database's write lock from BEGIN (see db's _txlock=immediate). The lock
// is FOR NO KEY UPDATE, which does not conflict with the key-share lock
// that inserting a row referencing the team takes (an audit event): with
// FOR UPDATE, two mutations that each inserted an event before locking the
// team deadlocked.
func (s *Store) LockTeam(ctx context.Context, id uuid.UUID) error {
	if s.locked != nil && *s.locked == id {
		// Held already: a lock is kept to the transaction's end.
		return nil
	}
	var t Team
	err := s.with(ctx).Clauses(clause.Locking{Strength: "NO KEY UPDATE"}).Select("id").Where("id = ?", id).Take(&t).Error
	if err == nil && s.locked != nil {
		*s.locked = id
	}
	return translate(err, "team")
}

// LockTeamsForBootstrap keeps two processes that start on an empty database
// at once from both creating a first team: the second waits, then sees the
// first one's team. SQLite's transactions already hold the write lock.
func (s *Store) LockTeamsForBootstrap(ctx context.Context) error {
	if s.dialect != db.Postgres {
		return nil
	}
	return translate(s.with(ctx).Exec("LOCK TABLE teams IN SHARE ROW EXCLUSIVE MODE").Error, "team")
}
