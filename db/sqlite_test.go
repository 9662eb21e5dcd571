package db

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
)

// openSQLiteFile opens a fresh SQLite file with a table t, and returns it
// with the function that makes a second, separate connection to the same
// file take the write lock (BEGIN IMMEDIATE) until released: another
// process, or a long transaction, as a writer waiting behind it sees it.
func openSQLiteFile(t *testing.T, timeout time.Duration) (*DB, func() (release func())) {
	t.Helper()
	ctx := context.Background()
	url := "sqlite:" + filepath.Join(t.TempDir(), "k.db")
	d, err := Open(ctx, url, Pool{MaxOpen: 4, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Gorm.Exec("CREATE TABLE t (n INTEGER NOT NULL)").Error; err != nil {
		t.Fatal(err)
	}
	lock := func() func() {
		t.Helper()
		other, err := Open(ctx, url, Pool{MaxOpen: 1})
		if err != nil {
			t.Fatal(err)
		}
		tx := other.Gorm.Begin() // on the writer: BEGIN IMMEDIATE
		if tx.Error != nil {
			t.Fatal(tx.Error)
		}
		release := sync.OnceFunc(func() {
			_ = tx.Rollback().Error
			_ = other.Close()
		})
		t.Cleanup(release)
		return release
	}
	return d, lock
}

// TestSQLiteReadsDoNotWaitForWriters holds the write lock from another
// connection while writers queue for it, then reads: the read answers while
// the lock is still held and before any writer has returned. Before the
// read pool, the waiting writers held every pooled connection, and the read
// waited out the busy timeout (9.7 s).
func TestSQLiteReadsDoNotWaitForWriters(t *testing.T) {
	d, lock := openSQLiteFile(t, time.Minute) // nothing here should time out
	release := lock()

	const writers = 8
	var returned atomic.Int32
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			var err error
			if i%2 == 0 {
				err = d.Gorm.Exec("INSERT INTO t (n) VALUES (?)", i).Error
			} else {
				err = d.Gorm.Transaction(func(tx *gorm.DB) error {
					return tx.Exec("INSERT INTO t (n) VALUES (?)", i).Error
				})
			}
			returned.Add(1)
			errs <- err
		}()
	}
	// Wait until one writer holds the writer connection (waiting for the
	// lock) and the others queue for it.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		st := d.writer.Stats()
		if st.InUse == 1 && st.WaitCount >= writers-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writers never queued: %+v", st)
		}
	}

	var n int64
	if err := d.Gorm.Raw("SELECT COUNT(*) FROM t").Scan(&n).Error; err != nil || n != 0 {
		t.Fatalf("read behind the write lock: %d rows, %v", n, err)
	}
	if r := returned.Load(); r != 0 {
		t.Fatalf("%d writers returned before the read did, with the lock still held", r)
	}

	release()
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("writer, once the lock is free: %v", err)
		}
	}
	if err := d.Gorm.Raw("SELECT COUNT(*) FROM t").Scan(&n).Error; err != nil || n != writers {
		t.Fatalf("after the writers: %d rows, %v; want %d", n, err, writers)
	}
}

// TestSQLiteWriterBehindLockFailsClean: a writer that cannot get the lock
// within the timeout answers a clear error, and leaves nothing behind.
func TestSQLiteWriterBehindLockFailsClean(t *testing.T) {
	d, lock := openSQLiteFile(t, 200*time.Millisecond)
	release := lock()

	locked := func(err error) bool {
		return err != nil && (strings.Contains(err.Error(), "database is locked") || errors.Is(err, context.DeadlineExceeded))
	}
	ctx := context.Background()
	err := d.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return tx.Exec("INSERT INTO t (n) VALUES (1)").Error
	})
	if !locked(err) {
		t.Fatalf("transaction behind the lock: %v, want database is locked", err)
	}
	if err := d.Gorm.WithContext(ctx).Exec("INSERT INTO t (n) VALUES (2)").Error; !locked(err) {
		t.Fatalf("write behind the lock: %v, want database is locked", err)
	}
	release()

	var n int64
	if err := d.Gorm.Raw("SELECT COUNT(*) FROM t").Scan(&n).Error; err != nil || n != 0 {
		t.Fatalf("after the failed writers: %d rows, %v; want none", n, err)
	}
	// The writer connection is free again.
	if err := d.Gorm.Exec("INSERT INTO t (n) VALUES (3)").Error; err != nil {
		t.Fatalf("write once the lock is free: %v", err)
	}
}

// TestSQLiteRouting: the read pool is read-only, so a write that reached
// it would fail; GORM's create, update and delete all reach the writer,
// also a create that reads a default back with INSERT … RETURNING (a query).
func TestSQLiteRouting(t *testing.T) {
	d, _ := openSQLiteFile(t, time.Minute)
	var queryOnly int
	if err := d.reader.QueryRow("PRAGMA query_only").Scan(&queryOnly); err != nil || queryOnly != 1 {
		t.Fatalf("reader query_only = %d, %v", queryOnly, err)
	}
	if _, err := d.reader.Exec("INSERT INTO t (n) VALUES (0)"); err == nil {
		t.Fatal("the read pool accepted a write")
	}
	if err := d.Gorm.Exec("CREATE TABLE r (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL)").Error; err != nil {
		t.Fatal(err)
	}
	type row struct{ ID, N int }
	created := row{N: 1}
	if err := d.Gorm.Table("r").Create(&created).Error; err != nil || created.ID == 0 {
		t.Fatalf("create with RETURNING: %+v, %v", created, err)
	}
	if err := d.Gorm.Table("r").Where("n = 1").Update("n", 2).Error; err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := d.Gorm.Table("r").Where("n = 2").Delete(&row{}).Error; err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// TestSQLiteMemory: a database in memory still works, on one connection.
func TestSQLiteMemory(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, "sqlite::memory:", Pool{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if applied, err := Migrate(ctx, d); err != nil || applied == 0 {
		t.Fatalf("migrate: %d, %v", applied, err)
	}
	var n int64
	if err := d.Gorm.Raw("SELECT COUNT(*) FROM teams").Scan(&n).Error; err != nil {
		t.Fatalf("read after migrating: %v", err)
	}
	err = d.Gorm.Transaction(func(tx *gorm.DB) error {
		return tx.Exec("INSERT INTO teams (id, name, created_at, updated_at) VALUES ('t1', 'x', ?, ?)", time.Now(), time.Now()).Error
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := d.Gorm.Raw("SELECT COUNT(*) FROM teams").Scan(&n).Error; err != nil || n != 1 {
		t.Fatalf("read back: %d, %v", n, err)
	}
}
