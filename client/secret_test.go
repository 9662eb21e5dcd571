package client_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// formats are the ways a program might print a value.
var formats = []string{
	"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%#x", "%d", "%10s", "%-40v", "%.5s", "%+q", "%#q", "%T", "%p",
}

// afterPrefix returns what follows a credential's kind prefix (kp_, kpd_,
// kpe_): its public id, then its secret and checksum.
func afterPrefix(credential string) string {
	for _, prefix := range []string{"kpd_", "kpe_", "kp_"} {
		if rest, ok := strings.CutPrefix(credential, prefix); ok {
			return rest
		}
	}
	return credential
}

// secretPart returns a credential's secret and checksum, without its
// public prefix and id (which ApiKey.Start and the ids show anyway).
func secretPart(credential string) string {
	rest := afterPrefix(credential)
	if i := strings.LastIndex(rest, "_"); i >= 0 {
		return rest[i+1:]
	}
	return rest
}

// leak returns six characters of body that out shows, as text or as hex,
// or "".
func leak(out, body string) string {
	lower := strings.ToLower(out)
	for i := 0; i+6 <= len(body); i++ {
		window := body[i : i+6]
		if strings.Contains(out, window) || strings.Contains(lower, hex.EncodeToString([]byte(window))) {
			return window
		}
	}
	return ""
}

