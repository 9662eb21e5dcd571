// Package playground serves Keyplane's GraphQL playground: GraphiQL, with
// React and ReactDOM, from files embedded in the binary, so that the page
// works on a network with no way out. Nothing is loaded from another origin,
// and the page runs no inline script; its one inline style, the scroll lock
// of GraphiQL's dialogs, is allowed by a nonce.
//
// The third-party files are npm packages pinned in assets/SOURCES.json;
// refresh.sh re-downloads them, and refresh.sh --check verifies them.
//
// The page keeps no secret: headers are kept in the tab's memory only, and
// what GraphiQL persists (tabs, history) is stored without them.
//
// Subscriptions run over Server-Sent Events: the page's script posts them to
// the endpoint with Accept: text/event-stream and the same headers as a
// query, and reads the stream with fetch, so connect-src 'self' suffices.
package playground

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AssetPath is the path under which the page's files are served; a router
// sends every GET under it to the Handler, as it does GET /.
const AssetPath = "/playground/"

// ContentSecurityPolicy is the policy of the page's files: everything from
// the page's own origin, no inline script or style, fonts and images also
// from data: URLs (GraphiQL's stylesheet carries its fonts inline that way).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// PagePolicy is the policy of the page itself: ContentSecurityPolicy, with
// the nonce of the one <style> element GraphiQL writes (the scroll lock of
// its dialogs, react-remove-scroll), fresh for each response.
func PagePolicy(styleNonce string) string {
	return strings.Replace(ContentSecurityPolicy, "style-src 'self'", "style-src 'self' 'nonce-"+styleNonce+"'", 1)
}

// HeadersTemplate is what the Headers pane holds at first. The page never
// sends it: an Authorization header still holding this template is dropped.
const HeadersTemplate = `{"Authorization": "Bearer <paste your kp_ key here>"}`

// Notice is the line the page shows about the key.
const Notice = "Your key stays in this tab; it is not stored."

// Options are what the page is built from.
type Options struct {
	// Endpoint is the path of the GraphQL endpoint, on the page's origin
	// (default /graphql).
	Endpoint string
	// Title is the page's title (default Keyplane).
	Title string
}

//go:embed assets
var embedded embed.FS

var page = template.Must(template.ParseFS(embedded, "assets/index.html"))

// config is what the page's script reads, from a data attribute.
type config struct {
	Endpoint        string `json:"endpoint"`
	HeadersTemplate string `json:"headersTemplate"`
	Tabs            []Tab  `json:"tabs"`
}

// Handler serves the page at / and its files under AssetPath; any other
// path is not found.
func Handler(o Options) http.Handler {
	if o.Endpoint == "" {
		o.Endpoint = "/graphql"
	}
	if o.Title == "" {
		o.Title = "Keyplane"
	}
	cfg, err := json.Marshal(config{Endpoint: o.Endpoint, HeadersTemplate: HeadersTemplate, Tabs: DefaultTabs})
	if err != nil {
		panic(err) // a fixed value of strings
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/":
			nonce := newNonce()
			var index bytes.Buffer
			if err := page.Execute(&index, map[string]any{
				"Title": o.Title, "Assets": AssetPath, "Config": string(cfg), "Notice": Notice, "StyleNonce": nonce,
			}); err != nil {
				panic(err) // the template and its data are fixed
			}
			h := w.Header()
			h.Set("Content-Security-Policy", PagePolicy(nonce))
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-store") // the nonce is this response's
			http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index.Bytes()))
		case strings.HasPrefix(r.URL.Path, AssetPath):
			w.Header().Set("Content-Security-Policy", ContentSecurityPolicy)
			serveAsset(w, r, strings.TrimPrefix(r.URL.Path, AssetPath))
		default:
			http.NotFound(w, r)
		}
	})
}

// newNonce returns 128 random bits, as a CSP nonce.
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// asset is one served file, kept as it is and gzipped.
type asset struct {
	contentType string
	body, gz    []byte
	etag        string
}

var (
	assetsOnce sync.Once
	assets     map[string]*asset
)

// loadAssets reads the embedded files once, on the first request for one:
// gzipping them costs a moment that a server not showing the page need not
// spend.
func loadAssets() map[string]*asset {
	assetsOnce.Do(func() {
		assets = map[string]*asset{}
		err := fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			name := strings.TrimPrefix(p, "assets/")
			if name == "index.html" { // a template, served at /
				return nil
			}
			body, err := embedded.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			a := &asset{contentType: contentType(name), body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
			var gz bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			if gz.Len() < len(body) {
				a.gz = gz.Bytes()
			}
			assets[name] = a
			return nil
		})
		if err != nil {
			panic(err) // the embedded files are part of the binary
		}
	})
	return assets
}

// serveAsset serves one embedded file. Its ETag is a hash of its content, so
// that a browser asks again each time (no-cache) and is answered 304.
func serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := loadAssets()[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept-Encoding")
	body, etag := a.body, a.etag
	if a.gz != nil && acceptsGzip(r) {
		body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			q, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		return q > 0
	}
	return false
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json":
		return "application/json"
	default:
		return "text/plain; charset=utf-8"
	}
}
