// Package keycheck is the key check the load bench's comparison servers
// (bench/baseline, bench/floor) share, so that both do exactly the work
// Keyplane's authentication must do, and no more: parse the token, one
// indexed lookup, a constant-time compare of the hash, revoked and expiry.
package keycheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyplane/keyplane/internal/credential"
)

// Authenticate returns the team of the API key in an Authorization: Bearer
// header; ok is false for a missing, malformed, unknown, wrong, revoked or
// expired key. err is a fault of the database.
func Authenticate(ctx context.Context, pool *pgxpool.Pool, header string) (team pgtype.UUID, ok bool, err error) {
	scheme, token, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return team, false, nil
	}
	parsed, err := credential.ParseKind(strings.TrimSpace(token), credential.APIKey)
	if err != nil {
		return team, false, nil
	}
	var hash []byte
	var revokedAt, expiresAt pgtype.Timestamptz
	err = pool.QueryRow(ctx, `SELECT team_id, secret_hash, revoked_at, expires_at FROM api_keys WHERE id = $1`,
		pgtype.UUID{Bytes: parsed.ID, Valid: true}).Scan(&team, &hash, &revokedAt, &expiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return team, false, nil
	}
	if err != nil {
		return team, false, err
	}
	if !parsed.Matches(hash) || revokedAt.Valid || (expiresAt.Valid && !time.Now().Before(expiresAt.Time)) {
		return team, false, nil
	}
	return team, true, nil
}

// Fail writes a GraphQL-shaped error.
func Fail(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"message":%q,"extensions":{"code":%q}}]}`, message, code)
}
