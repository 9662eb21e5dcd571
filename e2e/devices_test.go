package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

const (
	devFields = `fragment DevFields on Device { id name serialNumber model tags status createdAt lastSeenAt revokedAt firmwareVersion }`
	devCreate = `mutation($in: CreateDeviceInput!) {
  createDevice(input: $in) { token clientMutationId device { ...DevFields } }
}` + devFields
	devCreateMany = `mutation($in: CreateDevicesInput!) {
  createDevices(input: $in) { clientMutationId devices { id serialNumber status } }
}`
	devUpdate = `mutation($in: UpdateDeviceInput!) {
  updateDevice(input: $in) { clientMutationId device { ...DevFields } }
}` + devFields
	devRotate = `mutation($id: ID!) {
  rotateDeviceToken(input: {id: $id, clientMutationId: "rot"}) { token clientMutationId device { ...DevFields } }
}` + devFields
	devRevoke = `mutation($id: ID!) {
  revokeDevice(input: {id: $id}) { device { ...DevFields } }
}` + devFields
	devHeartbeat = `mutation($fw: String) {
  deviceHeartbeat(input: {firmwareVersion: $fw, clientMutationId: "hb"}) { clientMutationId device { ...DevFields } }
}` + devFields
	devCreateEnrollmentKey = `mutation($in: CreateEnrollmentKeyInput!) {
  createEnrollmentKey(input: $in) { secret clientMutationId enrollmentKey { id description tags reusable usesCount maxUses expiresAt revokedAt createdAt start } }
}`
	devRevokeEnrollmentKey = `mutation($id: ID!) {
  revokeEnrollmentKey(input: {id: $id}) { enrollmentKey { id revokedAt usesCount } }
}`
	devEnroll = `mutation($in: EnrollDeviceInput!) {
  enrollDevice(input: $in) { token clientMutationId device { ...DevFields } }
}` + devFields
	devNodeQuery = `query($id: ID!) {
  node(id: $id) {
    id
    ... on Device { name serialNumber tags status lastSeenAt revokedAt firmwareVersion }
    ... on EnrollmentKey { usesCount maxUses reusable revokedAt tags }
  }
}`
	devList = `query($first: Int, $after: String, $filter: DeviceFilter) {
  team { devices(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    nodes { id name serialNumber tags status }
  } }
}`
)

// devNew registers a device through the API and returns its id and token.
func devNew(e *env, key, name, serial string, tags ...string) (id, token string) {
	e.t.Helper()
	in := map[string]any{"name": name, "serialNumber": serial}
	if tags != nil {
		in["tags"] = tags
	}
	r := e.ok(key, devCreate, map[string]any{"in": in})
	return r.str("createDevice.device.id"), r.str("createDevice.token")
}

// devNewEnrollmentKey creates an enrollment key and returns its id and secret.
func devNewEnrollmentKey(e *env, key string, in map[string]any) (id, secret string) {
	e.t.Helper()
	r := e.ok(key, devCreateEnrollmentKey, map[string]any{"in": in})
	return r.str("createEnrollmentKey.enrollmentKey.id"), r.str("createEnrollmentKey.secret")
}

// devBeat sends a heartbeat with a credential ("" sends none).
func devBeat(e *env, token string) *response {
	e.t.Helper()
	return e.gql(token, devHeartbeat, map[string]any{"fw": "1.0.0"})
}

// devBeatStatus reports how the server answers a heartbeat: the HTTP status,
// and the error code and reason, if any.
func devBeatStatus(e *env, token string) (status int, code, reason string) {
	e.t.Helper()
	r := devBeat(e, token)
	return r.Status, r.code(), r.ext("reason")
}

// devNode reads one object by id with the key.
func devNode(e *env, key, id string) *response {
	e.t.Helper()
	return e.ok(key, devNodeQuery, map[string]any{"id": id})
}

func devRecent(t *testing.T, s string) {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || time.Since(at) > time.Minute || time.Until(at) > time.Minute {
		t.Fatalf("time %q is not now (%v)", s, err)
	}
}

