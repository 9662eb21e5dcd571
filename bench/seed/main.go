// Command seed fills a PostgreSQL database for the load run (bench/run.sh):
// it applies Keyplane's migrations, creates a team and its admin key the way
// `keyplane bootstrap` does, prints that key (and only it) on stdout, then
// bulk-inserts the team's devices and extra API keys with COPY, in batches,
// and ANALYZEs the tables.
//
//	DATABASE_URL=postgres://… seed [-devices 10000] [-keys 1] [-team bench]
//
// -keys counts the admin key: -keys 100000 makes the admin key and 99,999
// more, all active, so that the key lookup runs against a realistic table.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
)

// batch is the number of rows per COPY.
const batch = 50_000

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "seed: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	devices := flag.Int("devices", 10_000, "devices to create in the team")
	keys := flag.Int("keys", 1, "API keys in the team, the printed admin key included")
	teamName := flag.String("team", "bench", "name of the team")
	flag.Parse()
	if *devices < 0 || *keys < 1 {
		return fmt.Errorf("-devices must be ≥ 0 and -keys ≥ 1")
	}
	url := os.Getenv("DATABASE_URL")
	if !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
		return fmt.Errorf("DATABASE_URL must be a postgres:// URL")
	}
	ctx := context.Background()

	d, err := db.Open(ctx, url, db.Pool{MaxOpen: 2})
	if err != nil {
		return err
	}
	st := store.New(d)
	defer st.Close()
	if _, err := db.Migrate(ctx, d); err != nil {
		return err
	}
	team, issued, err := teams.NewService(st).Bootstrap(ctx, *teamName, teams.DefaultKeyName)
	if err != nil {
		return fmt.Errorf("bootstrap the team: %w", err)
	}
	fmt.Println(issued.Secret)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	teamID := pgtype.UUID{Bytes: team.ID, Valid: true}
	now := time.Now().UTC().Truncate(time.Microsecond)

	start := time.Now()
	err = copyRows(ctx, conn, "devices", *devices,
		[]string{"id", "team_id", "name", "serial_number", "tags", "version", "created_at", "updated_at"},
		func(i int) ([]any, error) {
			return []any{
				pgtype.UUID{Bytes: ids.New(), Valid: true}, teamID,
				fmt.Sprintf("device-%d", i+1), fmt.Sprintf("SN-%08d", i+1),
				"", int64(1), now, now,
			}, nil
		})
	if err != nil {
		return err
	}
	adminID := pgtype.UUID{Bytes: issued.Key.ID, Valid: true}
	scopes := scope.Wildcard.Stored()
	err = copyRows(ctx, conn, "api_keys", *keys-1,
		[]string{"id", "team_id", "name", "scopes", "secret_hash", "allowed_cidrs", "created_by_id", "version", "created_at", "updated_at"},
		func(i int) ([]any, error) {
			id := ids.New()
			cred, err := credential.Generate(credential.APIKey, id)
			if err != nil {
				return nil, err
			}
			return []any{
				pgtype.UUID{Bytes: id, Valid: true}, teamID,
				fmt.Sprintf("bench-%d", i+2), scopes, cred.Hash[:],
				"", adminID, int64(1), now, now,
			}, nil
		})
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ANALYZE teams, api_keys, devices, members, audit_events"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	fmt.Fprintf(os.Stderr, "seed: team %q (%s): %d devices, %d keys in %s\n",
		team.Name, ids.Encode(ids.Team, team.ID), *devices, *keys, time.Since(start).Round(time.Millisecond))
	return nil
}

// copyRows inserts n rows made by row(0…n-1) into table with COPY, batch
// rows per transaction, and reports progress on stderr for large tables.
func copyRows(ctx context.Context, conn *pgx.Conn, table string, n int, columns []string, row func(int) ([]any, error)) error {
	for from := 0; from < n; from += batch {
		size := min(batch, n-from)
		copied, err := conn.CopyFrom(ctx, pgx.Identifier{table}, columns,
			pgx.CopyFromSlice(size, func(i int) ([]any, error) { return row(from + i) }))
		if err != nil {
			return fmt.Errorf("copy %s %d–%d: %w", table, from+1, from+size, err)
		}
		if copied != int64(size) {
			return fmt.Errorf("copy %s: %d rows of %d", table, copied, size)
		}
		if n > batch {
			fmt.Fprintf(os.Stderr, "seed: %s %d/%d\n", table, from+size, n)
		}
	}
	return nil
}
