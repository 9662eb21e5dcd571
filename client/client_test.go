package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// Every request goes through the http.Client given, with the key and the
// User-Agent; a copy made by With keeps it, with its own key.
func TestSwappedHTTPClient(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := start(t, d)
		ctx := context.Background()
		rec := &recorder{}
		// The server's base URL: the client adds /graphql.
		base := strings.TrimSuffix(s.url, "/graphql")
		kp := client.New(base, client.WithKey(s.admin), client.WithHTTPClient(&http.Client{Transport: rec, Timeout: 10 * time.Second}))

		must(kp.Devices(ctx, client.DeviceFilter{}, client.PageOptions{}))(t)
		seen := rec.seen()
		if len(seen) != 1 || seen[0].Authorization != "Bearer "+s.admin || seen[0].UserAgent != client.DefaultUserAgent || seen[0].Status != 200 {
			t.Fatalf("through the swapped client: %+v", seen)
		}

		other := must(kp.CreateApiKey(ctx, client.CreateApiKeyInput{Name: "other"}))(t)
		rec.reset()
		must(kp.With(client.WithKey(other.Secret.Reveal()), client.WithUserAgent("fleet/2")).Devices(ctx, client.DeviceFilter{}, client.PageOptions{}))(t)
		seen = rec.seen()
		if len(seen) != 1 || seen[0].Authorization != "Bearer "+other.Secret.Reveal() || seen[0].UserAgent != "fleet/2" {
			t.Fatalf("a copy with another key: %+v", seen)
		}

		// The original keeps its key.
		rec.reset()
		must(kp.Devices(ctx, client.DeviceFilter{}, client.PageOptions{}))(t)
		if seen = rec.seen(); seen[0].Authorization != "Bearer "+s.admin {
			t.Fatal("With changed the original client")
		}
	})
}

// A transport failure is returned as it is, not as a *client.Error, and a
// cancelled context stops a request.
func TestTransportErrors(t *testing.T) {
	kp := client.New("http://127.0.0.1:1/graphql", client.WithKey("kp_x"))
	_, err := kp.Devices(context.Background(), client.DeviceFilter{}, client.PageOptions{})
	var urlErr *url.Error
	var e *client.Error
	if !errors.As(err, &urlErr) || errors.As(err, &e) {
		t.Fatalf("a closed port: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	for _, err := range kp.AllDevices(ctx, client.DeviceFilter{}) {
		n++
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled context: %v", err)
		}
	}
	if n != 1 {
		t.Fatalf("a cancelled iteration yielded %d times", n)
	}
}