func TestDeviceLifecycle(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := e.ok(e.admin, `{ viewer { id } }`, nil).str("viewer.id")

		r := e.ok(e.admin, devCreate, map[string]any{"in": map[string]any{
			"name": "Line 1 camera", "serialNumber": "SN-001", "model": "OAK-D", "tags": []string{"line1", "camera"}, "clientMutationId": "c1",
		}})
		id, token := r.str("createDevice.device.id"), r.str("createDevice.token")
		if !strings.HasPrefix(token, "kpd_") || !strings.HasPrefix(id, "dev_") || r.str("createDevice.clientMutationId") != "c1" {
			t.Fatalf("payload: %s", r.Raw)
		}
		if r.str("createDevice.device.status") != "PENDING" || r.str("createDevice.device.model") != "OAK-D" ||
			r.str("createDevice.device.serialNumber") != "SN-001" || r.str("createDevice.device.name") != "Line 1 camera" ||
			!slices.Equal(strs(r.get("createDevice.device.tags")), []string{"line1", "camera"}) ||
			r.get("createDevice.device.lastSeenAt") != nil || r.get("createDevice.device.firmwareVersion") != nil {
			t.Fatalf("new device: %s", r.Raw)
		}
		devRecent(t, r.str("createDevice.device.createdAt"))
		// The token is shown once: no field of a device reads it back.
		fields := e.ok(e.admin, `{ __type(name: "Device") { fields { name } } }`, nil)
		for _, f := range pluck(fields.list("__type.fields"), "name") {
			if strings.Contains(strings.ToLower(f), "token") {
				t.Fatalf("Device exposes %q", f)
			}
		}

		// The token heartbeats: the device is ONLINE with its firmware.
		hb := e.ok(token, devHeartbeat, map[string]any{"fw": "1.2.3"})
		if hb.str("deviceHeartbeat.device.id") != id || hb.str("deviceHeartbeat.device.status") != "ONLINE" ||
			hb.str("deviceHeartbeat.device.firmwareVersion") != "1.2.3" || hb.str("deviceHeartbeat.clientMutationId") != "hb" {
			t.Fatalf("heartbeat: %s", hb.Raw)
		}
		devRecent(t, hb.str("deviceHeartbeat.device.lastSeenAt"))
		if n := devNode(e, e.admin, id); n.str("node.status") != "ONLINE" || n.str("node.firmwareVersion") != "1.2.3" {
			t.Fatalf("after a heartbeat: %s", n.Raw)
		}

		// A heartbeat without a firmware version keeps the last one; a bad one is refused.
		if hb := e.ok(token, devHeartbeat, nil); hb.str("deviceHeartbeat.device.firmwareVersion") != "1.2.3" {
			t.Fatalf("heartbeat without firmware: %s", hb.Raw)
		}
		bad := e.fails(token, devHeartbeat, map[string]any{"fw": strings.Repeat("9", 201)}, "BAD_USER_INPUT")
		if f := bad.ext("field"); f != "firmwareVersion" {
			t.Fatalf("field = %q, want firmwareVersion", f)
		}

		// Seen four minutes ago: still ONLINE (window 5m).
		e.db.Exec(t, "UPDATE devices SET last_seen_at = ? WHERE id = ?", time.Now().UTC().Add(-4*time.Minute), uuidOf(t, ids.Device, id).String())
		if n := devNode(e, e.admin, id); n.str("node.status") != "ONLINE" {
			t.Fatalf("seen 4 minutes ago: %s", n.Raw)
		}
		// Not seen for ten minutes: OFFLINE.
		e.db.Exec(t, "UPDATE devices SET last_seen_at = ? WHERE id = ?", time.Now().UTC().Add(-10*time.Minute), uuidOf(t, ids.Device, id).String())
		if n := devNode(e, e.admin, id); n.str("node.status") != "OFFLINE" {
			t.Fatalf("seen 10 minutes ago: %s", n.Raw)
		}

		// updateDevice: name and tags; an absent field stays, an empty list clears.
		up := e.ok(e.admin, devUpdate, map[string]any{"in": map[string]any{"id": id, "name": "Left camera", "tags": []string{"left"}, "clientMutationId": "u"}})
		if up.str("updateDevice.device.name") != "Left camera" || !slices.Equal(strs(up.get("updateDevice.device.tags")), []string{"left"}) ||
			up.str("updateDevice.clientMutationId") != "u" || up.str("updateDevice.device.serialNumber") != "SN-001" {
			t.Fatalf("update: %s", up.Raw)
		}
		up = e.ok(e.admin, devUpdate, map[string]any{"in": map[string]any{"id": id, "name": "Left cam"}})
		if up.str("updateDevice.device.name") != "Left cam" || !slices.Equal(strs(up.get("updateDevice.device.tags")), []string{"left"}) {
			t.Fatalf("absent tags must stay: %s", up.Raw)
		}
		up = e.ok(e.admin, devUpdate, map[string]any{"in": map[string]any{"id": id, "tags": []string{}}})
		if up.str("updateDevice.device.name") != "Left cam" || len(strs(up.get("updateDevice.device.tags"))) != 0 {
			t.Fatalf("an empty list must clear the tags and keep the name: %s", up.Raw)
		}
		bad = e.fails(e.admin, devUpdate, map[string]any{"in": map[string]any{"id": id, "name": ""}}, "BAD_USER_INPUT")
		if f := bad.ext("field"); f != "name" {
			t.Fatalf("field = %q, want name", f)
		}

		// rotateDeviceToken: the old token is refused at once, the new one works.
		rot := e.ok(e.admin, devRotate, map[string]any{"id": id})
		fresh := rot.str("rotateDeviceToken.token")
		if !strings.HasPrefix(fresh, "kpd_") || fresh == token || rot.str("rotateDeviceToken.device.id") != id || rot.str("rotateDeviceToken.clientMutationId") != "rot" {
			t.Fatalf("rotate: %s", rot.Raw)
		}
		if st, code, reason := devBeatStatus(e, token); st != http.StatusUnauthorized || code != "UNAUTHENTICATED" || reason != "INVALID" {
			t.Fatalf("old token after rotation: %d %s %s", st, code, reason)
		}
		if st, code, _ := devBeatStatus(e, fresh); st != http.StatusOK || code != "" {
			t.Fatalf("new token: %d %s", st, code)
		}

		// revokeDevice: the token is refused with REVOKED; the device is REVOKED.
		rv := e.ok(e.admin, devRevoke, map[string]any{"id": id})
		revokedAt := rv.str("revokeDevice.device.revokedAt")
		if rv.str("revokeDevice.device.status") != "REVOKED" || revokedAt == "" {
			t.Fatalf("revoke: %s", rv.Raw)
		}
		devRecent(t, revokedAt)
		if st, _, reason := devBeatStatus(e, fresh); st != http.StatusUnauthorized || reason != "REVOKED" {
			t.Fatalf("revoked device's token: %d %s", st, reason)
		}
		e.fails(e.admin, devRotate, map[string]any{"id": id}, "FAILED_PRECONDITION")
		again := e.ok(e.admin, devRevoke, map[string]any{"id": id})
		if again.str("revokeDevice.device.revokedAt") != revokedAt || again.str("revokeDevice.device.status") != "REVOKED" {
			t.Fatalf("a second revoke changed the device: %s", again.Raw)
		}
		if st, _, reason := devBeatStatus(e, fresh); st != http.StatusUnauthorized || reason != "REVOKED" {
			t.Fatalf("after a refused rotation: %d %s", st, reason)
		}

		// Audit: every change, by the admin key, about the device; and its
		// first heartbeat's device.online, by the device itself.
		want := map[string]int{"device.create": 1, "device.update": 3, "device.rotateToken": 1, "device.revoke": 1, "device.online": 1}
		got := map[string]int{}
		for _, ev := range e.events(e.admin, map[string]any{"targetId": id}) {
			got[ev.Action]++
			if ev.Action == "device.online" {
				if ev.Actor != "" || ev.ActorDevice != id {
					t.Errorf("event %+v: want the device %s as its actor", ev, id)
				}
				continue
			}
			if ev.Actor != adminID || ev.ActorDevice != "" || ev.Target != id {
				t.Errorf("event %+v: want actor %s and target %s", ev, adminID, id)
			}
		}
		for action, n := range want {
			if got[action] != n {
				t.Errorf("%d %s events, want %d (all: %v)", got[action], action, n, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("events %v, want %v", got, want)
		}
		if n := e.db.Count(t, "audit_events", "action = ? AND target_id = ?", "device.revoke", id); n != 1 {
			t.Fatalf("%d device.revoke rows, want 1", n)
		}
	})
}

func TestDeviceOnlineWindowIsConfigurable(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d, func(c *config.Config) { c.DeviceOnlineWindow = time.Hour })
		id, token := devNew(e, e.admin, "slow", "SN-SLOW")
		e.ok(token, devHeartbeat, nil)
		e.db.Exec(t, "UPDATE devices SET last_seen_at = ? WHERE id = ?", time.Now().UTC().Add(-10*time.Minute), uuidOf(t, ids.Device, id).String())
		if n := devNode(e, e.admin, id); n.str("node.status") != "ONLINE" {
			t.Fatalf("seen 10 minutes ago with a 1h window: %s", n.Raw)
		}
		if r := e.ok(e.admin, devList, map[string]any{"filter": map[string]any{"status": "ONLINE"}}); r.get("team.devices.totalCount") != 1.0 {
			t.Fatalf("ONLINE filter with a 1h window: %s", r.Raw)
		}
		e.db.Exec(t, "UPDATE devices SET last_seen_at = ? WHERE id = ?", time.Now().UTC().Add(-2*time.Hour), uuidOf(t, ids.Device, id).String())
		if n := devNode(e, e.admin, id); n.str("node.status") != "OFFLINE" {
			t.Fatalf("seen 2 hours ago with a 1h window: %s", n.Raw)
		}
		if r := e.ok(e.admin, devList, map[string]any{"filter": map[string]any{"status": "OFFLINE"}}); r.get("team.devices.totalCount") != 1.0 {
			t.Fatalf("OFFLINE filter with a 1h window: %s", r.Raw)
		}
	})
}

