package store

import "context"

// ExecForTest runs raw SQL. Tests use it to reach past the API: to move a
// time into the past or break a table on purpose. Production code never
// calls it.
func (s *Store) ExecForTest(ctx context.Context, sql string, args ...any) error {
	return s.with(ctx).Exec(sql, args...).Error
}

// CountForTest counts the rows of a table that match a condition.
func (s *Store) CountForTest(ctx context.Context, table, where string, args ...any) (int64, error) {
	var n int64
	q := s.with(ctx).Table(table)
	if where != "" {
		q = q.Where(where, args...)
	}
	err := q.Count(&n).Error
	return n, err
}

// QuietForTest stops the store's NOTIFY, as on an engine that refuses it,
// so that a test sees what the other replicas' poll alone delivers.
func (s *Store) QuietForTest() { s.bell.quiet.Store(true) }
