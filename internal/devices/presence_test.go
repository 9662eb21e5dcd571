package devices_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/audit"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/devices"
	"github.com/keyplane/keyplane/internal/domaintest"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testlog"
)

// quiet is a logger for sweepers whose logs no test reads.
var quiet = slog.New(slog.DiscardHandler)

// presenceEvents reads a team's events of one action about one device, as
// stored, oldest first.
func presenceEvents(t testing.TB, fx *domaintest.Fixture, teamID uuid.UUID, action string, deviceID uuid.UUID) []store.AuditEvent {
	t.Helper()
	page, err := fx.Store.ListAuditEvents(context.Background(), teamID,
		store.AuditFilter{Action: action, TargetID: ids.Encode(ids.Device, deviceID)}, store.PageArgs{Limit: 1000})
	if err != nil {
		t.Fatalf("read %s events: %v", action, err)
	}
	return page.Items
}

// recorded returns a device's stored presence: "ONLINE", "OFFLINE", or ""
// for none.
func recorded(t testing.TB, fx *domaintest.Fixture, id uuid.UUID) string {
	t.Helper()
	for _, p := range []string{"ONLINE", "OFFLINE"} {
		if fx.DB.Count(t, "devices", "id = ? AND presence = ?", id, p) == 1 {
			return p
		}
	}
	if fx.DB.Count(t, "devices", "id = ? AND presence IS NULL", id) != 1 {
		t.Fatalf("device %s: no row, or a presence neither ONLINE, OFFLINE nor NULL", id)
	}
	return ""
}

// silence moves a device's last heartbeat d into the past, as if it had
// been silent that long.
func silence(t testing.TB, fx *domaintest.Fixture, id uuid.UUID, d time.Duration) {
	t.Helper()
	fx.DB.Exec(t, "UPDATE devices SET last_seen_at = ? WHERE id = ?", store.Now().Add(-d), id)
}

func beat(t testing.TB, svc *devices.Service, p *auth.Principal) {
	t.Helper()
	if _, err := svc.Heartbeat(context.Background(), p, nil); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
}

func sweep(t testing.TB, w *devices.Sweeper) int {
	t.Helper()
	n, err := w.Sweep(context.Background())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	return n
}

// wantPresence checks the device's stored presence and how many online and
// offline events its team's log holds about it.
func wantPresence(t testing.TB, fx *domaintest.Fixture, id uuid.UUID, presence string, online, offline int) {
	t.Helper()
	on := presenceEvents(t, fx, fx.Team.ID, audit.DeviceOnline, id)
	off := presenceEvents(t, fx, fx.Team.ID, audit.DeviceOffline, id)
	got := recorded(t, fx, id)
	if got != presence || len(on) != online || len(off) != offline {
		t.Fatalf("device recorded %q with %d online and %d offline events; want %q, %d and %d", got, len(on), len(off), presence, online, offline)
	}
}