func TestDeviceTokenOnlyForItsOwnFields(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		devID, token := devNew(e, e.admin, "cam", "SN-1")
		keys := e.db.Count(t, "api_keys", "1 = 1")

		for _, tc := range []struct {
			name, query, field string
			vars               map[string]any
		}{
			{"team", `{ team { name } }`, "team", nil},
			{"viewer", `{ viewer { id } }`, "viewer", nil},
			{"node of itself", `query($id: ID!) { node(id: $id) { id } }`, "node", map[string]any{"id": devID}},
			{"createApiKey", createKey, "createApiKey", map[string]any{"in": map[string]any{"name": "from a device"}}},
			{"createDevice", devCreate, "createDevice", map[string]any{"in": map[string]any{"name": "x", "serialNumber": "SN-X"}}},
			{"rotate its own token", devRotate, "rotateDeviceToken", map[string]any{"id": devID}},
		} {
			t.Run("device token reads "+tc.name, func(t *testing.T) {
				r := e.gql(token, tc.query, tc.vars)
				if r.Status != http.StatusOK || r.code() != "FORBIDDEN" || r.get(tc.field) != nil {
					t.Fatalf("want 200 FORBIDDEN and a null %s, got %d: %s", tc.field, r.Status, r.Raw)
				}
			})
		}
		if n := e.db.Count(t, "api_keys", "1 = 1"); n != keys {
			t.Fatalf("a device token created a key")
		}
		if n := e.db.Count(t, "devices", "1 = 1"); n != 1 {
			t.Fatalf("a device token created a device")
		}
		if st, _, _ := devBeatStatus(e, token); st != http.StatusOK {
			t.Fatal("a refused rotation by the device itself changed its token")
		}

		// An API key may not heartbeat; no credential is UNAUTHENTICATED.
		r := devBeat(e, e.admin)
		if r.Status != http.StatusOK || r.code() != "FORBIDDEN" || r.get("deviceHeartbeat") != nil {
			t.Fatalf("API key heartbeat: %d %s", r.Status, r.Raw)
		}
		r = devBeat(e, "")
		if r.Status != http.StatusOK || r.code() != "UNAUTHENTICATED" || r.get("deviceHeartbeat") != nil {
			t.Fatalf("anonymous heartbeat: %d %s", r.Status, r.Raw)
		}
		if n := e.db.Count(t, "devices", "last_seen_at IS NOT NULL"); n != 1 {
			t.Fatalf("%d devices seen, want only the one that heartbeat with its token", n)
		}

		// An enrollment key is no Bearer credential.
		_, secret := devNewEnrollmentKey(e, e.admin, map[string]any{"reusable": true})
		for _, q := range []string{`{ team { name } }`, devHeartbeat} {
			r := e.gql(secret, q, map[string]any{})
			if r.Status != http.StatusUnauthorized || r.code() != "UNAUTHENTICATED" || r.ext("reason") != "INVALID" ||
				!strings.Contains(r.Header.Get("WWW-Authenticate"), "invalid_token") || r.Data != nil {
				t.Fatalf("enrollment key as Bearer: %d %s", r.Status, r.Raw)
			}
		}
	})
}

func TestCreateDeviceRefusals(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		devNew(e, e.admin, "first", "SN-TAKEN")
		fiftyOne := make([]string, 51)
		for i := range fiftyOne {
			fiftyOne[i] = fmt.Sprintf("t%d", i)
		}
		for _, tc := range []struct {
			name  string
			in    map[string]any
			code  string
			field string
		}{
			{"empty name", map[string]any{"name": "", "serialNumber": "SN-2"}, "BAD_USER_INPUT", "name"},
			{"blank name", map[string]any{"name": "   ", "serialNumber": "SN-2"}, "BAD_USER_INPUT", "name"},
			{"empty serial", map[string]any{"name": "cam", "serialNumber": ""}, "BAD_USER_INPUT", "serialNumber"},
			{"serial of 201 characters", map[string]any{"name": "cam", "serialNumber": strings.Repeat("S", 201)}, "BAD_USER_INPUT", "serialNumber"},
			{"tag with a comma", map[string]any{"name": "cam", "serialNumber": "SN-2", "tags": []string{"a,b"}}, "BAD_USER_INPUT", "tags"},
			{"empty tag", map[string]any{"name": "cam", "serialNumber": "SN-2", "tags": []string{""}}, "BAD_USER_INPUT", "tags"},
			{"51 tags", map[string]any{"name": "cam", "serialNumber": "SN-2", "tags": fiftyOne}, "BAD_USER_INPUT", "tags"},
			{"tag of 65 characters", map[string]any{"name": "cam", "serialNumber": "SN-2", "tags": []string{strings.Repeat("t", 65)}}, "BAD_USER_INPUT", "tags"},
			{"model with a control character", map[string]any{"name": "cam", "serialNumber": "SN-2", "model": "OAK\x07"}, "BAD_USER_INPUT", "model"},
			{"duplicate serial", map[string]any{"name": "second", "serialNumber": "SN-TAKEN"}, "CONFLICT", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.fails(e.admin, devCreate, map[string]any{"in": tc.in}, tc.code)
				if r.Status != http.StatusOK || r.get("createDevice") != nil {
					t.Fatalf("refusal: %d %s", r.Status, r.Raw)
				}
				if tc.field != "" && r.ext("field") != tc.field {
					t.Errorf("field = %q, want %s", r.ext("field"), tc.field)
				}
			})
		}
		if n := e.db.Count(t, "devices", "1 = 1"); n != 1 {
			t.Fatalf("%d devices after the refusals, want 1", n)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "device.create"); n != 1 {
			t.Fatalf("%d device.create events, want 1", n)
		}

		// The limits themselves are allowed.
		fifty := fiftyOne[:50]
		r := e.ok(e.admin, devCreate, map[string]any{"in": map[string]any{
			"name": strings.Repeat("n", 200), "serialNumber": strings.Repeat("S", 200), "tags": append(slices.Clone(fifty[:49]), strings.Repeat("t", 64)),
		}})
		if len(strs(r.get("createDevice.device.tags"))) != 50 {
			t.Fatalf("limits: %s", r.Raw)
		}

		// Serial numbers are unique per team: another team may use the same.
		other := e.bootstrap("Other")
		devNew(e, other, "theirs", "SN-TAKEN")
		if n := e.db.Count(t, "devices", "serial_number = ?", "SN-TAKEN"); n != 2 {
			t.Fatalf("%d devices with the serial, want one per team", n)
		}
	})
}

func TestCreateDevicesAllOrNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		batch := func(serials ...string) map[string]any {
			specs := make([]map[string]any, len(serials))
			for i, s := range serials {
				specs[i] = map[string]any{"name": "cam " + s, "serialNumber": s, "tags": []string{"bulk"}}
			}
			return map[string]any{"in": map[string]any{"devices": specs, "clientMutationId": "bulk"}}
		}
		serials := make([]string, 1000)
		for i := range serials {
			serials[i] = fmt.Sprintf("BULK-%04d", i)
		}

		r := e.ok(e.admin, devCreateMany, batch(serials...))
		created := r.list("createDevices.devices")
		if len(created) != 1000 || r.str("createDevices.clientMutationId") != "bulk" {
			t.Fatalf("%d devices in the payload", len(created))
		}
		if got := pluck(created, "serialNumber"); !slices.Equal(got, serials) {
			t.Fatalf("payload not in the order given")
		}
		for _, s := range pluck(created, "status") {
			if s != "PENDING" {
				t.Fatalf("bulk device status %s", s)
			}
		}
		if n := e.db.Count(t, "devices", "1 = 1"); n != 1000 {
			t.Fatalf("%d devices stored, want 1000", n)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "device.create"); n != 1000 {
			t.Fatalf("%d device.create events, want 1000", n)
		}
		// The payload carries no token.
		fields := pluck(e.ok(e.admin, `{ __type(name: "CreateDevicesPayload") { fields { name } } }`, nil).list("__type.fields"), "name")
		slices.Sort(fields)
		if !slices.Equal(fields, []string{"clientMutationId", "devices"}) {
			t.Fatalf("CreateDevicesPayload fields %v", fields)
		}

		tooMany := make([]string, 1001)
		for i := range tooMany {
			tooMany[i] = fmt.Sprintf("MANY-%04d", i)
		}
		for _, tc := range []struct {
			name  string
			vars  map[string]any
			code  string
			field string
		}{
			{"duplicate inside the batch", batch("NEW-1", "NEW-2", "NEW-1"), "CONFLICT", ""},
			{"serial already stored", batch("NEW-1", "BULK-0007", "NEW-2"), "CONFLICT", ""},
			{"1001 devices", batch(tooMany...), "BAD_USER_INPUT", "devices"},
			{"no devices", batch(), "BAD_USER_INPUT", "devices"},
			{"one bad device", map[string]any{"in": map[string]any{"devices": []map[string]any{
				{"name": "ok", "serialNumber": "NEW-1"}, {"name": "", "serialNumber": "NEW-2"},
			}}}, "BAD_USER_INPUT", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.fails(e.admin, devCreateMany, tc.vars, tc.code)
				if r.get("createDevices") != nil {
					t.Fatalf("payload on a refusal: %s", r.Raw)
				}
				if tc.field != "" && r.ext("field") != tc.field {
					t.Errorf("field = %q, want %s", r.ext("field"), tc.field)
				}
				if tc.code == "BAD_USER_INPUT" && r.ext("field") == "" {
					t.Errorf("BAD_USER_INPUT without a field: %s", r.Raw)
				}
			})
		}
		if n := e.db.Count(t, "devices", "1 = 1"); n != 1000 {
			t.Fatalf("%d devices after the refused batches, want 1000", n)
		}
		if n := e.db.Count(t, "devices", "serial_number LIKE ? OR serial_number LIKE ?", "NEW-%", "MANY-%"); n != 0 {
			t.Fatalf("%d devices of refused batches kept", n)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "device.create"); n != 1000 {
			t.Fatalf("%d device.create events after the refused batches, want 1000", n)
		}

		// A bulk-created device has no token until rotateDeviceToken gives it one.
		id := pluck(created, "id")[3]
		rot := e.ok(e.admin, devRotate, map[string]any{"id": id})
		token := rot.str("rotateDeviceToken.token")
		if !strings.HasPrefix(token, "kpd_") {
			t.Fatalf("rotate: %s", rot.Raw)
		}
		hb := e.ok(token, devHeartbeat, map[string]any{"fw": "2.0"})
		if hb.str("deviceHeartbeat.device.id") != id || hb.str("deviceHeartbeat.device.status") != "ONLINE" {
			t.Fatalf("heartbeat of a bulk device: %s", hb.Raw)
		}
	})
}

func TestConcurrentDuplicateSerials(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		const n = 10
		codes := tally(e.race(n, func(i int) *response {
			return e.gql(e.admin, devCreate, map[string]any{"in": map[string]any{"name": fmt.Sprintf("racer %d", i), "serialNumber": "SN-RACE"}})
		}))
		if codes[""] != 1 || codes["CONFLICT"] != n-1 {
			t.Fatalf("outcomes %v: want exactly one success and %d CONFLICT", codes, n-1)
		}
		if c := e.db.Count(t, "devices", "serial_number = ?", "SN-RACE"); c != 1 {
			t.Fatalf("%d devices with the serial, want 1", c)
		}
		if c := e.db.Count(t, "audit_events", "action = ?", "device.create"); c != 1 {
			t.Fatalf("%d device.create events, want 1", c)
		}
	})
}

func TestRotateVersusHeartbeat(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		id, original := devNew(e, e.admin, "busy", "SN-BUSY")

		const beaters, beats = 20, 5
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			outcomes = map[string]int{}
			start    = make(chan struct{})
		)
		for range beaters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range beats {
					r := devBeat(e, original)
					key := fmt.Sprintf("%d %s", r.Status, r.code())
					mu.Lock()
					outcomes[key]++
					mu.Unlock()
				}
			}()
		}
		close(start)
		rot := e.gql(e.admin, devRotate, map[string]any{"id": id})
		fresh := rot.str("rotateDeviceToken.token")
		if rot.code() != "" || fresh == "" {
			t.Errorf("rotation during heartbeats: %s", rot.Raw)
		}
		// Once the rotation has returned, the old token is refused.
		if st, _, reason := devBeatStatus(e, original); st != http.StatusUnauthorized || reason != "INVALID" {
			t.Errorf("old token right after the rotation: %d %s", st, reason)
		}
		wg.Wait()
		allowed := map[string]bool{"200 ": true, "401 UNAUTHENTICATED": true, "200 UNAUTHENTICATED": true}
		total := 0
		for k, n := range outcomes {
			total += n
			if !allowed[k] {
				t.Errorf("heartbeat answered %q %d times; want only success or UNAUTHENTICATED (all: %v)", k, n, outcomes)
			}
		}
		if total != beaters*beats {
			t.Fatalf("%d heartbeat answers, want %d", total, beaters*beats)
		}
		if st, _, reason := devBeatStatus(e, original); st != http.StatusUnauthorized || reason != "INVALID" {
			t.Fatalf("old token after the rotation: %d %s", st, reason)
		}
		if st, code, _ := devBeatStatus(e, fresh); st != http.StatusOK || code != "" {
			t.Fatalf("new token: %d %s", st, code)
		}

		// Ten rotations at once: each succeeds or gets CONFLICT, and exactly
		// one token works afterwards.
		const n = 10
		rs := e.race(n, func(int) *response { return e.gql(e.admin, devRotate, map[string]any{"id": id}) })
		codes, tokens := tally(rs), collect(rs, "rotateDeviceToken.token")
		if codes[""]+codes["CONFLICT"] != n || codes[""] == 0 || len(tokens) != codes[""] {
			t.Fatalf("outcomes %v: every rotation must succeed or answer CONFLICT", codes)
		}
		live := 0
		for _, tok := range append(tokens, original, fresh) {
			if st, _, _ := devBeatStatus(e, tok); st == http.StatusOK {
				live++
			}
		}
		if live != 1 {
			t.Fatalf("%d live tokens after %d rotations, want exactly 1", live, codes[""])
		}
		if c := e.db.Count(t, "audit_events", "action = ? AND target_id = ?", "device.rotateToken", id); c != int64(codes[""])+1 {
			t.Fatalf("%d device.rotateToken events for %d rotations", c, codes[""]+1)
		}
	})
}

