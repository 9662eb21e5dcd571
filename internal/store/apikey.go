package store

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/scope"
)

// APIKey is a team API key. The secret is never stored, only its hash.
type APIKey struct {
	ID                      uuid.UUID
	TeamID                  uuid.UUID
	Name                    string
	Description             *string
	Scopes                  string
	SecretHash              []byte
	PreviousSecretHash      []byte
	PreviousSecretExpiresAt *time.Time
	RotatedAt               *time.Time
	ExpiresAt               *time.Time
	RevokedAt               *time.Time
	LastUsedAt              *time.Time
	LastUsedIP              *string `gorm:"column:last_used_ip"`
	AllowedCIDRs            string  `gorm:"column:allowed_cidrs"`
	CreatedByID             *uuid.UUID
	OwnerID                 *uuid.UUID
	Version                 int64
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// apiKeyColumns are the columns of api_keys, in the order fields scans them.
var apiKeyColumns = []string{"id", "team_id", "name", "description", "scopes", "secret_hash", "previous_secret_hash",
	"previous_secret_expires_at", "rotated_at", "expires_at", "revoked_at", "last_used_at", "last_used_ip",
	"allowed_cidrs", "created_by_id", "owner_id", "version", "created_at", "updated_at"}

func (k *APIKey) columns() []string { return apiKeyColumns }

func (k *APIKey) fields() []any {
	return []any{&k.ID, &k.TeamID, &k.Name, &k.Description, &k.Scopes, &k.SecretHash, &k.PreviousSecretHash,
		&k.PreviousSecretExpiresAt, &k.RotatedAt, &k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt, &k.LastUsedIP,
		&k.AllowedCIDRs, &k.CreatedByID, &k.OwnerID, &k.Version, &k.CreatedAt, &k.UpdatedAt}
}

// APIKeyStatus is a key's state at an instant.
type APIKeyStatus string

// The states of an API key.
const (
	KeyActive  APIKeyStatus = "ACTIVE"
	KeyExpired APIKeyStatus = "EXPIRED"
	KeyRevoked APIKeyStatus = "REVOKED"
)

// StatusAt returns the key's state at now: revocation wins over expiry.
func (k *APIKey) StatusAt(now time.Time) APIKeyStatus {
	switch {
	case k.RevokedAt != nil:
		return KeyRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return KeyExpired
	default:
		return KeyActive
	}
}

// CIDRs returns the key's allowed networks; none means any address.
func (k *APIKey) CIDRs() []string {
	if k.AllowedCIDRs == "" {
		return []string{}
	}
	return strings.Split(k.AllowedCIDRs, ",")
}

// JoinCIDRs returns the storage form of a list of networks.
func JoinCIDRs(cidrs []string) string { return strings.Join(cidrs, ",") }

// APIKeyFilter narrows a list of keys; zero fields match everything.
type APIKeyFilter struct {
	Status APIKeyStatus
	Search string
	// Owner narrows to one member's personal keys.
	Owner *uuid.UUID
}

// AuthKey is a key as authentication needs it: with the role of its owner,
// for a personal key, since the role caps the key's scopes.
type AuthKey struct {
	APIKey    `gorm:"embedded"`
	OwnerRole *string
}

// APIKeyForAuth reads the key a credential names, and its owner's role, in
// one statement. It is the one query not scoped to a team: the team is what
// it finds out. It reads only the columns the check needs (the others stay
// zero), and reads members only for a personal key. The owner's role is null
// for a team key, and for a personal key whose owner was removed (whose keys
// are revoked with them).
func (s *Store) APIKeyForAuth(ctx context.Context, id uuid.UUID) (*AuthKey, error) {
	r, err := s.queryRaw(ctx, authKeySQL, id)
	if err != nil {
		return nil, translate(err, "api key")
	}
	defer r.Close()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return nil, translate(err, "api key")
		}
		return nil, notFound("api key")
	}
	var k AuthKey
	if err := r.Scan(&k.ID, &k.TeamID, &k.Scopes, &k.SecretHash, &k.PreviousSecretHash, &k.PreviousSecretExpiresAt,
		&k.ExpiresAt, &k.RevokedAt, &k.AllowedCIDRs, &k.OwnerID, &k.OwnerRole); err != nil {
		return nil, translate(err, "api key")
	}
	return &k, nil
}

// authKeySQL is APIKeyForAuth's statement, written once. The CASE keeps the
// owner's role from being looked up for a team key; LIMIT is literal, so
// that PostgreSQL can keep a generic plan.
var authKeySQL = newRawSQL(`SELECT id, team_id, scopes, secret_hash, previous_secret_hash, previous_secret_expires_at, ` +
	`expires_at, revoked_at, allowed_cidrs, owner_id, ` +
	`CASE WHEN owner_id IS NULL THEN NULL ELSE ` +
	`(SELECT role FROM members WHERE members.id = api_keys.owner_id AND members.removed_at IS NULL) END ` +
	`FROM api_keys WHERE id = ? LIMIT 1`)

