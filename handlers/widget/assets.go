package widget

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/ui"
)

// The files of ui.Widget that are not served under /widget/assets/.
const (
	loaderFile = "loader.js"
	frameFile  = "frame.html"
)

// contentTypes are the only kinds of file served as assets, by extension.
var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".woff2": "font/woff2",
	".json":  "application/json; charset=utf-8",
}

// asset is one embedded file, hashed once per process and compressed the
// first time a client takes it gzipped. At the edge a process is one
// request (a fresh Go runtime each), so the token route, which needs only
// the hashes, must not pay for compressing every file.
type asset struct {
	raw   []byte
	hash  string // hex SHA-256, first 16 characters: the ?v= of its URL
	ctype string

	gzOnce sync.Once
	gz     []byte
}

// gzipped is the file compressed (best compression: it is small and read
// by every visitor).
func (a *asset) gzipped() []byte {
	a.gzOnce.Do(func() {
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(a.raw)
		zw.Close()
		a.gz = gz.Bytes()
	})
	return a.gz
}

var (
	assetsOnce sync.Once
	assets     map[string]*asset
	frameTmpl  string
	frameVer   string
)

// loadAssets reads ui.Widget once: the flat files directly under widget/
// with a known extension (sub-folders and other files are never served).
func loadAssets() {
	assets = map[string]*asset{}
	entries, _ := fs.ReadDir(ui.Widget, "widget")
	all := sha256.New()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		raw, err := fs.ReadFile(ui.Widget, "widget/"+name)
		if err != nil {
			continue
		}
		fmt.Fprintf(all, "%s\x00%d\x00", name, len(raw))
		all.Write(raw)
		ct := contentTypes[path.Ext(name)]
		if name == frameFile {
			frameTmpl = string(raw)
			continue
		}
		if ct == "" {
			continue
		}
		sum := sha256.Sum256(raw)
		assets[name] = &asset{raw: raw, hash: hex.EncodeToString(sum[:])[:16], ctype: ct}
	}
	frameVer = hex.EncodeToString(all.Sum(nil))[:16]
}

func getAsset(name string) *asset {
	assetsOnce.Do(loadAssets)
	return assets[name]
}

// frameVersion is a hash of every widget file: the frame URL's ?v=, which
// changes whenever any of them does.
func frameVersion() string {
	assetsOnce.Do(loadAssets)
	return frameVer
}

// assetURL is the versioned URL of an asset; "" if there is none.
func assetURL(name string) string {
	a := getAsset(name)
	if a == nil || name == loaderFile {
		return ""
	}
	return "/widget/assets/" + name + "?v=" + a.hash
}

// acceptsGzip reads Accept-Encoding: gzip (or *) listed without q=0.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.ToLower(params), " ", "")
			if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
				continue
			}
			return true
		}
	}
	return false
}

// serveFile writes an asset, gzipped when the client takes it.
func serveFile(w http.ResponseWriter, r *http.Request, a *asset, cache string) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", cache)
	h.Add("Vary", "Accept-Encoding")
	// Loaded cross-site (the loader by the host page; never the chat's
	// files): let the host page embed it, nothing else.
	if h.Get("Cross-Origin-Resource-Policy") == "" {
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	}
	body := a.raw
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gzipped()
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// Loader serves /widget.js: cached for 5 minutes, so a new loader reaches
// every site within that.
func (svc *Service) Loader(w http.ResponseWriter, r *http.Request) error {
	a := getAsset(loaderFile)
	if a == nil {
		return web.Errorf(http.StatusNotFound, "not_found", "no widget loader in this build")
	}
	serveFile(w, r, a, "public, max-age=300")
	return nil
}