func TestDeviceFilters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		front, frontTok := devNew(e, e.admin, "Front Door Camera", "FD-001", "camera", "front")
		back, backTok := devNew(e, e.admin, "Back cam", "BK-002", "cam")
		thermo, _ := devNew(e, e.admin, "Thermostat", "TH-100", "a_b", "100%")
		boiler, _ := devNew(e, e.admin, "Boiler", "BX-CAM-9", "axb", "100abc")
		old, oldTok := devNew(e, e.admin, "Old sensor", "OS-5", "camera")

		for _, tok := range []string{frontTok, backTok, oldTok} {
			e.ok(tok, devHeartbeat, map[string]any{"fw": "1"})
		}
		e.db.Exec(t, "UPDATE devices SET last_seen_at = ? WHERE id = ?", time.Now().UTC().Add(-10*time.Minute), uuidOf(t, ids.Device, back).String())
		e.ok(e.admin, devRevoke, map[string]any{"id": old})

		all := []string{front, back, thermo, boiler, old}
		for _, tc := range []struct {
			name   string
			filter map[string]any
			want   []string
		}{
			{"none", nil, all},
			{"status PENDING", map[string]any{"status": "PENDING"}, []string{thermo, boiler}},
			{"status ONLINE", map[string]any{"status": "ONLINE"}, []string{front}},
			{"status OFFLINE", map[string]any{"status": "OFFLINE"}, []string{back}},
			{"status REVOKED", map[string]any{"status": "REVOKED"}, []string{old}},
			{"tag camera", map[string]any{"tag": "camera"}, []string{front, old}},
			{"tag cam is not camera", map[string]any{"tag": "cam"}, []string{back}},
			{"tag ca matches nothing", map[string]any{"tag": "ca"}, nil},
			{"tag is case-sensitive", map[string]any{"tag": "CAMERA"}, nil},
			{"tag with an underscore is literal", map[string]any{"tag": "a_b"}, []string{thermo}},
			{"tag with a percent is literal", map[string]any{"tag": "100%"}, []string{thermo}},
			{"tag axb", map[string]any{"tag": "axb"}, []string{boiler}},
			{"two adjacent tags are not one tag", map[string]any{"tag": "camera,front"}, nil},
			{"search name, any case", map[string]any{"search": "CAMERA"}, []string{front}},
			{"search name or serial", map[string]any{"search": "cam"}, []string{front, back, boiler}},
			{"search serial, any case", map[string]any{"search": "th-1"}, []string{thermo}},
			{"search percent is literal", map[string]any{"search": "%"}, nil},
			{"search underscore is literal", map[string]any{"search": "_"}, nil},
			{"status and tag", map[string]any{"status": "ONLINE", "tag": "camera"}, []string{front}},
			{"status and search", map[string]any{"status": "PENDING", "search": "cam"}, []string{boiler}},
			{"tag and search", map[string]any{"tag": "camera", "search": "sensor"}, []string{old}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.gql(e.admin, devList, map[string]any{"first": 100, "filter": tc.filter})
				if len(r.Errors) > 0 {
					// A tag holding a comma names no possible tag: it may be refused as input.
					if strings.Contains(fmt.Sprint(tc.filter["tag"]), ",") && r.code() == "BAD_USER_INPUT" {
						return
					}
					t.Fatalf("list: %s", r.Raw)
				}
				got := pluck(r.list("team.devices.nodes"), "id")
				if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
				if total, _ := r.get("team.devices.totalCount").(float64); int(total) != len(got) {
					t.Errorf("totalCount %v for %d devices", total, len(got))
				}
			})
		}

		// Pages keep the order, with and without a filter.
		page := func(first int, after any, filter map[string]any) (ids []string, next bool, cursor any, total float64) {
			r := e.ok(e.admin, devList, map[string]any{"first": first, "after": after, "filter": filter})
			total, _ = r.get("team.devices.totalCount").(float64)
			next, _ = r.get("team.devices.pageInfo.hasNextPage").(bool)
			return pluck(r.list("team.devices.nodes"), "id"), next, r.get("team.devices.pageInfo.endCursor"), total
		}
		var seen []string
		var cursor any
		for i := 0; ; i++ {
			ids, next, c, total := page(2, cursor, nil)
			if total != 5 {
				t.Fatalf("totalCount %v on page %d", total, i)
			}
			seen = append(seen, ids...)
			cursor = c
			if !next {
				break
			}
			if i > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if !slices.Equal(seen, all) {
			t.Fatalf("pages gave %v, want %v", seen, all)
		}
		ids1, next, c, total := page(1, nil, map[string]any{"tag": "camera"})
		ids2, next2, _, total2 := page(1, c, map[string]any{"tag": "camera"})
		if !slices.Equal(ids1, []string{front}) || !next || !slices.Equal(ids2, []string{old}) || next2 || total != 2 || total2 != 2 {
			t.Fatalf("filtered pages: %v %v %v %v %v %v", ids1, next, ids2, next2, total, total2)
		}
	})
}

