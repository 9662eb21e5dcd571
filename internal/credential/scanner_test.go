package credential_test

// The secret-scanning rules of docs/gitleaks.toml, tested as gitleaks would
// apply them: keywords first, then the rule's regular expression (Go's
// regexp, as gitleaks uses), then the rule's allowlist and entropy. See
// docs/secret-scanning.md.

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
)

const (
	gitleaksFile = "../../docs/gitleaks.toml"
	scanningDoc  = "../../docs/secret-scanning.md"
	repoRoot     = "../.."
)

// ruleIDs names the gitleaks rule of each kind of credential.
var ruleIDs = map[credential.Kind]string{
	credential.APIKey:        "keyplane-api-key",
	credential.DeviceToken:   "keyplane-device-token",
	credential.EnrollmentKey: "keyplane-enrollment-key",
}

type scanRule struct {
	ID, Description, Regex string
	Entropy                float64
	Keywords, Tags         []string
	AllowlistDescription   string
	AllowlistRegexes       []string

	re        *regexp.Regexp
	allowlist []*regexp.Regexp
}

type scanConfig struct {
	Title      string
	UseDefault bool
	Rules      []*scanRule
}

// tomlString matches one TOML literal string (”'…”' or '…') or basic
// string without escapes ("…"): all the gitleaks file uses.
var tomlString = regexp.MustCompile(`'''(.*?)'''|'([^']*)'|"([^"\\]*)"`)

// parseGitleaks reads the subset of TOML that docs/gitleaks.toml is written
// in: comments, the tables [extend], [[rules]] and [rules.allowlist], and
// one-line keys holding a string, a number, a boolean or an array of
// strings. Anything else fails the test, so the file cannot hold a setting
// this test does not know about.
func parseGitleaks(t *testing.T, path string) scanConfig {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg scanConfig
	table := ""
	str := func(n int, v string) string {
		m := tomlString.FindStringSubmatch(v)
		if m == nil || m[0] != v {
			t.Fatalf("%s:%d: %q is not a one-line string", path, n, v)
		}
		return m[1] + m[2] + m[3]
	}
	list := func(n int, v string) []string {
		if !strings.HasPrefix(v, "[") || !strings.HasSuffix(v, "]") {
			t.Fatalf("%s:%d: %q is not a one-line array", path, n, v)
		}
		inner := strings.TrimSpace(v[1 : len(v)-1])
		var out []string
		for _, m := range tomlString.FindAllStringSubmatch(inner, -1) {
			out = append(out, m[1]+m[2]+m[3])
		}
		if rest := strings.Trim(tomlString.ReplaceAllString(inner, ""), ", "); rest != "" {
			t.Fatalf("%s:%d: array %q holds something other than strings: %q", path, n, v, rest)
		}
		return out
	}
	for n, line := range strings.Split(string(raw), "\n") {
		n++
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case line == "[extend]", line == "[rules.allowlist]":
			table = strings.Trim(line, "[]")
			continue
		case line == "[[rules]]":
			table = "rules"
			cfg.Rules = append(cfg.Rules, &scanRule{})
			continue
		case strings.HasPrefix(line, "["):
			t.Fatalf("%s:%d: unexpected table %s", path, n, line)
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not a key = value line: %q", path, n, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		var r *scanRule
		if len(cfg.Rules) > 0 {
			r = cfg.Rules[len(cfg.Rules)-1]
		}
		switch table + "." + key {
		case ".title":
			cfg.Title = str(n, value)
		case "extend.useDefault":
			b, err := strconv.ParseBool(value)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			cfg.UseDefault = b
		case "rules.id":
			r.ID = str(n, value)
		case "rules.description":
			r.Description = str(n, value)
		case "rules.regex":
			r.Regex = str(n, value)
		case "rules.entropy":
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			r.Entropy = f
		case "rules.keywords":
			r.Keywords = list(n, value)
		case "rules.tags":
			r.Tags = list(n, value)
		case "rules.allowlist.description":
			r.AllowlistDescription = str(n, value)
		case "rules.allowlist.regexes":
			r.AllowlistRegexes = list(n, value)
		default:
			t.Fatalf("%s:%d: unexpected key %q in [%s]", path, n, key, table)
		}
	}
	for _, r := range cfg.Rules {
		var err error
		if r.re, err = regexp.Compile(r.Regex); err != nil {
			t.Fatalf("rule %s: %v", r.ID, err)
		}
		for _, a := range r.AllowlistRegexes {
			re, err := regexp.Compile(a)
			if err != nil {
				t.Fatalf("rule %s: allowlist: %v", r.ID, err)
			}
			r.allowlist = append(r.allowlist, re)
		}
	}
	return cfg
}

