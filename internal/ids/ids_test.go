package ids_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/ids"
)

// bigText62 writes x in base62 with the ids alphabet. math/big's own base62
// alphabet puts lower case before upper case (0-9a-zA-Z), so swap case.
func bigText62(x *big.Int) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, x.Text(62))
}

// bigBase62 is an independent, slow reference encoder built on math/big.
func bigBase62(id uuid.UUID) string {
	s := bigText62(new(big.Int).SetBytes(id[:]))
	return strings.Repeat("0", 22-len(s)) + s
}

func randomUUID(t testing.TB) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	return id
}

func maxUUID() uuid.UUID {
	var id uuid.UUID
	for i := range id {
		id[i] = 0xff
	}
	return id
}

func TestBase62Known(t *testing.T) {
	one := uuid.UUID{15: 1}
	sixtyTwo := uuid.UUID{15: 62}
	tests := []struct {
		name string
		id   uuid.UUID
		want string
	}{
		{"zero", uuid.Nil, "0000000000000000000000"},
		{"one", one, "0000000000000000000001"},
		{"sixty-two", sixtyTwo, "0000000000000000000010"},
		{"max", maxUUID(), bigBase62(maxUUID())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids.Base62(tt.id)
			if got != tt.want {
				t.Fatalf("Base62 = %q, want %q", got, tt.want)
			}
			if len(got) != 22 {
				t.Fatalf("len = %d, want 22", len(got))
			}
			back, err := ids.ParseBase62(got)
			if err != nil {
				t.Fatalf("ParseBase62(%q): %v", got, err)
			}
			if back != tt.id {
				t.Fatalf("round trip = %v, want %v", back, tt.id)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	kinds := []ids.Kind{ids.Team, ids.APIKey, ids.Device, ids.Member, ids.EnrollmentKey, ids.AuditEvent}
	cases := []uuid.UUID{uuid.Nil, maxUUID(), ids.New()}
	for range 200 {
		cases = append(cases, randomUUID(t))
	}
	for _, kind := range kinds {
		for _, id := range cases {
			s := ids.Encode(kind, id)
			if want := string(kind) + "_" + bigBase62(id); s != want {
				t.Fatalf("Encode(%q, %v) = %q, want %q", kind, id, s, want)
			}
			gotKind, gotID, err := ids.Decode(s)
			if err != nil {
				t.Fatalf("Decode(%q): %v", s, err)
			}
			if gotKind != kind || gotID != id {
				t.Fatalf("Decode(%q) = %q, %v; want %q, %v", s, gotKind, gotID, kind, id)
			}
			asID, err := ids.DecodeAs(kind, s)
			if err != nil || asID != id {
				t.Fatalf("DecodeAs(%q, %q) = %v, %v", kind, s, asID, err)
			}
		}
	}
}

func TestNewIsV7(t *testing.T) {
	a, b := ids.New(), ids.New()
	if a.Version() != 7 || b.Version() != 7 {
		t.Fatalf("versions = %d, %d; want 7", a.Version(), b.Version())
	}
	if a == b {
		t.Fatal("two New calls returned the same id")
	}
}

func TestOrderPreserved(t *testing.T) {
	pairs := [][2]uuid.UUID{
		{uuid.Nil, {15: 1}},
		{{15: 61}, {15: 62}},
		{{0: 0x7f, 1: 0xff}, {0: 0x80}},
		{{14: 0xff, 15: 0xff}, {13: 1}},
		{{15: 0xfe}, maxUUID()},
	}
	for range 1000 {
		pairs = append(pairs, [2]uuid.UUID{randomUUID(t), randomUUID(t)})
	}
	a, b := ids.New(), ids.New()
	pairs = append(pairs, [2]uuid.UUID{a, b})
	for _, p := range pairs {
		x, y := p[0], p[1]
		byteCmp := bytes.Compare(x[:], y[:])
		strCmp := strings.Compare(ids.Base62(x), ids.Base62(y))
		if byteCmp != strCmp {
			t.Fatalf("order not preserved: bytes %v vs %v compare %d, strings %q vs %q compare %d",
				x, y, byteCmp, ids.Base62(x), ids.Base62(y), strCmp)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := ids.Base62(ids.New())
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"unknown prefix", "usr_" + valid},
		{"upper-case prefix", "KEY_" + valid},
		{"no separator", "key" + valid + "0"},
		{"prefix only", "key_"},
		{"21 chars", "key_" + valid[:21]},
		{"23 chars", "key_" + valid + "0"},
		{"illegal char dash", "key_" + valid[:21] + "-"},
		{"illegal underscore", "key_" + valid[:10] + "_" + valid[11:]},
		{"illegal non-ascii", "key_" + valid[:20] + "é"},
		{"overflow all z", "key_zzzzzzzzzzzzzzzzzzzzzz"},
		{"overflow 2^128", "key_7n42DGM5Tflk9n8mt7Fhc8"},
		{"huge", "key_" + strings.Repeat("0", 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, id, err := ids.Decode(tt.in)
			if !errors.Is(err, ids.ErrMalformed) {
				t.Fatalf("Decode err = %v, want ErrMalformed", err)
			}
			if kind != "" || id != uuid.Nil {
				t.Fatalf("Decode returned %q, %v alongside an error", kind, id)
			}
			if _, err := ids.DecodeAs(ids.APIKey, tt.in); !errors.Is(err, ids.ErrMalformed) {
				t.Fatalf("DecodeAs err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseBase62Rejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"21 chars", strings.Repeat("0", 21)},
		{"23 chars", strings.Repeat("0", 23)},
		{"illegal char", strings.Repeat("0", 21) + "-"},
		{"overflow", "zzzzzzzzzzzzzzzzzzzzzz"},
		{"max plus one", "7n42DGM5Tflk9n8mt7Fhc8"}, // 2^128 in base62
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ids.ParseBase62(tt.in); !errors.Is(err, ids.ErrMalformed) {
				t.Fatalf("ParseBase62(%q) err = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}

func TestMaxPlusOneLiteral(t *testing.T) {
	// Keep the literal in TestParseBase62Rejects honest.
	two128 := new(big.Int).Lsh(big.NewInt(1), 128)
	if got := bigText62(two128); got != "7n42DGM5Tflk9n8mt7Fhc8" {
		t.Fatalf("2^128 in base62 = %q", got)
	}
	if got := ids.Base62(maxUUID()); got != "7n42DGM5Tflk9n8mt7Fhc7" {
		t.Fatalf("Base62(max) = %q", got)
	}
}

func TestDecodeAsWrongKind(t *testing.T) {
	s := ids.Encode(ids.Device, ids.New())
	_, err := ids.DecodeAs(ids.APIKey, s)
	if !errors.Is(err, ids.ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}

func TestNoAllocs(t *testing.T) {
	s := ids.Encode(ids.APIKey, ids.New())
	huge := strings.Repeat("x", 1<<16)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Decode valid", func() { _, _, _ = ids.Decode(s) }},
		{"Decode huge", func() { _, _, _ = ids.Decode(huge) }},
		{"Decode overflow", func() { _, _, _ = ids.Decode("key_zzzzzzzzzzzzzzzzzzzzzz") }},
		{"ParseBase62", func() { _, _ = ids.ParseBase62(s[4:]) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocs, want 0", tt.name, n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		ids.Encode(ids.Team, uuid.Nil),
		ids.Encode(ids.APIKey, maxUUID()),
		ids.Encode(ids.Device, uuid.MustParse("0190a6f5-7b3c-7def-8abc-0123456789ab")),
		"key_zzzzzzzzzzzzzzzzzzzzzz",
		"key_7n42DGM5Tflk9n8mt7Fhc8",
		"evt_" + strings.Repeat("0", 21),
		"team__000000000000000000000",
		"", "_", "key_", "dev_-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, id, err := ids.Decode(s)
		if err != nil {
			if !errors.Is(err, ids.ErrMalformed) {
				t.Fatalf("Decode(%q) err = %v, not ErrMalformed", s, err)
			}
			return
		}
		if again := ids.Encode(kind, id); again != s {
			t.Fatalf("Decode(%q) accepted, but Encode gives %q", s, again)
		}
		if want := bigBase62(id); s[len(kind)+1:] != want {
			t.Fatalf("Decode(%q) = %v, reference encoding %q", s, id, want)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	id := ids.New()
	b.ReportAllocs()
	for b.Loop() {
		_ = ids.Encode(ids.APIKey, id)
	}
}

func BenchmarkDecode(b *testing.B) {
	s := ids.Encode(ids.APIKey, ids.New())
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = ids.Decode(s)
	}
}

func TestAfterSortsAfterItsArgument(t *testing.T) {
	// ids from a replica whose clock runs an hour ahead of this one's
	future := func(randA uint16, randB uint64) uuid.UUID {
		var u uuid.UUID
		ms := uint64(time.Now().Add(time.Hour).UnixMilli())
		binary.BigEndian.PutUint32(u[0:], uint32(ms>>16))
		binary.BigEndian.PutUint16(u[4:], uint16(ms))
		binary.BigEndian.PutUint16(u[6:], 0x7000|randA)
		binary.BigEndian.PutUint64(u[8:], 1<<63|randB)
		return u
	}
	full := future(0x0fff, 1<<62-1) // every random bit set: the next one carries into the time
	for _, prev := range []uuid.UUID{uuid.Nil, uuid.Must(uuid.NewV7()), future(0, 0), future(0, 1<<62-2), full} {
		id := prev
		for range 1000 {
			next := ids.After(id)
			if bytes.Compare(next[:], id[:]) <= 0 {
				t.Fatalf("After(%s) = %s, not after it", id, next)
			}
			if next.Version() != 7 || next.Variant() != uuid.RFC4122 {
				t.Fatalf("After(%s) = %s: version %d, variant %v", id, next, next.Version(), next.Variant())
			}
			id = next
		}
	}
	want := future(0, 0)
	ms := binary.BigEndian.Uint64(append([]byte{0, 0}, full[:6]...)) + 1
	binary.BigEndian.PutUint32(want[0:], uint32(ms>>16))
	binary.BigEndian.PutUint16(want[4:], uint16(ms))
	if got := ids.After(full); got != want {
		t.Fatalf("After(%s) = %s, want %s (the carry into the time)", full, got, want)
	}
}
