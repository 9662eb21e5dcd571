package credential_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

var kinds = []credential.Kind{credential.APIKey, credential.DeviceToken, credential.EnrollmentKey}

// fixedID is a stable object id for seeds and hand-built tokens.
var fixedID = uuid.MustParse("0190a6f5-7b3c-7def-8abc-0123456789ab")

func generate(t testing.TB, kind credential.Kind, id uuid.UUID) credential.Issued {
	t.Helper()
	iss, err := credential.Generate(kind, id)
	if err != nil {
		t.Fatalf("Generate(%v): %v", kind, err)
	}
	return iss
}

// withChecksum appends the 6-character base62 CRC32 of body, computed
// independently of the package, so tests can build tokens that are wrong in
// one specific way only.
func withChecksum(body string) string {
	v := crc32.ChecksumIEEE([]byte(body))
	var sum [6]byte
	for i := 5; i >= 0; i-- {
		sum[i] = alphabet[v%62]
		v /= 62
	}
	return body + string(sum[:])
}

// replaceAt returns s with the byte at i replaced by c.
func replaceAt(s string, i int, c byte) string {
	b := []byte(s)
	b[i] = c
	return string(b)
}

// otherDigit returns an alphabet character different from c.
func otherDigit(c byte) byte {
	if c == '0' {
		return '1'
	}
	return '0'
}

func TestKind(t *testing.T) {
	tests := []struct {
		kind         credential.Kind
		prefix, name string
	}{
		{credential.APIKey, "kp_", "api key"},
		{credential.DeviceToken, "kpd_", "device token"},
		{credential.EnrollmentKey, "kpe_", "enrollment key"},
		{0, "", "credential.Kind(0)"},
		{42, "", "credential.Kind(42)"},
	}
	for _, tt := range tests {
		if got := tt.kind.Prefix(); got != tt.prefix {
			t.Errorf("Kind(%d).Prefix() = %q, want %q", tt.kind, got, tt.prefix)
		}
		if got := tt.kind.String(); got != tt.name {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tt.kind), got, tt.name)
		}
	}
}

func TestGenerateParseRoundTrip(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			id := ids.New()
			iss := generate(t, kind, id)
			if iss.Kind != kind || iss.ID != id {
				t.Fatalf("Issued = %v %v, want %v %v", iss.Kind, iss.ID, kind, id)
			}
			if iss.Hash != credential.HashToken(iss.Token) {
				t.Fatal("Issued.Hash != HashToken(Token)")
			}
			if iss.Hash != sha256.Sum256([]byte(iss.Token)) {
				t.Fatal("HashToken is not SHA-256 of the token")
			}

			p, err := credential.Parse(iss.Token)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.Kind != kind || p.ID != id {
				t.Fatalf("Parsed = %v %v, want %v %v", p.Kind, p.ID, kind, id)
			}
			if p.Hash() != iss.Hash {
				t.Fatal("Parsed.Hash() != Issued.Hash")
			}
			if pk, err := credential.ParseKind(iss.Token, kind); err != nil || pk != p {
				t.Fatalf("ParseKind = %v, %v", pk, err)
			}

			other := generate(t, kind, id)
			otherHash := other.Hash
			short := iss.Hash[:31]
			long := append(iss.Hash[:], 0)
			matches := []struct {
				name   string
				stored []byte
				want   bool
			}{
				{"own hash", iss.Hash[:], true},
				{"other token's hash", otherHash[:], false},
				{"nil", nil, false},
				{"empty", []byte{}, false},
				{"short", short, false},
				{"long", long, false},
			}
			for _, m := range matches {
				if got := p.Matches(m.stored); got != m.want {
					t.Errorf("Matches(%s) = %v, want %v", m.name, got, m.want)
				}
			}

			start := credential.Start(kind, id)
			if start != kind.Prefix()+ids.Base62(id) || !strings.HasPrefix(iss.Token, start) {
				t.Fatalf("Start = %q, not the token's prefix", start)
			}
		})
	}
}