type finding struct{ rule, secret string }

// scan applies the rules to text the way gitleaks does: a rule runs only on
// text holding one of its keywords (case-insensitively); each match is
// dropped when an allowlist regex matches it or when its Shannon entropy is
// not above the rule's.
func scan(cfg scanConfig, text string) []finding {
	var out []finding
	lower := strings.ToLower(text)
	for _, r := range cfg.Rules {
		hasKeyword := false
		for _, k := range r.Keywords {
			hasKeyword = hasKeyword || strings.Contains(lower, strings.ToLower(k))
		}
		if !hasKeyword {
			continue
		}
		for _, m := range r.re.FindAllString(text, -1) {
			if allowlisted(r, m) || (r.Entropy != 0 && entropy(m) <= r.Entropy) {
				continue
			}
			out = append(out, finding{r.ID, m})
		}
	}
	return out
}

func allowlisted(r *scanRule, secret string) bool {
	for _, a := range r.allowlist {
		if a.MatchString(secret) {
			return true
		}
	}
	return false
}

// entropy is gitleaks' Shannon entropy of a string, in bits per character.
func entropy(s string) float64 {
	counts := map[rune]int{}
	for _, c := range s {
		counts[c]++
	}
	var e float64
	for _, c := range counts {
		p := float64(c) / float64(len(s))
		e -= p * math.Log2(p)
	}
	return e
}