// TestPresenceRecordsEachTransitionOnce follows one device through its
// transitions: the first heartbeat records it ONLINE (the device the
// actor), more heartbeats record nothing, a silence shorter than the window
// records nothing, a full window of it records OFFLINE (no actor) once, and
// the next heartbeat ONLINE again.
func TestPresenceRecordsEachTransitionOnce(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		const window = time.Minute
		sweeper := devices.NewSweeper(fx.Store, window, time.Hour, quiet)
		dev, token := fx.Device(t)
		wantPresence(t, fx, dev.ID, "", 0, 0)
		if n := sweep(t, sweeper); n != 0 {
			t.Fatalf("a device never seen: swept %d", n)
		}

		beat(t, fx.Devices, token)
		wantPresence(t, fx, dev.ID, "ONLINE", 1, 0)
		on := presenceEvents(t, fx, fx.Team.ID, audit.DeviceOnline, dev.ID)[0]
		if on.ActorDeviceID == nil || *on.ActorDeviceID != dev.ID || on.ActorKeyID != nil {
			t.Fatalf("device.online actor: key %v, device %v; want the device %s", on.ActorKeyID, on.ActorDeviceID, dev.ID)
		}
		for range 10 {
			beat(t, fx.Devices, token)
		}
		wantPresence(t, fx, dev.ID, "ONLINE", 1, 0)

		// Silent for less than the window, then seen again: nothing.
		silence(t, fx, dev.ID, window-time.Second)
		if n := sweep(t, sweeper); n != 0 {
			t.Fatalf("a device silent for less than the window: swept %d", n)
		}
		beat(t, fx.Devices, token)
		wantPresence(t, fx, dev.ID, "ONLINE", 1, 0)

		// A full window of silence: OFFLINE, once, by nobody.
		silence(t, fx, dev.ID, window+time.Second)
		if n := sweep(t, sweeper); n != 1 {
			t.Fatalf("a device silent for a window: swept %d, want 1", n)
		}
		wantPresence(t, fx, dev.ID, "OFFLINE", 1, 1)
		off := presenceEvents(t, fx, fx.Team.ID, audit.DeviceOffline, dev.ID)[0]
		if off.ActorKeyID != nil || off.ActorDeviceID != nil || off.IP != nil {
			t.Fatalf("device.offline has an actor: key %v, device %v, ip %v", off.ActorKeyID, off.ActorDeviceID, off.IP)
		}
		if n := sweep(t, sweeper); n != 0 {
			t.Fatalf("a second sweep recorded %d again", n)
		}
		wantPresence(t, fx, dev.ID, "OFFLINE", 1, 1)

		beat(t, fx.Devices, token)
		wantPresence(t, fx, dev.ID, "ONLINE", 2, 1)
		// The derived status is as it always was.
		if d, err := fx.Store.Device(t.Context(), fx.Team.ID, dev.ID); err != nil || d.StatusAt(time.Now(), window) != store.DeviceOnline {
			t.Fatalf("status after a heartbeat: %v", err)
		}
	})
}

// TestFlappingDeviceRecordsNothing runs a sweeper in real time while a
// device beats every third of the window for three windows: it stays
// ONLINE with one event. Once it stops, the sweeper records it OFFLINE
// within about a window, once.
func TestFlappingDeviceRecordsNothing(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		const window = 900 * time.Millisecond
		var logs testlog.Buffer
		sweeper := devices.NewSweeper(fx.Store, window, 20*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
		ctx, stop := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { sweeper.Run(ctx); close(done) }()
		defer func() { stop(); <-done }()

		dev, token := fx.Device(t)
		for i := range 10 {
			if i > 0 {
				time.Sleep(window / 3)
			}
			beat(t, fx.Devices, token)
		}
		wantPresence(t, fx, dev.ID, "ONLINE", 1, 0)

		deadline := time.Now().Add(10 * window)
		for recorded(t, fx, dev.ID) != "OFFLINE" {
			if time.Now().After(deadline) {
				t.Fatalf("still recorded %q %v after the last heartbeat", recorded(t, fx, dev.ID), 10*window)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // sweeps go on: they must add nothing
		wantPresence(t, fx, dev.ID, "OFFLINE", 1, 1)
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Fatalf("the sweeper logged errors:\n%s", logs.String())
		}
	})
}

