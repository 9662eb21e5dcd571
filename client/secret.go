package client

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Secret is a credential the server shows once: the secret of a new or
// rotated API key (kp_…) or of a new enrollment key (kpe_…), or the token of
// a device (kpd_…).
//
// Every way of printing or encoding a Secret redacts it, keeping at most its
// public prefix: String, GoString, every fmt verb (%v, %+v, %#v, %s, %q, %x,
// …), JSON and text encoding, and slog. So a payload that holds one can be
// logged or encoded whole without leaking it. Reveal returns the value.
//
// The value sits behind a pointer, so that even a struct holding a Secret
// in an unexported field, printed with %+v, shows an address rather than
// the value. The zero Secret is empty.
type Secret struct {
	value *string
}

// NewSecret wraps a credential in a Secret, for code that reads one from
// elsewhere (an environment variable, a vault) and passes it around.
func NewSecret(value string) Secret {
	return Secret{value: &value}
}

// Reveal returns the credential itself. Call it where the value is used,
// such as in WithKey or a device's configuration, never to log it.
func (s Secret) Reveal() string {
	if s.value == nil {
		return ""
	}
	return *s.value
}

// IsZero reports whether the Secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// redacted is what every encoding shows: the kind's prefix (kp_, kpd_ or
// kpe_) when the value has one, and a marker; "" for an empty Secret.
func (s Secret) redacted() string {
	v := s.Reveal()
	if v == "" {
		return ""
	}
	for _, prefix := range []string{"kpd_", "kpe_", "kp_"} {
		if strings.HasPrefix(v, prefix) {
			return prefix + "…[redacted]"
		}
	}
	return "[redacted]"
}

// String returns the redacted form, such as "kp_…[redacted]".
func (s Secret) String() string { return s.redacted() }

// GoString returns the redacted form as Go syntax, for %#v.
func (s Secret) GoString() string { return "client.Secret(" + strconv.Quote(s.redacted()) + ")" }

// Format prints the redacted form for every verb and flag: %#v as
// GoString, any other verb as if the redacted form were a string.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = fmt.Fprint(f, s.GoString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), s.redacted())
}

// MarshalJSON encodes the redacted form as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.redacted()) }

// MarshalText returns the redacted form, for encoders that use
// encoding.TextMarshaler (slog's text handler, XML, YAML, map keys).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }

// LogValue makes slog log the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redacted()) }

// UnmarshalJSON reads the value from a JSON string, as the server sends it.
// It is how the generated code fills a Secret; encoding a Secret never
// gives the value back.
func (s *Secret) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*s = Secret{}
		return nil
	}
	var v string
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("keyplane: a secret must be a JSON string: %w", err)
	}
	*s = Secret{value: &v}
	return nil
}