func TestEnrollment(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		enroll := func(key, serial string, extra map[string]any) *response {
			in := map[string]any{"enrollmentKey": key, "serialNumber": serial}
			for k, v := range extra {
				in[k] = v
			}
			return e.gql("", devEnroll, map[string]any{"in": in})
		}
		uses := func(id string) float64 {
			n, _ := devNode(e, e.admin, id).get("node.usesCount").(float64)
			return n
		}

		// A one-use key: its secret once, and start is a prefix of it.
		r := e.ok(e.admin, devCreateEnrollmentKey, map[string]any{"in": map[string]any{
			"description": "line 1", "tags": []string{"factory", "line1"}, "reusable": false, "clientMutationId": "ek",
		}})
		oneID, oneSecret := r.str("createEnrollmentKey.enrollmentKey.id"), r.str("createEnrollmentKey.secret")
		start := r.str("createEnrollmentKey.enrollmentKey.start")
		if !strings.HasPrefix(oneSecret, "kpe_") || !strings.HasPrefix(oneID, "enr_") || start == "" || !strings.HasPrefix(oneSecret, start) ||
			start == oneSecret || r.str("createEnrollmentKey.clientMutationId") != "ek" {
			t.Fatalf("payload: %s", r.Raw)
		}
		if r.get("createEnrollmentKey.enrollmentKey.reusable") != false || r.get("createEnrollmentKey.enrollmentKey.usesCount") != 0.0 ||
			r.get("createEnrollmentKey.enrollmentKey.maxUses") != 1.0 || r.str("createEnrollmentKey.enrollmentKey.description") != "line 1" ||
			!slices.Equal(strs(r.get("createEnrollmentKey.enrollmentKey.tags")), []string{"factory", "line1"}) {
			t.Fatalf("new enrollment key: %s", r.Raw)
		}

		// enrollDevice needs no Bearer: the device gets the key's tags, its
		// serial as name, and a token that heartbeats.
		en := enroll(oneSecret, "SN-E1", map[string]any{"model": "OAK-1", "clientMutationId": "en"})
		if en.Status != http.StatusOK || len(en.Errors) > 0 {
			t.Fatalf("enroll: %d %s", en.Status, en.Raw)
		}
		enrolledID, enrolledTok := en.str("enrollDevice.device.id"), en.str("enrollDevice.token")
		if !strings.HasPrefix(enrolledTok, "kpd_") || en.str("enrollDevice.device.name") != "SN-E1" || en.str("enrollDevice.device.model") != "OAK-1" ||
			!slices.Equal(strs(en.get("enrollDevice.device.tags")), []string{"factory", "line1"}) ||
			en.str("enrollDevice.device.status") != "PENDING" || en.str("enrollDevice.clientMutationId") != "en" {
			t.Fatalf("enrolled device: %s", en.Raw)
		}
		if hb := e.ok(enrolledTok, devHeartbeat, map[string]any{"fw": "0.9"}); hb.str("deviceHeartbeat.device.id") != enrolledID {
			t.Fatalf("enrolled device's heartbeat: %s", hb.Raw)
		}
		if n := devNode(e, e.admin, enrolledID); n.str("node.status") != "ONLINE" || n.str("node.serialNumber") != "SN-E1" {
			t.Fatalf("enrolled device as the team sees it: %s", n.Raw)
		}
		if u := uses(oneID); u != 1 {
			t.Fatalf("usesCount %v after one enrollment", u)
		}
		named := e.ok(e.admin, devCreateEnrollmentKey, map[string]any{"in": map[string]any{"reusable": true}})
		namedSecret := named.str("createEnrollmentKey.secret")
		if en := enroll(namedSecret, "SN-NAMED", map[string]any{"name": "Named cam"}); en.str("enrollDevice.device.name") != "Named cam" ||
			len(strs(en.get("enrollDevice.device.tags"))) != 0 {
			t.Fatalf("enroll with a name: %s", en.Raw)
		}

		// Keys that do not enroll.
		revokedID, revokedSecret := devNewEnrollmentKey(e, e.admin, map[string]any{"reusable": true})
		rv := e.ok(e.admin, devRevokeEnrollmentKey, map[string]any{"id": revokedID})
		if rv.str("revokeEnrollmentKey.enrollmentKey.revokedAt") == "" {
			t.Fatalf("revoke: %s", rv.Raw)
		}
		e.ok(e.admin, devRevokeEnrollmentKey, map[string]any{"id": revokedID}) // again: nothing more
		expiredID, expiredSecret := devNewEnrollmentKey(e, e.admin, map[string]any{
			"reusable": true, "expiresAt": time.Now().UTC().Add(time.Hour).Format(time.RFC3339),
		})
		e.db.Exec(t, "UPDATE enrollment_keys SET expires_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Minute), uuidOf(t, ids.EnrollmentKey, expiredID).String())
		forged, _ := credential.Generate(credential.EnrollmentKey, uuidOf(t, ids.EnrollmentKey, oneID))
		unknown, _ := credential.Generate(credential.EnrollmentKey, ids.New())
		devicesBefore := e.db.Count(t, "devices", "1 = 1")
		for _, tc := range []struct {
			name, key, reason string
		}{
			{"one-use key used up", oneSecret, "USED_UP"},
			{"revoked key", revokedSecret, "REVOKED"},
			{"expired key", expiredSecret, "EXPIRED"},
			{"wrong secret for a real key", forged.Token, "INVALID"},
			{"unknown key", unknown.Token, "INVALID"},
			{"an API key", e.admin, "INVALID"},
			{"a device token", enrolledTok, "INVALID"},
			{"garbage", "kpe_nope", "INVALID"},
			{"empty", "", "INVALID"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := enroll(tc.key, "SN-REFUSED", nil)
				if r.code() != "UNAUTHENTICATED" || r.ext("reason") != tc.reason || r.get("enrollDevice") != nil {
					t.Fatalf("want UNAUTHENTICATED %s, got %d: %s", tc.reason, r.Status, r.Raw)
				}
			})
		}
		if n := e.db.Count(t, "devices", "1 = 1"); n != devicesBefore {
			t.Fatalf("refused enrollments created %d devices", n-devicesBefore)
		}
		if u := uses(oneID); u != 1 {
			t.Fatalf("usesCount %v after refusals, want 1", u)
		}
		if u := uses(revokedID); u != 0 {
			t.Fatalf("revoked key usesCount %v", u)
		}
		if u := uses(expiredID); u != 0 {
			t.Fatalf("expired key usesCount %v", u)
		}

		// A refused device (duplicate serial, bad input) does not use the key.
		reusableID, reusableSecret := devNewEnrollmentKey(e, e.admin, map[string]any{"reusable": true, "maxUses": 3, "tags": []string{"r"}})
		e.ok("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": reusableSecret, "serialNumber": "SN-R1"}})
		for _, tc := range []struct {
			name, serial, code string
		}{
			{"serial it enrolled", "SN-R1", "CONFLICT"},
			{"serial of another key's device", "SN-E1", "CONFLICT"},
			{"empty serial", "", "BAD_USER_INPUT"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := enroll(reusableSecret, tc.serial, nil)
				if r.code() != tc.code || r.get("enrollDevice") != nil {
					t.Fatalf("want %s, got %s", tc.code, r.Raw)
				}
			})
		}
		if u := uses(reusableID); u != 1 {
			t.Fatalf("usesCount %v after one enrollment and refused ones, want 1", u)
		}
		if n := e.db.Count(t, "devices", "serial_number = ?", "SN-R1"); n != 1 {
			t.Fatalf("%d devices SN-R1", n)
		}

		// Audit: device.enroll by the device itself, no key.
		var enrollEvents []event
		for _, ev := range e.events(e.admin, map[string]any{"action": "device.enroll"}) {
			enrollEvents = append(enrollEvents, ev)
			if ev.Actor != "" || ev.ActorDevice == "" || ev.ActorDevice != ev.Target {
				t.Errorf("device.enroll event %+v: want no actor and actorDevice = target", ev)
			}
		}
		if len(enrollEvents) != 3 || enrollEvents[0].Target != enrolledID {
			t.Fatalf("device.enroll events %+v, want 3, the first for %s", enrollEvents, enrolledID)
		}
		if n := e.db.Count(t, "audit_events", "action = ?", "enrollmentKey.create"); n != 5 {
			t.Fatalf("%d enrollmentKey.create events, want 5", n)
		}
		if n := e.db.Count(t, "audit_events", "action = ? AND target_id = ?", "enrollmentKey.revoke", revokedID); n != 1 {
			t.Fatalf("%d enrollmentKey.revoke events, want 1", n)
		}
		list := e.ok(e.admin, `{ team { enrollmentKeys { totalCount nodes { id } } } }`, nil)
		if got := pluck(list.list("team.enrollmentKeys.nodes"), "id"); len(got) != 5 || got[0] != oneID || list.get("team.enrollmentKeys.totalCount") != 5.0 {
			t.Fatalf("enrollmentKeys: %s", list.Raw)
		}

		// createEnrollmentKey refusals.
		keysBefore := e.db.Count(t, "enrollment_keys", "1 = 1")
		for _, tc := range []struct {
			name  string
			in    map[string]any
			field string
		}{
			{"maxUses 0", map[string]any{"reusable": true, "maxUses": 0}, "maxUses"},
			{"maxUses over the bound", map[string]any{"reusable": true, "maxUses": 1000001}, "maxUses"},
			{"maxUses 2 on a one-use key", map[string]any{"reusable": false, "maxUses": 2}, "maxUses"},
			{"expiresAt in the past", map[string]any{"expiresAt": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)}, "expiresAt"},
			{"tag with a comma", map[string]any{"tags": []string{"a,b"}}, "tags"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.fails(e.admin, devCreateEnrollmentKey, map[string]any{"in": tc.in}, "BAD_USER_INPUT")
				if r.ext("field") != tc.field {
					t.Errorf("field = %q, want %s", r.ext("field"), tc.field)
				}
			})
		}
		if n := e.db.Count(t, "enrollment_keys", "1 = 1"); n != keysBefore {
			t.Fatalf("refused enrollment keys were stored")
		}
	})
}