func TestGitleaksFile(t *testing.T) {
	cfg := parseGitleaks(t, gitleaksFile)
	if !cfg.UseDefault {
		t.Error("[extend] useDefault is not true: the file would drop gitleaks' own rules")
	}
	if len(cfg.Rules) != len(ruleIDs) {
		t.Fatalf("%d rules, want %d", len(cfg.Rules), len(ruleIDs))
	}
	doc, err := os.ReadFile(scanningDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range kinds {
		r := ruleByID(t, cfg, ruleIDs[kind])
		if r.Description == "" || !strings.Contains(r.Description, kind.Prefix()) {
			t.Errorf("rule %s: description %q does not name %s", r.ID, r.Description, kind.Prefix())
		}
		if len(r.Keywords) != 1 || r.Keywords[0] != kind.Prefix() {
			t.Errorf("rule %s: keywords %q, want [%q]", r.ID, r.Keywords, kind.Prefix())
		}
		if !strings.HasPrefix(r.Regex, kind.Prefix()) {
			t.Errorf("rule %s: regex %q does not start with the literal %s", r.ID, r.Regex, kind.Prefix())
		}
		if r.re.NumSubexp() != 0 {
			t.Errorf("rule %s: regex has capture groups; gitleaks would report the first instead of the whole token", r.ID)
		}
		if len(r.allowlist) == 0 {
			t.Errorf("rule %s: no allowlist for documentation placeholders", r.ID)
		}
		// The documentation shows the same expression, character for character.
		if !bytes.Contains(doc, []byte("`"+r.Regex+"`")) {
			t.Errorf("%s does not document the regex of %s, %s", scanningDoc, r.ID, r.Regex)
		}
	}
}

func ruleByID(t *testing.T, cfg scanConfig, id string) *scanRule {
	t.Helper()
	for _, r := range cfg.Rules {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no rule %s in %s", id, gitleaksFile)
	return nil
}

// TestScannerFindsGeneratedCredentials generates credentials of each kind
// and expects each to be found whole, once, by its own rule and no other,
// alone and in the places tokens leak from.
func TestScannerFindsGeneratedCredentials(t *testing.T) {
	cfg := parseGitleaks(t, gitleaksFile)
	contexts := []string{
		"%s",
		"KEYPLANE_KEY=%s\n",
		"Authorization: Bearer %s",
		`{"secret":"%s","apiKey":{"id":"key_0351sYg4NCngT9UiL1J5oQ"}}`,
		`"query":"...","variables":{"key":"%s"}`,
		"q=%22%s%22&x=1",        // URL-encoded quotes
		`"line one\n%s\nthree"`, // JSON escapes around it
		"`%s`.",
		"export KEY='%s' # do not commit",
	}
	for _, kind := range kinds {
		want := ruleIDs[kind]
		minEntropy := math.Inf(1)
		for i := range 1000 {
			id := ids.New() // as the server makes them (UUIDv7)
			if i%2 == 1 {
				id = uuid.New() // any 128-bit id: random v4
			}
			if i == 0 {
				id = uuid.Max // the largest id: its first digit is 7
			}
			tok := generate(t, kind, id).Token
			minEntropy = min(minEntropy, entropy(tok))
			for _, c := range contexts {
				got := scan(cfg, strings.ReplaceAll(c, "%s", tok))
				if len(got) != 1 || got[0].rule != want || got[0].secret != tok {
					t.Fatalf("in %q, %s %s: findings %+v, want one by %s, the whole token", c, kind, tok, got, want)
				}
			}
		}
		t.Logf("%s: lowest entropy of 1,000 tokens %.2f (rule's threshold %.1f)", kind, minEntropy, ruleByID(t, cfg, want).Entropy)
	}

	// Several tokens of every kind in one text: each found by its own rule.
	var text strings.Builder
	wantFound := map[string]string{}
	for _, kind := range kinds {
		for range 3 {
			tok := generate(t, kind, ids.New()).Token
			text.WriteString("token: " + tok + "\n")
			wantFound[tok] = ruleIDs[kind]
		}
	}
	got := scan(cfg, text.String())
	if len(got) != len(wantFound) {
		t.Fatalf("%d findings in a text of %d tokens: %+v", len(got), len(wantFound), got)
	}
	for _, f := range got {
		if wantFound[f.secret] != f.rule {
			t.Errorf("%s found by %s, want %s", f.secret, f.rule, wantFound[f.secret])
		}
	}
}

// TestScannerIgnoresNonSecrets feeds text that looks like a credential but
// is not one: what the API shows of a key, placeholders, ids, and tokens of
// the wrong shape. No rule may report any of it.
func TestScannerIgnoresNonSecrets(t *testing.T) {
	cfg := parseGitleaks(t, gitleaksFile)
	tok := generate(t, credential.APIKey, ids.New()).Token
	prefix, body := tok[:3], tok[3:] // "kp_", id_secretchecksum
	id, rest := body[:22], body[23:]

	texts := []string{
		"kp_AbCdEfGh",
		"Bearer <paste your kp_ key here>",
		`{"Authorization": "Bearer <paste your kp_ key here>"}`,
		"kp_…", "kpd_…", "kpe_…", "`kp_…`", "kp_0351sYg4NCngT9UiL1J5oQ_…",
		"kp_<id:22>_<secret:43><checksum:6>",
		uuid.NewString(), uuid.New().String() + "_" + uuid.New().String(),
		"key_0351sYg4NCngT9UiL1J5oQ", "dev_" + ids.Base62(ids.New()),
		// Bad shapes.
		tok[:len(tok)-1],                    // one character short
		tok + "x",                           // one too many
		tok + "_",                           // glued to more of an identifier
		prefix + id + rest,                  // no separator
		prefix + id + "-" + rest,            // another separator
		prefix + id[:21] + "_" + rest + "0", // id too short
		prefix + id + "0_" + rest[1:],       // id too long
		prefix + id + "_" + rest[:20] + "-" + rest[21:], // a character outside base62
		"KP_" + body, // prefixes are lower case
		"kx_" + body, "kpx_" + body, "kp-" + body,
		prefix + "9" + id[1:] + "_" + rest,              // id above 2^128
		prefix + id + "_" + rest[:43] + "9" + rest[44:], // checksum above 2^32
		// Placeholders in the token's shape: the allowlist's job.
		"kp_0000000000000000000000_0000000000000000000000000000000000000000000000000",
		"kpd_0000000000000000000000_" + rest,
		"kpe_0XXXXXXXXXXXXXXXXXXXXX_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
		"kp_" + id + "_EXAMPLE" + rest[7:],
		"kp_" + id + "_REDACTED" + rest[8:],
		"kp_" + id + "_" + rest[:10] + "placeholder" + rest[21:],
		"kp_0123456701234567012345_0123456701234567012345670123456701234567012340123",
	}
	for _, kind := range kinds {
		texts = append(texts, credential.Start(kind, ids.New()), credential.Start(kind, ids.New())+"_[REDACTED]")
		iss := generate(t, kind, ids.New())
		texts = append(texts, iss.String())
	}
	for _, text := range texts {
		if got := scan(cfg, text); len(got) != 0 {
			t.Errorf("%q: findings %+v, want none", text, got)
		}
	}

	// The shape-valid placeholders above are stopped by the allowlist or the
	// entropy threshold, not because the regex misses them: check it does
	// match, so that this test keeps testing both.
	r := ruleByID(t, cfg, ruleIDs[credential.APIKey])
	for _, p := range []string{
		"kp_0000000000000000000000_0000000000000000000000000000000000000000000000000",
		"kp_" + id + "_EXAMPLE" + rest[7:],
	} {
		if !r.re.MatchString(p) || !allowlisted(r, p) {
			t.Errorf("%q: regex matches %v, allowlisted %v; want both", p, r.re.MatchString(p), allowlisted(r, p))
		}
	}
	lowEntropy := "kp_0123456701234567012345_0123456701234567012345670123456701234567012340123"
	if !r.re.MatchString(lowEntropy) || allowlisted(r, lowEntropy) || entropy(lowEntropy) > r.Entropy {
		t.Errorf("%q should match the regex, not the allowlist, and fall under the entropy threshold", lowEntropy)
	}
}

// TestDocsHoldNoCredential scans the repository's Markdown as a team's
// gitleaks run would: the placeholders the documentation uses must not be
// reported.
func TestDocsHoldNoCredential(t *testing.T) {
	cfg := parseGitleaks(t, gitleaksFile)
	files := 0
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || filepath.Ext(path) != ".md" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, f := range scan(cfg, string(b)) {
			t.Errorf("%s: %s finds %q", path, f.rule, f.secret)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no Markdown file scanned")
	}
}

// TestGitleaksBinary runs gitleaks itself, when it is installed, with the
// rule file on a directory of generated credentials. It skips otherwise.
func TestGitleaksBinary(t *testing.T) {
	bin, err := exec.LookPath("gitleaks")
	if err != nil {
		t.Skip("gitleaks is not installed")
	}
	dir := t.TempDir()
	want := map[string]string{}
	var text strings.Builder
	for _, kind := range kinds {
		for range 20 {
			tok := generate(t, kind, ids.New()).Token
			want[tok] = ruleIDs[kind]
			text.WriteString("KEYPLANE_KEY=" + tok + "\n")
		}
	}
	text.WriteString("placeholder: kp_0000000000000000000000_0000000000000000000000000000000000000000000000000\n")
	for _, kind := range kinds {
		text.WriteString("start: " + credential.Start(kind, ids.New()) + "\n")
	}
	// Under 10 kB: gitleaks reads files in chunks of that size and misses a
	// token cut by a chunk's end (gitleaks#1651).
	if err := os.WriteFile(filepath.Join(dir, "leak.env"), []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	// detect --no-git works in every gitleaks 8 (newer ones also have "dir").
	cmd := exec.Command(bin, "detect", "--no-git", "--no-banner", "--source", dir,
		"--config", gitleaksFile, "--report-format", "json", "--report-path", report, "--exit-code", "0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gitleaks: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var findings []struct{ RuleID, Secret string }
	if err := json.Unmarshal(raw, &findings); err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, f := range findings {
		if !strings.HasPrefix(f.RuleID, "keyplane-") {
			continue // gitleaks' default rules are not under test
		}
		if _, ok := want[f.Secret]; !ok {
			t.Errorf("gitleaks reports %q (%s), which is not a credential", f.Secret, f.RuleID)
		}
		if prev, dup := found[f.Secret]; dup {
			t.Errorf("%s found twice, by %s and %s", f.Secret, prev, f.RuleID)
		}
		found[f.Secret] = f.RuleID
	}
	for tok, rule := range want {
		if found[tok] != rule {
			t.Errorf("gitleaks: %s found by %q, want %s", tok, found[tok], rule)
		}
	}
	t.Logf("gitleaks found %d of %d credentials by their own rule (%d findings in all)", len(found), len(want), len(findings))
}