func TestGenerateUnique(t *testing.T) {
	for _, kind := range kinds {
		a, b := generate(t, kind, fixedID), generate(t, kind, fixedID)
		if a.Token == b.Token || a.Hash == b.Hash {
			t.Fatalf("%v: two Generate calls gave the same token", kind)
		}
	}
}

func TestShape(t *testing.T) {
	maxSecret := new(big.Int).Lsh(big.NewInt(1), 256)
	for _, kind := range kinds {
		for range 100 {
			tok := generate(t, kind, ids.New()).Token
			if want := len(kind.Prefix()) + 72; len(tok) != want {
				t.Fatalf("len(%v token) = %d, want %d", kind, len(tok), want)
			}
			for i := range len(tok) {
				if c := tok[i]; c != '_' && strings.IndexByte(alphabet, c) < 0 {
					t.Fatalf("%v token has %q at %d", kind, c, i)
				}
			}
			body := tok[len(kind.Prefix()):]
			if body[22] != '_' {
				t.Fatalf("no separator at 22 in %v token", kind)
			}
			if withChecksum(tok[:len(tok)-6]) != tok {
				t.Fatalf("%v token checksum differs from an independent CRC32", kind)
			}
			// The secret must be a base62 number below 2^256 (32 bytes).
			secret := new(big.Int)
			for _, c := range []byte(body[23 : 23+43]) {
				secret.Mul(secret, big.NewInt(62))
				secret.Add(secret, big.NewInt(int64(strings.IndexByte(alphabet, c))))
			}
			if secret.Cmp(maxSecret) >= 0 {
				t.Fatalf("%v token secret exceeds 256 bits", kind)
			}
		}
	}
}

func TestSecretEncodingBounds(t *testing.T) {
	// All-zero and all-0xff secrets must encode to exactly 43 digits; the
	// reader hook lets the test choose the random bytes.
	tests := []struct {
		name string
		fill byte
	}{
		{"zero", 0x00},
		{"max", 0xff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restore := credential.SetRandReader(constReader(tt.fill))
			defer restore()
			iss := generate(t, credential.APIKey, fixedID)
			p, err := credential.Parse(iss.Token)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := new(big.Int).SetBytes(bytes.Repeat([]byte{tt.fill}, 32))
			got := new(big.Int)
			for _, c := range []byte(iss.Token[3+23 : 3+23+43]) {
				got.Mul(got, big.NewInt(62))
				got.Add(got, big.NewInt(int64(strings.IndexByte(alphabet, c))))
			}
			if got.Cmp(want) != 0 {
				t.Fatalf("secret decodes to %v, want %v", got, want)
			}
			if !p.Matches(iss.Hash[:]) {
				t.Fatal("Matches = false")
			}
		})
	}
}

type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestGenerateErrors(t *testing.T) {
	restore := credential.SetRandReader(failingReader{})
	defer restore()
	if _, err := credential.Generate(credential.APIKey, fixedID); err == nil {
		t.Fatal("Generate with a failing random source succeeded")
	}
	restore()
	for _, k := range []credential.Kind{0, 4, -1} {
		if _, err := credential.Generate(k, fixedID); err == nil {
			t.Fatalf("Generate(Kind(%d)) succeeded", int(k))
		}
	}
}

