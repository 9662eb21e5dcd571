package reqlog

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/auth"
)

func TestSetOpName(t *testing.T) {
	long := strings.Repeat("é", 80) // 160 bytes
	for _, tc := range []struct{ in, want string }{
		{"Dashboard", "Dashboard"},
		{"", ""},
		{"a\nb\r\tc\x1b[31m\x7f\u0085d", "abc[31md"},
		{"bad\xffutf8", "badutf8"},
		{"zero\u200bwidth\u202eflip", "zerowidthflip"},
		{strings.Repeat("x", 300), strings.Repeat("x", MaxOpName)},
		{long, strings.Repeat("é", MaxOpName/2)},
		{"x" + long, "x" + strings.Repeat("é", (MaxOpName-1)/2)},
	} {
		var e Entry
		e.SetOpName(tc.in)
		if e.OpName != tc.want {
			t.Errorf("SetOpName(%q) = %q, want %q", tc.in, e.OpName, tc.want)
		}
		if len(e.OpName) > MaxOpName || !utf8.ValidString(e.OpName) {
			t.Errorf("SetOpName(%q) = %q: over %d bytes or not UTF-8", tc.in, e.OpName, MaxOpName)
		}
	}
}

func TestAddCodeAndActor(t *testing.T) {
	var e Entry
	for _, c := range []string{"FORBIDDEN", "", "NOT_FOUND", "FORBIDDEN"} {
		e.AddCode(c)
	}
	if strings.Join(e.Codes, ",") != "FORBIDDEN,NOT_FOUND" {
		t.Errorf("codes %v, want FORBIDDEN,NOT_FOUND once each, in order", e.Codes)
	}
	if e.Actor() != "" {
		t.Errorf("actor without a principal: %q", e.Actor())
	}
	id := uuid.New()
	e.Principal = &auth.Principal{Kind: auth.KindAPIKey, KeyID: id, SecretHash: []byte("hash")}
	if a := e.Actor(); !strings.HasPrefix(a, "key_") {
		t.Errorf("a key's actor is %q, want key_…", a)
	}
	e.Principal = &auth.Principal{Kind: auth.KindDevice, DeviceID: id}
	if a := e.Actor(); !strings.HasPrefix(a, "dev_") {
		t.Errorf("a device's actor is %q, want dev_…", a)
	}
}