func TestConcurrentEnrollmentHonoursMaxUses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		keyID, secret := devNewEnrollmentKey(e, e.admin, map[string]any{"reusable": true, "maxUses": 5})
		const n = 20
		codes := map[string]int{}
		for _, r := range e.race(n, func(i int) *response {
			return e.gql("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": secret, "serialNumber": fmt.Sprintf("SN-C%02d", i)}})
		}) {
			codes[r.code()+"/"+r.ext("reason")]++
		}
		if codes["/"] != 5 || codes["UNAUTHENTICATED/USED_UP"] != n-5 {
			t.Fatalf("outcomes %v: want 5 enrollments and %d USED_UP", codes, n-5)
		}
		if c := e.db.Count(t, "devices", "1 = 1"); c != 5 {
			t.Fatalf("%d devices, want 5", c)
		}
		if u := devNode(e, e.admin, keyID).get("node.usesCount"); u != 5.0 {
			t.Fatalf("usesCount %v, want 5", u)
		}
		if c := e.db.Count(t, "audit_events", "action = ?", "device.enroll"); c != 5 {
			t.Fatalf("%d device.enroll events, want 5", c)
		}
	})
}

func TestDevicesAcrossTeams(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		b := e.bootstrap("Beta")
		aDev, aTok := devNew(e, e.admin, "ours", "SN-A")
		bDev, bTok := devNew(e, b, "theirs", "SN-B", "beta")
		bKey, bSecret := devNewEnrollmentKey(e, b, map[string]any{"reusable": true})
		unknownDev := ids.Encode(ids.Device, ids.New())
		unknownKey := ids.Encode(ids.EnrollmentKey, ids.New())

		for _, tc := range []struct {
			name, query, field string
			vars               func(id string) map[string]any
			foreign, unknown   string
		}{
			{"updateDevice", devUpdate, "updateDevice", func(id string) map[string]any {
				return map[string]any{"in": map[string]any{"id": id, "name": "taken over", "tags": []string{"x"}}}
			}, bDev, unknownDev},
			{"updateDevice without changes", devUpdate, "updateDevice", func(id string) map[string]any {
				return map[string]any{"in": map[string]any{"id": id}}
			}, bDev, unknownDev},
			{"rotateDeviceToken", devRotate, "rotateDeviceToken", func(id string) map[string]any { return map[string]any{"id": id} }, bDev, unknownDev},
			{"revokeDevice", devRevoke, "revokeDevice", func(id string) map[string]any { return map[string]any{"id": id} }, bDev, unknownDev},
			{"revokeEnrollmentKey", devRevokeEnrollmentKey, "revokeEnrollmentKey", func(id string) map[string]any { return map[string]any{"id": id} }, bKey, unknownKey},
		} {
			t.Run(tc.name, func(t *testing.T) {
				foreign := e.fails(e.admin, tc.query, tc.vars(tc.foreign), "NOT_FOUND")
				unknown := e.fails(e.admin, tc.query, tc.vars(tc.unknown), "NOT_FOUND")
				if foreign.Errors[0].Message != unknown.Errors[0].Message || len(foreign.Errors) != len(unknown.Errors) {
					t.Errorf("foreign %q differs from unknown %q", foreign.Errors[0].Message, unknown.Errors[0].Message)
				}
				if foreign.get(tc.field) != nil || foreign.Status != unknown.Status {
					t.Errorf("foreign answer: %d %s", foreign.Status, foreign.Raw)
				}
			})
		}

		// Nothing of B changed.
		if st, code, _ := devBeatStatus(e, bTok); st != http.StatusOK || code != "" {
			t.Fatalf("B's token after A's attempts: %d %s", st, code)
		}
		bn := devNode(e, b, bDev)
		if bn.str("node.name") != "theirs" || !slices.Equal(strs(bn.get("node.tags")), []string{"beta"}) || bn.get("node.revokedAt") != nil {
			t.Fatalf("B's device changed: %s", bn.Raw)
		}
		if kn := devNode(e, b, bKey); kn.get("node.revokedAt") != nil {
			t.Fatalf("B's enrollment key changed: %s", kn.Raw)
		}
		if n := e.db.Count(t, "audit_events", "target_id IN (?, ?) AND action NOT IN (?, ?)", bDev, bKey, "device.create", "device.online"); n != 1 {
			t.Fatalf("%d events about B's objects besides the creation and its heartbeat, want only enrollmentKey.create", n)
		}
		if n := e.db.Count(t, "audit_events", "action IN (?, ?, ?, ?)", "device.update", "device.rotateToken", "device.revoke", "enrollmentKey.revoke"); n != 0 {
			t.Fatalf("%d events recorded by refused cross-team mutations", n)
		}

		// node and nodes read B's objects as null.
		for _, id := range []string{bDev, bKey} {
			r := e.ok(e.admin, devNodeQuery, map[string]any{"id": id})
			if v, present := r.Data["node"]; !present || v != nil {
				t.Fatalf("node(%s) from A: %s", id, r.Raw)
			}
		}
		r := e.ok(e.admin, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": []string{bDev, aDev, bKey, unknownDev}})
		nodes := r.list("nodes")
		if len(nodes) != 4 || nodes[0] != nil || nodes[2] != nil || nodes[3] != nil {
			t.Fatalf("nodes: %s", r.Raw)
		}
		if m, _ := nodes[1].(map[string]any); m["id"] != aDev {
			t.Fatalf("nodes[1]: %s", r.Raw)
		}

		// A's list holds none of B's devices.
		list := e.ok(e.admin, devList, map[string]any{"first": 100})
		if got := pluck(list.list("team.devices.nodes"), "id"); !slices.Equal(got, []string{aDev}) || list.get("team.devices.totalCount") != 1.0 {
			t.Fatalf("A's devices: %s", list.Raw)
		}
		for _, f := range []map[string]any{{"search": "SN-B"}, {"tag": "beta"}} {
			if r := e.ok(e.admin, devList, map[string]any{"filter": f}); len(r.list("team.devices.nodes")) != 0 || r.get("team.devices.totalCount") != 0.0 {
				t.Fatalf("A's devices filtered by %v: %s", f, r.Raw)
			}
		}
		if r := e.ok(e.admin, `{ team { enrollmentKeys { totalCount } } }`, nil); r.get("team.enrollmentKeys.totalCount") != 0.0 {
			t.Fatalf("A's enrollment keys: %s", r.Raw)
		}

		// B's enrollment key enrolls into B, never into A.
		en := e.ok("", devEnroll, map[string]any{"in": map[string]any{"enrollmentKey": bSecret, "serialNumber": "SN-A"}})
		enrolled := en.str("enrollDevice.device.id")
		if r := e.ok(e.admin, devNodeQuery, map[string]any{"id": enrolled}); r.get("node") != nil {
			t.Fatalf("a device enrolled with B's key reads in A: %s", r.Raw)
		}
		if r := devNode(e, b, enrolled); r.str("node.serialNumber") != "SN-A" {
			t.Fatalf("B's enrolled device: %s", r.Raw)
		}

		// A device token of B heartbeats B's device only.
		aUUID, bUUID := uuidOf(t, ids.Device, aDev).String(), uuidOf(t, ids.Device, bDev).String()
		e.db.Exec(t, "UPDATE devices SET last_seen_at = NULL WHERE id IN (?, ?)", aUUID, bUUID)
		hb := e.ok(bTok, devHeartbeat, map[string]any{"fw": "b-1"})
		if hb.str("deviceHeartbeat.device.id") != bDev {
			t.Fatalf("B's heartbeat answered for %s", hb.str("deviceHeartbeat.device.id"))
		}
		if n := e.db.Count(t, "devices", "id = ? AND last_seen_at IS NOT NULL AND firmware_version = ?", bUUID, "b-1"); n != 1 {
			t.Fatal("B's heartbeat did not mark B's device seen")
		}
		if n := e.db.Count(t, "devices", "id = ? AND last_seen_at IS NULL AND firmware_version IS NULL", aUUID); n != 1 {
			t.Fatal("B's heartbeat touched A's device")
		}
		if st, _, _ := devBeatStatus(e, aTok); st != http.StatusOK {
			t.Fatal("A's token refused")
		}
	})
}

