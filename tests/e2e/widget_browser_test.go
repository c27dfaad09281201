package e2e

import (
	"bufio"
	"context"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
)

// The widget in real Chromium (issue 8, deliverable 9). The Go side starts
// the local home with the compiled guest, makes a tenant whose widget is
// allowed on one loopback origin, serves the tenant's "website" (the
// one-line snippet) on that origin and on an unlisted one, and runs the
// scenarios of tests/browser/widget.mjs: Node drives Debian's chromium
// with playwright-core and plays the tenant's people through the API.

// browserTools are the programs the browser tests run.
type browserTools struct {
	node, chromium, root string
}

// needBrowser finds node, chromium and the npm packages, and fails (never
// skips) when one is missing: make test installs them (make browser-deps).
func needBrowser(t testing.TB) browserTools {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var b browserTools
	b.root = root
	if b.node, err = exec.LookPath("node"); err != nil {
		t.Fatalf("the browser tests need node on PATH: %v", err)
	}
	name := os.Getenv("CHROMIUM")
	if name == "" {
		name = "chromium"
	}
	if b.chromium, err = exec.LookPath(name); err != nil {
		t.Fatalf("the browser tests need Debian's chromium (%q is not on PATH): run make browser-deps (as root it runs apt-get install -y chromium)", name)
	}
	for _, pkg := range []string{"playwright-core", "axe-core", "jose"} {
		if _, err := os.Stat(filepath.Join(root, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("the browser tests need the npm package %s: run make browser-deps (npm ci)", pkg)
		}
	}
	return b
}

// widgetSite is a tenant whose widget is allowed on the site's origin.
type widgetSite struct {
	platform string // the home: http://127.0.0.1:PORT
	site     string // the tenant's website, an allowed origin: http://localhost:PORT2
	unlisted string // a website on an origin the tenant never listed: http://localhost:PORT3
	tenant   string
	key      string // an API key with every scope
	session  string // the owner's session token (the person who replies)
	owner    string // the owner's user id
}

// Names with markup: the widget must show them as text.
const (
	hostileOrg    = `Shop <img src=x onerror="window.__pwned=1">&amp; Co`
	hostilePerson = `Ayşe <script>window.__pwned=1</script><b>bold</b>`
)

func newWidgetSite(t testing.TB, h *home) *widgetSite {
	t.Helper()
	c := &apitest.Client{Base: h.url}
	w := &widgetSite{platform: h.url}
	r := c.Do(t, "POST", "/v1/signup", map[string]string{"organization": hostileOrg, "name": hostilePerson,
		"email": fmt.Sprintf("owner%d@example.com", time.Now().UnixNano()), "password": apitest.Password}).Expect(t, 201)
	m := r.JSON(t)
	w.tenant, _ = m["tenant"].(map[string]any)["id"].(string)
	w.owner, _ = m["user"].(map[string]any)["id"].(string)
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == apitest.SessionCookie {
			w.session = ck.Value
		}
	}
	if w.tenant == "" || w.session == "" {
		t.Fatalf("sign-up gave no tenant or session: %s", r.Body)
	}
	person := []string{"Cookie", apitest.SessionCookie + "=" + w.session, "Sec-Fetch-Site", "same-origin"}
	k := c.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "browser tests", "scopes": apitest.AllScopes}, person...).Expect(t, 201).JSON(t)
	w.key, _ = k["key"].(string)

	w.site = serveSite(t, w, "localhost")
	w.unlisted = serveSite(t, w, "localhost")
	c.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{w.site}}, person...).Expect(t, 200)
	return w
}

// sitePage is the tenant's website: a page with the one-line snippet. The
// query picks its language (?lang=tr: <html lang="tr">) and the snippet's
// data-locale (?locale=).
var sitePage = template.Must(template.New("site").Parse(`<!doctype html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Example shop</title>
<link rel="stylesheet" href="/site.css">
</head>
<body>
<header><h1>Example shop</h1><nav><a href="/">Home</a> <a href="/?lang=tr">Türkçe</a></nav></header>
<main>
<p id="copy">Hand-made teapots, shipped in two days. Questions? Our team answers in the chat.</p>
<button id="buy" type="button">Add to cart</button>
</main>
<script src="{{.Platform}}/widget.js" data-tenant="{{.Tenant}}"{{if .Locale}} data-locale="{{.Locale}}"{{end}} async></script>
</body>
</html>
`))

const siteCSS = `body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:24px;color:#222}header{border-bottom:1px solid #ddd;margin-bottom:16px}main{max-width:40em}`

// serveSite serves the website on a new loopback port and returns its
// origin, named by host (localhost: another origin than the platform's
// 127.0.0.1). With ?csp=1 the page has a strict CSP that allows scripts,
// fetches and frames from the platform only (no 'unsafe-inline'): the
// one line must work on such a site too.
func serveSite(t testing.TB, w *widgetSite, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /site.css", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/css")
		io.WriteString(rw, siteCSS)
	})
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) {
		lang := r.URL.Query().Get("lang")
		if lang == "" {
			lang = "en"
		}
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Query().Get("csp") != "" {
			// The CSP docs/widget.md asks of a tenant's site.
			rw.Header().Set("Content-Security-Policy", strings.Join([]string{"default-src 'self'", "script-src 'self' " + w.platform,
				"frame-src " + w.platform, "connect-src " + w.platform, "style-src 'self'", "img-src 'self' data:", "base-uri 'none'"}, "; "))
		}
		sitePage.Execute(rw, map[string]string{"Lang": lang, "Locale": r.URL.Query().Get("locale"), "Platform": w.platform, "Tenant": w.tenant})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("http://%s:%d", host, ln.Addr().(*net.TCPAddr).Port)
}

// runNode runs a script of tests/browser with the site's coordinates in
// its environment, streaming its output into the test log; the test fails
// when the script exits non-zero.
func runNode(t *testing.T, b browserTools, w *widgetSite, script string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.node, filepath.Join(b.root, "tests", "browser", script))
	cmd.Dir = b.root
	cmd.Env = append(os.Environ(),
		"POMMY_CHROMIUM="+b.chromium,
		"POMMY_PLATFORM="+w.platform,
		"POMMY_SITE="+w.site,
		"POMMY_UNLISTED="+w.unlisted,
		"POMMY_TENANT="+w.tenant,
		"POMMY_KEY="+w.key,
		"POMMY_SESSION="+w.session,
		"POMMY_OWNER="+w.owner,
		"POMMY_SCREENSHOTS="+filepath.Join(b.root, "build", "screenshots"),
	)
	cmd.Env = append(cmd.Env, extra...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.Log(sc.Text())
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish in time", script)
	}
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
}

// TestWidgetBrowser runs the widget's scenarios in Chromium; WIDGET_SCENARIOS
// (comma-separated names) runs some of them.
func TestWidgetBrowser(t *testing.T) {
	b := needBrowser(t)
	h := startHome(t, homeOptions{})
	w := newWidgetSite(t, h)
	runNode(t, b, w, "widget.mjs")
	if strings.Contains(h.log.String(), w.session) || strings.Contains(h.log.String(), w.key) {
		t.Error("the host log holds a credential")
	}
}