// TestSweepLeavesAlone what must never be recorded OFFLINE: a revoked
// device (its presence is forgotten at revocation, and a row that still
// says ONLINE is passed over too), devices made in bulk and never seen,
// and a device whose heartbeat lands between the sweep's read and its
// update. Another team's silent device is recorded in that team's log only.
func TestSweepLeavesAlone(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		const window = time.Minute
		sweeper := devices.NewSweeper(fx.Store, window, time.Hour, quiet)
		ctx := t.Context()

		revoked, revokedToken := fx.Device(t)
		beat(t, fx.Devices, revokedToken)
		if _, err := fx.Devices.Revoke(ctx, fx.Admin, revoked.ID); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		wantPresence(t, fx, revoked.ID, "", 1, 0)
		silence(t, fx, revoked.ID, 2*window)
		// A row revoked before presence was forgotten at revocation.
		stale, staleToken := fx.Device(t)
		beat(t, fx.Devices, staleToken)
		fx.DB.Exec(t, "UPDATE devices SET revoked_at = ? WHERE id = ?", store.Now(), stale.ID)
		silence(t, fx, stale.ID, 2*window)

		bulk, err := fx.Devices.CreateMany(ctx, fx.Admin, []devices.Spec{
			{Name: "a", SerialNumber: fx.Unique("SN")}, {Name: "b", SerialNumber: fx.Unique("SN")}})
		if err != nil {
			t.Fatalf("create in bulk: %v", err)
		}

		if n := sweep(t, sweeper); n != 0 {
			t.Fatalf("swept %d devices, want none", n)
		}
		if _, err := fx.Devices.Heartbeat(ctx, revokedToken, nil); err == nil {
			t.Fatal("a revoked device's heartbeat was accepted")
		}
		wantPresence(t, fx, revoked.ID, "", 1, 0)
		wantPresence(t, fx, stale.ID, "ONLINE", 1, 0)
		for _, d := range bulk {
			wantPresence(t, fx, d.ID, "", 0, 0)
		}

		// A heartbeat between the sweep's read and its update wins.
		racer, racerToken := fx.Device(t)
		beat(t, fx.Devices, racerToken)
		silence(t, fx, racer.ID, 2*window)
		cutoff := store.Now().Add(-window)
		silent, err := fx.Store.SilentOnlineDevices(ctx, cutoff, 100)
		if err != nil || !slices.Contains(silent, store.DeviceRef{TeamID: fx.Team.ID, ID: racer.ID}) {
			t.Fatalf("the silent device was not read: %v, %v", silent, err)
		}
		beat(t, fx.Devices, racerToken)
		changed, err := fx.Store.RecordDevicesOffline(ctx, fx.Team.ID, []uuid.UUID{racer.ID}, cutoff)
		if err != nil || len(changed) != 0 {
			t.Fatalf("recorded OFFLINE after a heartbeat: %v, %v", changed, err)
		}
		wantPresence(t, fx, racer.ID, "ONLINE", 1, 0)

		// Another team's silent device: its event is in its team's log.
		otherTeam, otherAdmin := fx.Other(t)
		issued, err := fx.Devices.Create(ctx, otherAdmin, devices.Spec{Name: "theirs", SerialNumber: fx.Unique("SN")})
		if err != nil {
			t.Fatalf("create another team's device: %v", err)
		}
		theirs := issued.Device
		beat(t, fx.Devices, &auth.Principal{Kind: auth.KindDevice, TeamID: theirs.TeamID, DeviceID: theirs.ID, DeviceTokenHash: theirs.TokenHash})
		silence(t, fx, theirs.ID, 2*window)
		before := fx.Events(t)
		if n := sweep(t, sweeper); n != 1 {
			t.Fatalf("swept %d, want another team's one device", n)
		}
		if fx.Events(t) != before || len(presenceEvents(t, fx, otherTeam.ID, audit.DeviceOffline, theirs.ID)) != 1 {
			t.Fatal("another team's device.offline is not in its own log only")
		}
	})
}

