package devices_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/devices"
	"github.com/keyplane/keyplane/internal/domaintest"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
)

// fleet is the team's devices and enrollment keys as stored, for Guard to
// see that a refused call wrote none of them.
func fleet(t *testing.T, fx *domaintest.Fixture) func() any {
	return func() any {
		ctx, all := context.Background(), store.PageArgs{Limit: 1000}
		devs, err := fx.Store.ListDevices(ctx, fx.Team.ID, store.DeviceFilter{}, all, time.Time{}, time.Minute)
		if err != nil {
			t.Fatalf("list devices: %v", err)
		}
		keys, err := fx.Store.ListEnrollmentKeys(ctx, fx.Team.ID, all)
		if err != nil {
			t.Fatalf("list enrollment keys: %v", err)
		}
		return []any{devs.Items, keys.Items}
	}
}

// enrollmentKey makes an enrollment key as the admin.
func enrollmentKey(t *testing.T, fx *domaintest.Fixture) uuid.UUID {
	t.Helper()
	issued, err := fx.Devices.CreateKey(t.Context(), fx.Admin, devices.KeySpec{})
	if err != nil {
		t.Fatalf("create enrollment key: %v", err)
	}
	return issued.Key.ID
}

// TestWritesNeedDevicesWrite calls every device and enrollment key write
// without a credential, with a device token and with a key holding all but
// DEVICES_WRITE: each is refused before it writes, whether or not its
// target exists.
func TestWritesNeedDevicesWrite(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		device := func() uuid.UUID { dev, _ := fx.Device(t); return dev.ID }
		renamed, rotated, revoked, enrollment := device(), device(), device(), enrollmentKey(t, fx)
		name := "renamed"
		fx.Guard(t, []scope.Scope{scope.DevicesWrite}, fleet(t, fx), []domaintest.Call{
			{Name: "Create", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.Create(ctx, p, devices.Spec{Name: "cam", SerialNumber: fx.Unique("SN")})
			}},
			{Name: "CreateMany", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.CreateMany(ctx, p, []devices.Spec{
					{Name: "a", SerialNumber: fx.Unique("SN")}, {Name: "b", SerialNumber: fx.Unique("SN")}})
			}},
			{Name: "Update", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.Update(ctx, p, devices.UpdateInput{ID: renamed, Name: &name})
			}},
			{Name: "RotateToken", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.RotateToken(ctx, p, rotated)
			}},
			{Name: "RotateToken unknown", Holder: apperr.NotFound, Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.RotateToken(ctx, p, uuid.New())
			}},
			{Name: "Revoke", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Devices.Revoke(ctx, p, revoked) }},
			{Name: "Revoke unknown", Holder: apperr.NotFound, Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.Revoke(ctx, p, uuid.New())
			}},
			{Name: "CreateKey", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.CreateKey(ctx, p, devices.KeySpec{Reusable: true})
			}},
			{Name: "RevokeKey", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.RevokeKey(ctx, p, enrollment)
			}},
			{Name: "RevokeKey unknown", Holder: apperr.NotFound, Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.RevokeKey(ctx, p, uuid.New())
			}},
		})
	})
}

// TestReadsNeedDevicesRead calls every device and enrollment key read the
// same way, ByID even with no ids.
func TestReadsNeedDevicesRead(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		dev, _ := fx.Device(t)
		enrollment := enrollmentKey(t, fx)
		page := store.PageArgs{Limit: 10}
		fx.Guard(t, []scope.Scope{scope.DevicesRead}, nil, []domaintest.Call{
			{Name: "ByID unknown", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.ByID(ctx, p, []uuid.UUID{uuid.New()})
			}},
			{Name: "ByID no ids", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Devices.ByID(ctx, p, nil) }},
			{Name: "ByID", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.ByID(ctx, p, []uuid.UUID{dev.ID})
			}},
			{Name: "List", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.List(ctx, p, store.DeviceFilter{}, page)
			}},
			{Name: "Count", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.Count(ctx, p, store.DeviceFilter{})
			}},
			{Name: "KeysByID unknown", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.KeysByID(ctx, p, []uuid.UUID{uuid.New()})
			}},
			{Name: "KeysByID no ids", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Devices.KeysByID(ctx, p, nil) }},
			{Name: "KeysByID", Do: func(ctx context.Context, p *auth.Principal) (any, error) {
				return fx.Devices.KeysByID(ctx, p, []uuid.UUID{enrollment})
			}},
			{Name: "ListKeys", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Devices.ListKeys(ctx, p, page) }},
			{Name: "CountKeys", Do: func(ctx context.Context, p *auth.Principal) (any, error) { return fx.Devices.CountKeys(ctx, p) }},
		})
	})
}

// TestHeartbeatNeedsDeviceToken checks that only a device token beats:
// a team API key is refused, even one that carries the device's ids.
func TestHeartbeatNeedsDeviceToken(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		dev, token := fx.Device(t)
		posing := *fx.Admin
		posing.DeviceID, posing.DeviceTokenHash = dev.ID, dev.TokenHash
		firmware := "1.2.3"
		for _, tc := range []struct {
			name string
			p    *auth.Principal
			want apperr.Code
		}{
			{"no credential", nil, apperr.Unauthenticated},
			{"wildcard API key", fx.Admin, apperr.Forbidden},
			{"DEVICES_WRITE API key", fx.As(t, scope.DevicesWrite), apperr.Forbidden},
			{"API key carrying the device's ids", &posing, apperr.Forbidden},
			{"device token", token, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := fx.Devices.Heartbeat(t.Context(), tc.p, &firmware)
				domaintest.WantCode(t, err, tc.want)
				seen := fx.DB.Count(t, "devices", "id = ? AND last_seen_at IS NOT NULL", dev.ID)
				if beat := tc.want == ""; (seen == 1) != beat {
					t.Fatalf("device seen: %v, want %v", seen == 1, beat)
				}
			})
		}
	})
}

// TestKeysByIDReadsOnlyTheTeams checks that KeysByID reads the caller's
// team's enrollment keys only: another team's id reads exactly like an
// unknown one, and a caller without DEVICES_READ is refused whatever the id.
func TestKeysByIDReadsOnlyTheTeams(t *testing.T) {
	domaintest.Each(t, func(t *testing.T, fx *domaintest.Fixture) {
		_, otherAdmin := fx.Other(t)
		own := enrollmentKey(t, fx)
		theirs, err := fx.Devices.CreateKey(t.Context(), otherAdmin, devices.KeySpec{})
		if err != nil {
			t.Fatalf("create the other team's key: %v", err)
		}
		_, device := fx.Device(t)
		blind := fx.As(t, scope.APIKeysRead, scope.MembersRead, scope.AuditRead)
		domaintest.Lookups(t, fx.Devices.KeysByID, []domaintest.Lookup{
			{Name: "own key", P: fx.Admin, ID: own, Found: true},
			{Name: "other team's key", P: fx.Admin, ID: theirs.Key.ID},
			{Name: "own key from the other team", P: otherAdmin, ID: own},
			{Name: "unknown id", P: fx.Admin, ID: uuid.New()},
			{Name: "own key without DEVICES_READ", P: blind, ID: own, Code: apperr.Forbidden},
			{Name: "own key from a device", P: device, ID: own, Code: apperr.Forbidden},
		})
		keys, err := fx.Devices.KeysByID(t.Context(), fx.Admin, []uuid.UUID{own, theirs.Key.ID, uuid.New(), own})
		if err != nil || len(keys) != 1 || keys[0].ID != own {
			t.Fatalf("KeysByID of own, foreign, unknown, own: %v %v", keys, err)
		}
	})
}
