package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The replica tests run two servers on one PostgreSQL database, each with a
// connection pool of its own (two db.Open), as two replicas behind a load
// balancer: nothing one of them holds in memory may decide what the other
// answers.

// rpPair starts two replicas on a fresh schema; the first bootstraps the
// team, whose admin key both use. It also returns the schema reached by a
// third pool, for checks.
func rpPair(t *testing.T, configure ...func(*config.Config)) (a, b *env, direct *testdb.Database) {
	t.Helper()
	direct = testdb.New(t, db.Postgres)
	a = startEnv(t, openStore(t, direct.URL, config.DefaultDBTimeout), configure...)
	b = startReplica(t, openStore(t, direct.URL, config.DefaultDBTimeout), a.admin, configure...)
	return a, b, direct
}

// rpErrors returns the servers' log lines at level ERROR.
func rpErrors(envs ...*env) string {
	var out []string
	for _, e := range envs {
		if lines := grepLog(e, `"level":"ERROR"`); lines != "" {
			out = append(out, lines)
		}
	}
	return strings.Join(out, "\n")
}

// TestReplicasRefuseWhatTheOtherRevoked: a key or a device token revoked or
// rotated (without grace) on one replica is refused by the other on its
// very next request, either way round.
func TestReplicasRefuseWhatTheOtherRevoked(t *testing.T) {
	requirePostgres(t)
	a, b, _ := rpPair(t)
	wantAuth := func(e *env, where, what, key string, status int, reason string) {
		t.Helper()
		if got, r := e.authStatus(key); got != status || r != reason {
			t.Fatalf("%s on %s: got %d %q, want %d %q", what, where, got, r, status, reason)
		}
	}
	for _, pair := range []struct {
		from, to         *env
		fromName, toName string
	}{{a, b, "A", "B"}, {b, a, "B", "A"}} {
		from, to := pair.from, pair.to
		id, secret := from.newKey(from.admin, "leaked-"+pair.fromName)
		wantAuth(to, pair.toName, "a new key", secret, http.StatusOK, "")
		from.ok(from.admin, revokeKey, map[string]any{"id": id})
		wantAuth(to, pair.toName, "the key revoked on "+pair.fromName, secret, http.StatusUnauthorized, "REVOKED")

		id, old := from.newKey(from.admin, "rotated-"+pair.fromName)
		wantAuth(to, pair.toName, "a new key", old, http.StatusOK, "")
		fresh := from.ok(from.admin, rotateKey, map[string]any{"id": id, "grace": 0}).str("rotateApiKey.secret")
		wantAuth(to, pair.toName, "the old secret, rotated without grace on "+pair.fromName, old, http.StatusUnauthorized, "INVALID")
		wantAuth(to, pair.toName, "the new secret", fresh, http.StatusOK, "")

		devID, token := devNew(from, from.admin, "cam", "SN-RP-"+pair.fromName)
		beat := func(what, token string, status int, reason string) {
			t.Helper()
			r := devBeat(to, token)
			if r.Status != status || r.ext("reason") != reason || (status == http.StatusOK && len(r.Errors) > 0) {
				t.Fatalf("%s on %s: want %d %q, got %d: %s", what, pair.toName, status, reason, r.Status, r.Raw)
			}
		}
		beat("a new device token", token, http.StatusOK, "")
		rotated := from.ok(from.admin, devRotate, map[string]any{"id": devID}).str("rotateDeviceToken.token")
		beat("the old device token, rotated on "+pair.fromName, token, http.StatusUnauthorized, "INVALID")
		beat("the new device token", rotated, http.StatusOK, "")
		from.ok(from.admin, devRevoke, map[string]any{"id": devID})
		beat("the device token of a device revoked on "+pair.fromName, rotated, http.StatusUnauthorized, "REVOKED")
	}
}