// Asset serves /widget/assets/{name}: one of the flat files of ui.Widget
// (never the loader or the frame template, never a path). A URL whose
// ?v= is the file's hash is cached for a year (immutable); any other for
// 5 minutes.
func (svc *Service) Asset(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	a := getAsset(name)
	if a == nil || name == loaderFile || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return web.Errorf(http.StatusNotFound, "not_found", "no such widget asset")
	}
	cache := "public, max-age=300"
	if r.URL.Query().Get("v") == a.hash {
		cache = "public, max-age=31536000, immutable"
	}
	w.Header().Set("Cross-Origin-Resource-Policy", "same-origin")
	serveFile(w, r, a, cache)
	return nil
}

// renderFrame fills frame.html's placeholders: {{.AppJS}}, {{.AppCSS}},
// {{.Lang}}, {{.Tenant}} and {{.Asset "name"}} (any asset's versioned
// URL), each HTML-escaped. Not html/template: its reflection
// (MethodByName) keeps every exported method of the binary alive, which
// cost the worker about 5 MB (docs/decisions.md); the page has no logic,
// only these values, all of them ours or checked (lang is en or tr, the
// tenant id of web.ValidID's shape).
func renderFrame(tmpl string, vals map[string]string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "{{")
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		b.WriteString(tmpl[:i])
		j := strings.Index(tmpl[i:], "}}")
		if j < 0 {
			return "", errors.New("frame.html: unclosed {{")
		}
		key := strings.TrimSpace(tmpl[i+2 : i+j])
		tmpl = tmpl[i+j+2:]
		if name, ok := strings.CutPrefix(key, ".Asset "); ok {
			name = strings.Trim(strings.TrimSpace(name), `"`)
			u := assetURL(name)
			if u == "" {
				return "", fmt.Errorf("frame.html: no asset %q", name)
			}
			b.WriteString(html.EscapeString(u))
			continue
		}
		v, ok := vals[key]
		if !ok {
			return "", fmt.Errorf("frame.html: unknown placeholder %q", key)
		}
		b.WriteString(html.EscapeString(v))
	}
}

// frameCSP is the iframe page's policy: nothing but our own scripts,
// styles, API and images (blob: and data: for previews of attachments),
// and only the tenant's allowed origins may frame it.
func frameCSP(ancestors []string) string {
	fa := "'none'"
	if len(ancestors) > 0 {
		fa = strings.Join(ancestors, " ")
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob: data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors " + fa
}

// Frame serves /widget/frame/{tenant}: the chat app's page, framable only
// by the tenant's allowed origins (frame-ancestors; X-Frame-Options cannot
// name origins, so it is dropped for this page). An unknown tenant, or one
// without allowed origins, gets a 404 page no one may frame.
func (svc *Service) Frame(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	h := w.Header()
	// An unknown tenant, or one that lists no origin, gets the one error
	// shape under the application's default headers (frame-ancestors
	// 'none', X-Frame-Options DENY): no page may frame it, so no visitor
	// ever sees it rendered.
	notFound := func() error {
		h.Set("Content-Security-Policy", frameCSP(nil))
		return web.Errorf(http.StatusNotFound, "not_found", "this chat is not available")
	}
	if !web.ValidID("t", tenant) {
		return notFound()
	}
	rec, err := svc.load(r.Context(), tenant)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && len(rec.Origins) == 0) {
		return notFound()
	}
	if err != nil {
		return err
	}
	assetsOnce.Do(loadAssets)
	lang := r.URL.Query().Get("locale")
	if !slices.Contains([]string{"en", "tr"}, lang) {
		lang = rec.Locale
	}
	page, err := renderFrame(frameTmpl, map[string]string{".AppJS": assetURL("app.js"), ".AppCSS": assetURL("app.css"), ".Lang": lang, ".Tenant": tenant})
	if err != nil {
		return fmt.Errorf("widget: %w", err)
	}
	b := bytes.NewBufferString(page)
	h.Set("Content-Security-Policy", frameCSP(rec.Origins))
	h.Del("X-Frame-Options")
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page is small and names the current origins: never cached, so
	// a removed origin cannot frame a stale copy.
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
	return nil
}