// APIKey reads one of a team's keys.
func (s *Store) APIKey(ctx context.Context, teamID, id uuid.UUID) (*APIKey, error) {
	var k APIKey
	if err := s.with(ctx).Where("id = ? AND team_id = ?", id, teamID).Take(&k).Error; err != nil {
		return nil, translate(err, "api key")
	}
	return &k, nil
}

// APIKeysByID reads several of a team's keys in one query; ids of other
// teams and unknown ids are simply absent from the result.
func (s *Store) APIKeysByID(ctx context.Context, teamID uuid.UUID, ids []uuid.UUID) ([]APIKey, error) {
	var keys []APIKey
	err := s.with(ctx).Where("team_id = ? AND id IN ?", teamID, ids).Find(&keys).Error
	return keys, translate(err, "api key")
}

// CreateAPIKey inserts a key.
func (s *Store) CreateAPIKey(ctx context.Context, k *APIKey) error {
	return translate(s.with(ctx).Create(k).Error, "api key")
}

// UpdateAPIKey writes the given columns of one of a team's keys and bumps
// its version.
func (s *Store) UpdateAPIKey(ctx context.Context, teamID, id uuid.UUID, columns map[string]any, now time.Time) error {
	columns["updated_at"] = now
	columns["version"] = gorm.Expr("version + 1")
	res := s.with(ctx).Model(&APIKey{}).Where("id = ? AND team_id = ?", id, teamID).Updates(columns)
	if res.Error == nil && res.RowsAffected == 0 {
		return notFound("api key")
	}
	return translate(res.Error, "api key")
}

// SecretChange is a rotation: the new secret's hash, and the old secret's
// hash with the end of its grace window (both nil when there is none).
type SecretChange struct {
	SecretHash              []byte
	PreviousSecretHash      []byte
	PreviousSecretExpiresAt *time.Time
	RotatedAt               time.Time
}

// RotateAPIKeySecret replaces a key's secret, but only if the key is still
// at the version the caller read and not revoked. The condition, not a row
// lock, is what makes two concurrent rotations safe on both dialects: the
// loser matches no row and gets ErrStale.
func (s *Store) RotateAPIKeySecret(ctx context.Context, k *APIKey, c SecretChange) error {
	res := s.with(ctx).Model(&APIKey{}).
		Where("id = ? AND team_id = ? AND version = ? AND revoked_at IS NULL", k.ID, k.TeamID, k.Version).
		Updates(map[string]any{
			"secret_hash":                c.SecretHash,
			"previous_secret_hash":       c.PreviousSecretHash,
			"previous_secret_expires_at": c.PreviousSecretExpiresAt,
			"rotated_at":                 c.RotatedAt,
			"updated_at":                 c.RotatedAt,
			"version":                    gorm.Expr("version + 1"),
		})
	if res.Error != nil {
		return translate(res.Error, "api key")
	}
	if res.RowsAffected == 0 {
		return stale("api key")
	}
	return nil
}

// RevokeAPIKey marks a key revoked, once: it reports false when the key was
// revoked already.
func (s *Store) RevokeAPIKey(ctx context.Context, teamID, id uuid.UUID, now time.Time) (bool, error) {
	res := s.with(ctx).Model(&APIKey{}).
		Where("id = ? AND team_id = ? AND revoked_at IS NULL", id, teamID).
		Updates(map[string]any{
			"revoked_at":                 now,
			"previous_secret_hash":       nil,
			"previous_secret_expires_at": nil,
			"updated_at":                 now,
			"version":                    gorm.Expr("version + 1"),
		})
	return res.RowsAffected > 0, translate(res.Error, "api key")
}

// CountKeysHolding counts a team's keys that authenticate at now and may use
// sc: team keys holding it (directly or through the wildcard), and personal
// keys holding it whose current owner's role allows it.
func (s *Store) CountKeysHolding(ctx context.Context, teamID uuid.UUID, sc scope.Scope, now time.Time) (int64, error) {
	var n int64
	err := s.with(ctx).Table("api_keys").
		Joins("LEFT JOIN members ON members.id = api_keys.owner_id AND members.removed_at IS NULL").
		Where("api_keys.team_id = ? AND api_keys.revoked_at IS NULL AND (api_keys.expires_at IS NULL OR api_keys.expires_at > ?)", teamID, now).
		Where("(api_keys.scopes = ? OR api_keys.scopes LIKE ?)", scope.Wildcard.Stored(), scope.StoredMatch(sc)).
		Where("(api_keys.owner_id IS NULL OR members.role IN ?)", scope.RolesGranting(sc)).
		Count(&n).Error
	return n, translate(err, "api key")
}

