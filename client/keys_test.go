package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// A key is created with scopes, rotated with a grace window during which
// both secrets work, rotated again without one, and revoked.
func TestCreateRotateRevokeApiKey(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := start(t, d)
		ctx := context.Background()
		kp := s.client(s.admin)

		created := must(kp.CreateApiKey(ctx, client.CreateApiKeyInput{
			Name: "ci", Description: "the CI pipeline", Scopes: []client.Scope{client.ScopeDevicesRead},
		}))(t)
		key := created.ApiKey
		if !strings.HasPrefix(created.Secret.Reveal(), "kp_") || !strings.HasPrefix(created.Secret.Reveal(), key.Start) ||
			key.Name != "ci" || key.Description == nil || *key.Description != "the CI pipeline" ||
			len(key.Scopes) != 1 || key.Scopes[0] != client.ScopeDevicesRead || key.Status != client.ApiKeyStatusActive {
			t.Fatalf("created %+v", created)
		}
		ci := kp.With(client.WithKey(created.Secret.Reveal()))
		must(ci.Devices(ctx, client.DeviceFilter{}, client.PageOptions{}))(t)

		// The list shows it, found by name.
		var found []string
		for k, err := range kp.AllApiKeys(ctx, client.ApiKeyFilter{Search: "ci", Status: client.ApiKeyStatusActive}) {
			if err != nil {
				t.Fatal(err)
			}
			found = append(found, k.Id)
		}
		if len(found) != 1 || found[0] != key.Id {
			t.Fatalf("keys found %v, want %s", found, key.Id)
		}

		// Within the grace window, the old secret and the new one both work.
		rotated := must(kp.RotateApiKey(ctx, client.RotateApiKeyInput{Id: key.Id, GracePeriodSeconds: 3600}))(t)
		if rotated.Secret.Reveal() == created.Secret.Reveal() || rotated.ApiKey.RotatedAt == nil ||
			rotated.ApiKey.PreviousSecretExpiresAt == nil || time.Until(*rotated.ApiKey.PreviousSecretExpiresAt) < 59*time.Minute {
			t.Fatalf("rotated %+v", rotated.ApiKey)
		}
		ciNew := kp.With(client.WithKey(rotated.Secret.Reveal()))
		must(ci.Devices(ctx, client.DeviceFilter{}, client.PageOptions{}))(t)
		must(ciNew.Devices(ctx, client.DeviceFilter{}, client.PageOptions{}))(t)

		// Without a grace window, the old secret is refused at once.
		again := must(kp.RotateApiKey(ctx, client.RotateApiKeyInput{Id: key.Id}))(t)
		if again.ApiKey.PreviousSecretExpiresAt != nil {
			t.Fatalf("a rotation without grace left the old secret live until %v", again.ApiKey.PreviousSecretExpiresAt)
		}
		if _, err := ciNew.Devices(ctx, client.DeviceFilter{}, client.PageOptions{}); !errors.Is(err, client.ErrUnauthenticated) {
			t.Fatalf("the replaced secret: %v", err)
		}
		ciLatest := kp.With(client.WithKey(again.Secret.Reveal()))
		must(ciLatest.Devices(ctx, client.DeviceFilter{}, client.PageOptions{}))(t)

		// Revoked, the key is refused, and says why to its holder.
		revoked := must(kp.RevokeApiKey(ctx, key.Id))(t)
		if revoked.Status != client.ApiKeyStatusRevoked || revoked.RevokedAt == nil {
			t.Fatalf("revoked %+v", revoked)
		}
		_, err := ciLatest.Devices(ctx, client.DeviceFilter{}, client.PageOptions{})
		var e *client.Error
		if !errors.Is(err, client.ErrUnauthenticated) || !errors.As(err, &e) || e.Reason != client.ReasonRevoked || e.StatusCode != 401 || e.RequestID == "" {
			t.Fatalf("revoked key: %v (%#v)", err, e)
		}
	})
}
