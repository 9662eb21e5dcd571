package store

import (
	"context"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/keyplane/keyplane/db"
)

// AuditPagePlan returns the query plan of the statement ListAuditEvents
// sends for a page, one line per step. On PostgreSQL, sequential scans,
// bitmap scans and sorts are disfavoured for the statement, so that even an
// empty table shows whether an index reads the page in its order: a Sort
// is planned only when none can.
func (s *Store) AuditPagePlan(ctx context.Context, teamID uuid.UUID, f AuditFilter, args PageArgs) (string, error) {
	stmt := keysetQuery(s.auditQuery(ctx, teamID, f), args).Session(&gorm.Session{DryRun: true}).Find(&[]AuditEvent{}).Statement
	sql := s.db.Dialector.Explain(stmt.SQL.String(), stmt.Vars...)
	var lines []string
	err := s.InTx(ctx, func(tx *Store) error {
		explain := "EXPLAIN QUERY PLAN "
		if s.dialect == db.Postgres {
			explain = "EXPLAIN "
			for _, set := range []string{"enable_seqscan", "enable_bitmapscan", "enable_sort"} {
				if err := tx.with(ctx).Exec("SET LOCAL " + set + " = off").Error; err != nil {
					return err
				}
			}
		}
		rows, err := tx.with(ctx).Raw(explain + sql).Rows()
		if err != nil {
			return err
		}
		defer rows.Close()
		columns, err := rows.Columns()
		if err != nil {
			return err
		}
		for rows.Next() {
			values := make([]any, len(columns))
			for i := range values {
				values[i] = new(any)
			}
			if err := rows.Scan(values...); err != nil {
				return err
			}
			var line []string
			for _, v := range values {
				if b, ok := (*v.(*any)).([]byte); ok {
					line = append(line, string(b))
				} else if str, ok := (*v.(*any)).(string); ok {
					line = append(line, str)
				}
			}
			lines = append(lines, strings.Join(line, " "))
		}
		return rows.Err()
	})
	return strings.Join(lines, "\n"), err
}