func (s *Store) apiKeyQuery(ctx context.Context, teamID uuid.UUID, f APIKeyFilter, now time.Time) *gorm.DB {
	q := s.with(ctx).Model(&APIKey{}).Where("team_id = ?", teamID)
	switch f.Status {
	case KeyActive:
		q = q.Where("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", now)
	case KeyExpired:
		q = q.Where("revoked_at IS NULL AND expires_at <= ?", now)
	case KeyRevoked:
		q = q.Where("revoked_at IS NOT NULL")
	}
	if f.Owner != nil {
		q = q.Where("owner_id = ?", *f.Owner)
	}
	if f.Search != "" {
		p := likeContains(f.Search)
		lower := db.UnicodeLower(s.dialect)
		q = q.Where(`(`+lower+`(name) LIKE ? ESCAPE '\' OR `+lower+`(COALESCE(description, '')) LIKE ? ESCAPE '\')`, p, p)
	}
	return q
}

// ListAPIKeys reads one keyset page of a team's keys.
func (s *Store) ListAPIKeys(ctx context.Context, teamID uuid.UUID, f APIKeyFilter, args PageArgs, now time.Time) (Page[APIKey], error) {
	return keysetPage[APIKey](s, s.apiKeyQuery(ctx, teamID, f, now), args, "api key")
}

// CountAPIKeys counts a team's keys that match a filter.
func (s *Store) CountAPIKeys(ctx context.Context, teamID uuid.UUID, f APIKeyFilter, now time.Time) (int64, error) {
	var n int64
	err := s.apiKeyQuery(ctx, teamID, f, now).Count(&n).Error
	return n, translate(err, "api key")
}

// KeyUsage is when and from where a key was last used.
type KeyUsage struct {
	KeyID uuid.UUID
	At    time.Time
	IP    string
}

// RecordKeyUsage writes a batch of last-use times in one transaction, never
// moving a time backwards.
func (s *Store) RecordKeyUsage(ctx context.Context, batch []KeyUsage) error {
	if len(batch) == 0 {
		return nil
	}
	return s.InTx(ctx, func(tx *Store) error {
		for _, u := range batch {
			err := tx.with(ctx).Model(&APIKey{}).
				Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", u.KeyID, u.At).
				UpdateColumns(map[string]any{"last_used_at": u.At, "last_used_ip": u.IP}).Error
			if err != nil {
				return translate(err, "api key usage")
			}
		}
		return nil
	})
}

// ListAPIKeysByOwners reads a page of several members' personal keys in one
// query, whatever the number of members: a window function numbers each
// member's keys in the list's order, and the page keeps the first limit+1 of
// each. It pages forward only (first/after).
func (s *Store) ListAPIKeysByOwners(ctx context.Context, teamID uuid.UUID, owners []uuid.UUID, args PageArgs) (map[uuid.UUID]Page[APIKey], error) {
	type ranked struct {
		APIKey  `gorm:"embedded"`
		RowRank int
	}
	args.Backward = false
	order := args.scan()
	inner := s.with(ctx).Model(&APIKey{}).
		Select("api_keys.*, ROW_NUMBER() OVER (PARTITION BY owner_id ORDER BY "+order+") AS row_rank").
		Where("team_id = ? AND owner_id IN ?", teamID, owners)
	if args.After != nil {
		after, _ := args.bounds()
		inner = inner.Where("id "+after+" ?", *args.After)
	}
	var rows []ranked
	err := s.with(ctx).Table("(?) AS ranked", inner).Where("row_rank <= ?", args.Limit+1).Order("owner_id, " + order).Find(&rows).Error
	if err != nil {
		return nil, translate(err, "api key")
	}
	out := make(map[uuid.UUID]Page[APIKey], len(owners))
	for _, o := range owners {
		out[o] = Page[APIKey]{HasPrev: args.After != nil}
	}
	for _, r := range rows {
		p := out[*r.OwnerID]
		if len(p.Items) == args.Limit {
			p.HasNext = true
		} else {
			p.Items = append(p.Items, r.APIKey)
		}
		out[*r.OwnerID] = p
	}
	return out, nil
}

// CountAPIKeysByOwners counts several members' personal keys in one query.
func (s *Store) CountAPIKeysByOwners(ctx context.Context, teamID uuid.UUID, owners []uuid.UUID) (map[uuid.UUID]int64, error) {
	var rows []struct {
		OwnerID uuid.UUID
		N       int64
	}
	err := s.with(ctx).Model(&APIKey{}).Select("owner_id, COUNT(*) AS n").
		Where("team_id = ? AND owner_id IN ?", teamID, owners).Group("owner_id").Scan(&rows).Error
	if err != nil {
		return nil, translate(err, "api key")
	}
	out := make(map[uuid.UUID]int64, len(rows))
	for _, r := range rows {
		out[r.OwnerID] = r.N
	}
	return out, nil
}
