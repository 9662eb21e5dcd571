package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The iterator walks every page, in the client's page size, and stops
// requesting when the loop stops.
func TestAllDevicesWalksEveryPage(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := start(t, d)
		ctx := context.Background()
		kp, rec := s.recorded(s.admin, client.WithPageSize(2))
		for i := range 5 {
			tags := []string{"line-1"}
			if i%2 == 1 {
				tags = []string{"line-2"}
			}
			created := must(kp.CreateDevice(ctx, client.CreateDeviceInput{
				Name: fmt.Sprintf("cam-%d", i), SerialNumber: fmt.Sprintf("SN-%d", i), Model: "OAK-D", Tags: tags,
			}))(t)
			if created.Device.Status != client.DeviceStatusPending || !strings.HasPrefix(created.Token.Reveal(), "kpd_") {
				t.Fatalf("created %+v", created)
			}
		}

		rec.reset()
		var names []string
		for dev, err := range kp.AllDevices(ctx, client.DeviceFilter{}) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, dev.Name)
		}
		if got := strings.Join(names, ","); got != "cam-0,cam-1,cam-2,cam-3,cam-4" {
			t.Fatalf("devices %s", got)
		}
		if n := len(rec.seen()); n != 3 {
			t.Fatalf("5 devices in pages of 2 took %d requests, want 3", n)
		}

		// Stopping the loop stops the requests.
		rec.reset()
		for range kp.AllDevices(ctx, client.DeviceFilter{}) {
			break
		}
		if n := len(rec.seen()); n != 1 {
			t.Fatalf("a loop stopped at the first device made %d requests", n)
		}

		// A filter narrows every page.
		names = nil
		for dev, err := range kp.AllDevices(ctx, client.DeviceFilter{Tag: "line-2"}) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, dev.Name)
		}
		if got := strings.Join(names, ","); got != "cam-1,cam-3" {
			t.Fatalf("line-2 devices %s", got)
		}

		// Page by page, by hand, newest first.
		opts := client.PageOptions{First: 3, Order: client.ListOrderNewestFirst}
		page := must(kp.Devices(ctx, client.DeviceFilter{}, opts))(t)
		if page.TotalCount != 5 || len(page.Nodes) != 3 || page.Nodes[0].Name != "cam-4" || !page.PageInfo.HasNextPage {
			t.Fatalf("first page %+v", page)
		}
		next, ok := page.Next(opts)
		if !ok {
			t.Fatal("no next page")
		}
		page = must(kp.Devices(ctx, client.DeviceFilter{}, next))(t)
		if len(page.Nodes) != 2 || page.Nodes[1].Name != "cam-0" || page.PageInfo.HasNextPage {
			t.Fatalf("second page %+v", page)
		}
		if _, ok := page.Next(next); ok {
			t.Fatal("a next page after the last")
		}
	})
}

// A device enrolls with the enrollment key as its only credential, and
// reports in with its own token.
func TestEnrollmentAndHeartbeat(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := start(t, d)
		ctx := context.Background()
		kp, rec := s.recorded(s.admin)

		key := must(kp.CreateEnrollmentKey(ctx, client.CreateEnrollmentKeyInput{
			Description: "line 3", Tags: []string{"line-3"}, Reusable: true, MaxUses: 2,
		}))(t)
		if !strings.HasPrefix(key.Secret.Reveal(), "kpe_") || !key.EnrollmentKey.Reusable ||
			key.EnrollmentKey.MaxUses == nil || *key.EnrollmentKey.MaxUses != 2 || key.EnrollmentKey.Tags[0] != "line-3" {
			t.Fatalf("enrollment key %+v", key)
		}

		// The team client enrolls, but sends no Bearer header: the
		// enrollment key is the credential.
		rec.reset()
		enrolled := must(kp.EnrollDevice(ctx, client.EnrollDeviceInput{
			EnrollmentKey: key.Secret.Reveal(), SerialNumber: "CAM-0042", Model: "OAK-D",
		}))(t)
		if seen := rec.seen(); len(seen) != 1 || seen[0].Authorization != "" {
			t.Fatalf("enrollDevice sent %+v", seen)
		}
		dev := enrolled.Device
		if !strings.HasPrefix(enrolled.Token.Reveal(), "kpd_") || dev.Name != "CAM-0042" || dev.Status != client.DeviceStatusPending ||
			len(dev.Tags) != 1 || dev.Tags[0] != "line-3" {
			t.Fatalf("enrolled %+v", enrolled)
		}

		// The device speaks with its own token.
		device := kp.With(client.WithKey(enrolled.Token.Reveal()))
		rec.reset()
		seen := must(device.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{FirmwareVersion: "2.4.1"}))(t)
		if ex := rec.seen(); len(ex) != 1 || ex[0].Authorization != "Bearer "+enrolled.Token.Reveal() {
			t.Fatal("the heartbeat did not carry the device's token")
		}
		if seen.Id != dev.Id || seen.Status != client.DeviceStatusOnline || seen.LastSeenAt == nil ||
			seen.FirmwareVersion == nil || *seen.FirmwareVersion != "2.4.1" {
			t.Fatalf("heartbeat %+v", seen)
		}

		// The team key cannot send a device's heartbeat.
		if _, err := kp.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{}); err == nil {
			t.Fatal("a team key sent a heartbeat")
		}

		// Rotating the token refuses the old one at once; revoking the
		// device refuses the new one.
		rotated := must(kp.RotateDeviceToken(ctx, dev.Id))(t)
		if rotated.Token.Reveal() == enrolled.Token.Reveal() {
			t.Fatal("the token did not change")
		}
		if _, err := device.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{}); !errors.Is(err, client.ErrUnauthenticated) {
			t.Fatalf("old token: %v", err)
		}
		rotatedDevice := kp.With(client.WithKey(rotated.Token.Reveal()))
		must(rotatedDevice.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{}))(t)
		revoked := must(kp.RevokeDevice(ctx, dev.Id))(t)
		if revoked.Status != client.DeviceStatusRevoked || revoked.RevokedAt == nil {
			t.Fatalf("revoked %+v", revoked)
		}
		_, err := rotatedDevice.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{})
		var e *client.Error
		if !errors.As(err, &e) || e.Code != client.CodeUnauthenticated || e.Reason != client.ReasonRevoked || e.StatusCode != 401 {
			t.Fatalf("revoked device's token: %v", err)
		}
	})
}
