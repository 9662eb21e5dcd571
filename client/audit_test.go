package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The audit log records what the client did, newest first, with who did it
// for a key that may read keys and devices; a key that may read only the
// log reads it without them.
func TestAuditLog(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := start(t, d)
		ctx := context.Background()
		kp := s.client(s.admin, client.WithPageSize(2), client.WithUserAgent("audit-test/1.0"))

		auditor := must(kp.CreateApiKey(ctx, client.CreateApiKeyInput{Name: "auditor", Scopes: []client.Scope{client.ScopeAuditRead}}))(t)
		dev := must(kp.CreateDevice(ctx, client.CreateDeviceInput{Name: "cam", SerialNumber: "SN-1"}))(t)
		must(kp.RotateDeviceToken(ctx, dev.Device.Id))(t)
		enrollment := must(kp.CreateEnrollmentKey(ctx, client.CreateEnrollmentKeyInput{}))(t)
		enrolled := must(kp.EnrollDevice(ctx, client.EnrollDeviceInput{EnrollmentKey: enrollment.Secret.Reveal(), SerialNumber: "SN-2"}))(t)

		var actions []string
		var events []client.AuditEvent
		for e, err := range kp.AllAuditEvents(ctx, client.AuditQuery{WithActors: true}) {
			if err != nil {
				t.Fatal(err)
			}
			actions = append(actions, e.Action)
			events = append(events, e)
		}
		want := []string{"device.enroll", "enrollmentKey.create", "device.rotateToken", "device.create", "apiKey.create", "apiKey.create", "team.create"}
		if !slices.Equal(actions, want) {
			t.Fatalf("actions, newest first: %v, want %v", actions, want)
		}
		byAction := map[string]client.AuditEvent{}
		for _, e := range events {
			byAction[e.Action] = e
		}
		create, ok := byAction["device.create"]
		if !ok || create.TargetId == nil || *create.TargetId != dev.Device.Id || create.Actor == nil ||
			create.Actor.Name != "admin" || create.UserAgent == nil || *create.UserAgent != "audit-test/1.0" {
			t.Fatalf("device.create %+v in %v", create, actions)
		}
		if enroll := byAction["device.enroll"]; enroll.ActorDevice == nil || enroll.ActorDevice.Id != enrolled.Device.Id || enroll.Actor != nil {
			t.Fatalf("device.enroll %+v", enroll)
		}
		if first := byAction["team.create"]; first.Actor != nil || first.ActorDevice != nil {
			t.Fatalf("team.create %+v", first)
		}

		// Filtered, oldest first.
		page := must(kp.AuditEvents(ctx, client.AuditQuery{Filter: client.AuditEventFilter{TargetId: dev.Device.Id}},
			client.PageOptions{Order: client.ListOrderOldestFirst}))(t)
		var got []string
		for _, e := range page.Nodes {
			got = append(got, e.Action)
		}
		if page.TotalCount != 2 || !slices.Equal(got, []string{"device.create", "device.rotateToken"}) {
			t.Fatalf("the device's events, oldest first: %v (%d)", got, page.TotalCount)
		}

		// A key with AUDIT_READ alone reads the log, without the actors.
		reader := s.client(auditor.Secret.Reveal())
		page = must(reader.AuditEvents(ctx, client.AuditQuery{}, client.PageOptions{First: 100}))(t)
		if page.TotalCount != len(events) {
			t.Fatalf("the auditor sees %d events, the admin %d", page.TotalCount, len(events))
		}
		for _, e := range page.Nodes {
			if e.Actor != nil || e.ActorDevice != nil {
				t.Fatalf("actors read without being asked for: %+v", e)
			}
		}
		_, err := reader.AuditEvents(ctx, client.AuditQuery{WithActors: true}, client.PageOptions{})
		var e *client.Error
		if !errors.Is(err, client.ErrForbidden) || !errors.As(err, &e) || e.Scope == "" {
			t.Fatalf("the auditor asking for actors: %v", err)
		}
	})
}
