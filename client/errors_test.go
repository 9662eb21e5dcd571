package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/testdb"
)

// errorOf returns err's *client.Error, failing the test when it has none or
// when errors.Is does not match the sentinel.
func errorOf(t *testing.T, err error, sentinel error) *client.Error {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want %v", err, sentinel)
	}
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("%v is no *client.Error", err)
	}
	for _, other := range []error{client.ErrUnauthenticated, client.ErrForbidden, client.ErrNotFound, client.ErrConflict, client.ErrRateLimited, client.ErrBadUserInput} {
		if other != sentinel && errors.Is(err, other) {
			t.Fatalf("%v matches %v too", err, other)
		}
	}
	return e
}

// Each kind of failure the server answers is one errors.Is can match, with
// its details on the *client.Error.
func TestErrors(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := start(t, d)
		ctx := context.Background()
		kp := s.client(s.admin)
		list := func(c *client.Client) error {
			_, err := c.Devices(ctx, client.DeviceFilter{}, client.PageOptions{})
			return err
		}

		t.Run("unauthenticated", func(t *testing.T) {
			// A key that does not exist: 401, INVALID.
			e := errorOf(t, list(s.client("kp_notakey")), client.ErrUnauthenticated)
			if e.Reason != client.ReasonInvalid || e.StatusCode != 401 || e.RequestID == "" || e.Message == "" {
				t.Fatalf("%#v", e)
			}
			// A real key from an address it is not allowed from: the holder learns why.
			fenced := must(kp.CreateApiKey(ctx, client.CreateApiKeyInput{Name: "fenced", AllowedCidrs: []string{"203.0.113.0/24"}}))(t)
			e = errorOf(t, list(s.client(fenced.Secret.Reveal())), client.ErrUnauthenticated)
			if e.Reason != client.ReasonIPNotAllowed {
				t.Fatalf("%#v", e)
			}
			// A real key past its expiry.
			expiry := time.Now().Add(time.Second)
			expiring := must(kp.CreateApiKey(ctx, client.CreateApiKeyInput{Name: "expiring", ExpiresAt: &expiry}))(t)
			time.Sleep(time.Until(expiry) + 100*time.Millisecond)
			e = errorOf(t, list(s.client(expiring.Secret.Reveal())), client.ErrUnauthenticated)
			if e.Reason != client.ReasonExpired {
				t.Fatalf("%#v", e)
			}
			// No credential at all: the field answers null with an error, HTTP 200.
			e = errorOf(t, list(s.client("")), client.ErrUnauthenticated)
			if e.Reason != "" || e.StatusCode != 200 || e.Path != "team" {
				t.Fatalf("%#v", e)
			}
		})

		t.Run("forbidden", func(t *testing.T) {
			narrow := must(kp.CreateApiKey(ctx, client.CreateApiKeyInput{Name: "reader", Scopes: []client.Scope{client.ScopeDevicesRead}}))(t)
			reader := s.client(narrow.Secret.Reveal())
			must(reader.Devices(ctx, client.DeviceFilter{}, client.PageOptions{}))(t)
			_, err := reader.CreateDevice(ctx, client.CreateDeviceInput{Name: "cam", SerialNumber: "SN-F"})
			e := errorOf(t, err, client.ErrForbidden)
			if e.Scope != string(client.ScopeDevicesWrite) || e.StatusCode != 200 || e.Path != "createDevice" {
				t.Fatalf("%#v", e)
			}
			_, err = reader.Members(ctx, client.MemberFilter{}, client.PageOptions{})
			if e := errorOf(t, err, client.ErrForbidden); e.Scope != string(client.ScopeMembersRead) {
				t.Fatalf("%#v", e)
			}
		})

		t.Run("not found", func(t *testing.T) {
			// Another team's device reads as unknown.
			other := s.client(s.bootstrap("Globex"))
			theirs := must(other.CreateDevice(ctx, client.CreateDeviceInput{Name: "theirs", SerialNumber: "SN-G"}))(t)
			_, err := kp.RevokeDevice(ctx, theirs.Device.Id)
			errorOf(t, err, client.ErrNotFound)
			theirKeys := must(other.ApiKeys(ctx, client.ApiKeyFilter{}, client.PageOptions{}))(t)
			_, err = kp.RotateApiKey(ctx, client.RotateApiKeyInput{Id: theirKeys.Nodes[0].Id})
			if e := errorOf(t, err, client.ErrNotFound); e.Path != "rotateApiKey" {
				t.Fatalf("%#v", e)
			}
		})

		t.Run("conflict", func(t *testing.T) {
			must(kp.CreateDevice(ctx, client.CreateDeviceInput{Name: "cam", SerialNumber: "SN-DUP"}))(t)
			_, err := kp.CreateDevice(ctx, client.CreateDeviceInput{Name: "cam again", SerialNumber: "SN-DUP"})
			errorOf(t, err, client.ErrConflict)
		})

		t.Run("bad user input", func(t *testing.T) {
			_, err := kp.CreateDevice(ctx, client.CreateDeviceInput{Name: "", SerialNumber: "SN-B"})
			if e := errorOf(t, err, client.ErrBadUserInput); e.Field == "" {
				t.Fatalf("%#v", e)
			}
			_, err = kp.RotateApiKey(ctx, client.RotateApiKeyInput{Id: "key_unknown"})
			if e := errorOf(t, err, client.ErrBadUserInput); e.Field != "id" {
				t.Fatalf("%#v", e)
			}
		})

		t.Run("a device token on a team field", func(t *testing.T) {
			enrollment := must(kp.CreateEnrollmentKey(ctx, client.CreateEnrollmentKeyInput{}))(t)
			enrolled := must(kp.EnrollDevice(ctx, client.EnrollDeviceInput{EnrollmentKey: enrollment.Secret.Reveal(), SerialNumber: "SN-D"}))(t)
			device := kp.With(client.WithKey(enrolled.Token.Reveal()))
			_, err := device.Devices(ctx, client.DeviceFilter{}, client.PageOptions{})
			if !errors.Is(err, client.ErrForbidden) && !errors.Is(err, client.ErrUnauthenticated) {
				t.Fatalf("a device listing devices: %v", err)
			}
			// And a used one-use enrollment key enrolls no one else.
			_, err = kp.EnrollDevice(ctx, client.EnrollDeviceInput{EnrollmentKey: enrollment.Secret.Reveal(), SerialNumber: "SN-E"})
			if e := errorOf(t, err, client.ErrUnauthenticated); e.Reason != client.ReasonUsedUp || e.StatusCode != 200 {
				t.Fatalf("a one-use enrollment key, used twice: %#v", e)
			}
			// A team key cannot speak for a device.
			_, err = kp.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{})
			errorOf(t, err, client.ErrForbidden)
		})
	})
}

// TestCodesMatchTheServer keeps the client's codes and reasons the server's:
// a code the server adds, or renames, must be added here too.
func TestCodesMatchTheServer(t *testing.T) {
	var server, mine []string
	for _, c := range apperr.Codes() {
		server = append(server, string(c))
	}
	for _, c := range []client.Code{client.CodeUnauthenticated, client.CodeForbidden, client.CodeNotFound, client.CodeBadUserInput,
		client.CodeConflict, client.CodeFailedPrecondition, client.CodeRateLimited, client.CodeQueryTooComplex, client.CodeInternal} {
		mine = append(mine, string(c))
	}
	if !slices.Equal(server, mine) {
		t.Fatalf("server codes %v, client codes %v", server, mine)
	}
	for reason, want := range map[client.Reason]auth.Reason{
		client.ReasonInvalid: auth.ReasonInvalid, client.ReasonRevoked: auth.ReasonRevoked,
		client.ReasonExpired: auth.ReasonExpired, client.ReasonIPNotAllowed: auth.ReasonIPNotAllowed,
	} {
		if string(reason) != string(want) {
			t.Errorf("client reason %s, server %s", reason, want)
		}
	}
}
