package playground

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"
)

func get(t *testing.T, h http.Handler, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var (
	scriptTag = regexp.MustCompile(`(?is)<script\b[^>]*>`)
	scriptSrc = regexp.MustCompile(`(?i)\bsrc="([^"]+)"`)
	linkHref  = regexp.MustCompile(`(?i)<link\b[^>]*\bhref="([^"]+)"`)
)

// The page runs only scripts of its own origin, from files: the policy has
// no 'unsafe-inline', and the page needs none.
func TestPageHasNoInlineScriptOrStyle(t *testing.T) {
	h := Handler(Options{})
	rec := get(t, h, "/", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /: %d", rec.Code)
	}
	body := rec.Body.String()
	m := regexp.MustCompile(`data-style-nonce="([A-Za-z0-9_-]{22})"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the page has no style nonce")
	}
	policy := rec.Header().Get("Content-Security-Policy")
	if want := PagePolicy(m[1]); policy != want {
		t.Errorf("Content-Security-Policy = %q, want %q", policy, want)
	}
	if !strings.Contains(policy, "style-src 'self' 'nonce-"+m[1]+"';") || !strings.Contains(policy, "script-src 'self';") {
		t.Errorf("Content-Security-Policy = %q", policy)
	}
	for _, banned := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(policy, banned) {
			t.Errorf("the policy allows %s", banned)
		}
	}
	if again := get(t, h, "/", nil).Header().Get("Content-Security-Policy"); again == policy {
		t.Error("two responses share a nonce")
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if !strings.Contains(body, Notice) {
		t.Errorf("the page does not say %q", Notice)
	}
	tags := scriptTag.FindAllString(body, -1)
	if len(tags) == 0 {
		t.Fatal("the page loads no script")
	}
	for _, tag := range tags {
		m := scriptSrc.FindStringSubmatch(tag)
		if m == nil || !strings.HasPrefix(m[1], AssetPath) {
			t.Errorf("%s: an inline script, or one from elsewhere", tag)
		}
	}
	if n := strings.Count(body, "</script>"); n != len(tags) {
		t.Errorf("%d <script> tags and %d </script>", len(tags), n)
	}
	for _, re := range []string{`(?i)<style\b`, `(?i)\sstyle=`, `(?i)\son[a-z]+=`, `(?i)javascript:`} {
		if regexp.MustCompile(re).MatchString(body) {
			t.Errorf("the page has inline code or style (%s)", re)
		}
	}

	// Everything the page refers to is served, with its type.
	var refs []string
	for _, tag := range tags {
		refs = append(refs, scriptSrc.FindStringSubmatch(tag)[1])
	}
	for _, m := range linkHref.FindAllStringSubmatch(body, -1) {
		if !strings.HasPrefix(m[1], "data:") {
			refs = append(refs, m[1])
		}
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref, AssetPath) {
			t.Errorf("the page refers to %s, outside %s", ref, AssetPath)
			continue
		}
		rec := get(t, h, ref, nil)
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d, %d bytes", ref, rec.Code, rec.Body.Len())
		}
		ct := rec.Header().Get("Content-Type")
		if strings.HasSuffix(ref, ".js") && !strings.HasPrefix(ct, "text/javascript") ||
			strings.HasSuffix(ref, ".css") && !strings.HasPrefix(ct, "text/css") {
			t.Errorf("GET %s: Content-Type %q", ref, ct)
		}
	}
}

// The page's settings reach its script through a data attribute, escaped.
func TestPageConfig(t *testing.T) {
	body := get(t, Handler(Options{Endpoint: "/api/graphql"}), "/", nil).Body.String()
	m := regexp.MustCompile(`data-config="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no data-config on the page")
	}
	raw := strings.NewReplacer("&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(m[1])
	var cfg config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("data-config: %v", err)
	}
	if cfg.Endpoint != "/api/graphql" || cfg.HeadersTemplate != HeadersTemplate || len(cfg.Tabs) != len(DefaultTabs) {
		t.Errorf("data-config = %+v", cfg)
	}
	var headers map[string]string
	if err := json.Unmarshal([]byte(HeadersTemplate), &headers); err != nil || !strings.HasPrefix(headers["Authorization"], "Bearer ") {
		t.Errorf("HeadersTemplate %s: %v", HeadersTemplate, err)
	}
}