// printed returns every way of printing and encoding v: each fmt format,
// Sprint and Sprintln, JSON, and slog's text and JSON handlers.
func printed(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range formats {
		out[f] = fmt.Sprintf(f, v)
	}
	out["Sprint"] = fmt.Sprint(v)
	out["Sprintln"] = fmt.Sprintln(v)
	if raw, err := json.Marshal(v); err != nil {
		t.Fatalf("json: %v", err)
	} else {
		out["json"] = string(raw)
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("payload", "value", v)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("payload", "value", v)
	out["slog text"], out["slog json"] = text.String(), js.String()
	return out
}

// assertRedacted fails the test when any way of printing v shows six
// characters of body.
func assertRedacted(t *testing.T, what string, v any, body string) {
	t.Helper()
	if len(body) < 20 {
		t.Fatalf("%s: %q is too short to be a credential", what, body)
	}
	for how, out := range printed(t, v) {
		if l := leak(out, body); l != "" {
			t.Errorf("%s printed with %s shows %q: %s", what, how, l, out)
		}
	}
}

// Every way of printing or encoding a Secret shows at most its prefix.
func TestSecretRedactsEveryFormat(t *testing.T) {
	for _, value := range []string{
		"kp_6uQ1FZ7rWJmKNrXg7ZxLhB_3fQk9Vw2mZpR8sT1uX4yB6nC0dE5gH7jK9lMo2pQ4rS6tU",
		"kpd_6uQ1FZ7rWJmKNrXg7ZxLhB_3fQk9Vw2mZpR8sT1uX4yB6nC0dE5gH7jK9lMo2pQ4rS6tU",
		"kpe_6uQ1FZ7rWJmKNrXg7ZxLhB_3fQk9Vw2mZpR8sT1uX4yB6nC0dE5gH7jK9lMo2pQ4rS6tU",
		"not-a-keyplane-credential-but-still-secret",
	} {
		s := client.NewSecret(value)
		if s.Reveal() != value || s.IsZero() {
			t.Fatalf("Reveal() = %q", s.Reveal())
		}
		// Not even the public id shows.
		body := afterPrefix(value)
		assertRedacted(t, "a Secret", s, body)
		assertRedacted(t, "a *Secret", &s, body)
		assertRedacted(t, "a struct holding one", struct{ Key client.Secret }{s}, body)
		assertRedacted(t, "a struct holding one, unexported", struct{ key client.Secret }{s}, body)
		assertRedacted(t, "a map of them", map[string]client.Secret{"key": s}, body)
		assertRedacted(t, "a slice of them", []client.Secret{s}, body)
		assertRedacted(t, "an error quoting one", fmt.Errorf("rotating %v failed", s), body)
	}

	s := client.NewSecret("kp_6uQ1FZ7rWJmKNrXg7ZxLhB_3fQk9Vw2mZpR8sT1uX4yB6nC0dE5gH7jK9lMo2pQ4rS6tU")
	for format, want := range map[string]string{
		"%v":  "kp_…[redacted]",
		"%s":  "kp_…[redacted]",
		"%+v": "kp_…[redacted]",
		"%q":  `"kp_…[redacted]"`,
		"%#v": `client.Secret("kp_…[redacted]")`,
	} {
		if got := fmt.Sprintf(format, s); got != want {
			t.Errorf("%s: %s, want %s", format, got, want)
		}
	}
	if raw, _ := json.Marshal(s); string(raw) != `"kp_…[redacted]"` {
		t.Errorf("json: %s", raw)
	}
	if got := client.NewSecret("kpd_x").String() + " " + client.NewSecret("kpe_x").String() + " " + client.NewSecret("other").String(); got != "kpd_…[redacted] kpe_…[redacted] [redacted]" {
		t.Errorf("prefixes: %s", got)
	}
	var zero client.Secret
	if !zero.IsZero() || zero.Reveal() != "" || zero.String() != "" {
		t.Errorf("the zero Secret: %q", zero.Reveal())
	}

	// A Secret decodes from the server's JSON string.
	var decoded struct{ Secret client.Secret }
	if err := json.Unmarshal([]byte(`{"Secret":"kp_abc"}`), &decoded); err != nil || decoded.Secret.Reveal() != "kp_abc" {
		t.Fatalf("decoded %q, %v", decoded.Secret.Reveal(), err)
	}
}

// Every payload that carries a credential carries it as a Secret, and
// logging the payload whole never shows it.
func TestPayloadsNeverPrintTheirSecret(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		s := start(t, d)
		ctx := context.Background()
		kp := s.client(s.admin)

		created := must(kp.CreateApiKey(ctx, client.CreateApiKeyInput{Name: "ci"}))(t)
		assertRedacted(t, "createApiKey", created, secretPart(created.Secret.Reveal()))
		assertRedacted(t, "createApiKey, by value", *created, secretPart(created.Secret.Reveal()))
		rotated := must(kp.RotateApiKey(ctx, client.RotateApiKeyInput{Id: created.ApiKey.Id, GracePeriodSeconds: 60}))(t)
		assertRedacted(t, "rotateApiKey", rotated, secretPart(rotated.Secret.Reveal()))

		enrollment := must(kp.CreateEnrollmentKey(ctx, client.CreateEnrollmentKeyInput{}))(t)
		assertRedacted(t, "createEnrollmentKey", enrollment, secretPart(enrollment.Secret.Reveal()))
		enrolled := must(kp.EnrollDevice(ctx, client.EnrollDeviceInput{EnrollmentKey: enrollment.Secret.Reveal(), SerialNumber: "SN-1"}))(t)
		assertRedacted(t, "enrollDevice", enrolled, secretPart(enrolled.Token.Reveal()))

		dev := must(kp.CreateDevice(ctx, client.CreateDeviceInput{Name: "cam", SerialNumber: "SN-2"}))(t)
		assertRedacted(t, "createDevice", dev, secretPart(dev.Token.Reveal()))
		token := must(kp.RotateDeviceToken(ctx, dev.Device.Id))(t)
		assertRedacted(t, "rotateDeviceToken", token, secretPart(token.Token.Reveal()))

		// What a careless handler might log: everything at once.
		everything := map[string]any{"key": created, "rotated": rotated, "enrollment": enrollment, "enrolled": enrolled, "device": dev, "token": token}
		for _, secret := range []string{created.Secret.Reveal(), rotated.Secret.Reveal(), enrollment.Secret.Reveal(),
			enrolled.Token.Reveal(), dev.Token.Reveal(), token.Token.Reveal()} {
			assertRedacted(t, "all payloads", everything, secretPart(secret))
		}

		// The JSON a backend might pass on says what it is, and no more.
		raw, _ := json.Marshal(created)
		if !strings.Contains(string(raw), `"secret":"kp_…[redacted]"`) {
			t.Fatalf("json %s", raw)
		}
	})
}