func TestDeviceNodesNeedScopes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		devID, _ := devNew(e, e.admin, "cam", "SN-1")
		enrID, _ := devNewEnrollmentKey(e, e.admin, map[string]any{})
		_, keysOnly := e.newKey(e.admin, "keys reader", "API_KEYS_READ")
		_, reader := e.newKey(e.admin, "devices reader", "DEVICES_READ")

		for _, id := range []string{devID, enrID} {
			r := e.gql(keysOnly, devNodeQuery, map[string]any{"id": id})
			if r.Status != http.StatusOK || r.code() != "FORBIDDEN" || r.ext("scope") != "DEVICES_READ" || r.get("node") != nil {
				t.Fatalf("node(%s) without DEVICES_READ: %s", id, r.Raw)
			}
		}
		for _, field := range []string{"devices", "enrollmentKeys"} {
			r := e.gql(keysOnly, `{ team { name `+field+` { totalCount } } }`, nil)
			if r.str("team.name") != "Acme" || r.get("team."+field) != nil || r.code() != "FORBIDDEN" || r.ext("scope") != "DEVICES_READ" {
				t.Fatalf("team.%s without DEVICES_READ: %s", field, r.Raw)
			}
		}

		// DEVICES_READ reads, and writes nothing.
		if r := devNode(e, reader, devID); r.str("node.id") != devID {
			t.Fatalf("node with DEVICES_READ: %s", r.Raw)
		}
		if r := e.ok(reader, `{ team { devices { totalCount } enrollmentKeys { totalCount } } }`, nil); r.get("team.devices.totalCount") != 1.0 || r.get("team.enrollmentKeys.totalCount") != 1.0 {
			t.Fatalf("lists with DEVICES_READ: %s", r.Raw)
		}
		for _, tc := range []struct {
			name, query string
			vars        map[string]any
		}{
			{"createDevice", devCreate, map[string]any{"in": map[string]any{"name": "x", "serialNumber": "SN-2"}}},
			{"createDevices", devCreateMany, map[string]any{"in": map[string]any{"devices": []map[string]any{{"name": "x", "serialNumber": "SN-3"}}}}},
			{"updateDevice", devUpdate, map[string]any{"in": map[string]any{"id": devID, "name": "renamed"}}},
			{"rotateDeviceToken", devRotate, map[string]any{"id": devID}},
			{"revokeDevice", devRevoke, map[string]any{"id": devID}},
			{"createEnrollmentKey", devCreateEnrollmentKey, map[string]any{"in": map[string]any{}}},
			{"revokeEnrollmentKey", devRevokeEnrollmentKey, map[string]any{"id": enrID}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.fails(reader, tc.query, tc.vars, "FORBIDDEN")
				if r.ext("scope") != "DEVICES_WRITE" || r.Status != http.StatusOK {
					t.Fatalf("want FORBIDDEN DEVICES_WRITE, got %d: %s", r.Status, r.Raw)
				}
			})
		}
		if n := e.db.Count(t, "devices", "1 = 1"); n != 1 {
			t.Fatalf("%d devices, want 1", n)
		}
		if n := e.db.Count(t, "devices", "name = ? AND revoked_at IS NULL", "cam"); n != 1 {
			t.Fatal("a refused mutation changed the device")
		}
		if n := e.db.Count(t, "enrollment_keys", "revoked_at IS NULL"); n != 1 {
			t.Fatal("a refused mutation changed the enrollment keys")
		}
	})
}