// TestReplicasShareRateLimitsThroughRedis: with REDIS_URL set, one key's
// burst is one budget across both replicas: of requests sent to both at
// once, exactly the burst succeed and the rest are refused with 429, and
// the next request is refused on either.
func TestReplicasShareRateLimitsThroughRedis(t *testing.T) {
	requirePostgres(t)
	client := rlRedis(t)
	const burst, each = 6, 10
	a, b, _ := rpPair(t, func(c *config.Config) {
		c.RedisURL = rlTestRedis
		c.RateLimitRPS, c.RateLimitBurst = rlTinyRate, burst
		// Only the per-key buckets, whose names hold a random id: the
		// per-address ones would be shared with other tests in Redis.
		c.AuthFailureRPS, c.AnonymousRPS = 0, 0
		// A Redis slow to answer fails the limits open: not what this
		// test is about.
		c.RedisTimeout = time.Minute
	})
	keyID, key := a.newKey(a.admin, "shared")
	adminID := a.ok(a.admin, ftViewer, nil).str("viewer.id")
	t.Cleanup(func() {
		client.Del(context.Background(),
			rlReqPrefix+"key:"+uuidOf(t, ids.APIKey, keyID).String(),
			rlReqPrefix+"key:"+uuidOf(t, ids.APIKey, adminID).String())
	})

	rs := a.race(2*each, func(i int) *response {
		if i%2 == 0 {
			return a.gql(key, ftViewer, nil)
		}
		return b.gql(key, ftViewer, nil)
	})
	statuses := map[int]int{}
	for _, r := range rs {
		statuses[r.Status]++
	}
	if statuses[http.StatusOK] != burst || statuses[http.StatusTooManyRequests] != 2*each-burst {
		t.Fatalf("%d requests at once, half on each replica, with a burst of %d: got %v, want %d × 200 and %d × 429",
			2*each, burst, statuses, burst, 2*each-burst)
	}
	rlWant429(t, "the next request on A", a.gql(key, ftViewer, nil), 1, 1<<31-1)
	rlWant429(t, "the next request on B", b.gql(key, ftViewer, nil), 1, 1<<31-1)
}

// TestReplicasRaceForOneSerial: the same serial number created at once
// through both replicas makes one device, one audit event, and CONFLICT
// for every other request; batches that share a serial number commit one
// batch, whole.
func TestReplicasRaceForOneSerial(t *testing.T) {
	requirePostgres(t)
	a, b, direct := rpPair(t)
	on := func(i int) *env {
		if i%2 == 0 {
			return a
		}
		return b
	}
	const each = 20

	in := map[string]any{"in": map[string]any{"name": "cam", "serialNumber": "SN-TWIN"}}
	rs := a.race(2*each, func(i int) *response { return on(i).gql(a.admin, devCreate, in) })
	if codes := tally(rs); codes[""] != 1 || codes["CONFLICT"] != 2*each-1 {
		t.Fatalf("%d createDevice of one serial, half on each replica: got %v, want 1 success and %d CONFLICT; the servers logged:\n%s",
			2*each, codes, 2*each-1, rpErrors(a, b))
	}
	if n := direct.Count(t, "devices", "serial_number = ?", "SN-TWIN"); n != 1 {
		t.Errorf("%d devices with the serial, want 1", n)
	}
	if n := direct.Count(t, "audit_events", "action = ?", "device.create"); n != 1 {
		t.Errorf("%d device.create audit events, want 1", n)
	}

	// Each batch has serials of its own, and one they all share.
	const size = 5
	rs = a.race(2*each, func(i int) *response {
		batch := []any{map[string]any{"name": "cam", "serialNumber": "SN-SHARED"}}
		for j := range size - 1 {
			batch = append(batch, map[string]any{"name": "cam", "serialNumber": fmt.Sprintf("SN-OWN-%02d-%d", i, j)})
		}
		return on(i).gql(a.admin, devCreateMany, map[string]any{"in": map[string]any{"devices": batch}})
	})
	if codes := tally(rs); codes[""] != 1 || codes["CONFLICT"] != 2*each-1 {
		t.Fatalf("%d createDevices sharing a serial, half on each replica: got %v, want 1 success and %d CONFLICT; the servers logged:\n%s",
			2*each, codes, 2*each-1, rpErrors(a, b))
	}
	if n := direct.Count(t, "devices", "serial_number = ? OR serial_number LIKE ?", "SN-SHARED", "SN-OWN-%"); n != size {
		t.Errorf("%d devices of the batches, want the %d of one batch", n, size)
	}
	if n := direct.Count(t, "audit_events", "action = ?", "device.create"); n != 1+size {
		t.Errorf("%d device.create audit events, want %d", n, 1+size)
	}
}