// TestPresenceExactlyOnceAcrossReplicas runs two replicas on one
// PostgreSQL database, each with its own pool and its own sweeper, while
// 100 devices of two teams beat through both at once: each device is
// recorded ONLINE once and OFFLINE once, whichever replica got there first.
// Then heartbeats of the same OFFLINE devices race on both replicas: one
// device.online each.
func TestPresenceExactlyOnceAcrossReplicas(t *testing.T) {
	if !slices.Contains(testdb.Dialects(t), db.Postgres) {
		t.Skip("PostgreSQL does not answer")
	}
	fx := domaintest.Team(t, db.Postgres)
	opened, err := db.Open(context.Background(), fx.DB.URL, db.Pool{MaxOpen: 8, Timeout: config.DefaultDBTimeout})
	if err != nil {
		t.Fatalf("open the second replica's pool: %v", err)
	}
	second := store.New(opened)
	t.Cleanup(func() { _ = second.Close() })

	const window = 300 * time.Millisecond
	replicas := []*devices.Service{devices.NewService(fx.Store, window), devices.NewService(second, window)}
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, stop := context.WithCancel(t.Context())
	var sweepers sync.WaitGroup
	for _, s := range []*store.Store{fx.Store, second} {
		sweepers.Go(func() { devices.NewSweeper(s, window, 10*time.Millisecond, log).Run(ctx) })
	}
	defer func() { stop(); sweepers.Wait() }()

	type fleetDevice struct {
		team  uuid.UUID
		id    uuid.UUID
		token *auth.Principal
	}
	_, otherAdmin := fx.Other(t)
	var fleet []fleetDevice
	for i := range 100 {
		admin := fx.Admin
		if i%2 == 1 {
			admin = otherAdmin
		}
		issued, err := fx.Devices.Create(t.Context(), admin, devices.Spec{Name: "sensor", SerialNumber: fmt.Sprintf("SN-%03d", i)})
		if err != nil {
			t.Fatalf("create device %d: %v", i, err)
		}
		d := issued.Device
		fleet = append(fleet, fleetDevice{d.TeamID, d.ID,
			&auth.Principal{Kind: auth.KindDevice, TeamID: d.TeamID, DeviceID: d.ID, DeviceTokenHash: d.TokenHash}})
	}

	// burst sends n heartbeats of each device at once, half through each
	// replica, ten devices at a time: the beats of one device land well
	// within the window, while the sweepers work on earlier devices.
	burst := func(fleet []fleetDevice, n int) {
		for wave := range slices.Chunk(fleet, 10) {
			var beats sync.WaitGroup
			start := make(chan struct{})
			for _, d := range wave {
				for i := range n {
					beats.Go(func() {
						<-start
						if _, err := replicas[i%2].Heartbeat(context.Background(), d.token, nil); err != nil {
							t.Errorf("heartbeat of %s through replica %d: %v", d.id, i%2, err)
						}
					})
				}
			}
			close(start)
			beats.Wait()
		}
	}
	allOffline := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for fx.DB.Count(t, "devices", "presence = 'OFFLINE'") != int64(len(fleet)) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d devices recorded OFFLINE after 30 s", fx.DB.Count(t, "devices", "presence = 'OFFLINE'"), len(fleet))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// perDevice checks each device's events, in its own team's log.
	perDevice := func(online, offline int) {
		t.Helper()
		for _, d := range fleet {
			on := presenceEvents(t, fx, d.team, audit.DeviceOnline, d.id)
			off := presenceEvents(t, fx, d.team, audit.DeviceOffline, d.id)
			if len(on) != online || len(off) != offline {
				t.Fatalf("device %s: %d online and %d offline events, want %d and %d", d.id, len(on), len(off), online, offline)
			}
			for _, e := range on {
				if e.ActorDeviceID == nil || *e.ActorDeviceID != d.id {
					t.Fatalf("device %s: device.online by %v", d.id, e.ActorDeviceID)
				}
			}
		}
		total := func(action string) int64 { return fx.DB.Count(t, "audit_events", "action = ?", action) }
		if on, off := total(audit.DeviceOnline), total(audit.DeviceOffline); on != int64(online*len(fleet)) || off != int64(offline*len(fleet)) {
			t.Fatalf("%d device.online and %d device.offline events in all, want %d and %d", on, off, online*len(fleet), offline*len(fleet))
		}
	}

	burst(fleet, 4)
	allOffline()
	perDevice(1, 1)

	// With the sweepers stopped, the same devices, all OFFLINE, beat eight
	// times at once through both replicas: one device.online each.
	stop()
	sweepers.Wait()
	burst(fleet, 8)
	perDevice(2, 1)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a sweeper logged errors:\n%s", logs.String())
	}
}

