package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestWidgetDemoAddr(t *testing.T) {
	env := func(string) string { return "" }
	for _, ok := range []string{"127.0.0.1:8790", "localhost:0", "[::1]:8790", "127.0.0.2:1"} {
		c, err := parseConfig([]string{"--widget-demo", ok}, env, io.Discard)
		if err != nil || c.widgetDemo != ok {
			t.Errorf("--widget-demo %s: %q, %v", ok, c.widgetDemo, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:8790", ":8790", "192.168.1.10:8790", "example.com:80", "8790"} {
		if _, err := parseConfig([]string{"--widget-demo", bad}, env, io.Discard); err == nil {
			t.Errorf("--widget-demo %s accepted: the demo page is for loopback only", bad)
		}
	}
	if c, err := parseConfig(nil, func(k string) string {
		return map[string]string{"POMMY_WIDGET_DEMO": "127.0.0.1:9999"}[k]
	}, io.Discard); err != nil || c.widgetDemo != "127.0.0.1:9999" {
		t.Errorf("POMMY_WIDGET_DEMO: %q, %v", c.widgetDemo, err)
	}
}

func TestWidgetDemoPage(t *testing.T) {
	const platform = "http://127.0.0.1:8787"
	srv := httptest.NewServer(demoHandler(platform))
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := get("/?tenant=t_0123abcd")
	snippet := `<script src="` + platform + `/widget.js" data-tenant="t_0123abcd" async></script>`
	if resp.StatusCode != 200 || !strings.Contains(body, snippet) {
		t.Fatalf("demo page for t_0123abcd: %d, want the one-line snippet %s in:\n%s", resp.StatusCode, snippet, body)
	}
	// The page's CSP is what docs/widget.md asks of a tenant: the
	// platform's script, frame and API, and nothing inline.
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self' " + platform, "frame-src " + platform, "connect-src " + platform, "style-src 'self'"} {
		if !strings.Contains(csp, want+";") {
			t.Errorf("demo CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(body, "<script>") || strings.Contains(body, "style=") {
		t.Errorf("the demo page needs inline script or style: CSP %q", csp)
	}
	if !strings.Contains(body, srv.URL) {
		t.Errorf("the page does not name its own origin %s to allow", srv.URL)
	}

	// The query is never a way into the page.
	for _, q := range []string{`"><script>alert(1)</script>`, `t_x" onload="alert(1)`, "t_" + strings.Repeat("a", 65), ""} {
		resp, body := get("/?tenant=" + url.QueryEscape(q))
		if resp.StatusCode != 200 || strings.Contains(body, "widget.js") || !strings.Contains(body, `<form method="get"`) {
			t.Errorf("tenant %q: %d; want the form and no widget", q, resp.StatusCode)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, `" onload=`) {
			t.Errorf("tenant %q reached the page unescaped:\n%s", q, body)
		}
	}

	resp, body = get("/demo.js")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") || !strings.Contains(body, "PommyQ") {
		t.Errorf("/demo.js: %q %d bytes", ct, len(body))
	}
	if resp, _ := get("/other"); resp.StatusCode != 404 {
		t.Errorf("/other: %d", resp.StatusCode)
	}
}

// checkDemoServed finds the demo page's address in the command's log and
// checks it serves the snippet for the platform at base.
func checkDemoServed(t *testing.T, logs, base string) {
	t.Helper()
	var page string
	for _, line := range strings.Split(logs, "\n") {
		var rec struct{ Msg, URL string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "widget demo page" {
			page = rec.URL
		}
	}
	if page == "" {
		t.Fatalf("no widget demo page in the log:\n%s", logs)
	}
	resp, err := http.Get(page + "t_demo1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want := `<script src="` + base + `/widget.js" data-tenant="t_demo1" async>`; resp.StatusCode != 200 || !bytes.Contains(b, []byte(want)) {
		t.Fatalf("GET %st_demo1: %d, want %s in:\n%s", page, resp.StatusCode, want, b)
	}
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FuzzWidgetDemoPage: whatever the query, the page is served, and the
// tenant reaches it only when it is a tenant id (so it needs no escaping):
// for anything else the page is exactly the form, the same for every
// such input, so the input cannot be anywhere in it.
func FuzzWidgetDemoPage(f *testing.F) {
	for _, s := range []string{"t_0123abcd", `"><script>alert(1)</script>`, "t_a' onerror='x", "t_" + strings.Repeat("z", 70), "", "\x00", "t_é"} {
		f.Add(s)
	}
	h := demoHandler("http://127.0.0.1:8787")
	page := func(t testing.TB, tenant string) string {
		req := httptest.NewRequest("GET", "/?tenant="+url.QueryEscape(tenant), nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d for %q", rec.Code, tenant)
		}
		return rec.Body.String()
	}
	form := page(f, "not a tenant")
	f.Fuzz(func(t *testing.T, tenant string) {
		body := page(t, tenant)
		embeds := strings.Contains(body, `/widget.js" data-tenant="`+tenant+`" async>`)
		if embeds != demoTenant.MatchString(tenant) {
			t.Fatalf("tenant %q: snippet shown %v", tenant, embeds)
		}
		if !embeds && tenant != "" && body != form {
			t.Fatalf("tenant %q changed the form page:\n%s", tenant, body)
		}
	})
}
