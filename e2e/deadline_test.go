package e2e

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// holdLock takes, from a session of its own, what a writer of the tables
// needs, and keeps it until released (or the test ends): on PostgreSQL an
// ACCESS EXCLUSIVE lock on each table, on SQLite the database's write lock
// (BEGIN IMMEDIATE, whatever the tables).
func holdLock(t *testing.T, e *env, tables ...string) (release func()) {
	t.Helper()
	other, err := db.Open(context.Background(), e.db.URL, db.Pool{MaxOpen: 1})
	if err != nil {
		t.Fatalf("open a second session: %v", err)
	}
	tx := other.Gorm.Begin() // SQLite: BEGIN IMMEDIATE, the write lock
	if tx.Error != nil {
		t.Fatalf("begin: %v", tx.Error)
	}
	if other.Dialect == db.Postgres {
		for _, table := range tables {
			if err := tx.Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE").Error; err != nil {
				t.Fatalf("lock %s: %v", table, err)
			}
		}
	}
	release = sync.OnceFunc(func() {
		_ = tx.Rollback().Error
		_ = other.Close()
	})
	t.Cleanup(release)
	return release
}

const dlCreateDevice = `mutation($in: CreateDeviceInput!) { createDevice(input: $in) { device { id } } }`

// dlInternal fails the test unless r is the error of a request that ran out
// of time: INTERNAL, with the request id to quote to the operator.
func dlInternal(t *testing.T, r *response, what string) {
	t.Helper()
	if r.code() != "INTERNAL" || r.ext("requestId") == "" {
		t.Fatalf("%s: want INTERNAL with a requestId, got %d: %s", what, r.Status, r.Raw)
	}
}

// TestSQLiteReadsDoNotWaitForWriters: with another connection holding the
// write lock and writers queued behind it, a read answers at once: before
// any writer has answered, with the lock still held. Before the read pool,
// the queued writers held every pooled connection and the read waited out
// the busy timeout (9.7 s).
func TestSQLiteReadsDoNotWaitForWriters(t *testing.T) {
	e := newEnv(t, db.SQLite)
	release := holdLock(t, e)

	const writers = 8
	var answered atomic.Int32
	out := make(chan *response, writers)
	for i := range writers {
		go func() {
			in := map[string]any{"name": "cam", "serialNumber": "SN-" + string(rune('A'+i))}
			r := e.gql(e.admin, dlCreateDevice, map[string]any{"in": in})
			answered.Add(1)
			out <- r
		}()
	}
	// Give the writers time to reach the lock. (Only the code before the
	// read pool needs them there to fail this test; with it, the read
	// below answers wherever the writers are.)
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	r := e.gqlWithin(time.Minute, e.admin, `{ viewer { id } }`, nil)
	if r.Status != 200 || len(r.Errors) > 0 || r.str("viewer.id") == "" {
		t.Fatalf("read behind the write lock: %d %s", r.Status, r.Raw)
	}
	if n := answered.Load(); n != 0 {
		t.Fatalf("%d writers answered before the read did, with the lock still held", n)
	}
	t.Logf("read behind a held write lock and %d queued writers: %v", writers, time.Since(start))

	release()
	for range writers {
		if r := <-out; r.Status != 200 || len(r.Errors) > 0 {
			t.Errorf("writer once the lock is free: %d %s", r.Status, r.Raw)
		}
	}
	if n := e.db.Count(t, "devices", ""); n != writers {
		t.Fatalf("%d devices, want %d", n, writers)
	}
}

// TestDatabaseDeadline: a request stuck behind a lock ends at the deadline
// (KEYPLANE_DB_TIMEOUT) with INTERNAL and its request id, and its
// transaction leaves nothing behind.
func TestDatabaseDeadline(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		const timeout = 300 * time.Millisecond
		e := newEnvWithDBTimeout(t, d, timeout)
		in := map[string]any{"in": map[string]any{"name": "cam", "serialNumber": "SN-LOCKED"}}

		// PostgreSQL: the device is inserted, then its audit event waits
		// behind the lock on audit_events. SQLite: the transaction waits
		// for the write lock at BEGIN.
		release := holdLock(t, e, "audit_events")
		start := time.Now()
		r := e.gqlWithin(time.Minute, e.admin, dlCreateDevice, in)
		t.Logf("mutation behind a lock answered after %v", time.Since(start))
		dlInternal(t, r, "mutation behind a lock")
		if d == db.SQLite {
			// Reads do not wait for the writer at all.
			e.ok(e.admin, `{ viewer { id } }`, nil)
		}
		release()

		if n := e.db.Count(t, "devices", "serial_number = ?", "SN-LOCKED"); n != 0 {
			t.Errorf("the failed mutation left %d devices", n)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "device.create"); n != 0 {
			t.Errorf("the failed mutation left %d audit events", n)
		}

		if d == db.Postgres {
			// Authentication reads api_keys: a read behind a lock on it
			// ends at the deadline too.
			release := holdLock(t, e, "api_keys")
			start := time.Now()
			r := e.gqlWithin(time.Minute, e.admin, `{ viewer { id } }`, nil)
			t.Logf("read behind a lock answered after %v", time.Since(start))
			dlInternal(t, r, "read behind a lock")
			release()
		}

		// Once the lock is gone, the same mutation goes through.
		e.ok(e.admin, dlCreateDevice, in)
	})
}