// TestSweepIsCheap: with 2,000 devices recorded ONLINE and seen just now
// (and more OFFLINE and never seen), a sweep that finds none due sends one
// statement, and that statement reads the partial index of ONLINE devices.
func TestSweepIsCheap(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		ctx := t.Context()
		for range 3 {
			specs := make([]devices.Spec, 1000)
			for i := range specs {
				specs[i] = devices.Spec{Name: "sensor", SerialNumber: fx.Unique("SN")}
			}
			if _, err := fx.Devices.CreateMany(ctx, fx.Admin, specs); err != nil {
				t.Fatalf("create in bulk: %v", err)
			}
		}
		// 2,000 ONLINE and fresh, 500 OFFLINE long ago, 500 never seen.
		fx.DB.Exec(t, "UPDATE devices SET presence = 'ONLINE', last_seen_at = ? WHERE team_id = ? AND id IN (SELECT id FROM devices ORDER BY id LIMIT 2000)", store.Now(), fx.Team.ID)
		fx.DB.Exec(t, "UPDATE devices SET presence = 'OFFLINE', last_seen_at = ? WHERE team_id = ? AND presence IS NULL AND id IN (SELECT id FROM devices ORDER BY id LIMIT 2500)", store.Now().Add(-time.Hour), fx.Team.ID)
		if n := fx.DB.Count(t, "devices", "presence = 'ONLINE'"); n != 2000 {
			t.Fatalf("%d devices ONLINE, want 2000", n)
		}
		sweeper := devices.NewSweeper(fx.Store, time.Minute, time.Hour, quiet)
		before := fx.DB.Statements()
		if n := sweep(t, sweeper); n != 0 {
			t.Fatalf("swept %d fresh devices", n)
		}
		if got := fx.DB.Statements() - before; got != 1 {
			t.Errorf("a sweep with nothing due sent %d SQL statements, want 1", got)
		}

		// The plan of the sweeper's read: the same text as
		// store.SilentOnlineDevices, with its values written in.
		const read = "SELECT team_id, id FROM devices WHERE presence = 'ONLINE' AND revoked_at IS NULL AND last_seen_at <= ? ORDER BY last_seen_at LIMIT ?"
		explain := "EXPLAIN QUERY PLAN " + read
		if fx.DB.Dialect == db.Postgres {
			fx.DB.Exec(t, "ANALYZE devices")
			explain = "EXPLAIN " + read
		}
		plan := explainPlan(t, fx, explain, store.Now().Add(-time.Minute), 500)
		if !strings.Contains(plan, "devices_online_seen") {
			t.Errorf("the sweeper's read does not use devices_online_seen:\n%s", plan)
		}
	})
}

// explainPlan returns the plan the database gives for a query, one row a
// line.
func explainPlan(t *testing.T, fx *domaintest.Fixture, query string, args ...any) string {
	t.Helper()
	rows, err := fx.Store.DB().Gorm.WithContext(t.Context()).Raw(query, args...).Rows()
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		cells := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range cells {
			ptrs[i] = &cells[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("explain: %v", err)
		}
		lines = append(lines, fmt.Sprint(cells...))
	}
	return strings.Join(lines, "\n")
}

// TestHeartbeatStatements pins the cost of a heartbeat in the service: a
// device already recorded ONLINE sends one statement, the conditional
// update, which reads the device and its presence back; only a transition
// costs more.
func TestHeartbeatStatements(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		_, token := fx.Device(t)
		statements := func() int64 {
			t.Helper()
			before := fx.DB.Statements()
			beat(t, fx.Devices, token)
			return fx.DB.Statements() - before
		}
		first := statements()
		for i := range 3 {
			if got := statements(); got != 1 {
				t.Errorf("heartbeat %d of a device recorded ONLINE: %d SQL statements, want 1 (the update, reading the device back)", i+2, got)
			}
		}
		t.Logf("%s: the heartbeat that records ONLINE sends %d statements", fx.DB.Dialect, first)
	})
}