func TestAssets(t *testing.T) {
	h := Handler(Options{})
	const js = AssetPath + "graphiql/graphiql.min.js"

	plain := get(t, h, js, nil)
	if plain.Code != http.StatusOK || plain.Header().Get("Content-Encoding") != "" {
		t.Fatalf("GET %s: %d, Content-Encoding %q", js, plain.Code, plain.Header().Get("Content-Encoding"))
	}
	if got := plain.Header().Get("Content-Security-Policy"); got != ContentSecurityPolicy {
		t.Errorf("Content-Security-Policy = %q", got)
	}
	if got := plain.Header().Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control = %q", got)
	}
	etag := plain.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if rec := get(t, h, js, map[string]string{"If-None-Match": etag}); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match the ETag: %d, want 304", rec.Code)
	}

	zipped := get(t, h, js, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Header().Get("ETag") == etag {
		t.Fatalf("gzip accepted: Content-Encoding %q, ETag %q", zipped.Header().Get("Content-Encoding"), zipped.Header().Get("ETag"))
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain.Body.Bytes()) {
		t.Errorf("the gzipped file is not the file (%v)", err)
	}
	if rec := get(t, h, js, map[string]string{"Accept-Encoding": "gzip;q=0"}); rec.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 answered with gzip")
	}

	for _, path := range []string{AssetPath + "index.html", AssetPath + "nope.js", AssetPath, "/elsewhere", AssetPath + "../playground.go"} {
		if rec := get(t, h, path, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
}

// sources is assets/SOURCES.json.
type sources struct {
	Packages []struct {
		Name, Version, Integrity, License string
		Files                             []struct {
			From, To, Sha256 string
			Size             int
		}
	}
}

// The embedded third-party files are those SOURCES.json lists, byte for byte
// (refresh.sh --check also compares them with the npm tarballs).
func TestAssetsMatchSources(t *testing.T) {
	raw, err := os.ReadFile("assets/SOURCES.json")
	if err != nil {
		t.Fatal(err)
	}
	var src sources
	if err := json.Unmarshal(raw, &src); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	folders := map[string]bool{}
	exact := regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	for _, p := range src.Packages {
		if !exact.MatchString(p.Version) || !strings.HasPrefix(p.Integrity, "sha512-") {
			t.Errorf("%s: version %q and integrity %q must be pinned", p.Name, p.Version, p.Integrity)
		}
		for _, f := range p.Files {
			listed[f.To] = true
			folders[strings.Split(f.To, "/")[0]] = true
			b, err := embedded.ReadFile("assets/" + f.To)
			if err != nil {
				t.Errorf("%s: %v", f.To, err)
				continue
			}
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != f.Sha256 || len(b) != f.Size {
				t.Errorf("%s is not the file of %s@%s that SOURCES.json lists: run refresh.sh", f.To, p.Name, p.Version)
			}
		}
	}
	err = fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		if folders[strings.Split(name, "/")[0]] && !listed[name] {
			t.Errorf("%s is not listed in SOURCES.json", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every default tab is an operation the server accepts.
func TestDefaultTabsValidate(t *testing.T) {
	sdl, err := os.ReadFile("../../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(sdl)})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i, tab := range DefaultTabs {
		doc, errs := gqlparser.LoadQueryWithRules(schema, tab.Query, nil) // nil: the default rules
		if len(errs) > 0 {
			t.Errorf("tab %d: %v", i, errs)
			continue
		}
		if len(doc.Operations) != 1 {
			t.Errorf("tab %d: %d operations, want 1", i, len(doc.Operations))
			continue
		}
		op := doc.Operations[0]
		names[op.Name] = true
		vars := map[string]any{}
		if tab.Variables != "" {
			if err := json.Unmarshal([]byte(tab.Variables), &vars); err != nil {
				t.Errorf("tab %d (%s): variables: %v", i, op.Name, err)
				continue
			}
		}
		if _, err := validator.VariableValues(schema, op, vars); err != nil {
			t.Errorf("tab %d (%s): variables: %v", i, op.Name, err)
		}
	}
	for _, want := range []string{"Devices", "CreateScopedKey", "RotateKey", "AuditLog"} {
		if !names[want] {
			t.Errorf("no default tab runs %s", want)
		}
	}
	if !strings.Contains(DefaultTabs[0].Query, "pageInfo") || !strings.Contains(DefaultTabs[0].Query, "devices(") {
		t.Error("the first tab is not the devices page")
	}
}
