// Package browser is the Go side of the widget's browser runs: it finds
// node, Debian's chromium and the npm packages (make browser-deps installs
// them), serves a tenant's website with the widget's one-line snippet on a
// loopback origin of its own, and runs the Node scripts of this directory
// (playwright-core driving chromium) with the coordinates in their
// environment. The end-to-end tests (tests/e2e/widget_browser_test.go) and
// the bench (tests/bench/widget.go) share it.
package browser

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tools are the programs a browser run needs.
type Tools struct {
	Node, Chromium string
	Root           string // the repository, where node_modules is
}

// Find looks for node, chromium ($CHROMIUM, else chromium on PATH) and
// the npm packages under root; the error says how to get what is missing.
func Find(root string) (Tools, error) {
	t := Tools{Root: root}
	var err error
	if t.Node, err = exec.LookPath("node"); err != nil {
		return t, fmt.Errorf("the browser runs need node on PATH: %w", err)
	}
	name := os.Getenv("CHROMIUM")
	if name == "" {
		name = "chromium"
	}
	if t.Chromium, err = exec.LookPath(name); err != nil {
		return t, fmt.Errorf("the browser runs need Debian's chromium (%q is not on PATH): run make browser-deps (as root it runs apt-get install -y chromium)", name)
	}
	for _, pkg := range []string{"playwright-core", "axe-core", "jose"} {
		if _, err := os.Stat(filepath.Join(root, "node_modules", pkg, "package.json")); err != nil {
			return t, fmt.Errorf("the browser runs need the npm package %s: run make browser-deps (npm ci)", pkg)
		}
	}
	return t, nil
}

// Env is what a script is told (lib.mjs reads it).
type Env struct {
	Platform    string // the home: http://127.0.0.1:PORT
	Site        string // the tenant's website, an allowed origin: http://localhost:PORT2
	Unlisted    string // a website on an origin the tenant never listed
	Tenant      string
	Key         string // an API key with every scope
	Session     string // the owner's session token: the person who replies
	Owner       string // the owner's user id
	Screenshots string // where screenshots go
}

func (e Env) vars() []string {
	return []string{"POMMY_PLATFORM=" + e.Platform, "POMMY_SITE=" + e.Site, "POMMY_UNLISTED=" + e.Unlisted,
		"POMMY_TENANT=" + e.Tenant, "POMMY_KEY=" + e.Key, "POMMY_SESSION=" + e.Session, "POMMY_OWNER=" + e.Owner,
		"POMMY_SCREENSHOTS=" + e.Screenshots}
}

// Run runs tests/browser/<script> with node, every line of its output
// (stdout and stderr) given to line; it fails when the script exits
// non-zero or ctx ends first.
func (t Tools) Run(ctx context.Context, script string, e Env, extra []string, line func(string)) error {
	cmd := exec.CommandContext(ctx, t.Node, filepath.Join(t.Root, "tests", "browser", script))
	cmd.Dir = t.Root
	cmd.Env = append(append(append(os.Environ(), "POMMY_CHROMIUM="+t.Chromium), e.vars()...), extra...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if ctx.Err() != nil {
		return fmt.Errorf("%s did not finish in time: %w", script, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", script, err)
	}
	return nil
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

var langs = map[string]bool{"en": true, "tr": true}

// Site is the tenant's website for the widget of platform. With ?csp=1 the
// page has the strict CSP docs/widget.md asks of a tenant's site (scripts,
// fetches and frames from the platform only, no 'unsafe-inline'): the one
// line must work there too.
func Site(platform, tenant string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /site.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		io.WriteString(w, siteCSS)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		lang := q.Get("lang")
		if !langs[lang] {
			lang = "en"
		}
		locale := q.Get("locale")
		if !langs[locale] {
			locale = ""
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if q.Get("csp") != "" {
			w.Header().Set("Content-Security-Policy", strings.Join([]string{"default-src 'self'", "script-src 'self' " + platform,
				"frame-src " + platform, "connect-src " + platform, "style-src 'self'", "img-src 'self' data:", "base-uri 'none'"}, "; "))
		}
		sitePage.Execute(w, map[string]string{"Lang": lang, "Locale": locale, "Platform": platform, "Tenant": tenant})
	})
	return mux
}

// ServeSite serves h on a new loopback port and returns the origin a
// browser reaches it by, http://localhost:PORT: another origin than the
// platform's http://127.0.0.1:PORT. stop ends the server.
func ServeSite(h http.Handler) (origin string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "browser: the site's server:", err)
		}
	}()
	return fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port), func() { srv.Close() }, nil
}