// TestReplicasStartAtOnceOnAnEmptyDatabase: replicas that start together on
// an empty database all come up: one applies the migrations while the
// others wait for it, and one creates the first team. The test makes the
// race certain: it holds the name of the first migration's first table in
// a transaction of its own until every replica is waiting on a lock, then
// lets them all go at once.
func TestReplicasStartAtOnceOnAnEmptyDatabase(t *testing.T) {
	requirePostgres(t)
	const replicas = 4
	empty := testdb.EmptyPostgresURL(t)
	blocker, err := db.Open(context.Background(), empty, db.Pool{MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = blocker.Close() })
	hold := blocker.Gorm.Begin()
	if err := hold.Exec("CREATE TABLE teams (id integer)").Error; err != nil {
		t.Fatalf("hold the name teams: %v", err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			_ = hold.Rollback().Error
		}
	}
	t.Cleanup(release)

	// The replicas' sessions carry a name of their own, to be counted.
	appName := fmt.Sprintf("keyplane-replica-%d", time.Now().UnixNano())
	u, err := url.Parse(empty)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", appName)
	u.RawQuery = q.Encode()

	type started struct {
		created bool
		err     error
	}
	results := make(chan started, replicas)
	for range replicas {
		go func() {
			// What the binary's setup does: open, migrate, first team.
			ctx := context.Background()
			d, err := db.Open(ctx, u.String(), db.Pool{Timeout: config.DefaultDBTimeout})
			if err != nil {
				results <- started{err: err}
				return
			}
			st := store.New(d)
			defer st.Close()
			if _, err := db.Migrate(ctx, d); err != nil {
				results <- started{err: err}
				return
			}
			team, _, err := teams.NewService(st).BootstrapFirst(ctx, "My team", teams.DefaultKeyName)
			results <- started{created: team != nil, err: err}
		}()
	}

	// Wait until every replica waits on a lock: on the held table name, or
	// on another replica.
	var out []started
	deadline := time.Now().Add(time.Minute)
	for waiting := int64(0); waiting < replicas; {
		select {
		case r := <-results: // a replica finished while the name is held
			out = append(out, r)
			release()
			for len(out) < replicas {
				out = append(out, <-results)
			}
			t.Fatalf("a replica finished before all %d waited (%d were waiting): %v", replicas, waiting, out)
		case <-time.After(20 * time.Millisecond):
		}
		var n int64
		if err := blocker.Gorm.Raw("SELECT count(*) FROM pg_stat_activity WHERE application_name = ? AND wait_event_type = 'Lock'", appName).Scan(&n).Error; err != nil {
			t.Fatalf("count the waiting replicas: %v", err)
		}
		waiting = n
		if time.Now().After(deadline) {
			t.Fatalf("after a minute %d of %d replicas wait on a lock", waiting, replicas)
		}
	}
	release()

	created := 0
	var failures []string
	for range replicas {
		r := <-results
		if r.err != nil {
			failures = append(failures, r.err.Error())
		}
		if r.created {
			created++
		}
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d replicas failed to start:\n%s", len(failures), replicas, strings.Join(failures, "\n"))
	}
	if created != 1 {
		t.Errorf("%d replicas created the first team, want 1", created)
	}
	var teamCount int64
	if err := blocker.Gorm.Raw("SELECT count(*) FROM teams").Scan(&teamCount).Error; err != nil || teamCount != 1 {
		t.Errorf("%d teams (%v), want 1", teamCount, err)
	}
}
