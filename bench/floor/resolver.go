package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyplane/keyplane/bench/floor/generated"
	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/ids"
)

// defaultFirst and maxFirst are Keyplane's page sizes.
const defaultFirst, maxFirst = 20, 100

// firstSQL[n] and afterSQL[n] read a page of n devices: the baseline's
// statements, with the limit (n + 1, the extra row only says whether
// another page follows) written into the SQL, as the baseline writes 21,
// and built once here. With the limit a bind parameter instead, PostgreSQL
// plans the statement again on every execution (its generic plan cannot
// know the limit, so a custom plan always looks cheaper), which shows as
// PostgreSQL CPU per request.
var firstSQL, afterSQL [maxFirst + 1]string

func init() {
	for n := 1; n <= maxFirst; n++ {
		firstSQL[n] = fmt.Sprintf(`SELECT id, name FROM devices WHERE team_id = $1 ORDER BY id LIMIT %d`, n+1)
		afterSQL[n] = fmt.Sprintf(`SELECT id, name FROM devices WHERE team_id = $1 AND id > $2 ORDER BY id LIMIT %d`, n+1)
	}
}

type resolver struct{ pool *pgxpool.Pool }

func (r *resolver) Query() generated.QueryResolver { return queryResolver{r} }
func (r *resolver) Team() generated.TeamResolver   { return teamResolver{r} }

type queryResolver struct{ *resolver }

// Team is the team of the calling key, which server.ServeHTTP put in the
// context.
func (queryResolver) Team(ctx context.Context) (*generated.Team, error) {
	return &generated.Team{ID: ctx.Value(teamKey{}).(pgtype.UUID)}, nil
}

type teamResolver struct{ *resolver }

// Devices reads one keyset page with the baseline's SQL: first rows after
// the cursor's, in id order, into a presized slice.
func (r teamResolver) Devices(ctx context.Context, team *generated.Team, first *int, after *string) (*generated.DeviceConnection, error) {
	n := defaultFirst
	if first != nil {
		n = *first
	}
	if n < 1 || n > maxFirst {
		return nil, fmt.Errorf("first must be between 1 and %d", maxFirst)
	}
	var rows pgx.Rows
	var err error
	if after == nil {
		rows, err = r.pool.Query(ctx, firstSQL[n], team.ID)
	} else {
		id, cerr := model.DecodeCursor("after", *after)
		if cerr != nil {
			return nil, cerr
		}
		rows, err = r.pool.Query(ctx, afterSQL[n], team.ID, pgtype.UUID{Bytes: id, Valid: true})
	}
	if err != nil {
		return nil, err
	}
	nodes := make([]generated.Device, 0, n+1)
	var id pgtype.UUID
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&id, &name}, func() error {
		nodes = append(nodes, generated.Device{ID: ids.Encode(ids.Device, id.Bytes), Name: name})
		return nil
	}); err != nil {
		return nil, err
	}
	// The extra row only says whether another page follows.
	if len(nodes) > n {
		nodes = nodes[:n]
	}
	return &generated.DeviceConnection{Nodes: nodes}, nil
}
