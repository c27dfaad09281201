package main

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// The widget demo (--widget-demo) is a host page on a second loopback
// origin with the widget's one-line snippet, for people who run the
// platform on their own machine and want to see the widget as a tenant's
// visitors will: embedded in a page of another origin, under that page's
// own CSP. It is no part of the platform's API and holds no data: the
// tenant id comes from the page's query.

// demoTenant is what a tenant id looks like; anything else gets the form,
// so the query never reaches the page but as a known-safe string.
var demoTenant = regexp.MustCompile(`^t_[A-Za-z0-9_-]{1,64}$`)

// checkDemoAddr refuses a demo address beyond loopback: the page is a
// developer's tool, not something to publish.
func checkDemoAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--widget-demo: %v", err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--widget-demo must listen on a loopback address (e.g. 127.0.0.1:8790), not %q", addr)
	}
	return nil
}

// demoHandler serves the demo page for a platform reached at platform
// (an origin such as http://127.0.0.1:8787).
func demoHandler(platform string) http.Handler {
	mux := http.NewServeMux()
	// The page's CSP is the one docs/widget.md tells a tenant to add for
	// the widget: if the loader needed more, the demo would show it.
	csp := strings.Join([]string{
		"default-src 'self'",
		"script-src 'self' " + platform,
		"frame-src " + platform,
		"connect-src " + platform,
		"style-src 'self'",
		"img-src 'self' data:",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		tenant := r.URL.Query().Get("tenant")
		data := struct {
			Platform, Tenant, Origin, Given string
		}{Platform: platform, Origin: "http://" + r.Host}
		if demoTenant.MatchString(tenant) {
			data.Tenant = tenant
		} else {
			data.Given = tenant
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("Cache-Control", "no-store")
		if err := demoPage.Execute(w, data); err != nil {
			slog.Error("widget demo page", "err", err)
		}
	})
	static := func(ctype, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-cache")
			fmt.Fprint(w, body)
		}
	}
	mux.HandleFunc("GET /demo.js", static("text/javascript; charset=utf-8", demoJS))
	mux.HandleFunc("GET /demo.css", static("text/css; charset=utf-8", demoCSS))
	// Browsers ask for one; a 404 would be the console's only complaint.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

// serveDemo serves the demo page on ln until the returned server is shut
// down.
func serveDemo(ln net.Listener, platform string, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           demoHandler(platform),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("widget demo server", "err", err)
		}
	}()
	return srv
}

var demoPage = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pommy widget demo</title>
<link rel="stylesheet" href="/demo.css">
</head>
<body>
<main>
<h1>Pommy widget demo</h1>
{{if .Tenant}}
<p>This page, on <code>{{.Origin}}</code>, embeds the widget of tenant <code>{{.Tenant}}</code>
served by <code>{{.Platform}}</code> with the one line a tenant puts on its site:</p>
<pre><code>&lt;script src="{{.Platform}}/widget.js" data-tenant="{{.Tenant}}" async&gt;&lt;/script&gt;</code></pre>
<p>No launcher in the corner? The page's origin must be one of the tenant's allowed origins
(<code>PATCH /v1/widget/settings</code> with <code>{"allowed_origins": ["{{.Origin}}"]}</code>),
and the browser console says why.</p>
<p>
<button type="button" id="open">Pommy.open()</button>
<button type="button" id="close">Pommy.close()</button>
</p>
<h2>What the host page sees</h2>
<p>The host page gets the widget's events, never the chat's text:</p>
<ol id="events" aria-live="polite"></ol>
<script src="/demo.js"></script>
<script src="{{.Platform}}/widget.js" data-tenant="{{.Tenant}}" async></script>
{{else}}
{{if .Given}}<p role="alert">That is not a tenant id (they look like <code>t_…</code>).</p>{{end}}
<form method="get" action="/">
<label for="tenant">Tenant id</label>
<input id="tenant" name="tenant" placeholder="t_…" required pattern="t_[A-Za-z0-9_\-]{1,64}">
<button type="submit">Show the widget</button>
</form>
<p>Your tenant id is in <code>GET {{.Platform}}/v1/me</code>. Add <code>{{.Origin}}</code>
to the widget's allowed origins first.</p>
{{end}}
</main>
</body>
</html>
`))

// demoJS is the host page's side of the widget's API: calls made before
// the loader ran are queued in window.PommyQ, as docs/widget.md says.
const demoJS = `(function () {
  "use strict";
  function pommy() {
    var args = Array.prototype.slice.call(arguments);
    if (window.Pommy && typeof window.Pommy[args[0]] === "function") {
      window.Pommy[args[0]].apply(window.Pommy, args.slice(1));
    } else {
      (window.PommyQ = window.PommyQ || []).push(args);
    }
  }
  var list = document.getElementById("events");
  function log(name, detail) {
    var li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + " " + name + (detail ? " " + JSON.stringify(detail) : "");
    list.appendChild(li);
  }
  ["ready", "opened", "closed", "message"].forEach(function (name) {
    pommy("on", name, function (detail) { log(name, detail); });
  });
  document.getElementById("open").addEventListener("click", function () { pommy("open"); });
  document.getElementById("close").addEventListener("click", function () { pommy("close"); });
})();
`

const demoCSS = `body { font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1b1b1f; }
main { max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
pre { background: #f3f4f6; padding: .75rem; overflow-x: auto; }
code { font-size: .9em; }
button, input { font: inherit; padding: .35rem .7rem; }
#events { font-family: ui-monospace, monospace; font-size: .85em; }
`