func TestParseRejects(t *testing.T) {
	api := generate(t, credential.APIKey, fixedID).Token
	dev := generate(t, credential.DeviceToken, fixedID).Token
	cut := len(api) - 6
	secretAt := 3 + 23 + 10

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", credential.ErrMalformed},
		{"prefix only", "kp_", credential.ErrMalformed},
		{"device prefix only", "kpd_", credential.ErrMalformed},
		{"unknown prefix kx_", "kx_" + api[3:], credential.ErrMalformed},
		{"unknown prefix kpx_", "kpx_" + api[3:], credential.ErrMalformed},
		{"upper-case prefix", "KP_" + api[3:], credential.ErrMalformed},
		{"one char short", api[:len(api)-1], credential.ErrMalformed},
		{"one char long", api + "0", credential.ErrMalformed},
		{"device one char short", dev[:len(dev)-1], credential.ErrMalformed},
		{"device one char long", dev + "0", credential.ErrMalformed},
		{"api prefix with device length", "kp_" + dev[4:] + "0", credential.ErrMalformed},
		{"bad char dash", replaceAt(api, secretAt, '-'), credential.ErrMalformed},
		{"bad char dot", replaceAt(api, secretAt, '.'), credential.ErrMalformed},
		{"bad char space", replaceAt(api, secretAt, ' '), credential.ErrMalformed},
		{"bad char underscore in secret", replaceAt(api, secretAt, '_'), credential.ErrMalformed},
		{"bad char in checksum", replaceAt(api, len(api)-1, '-'), credential.ErrMalformed},
		{"unicode é", api[:secretAt] + "é" + api[secretAt+2:], credential.ErrMalformed},
		{"NUL byte", replaceAt(api, 10, 0), credential.ErrMalformed},
		{"flipped last checksum char", replaceAt(api, len(api)-1, otherDigit(api[len(api)-1])), credential.ErrChecksum},
		{"flipped first checksum char", replaceAt(api, cut, otherDigit(api[cut])), credential.ErrChecksum},
		{"flipped secret char", replaceAt(api, secretAt, otherDigit(api[secretAt])), credential.ErrChecksum},
		{"flipped id char", replaceAt(api, 5, otherDigit(api[5])), credential.ErrChecksum},
		{"prefix changed, checksum kept", "kpe_" + api[3:], credential.ErrChecksum},
		{"id not base62 decodable", withChecksum("kp_" + strings.Repeat("z", 22) + api[3+22:cut]), credential.ErrMalformed},
		{"separator missing", withChecksum(replaceAt(api[:cut], 3+22, 'A')), credential.ErrMalformed},
		{"separator moved", withChecksum("kp_" + api[3:3+21] + "_" + api[3+21:3+22] + api[3+23:cut]), credential.ErrMalformed},
		{"1 MiB", "kp_" + strings.Repeat("A", 1<<20), credential.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := credential.Parse(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse err = %v, want %v", err, tt.want)
			}
			if p != (credential.Parsed{}) {
				t.Fatalf("Parse returned %v alongside an error", p)
			}
			if h := credential.HashToken(tt.token); p.Matches(h[:]) {
				t.Fatal("zero Parsed matched")
			}
			other := credential.ErrChecksum
			if tt.want == credential.ErrChecksum {
				other = credential.ErrMalformed
			}
			if errors.Is(err, other) || errors.Is(err, credential.ErrWrongKind) {
				t.Fatalf("Parse err = %v matches more than one sentinel", err)
			}
			assertNoLeak(t, err, tt.token)
			if _, err := credential.ParseKind(tt.token, credential.APIKey); !errors.Is(err, tt.want) {
				t.Fatalf("ParseKind err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseKind(t *testing.T) {
	for _, have := range kinds {
		tok := generate(t, have, fixedID).Token
		for _, want := range append(kinds, 0) {
			p, err := credential.ParseKind(tok, want)
			if have == want {
				if err != nil || p.Kind != have {
					t.Fatalf("ParseKind(%v token, %v) = %v, %v", have, want, p, err)
				}
				continue
			}
			if !errors.Is(err, credential.ErrWrongKind) {
				t.Fatalf("ParseKind(%v token, %v) err = %v, want ErrWrongKind", have, want, err)
			}
			if errors.Is(err, credential.ErrMalformed) || errors.Is(err, credential.ErrChecksum) {
				t.Fatalf("ParseKind err = %v also matches another sentinel", err)
			}
			assertNoLeak(t, err, tok)
		}
	}
}

func TestNoLeakInFormatting(t *testing.T) {
	iss := generate(t, credential.DeviceToken, fixedID)
	p, err := credential.Parse(iss.Token)
	if err != nil {
		t.Fatal(err)
	}
	secret := iss.Token[len(credential.Start(iss.Kind, iss.ID))+1:]
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{iss, p, &iss, &p} {
			if s := fmt.Sprintf(verb, v); strings.Contains(s, secret[:10]) {
				t.Fatalf("Sprintf(%s, %T) leaks the secret: %s", verb, v, s)
			}
		}
	}
	if got, want := p.String(), "device token "+credential.Start(p.Kind, p.ID)+"_[REDACTED]"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestNoAllocs(t *testing.T) {
	tok := generate(t, credential.APIKey, fixedID)
	huge := "kp_" + strings.Repeat("A", 1<<20)
	bad := replaceAt(tok.Token, len(tok.Token)-1, otherDigit(tok.Token[len(tok.Token)-1]))
	tests := []struct {
		name string
		fn   func()
	}{
		{"Parse valid", func() { _, _ = credential.Parse(tok.Token) }},
		{"Parse and Match", func() {
			p, _ := credential.Parse(tok.Token)
			_ = p.Matches(tok.Hash[:])
		}},
		{"Parse huge", func() { _, _ = credential.Parse(huge) }},
		{"Parse empty", func() { _, _ = credential.Parse("") }},
		{"Parse bad checksum", func() { _, _ = credential.Parse(bad) }},
		{"HashToken", func() { _ = credential.HashToken(tok.Token) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocs, want 0", tt.name, n)
		}
	}
}

// assertNoLeak fails if err's message contains any 8-character piece of the
// token after its prefix, which would mean a secret could end up in logs.
func assertNoLeak(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	for i := 4; i+8 <= len(token) && i < 4096; i++ {
		if strings.Contains(msg, token[i:i+8]) {
			t.Fatalf("error %q contains part of the token", msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, kind := range kinds {
		iss := generate(f, kind, fixedID)
		f.Add(iss.Token)
		f.Add(iss.Token[:len(iss.Token)-1])
		f.Add(iss.Token[:len(iss.Token)/2])
		f.Add(iss.Token + "0")
		f.Add(kind.Prefix())
	}
	for _, s := range []string{
		"", "_", "kp", "kp_", "kpx_", "kp__", "\x00\xff",
		"kp_" + strings.Repeat("z", 72),
		"kpd_" + strings.Repeat("0", 22) + "_" + strings.Repeat("0", 49),
		"kpe_" + strings.Repeat("é", 36),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := credential.Parse(s)
		if err != nil {
			if !errors.Is(err, credential.ErrMalformed) && !errors.Is(err, credential.ErrChecksum) {
				t.Fatalf("Parse err = %v, not a sentinel", err)
			}
			if p != (credential.Parsed{}) {
				t.Fatalf("Parse returned %v alongside an error", p)
			}
			assertNoLeak(t, err, s)
			return
		}
		if len(s) != len(p.Kind.Prefix())+72 {
			t.Fatalf("accepted token of length %d for %v", len(s), p.Kind)
		}
		if !strings.HasPrefix(s, p.Kind.Prefix()) {
			t.Fatalf("accepted %v token without its prefix", p.Kind)
		}
		if !strings.HasPrefix(s, credential.Start(p.Kind, p.ID)) {
			t.Fatal("Start is not a prefix of the accepted token")
		}
		h := credential.HashToken(s)
		if p.Hash() != h || p.Hash() != sha256.Sum256([]byte(s)) {
			t.Fatal("accepted token does not re-hash consistently")
		}
		if !p.Matches(h[:]) {
			t.Fatal("accepted token does not match its own hash")
		}
		if withChecksum(s[:len(s)-6]) != s {
			t.Fatal("accepted token whose checksum differs from an independent CRC32")
		}
		if pk, err := credential.ParseKind(s, p.Kind); err != nil || pk != p {
			t.Fatalf("ParseKind disagrees with Parse: %v", err)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	tok := generate(b, credential.APIKey, ids.New()).Token
	b.ReportAllocs()
	for b.Loop() {
		if _, err := credential.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAndMatch(b *testing.B) {
	iss := generate(b, credential.APIKey, ids.New())
	stored := iss.Hash[:]
	b.ReportAllocs()
	for b.Loop() {
		p, err := credential.Parse(iss.Token)
		if err != nil || !p.Matches(stored) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	id := ids.New()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := credential.Generate(credential.APIKey, id); err != nil {
			b.Fatal(err)
		}
	}
}
