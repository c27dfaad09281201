package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/browser"
)

// The widget in real Chromium (issue 8, deliverable 9). The Go side starts
// the local home with the compiled guest, makes a tenant whose widget is
// allowed on one loopback origin, serves the tenant's website (the
// one-line snippet) on that origin and on an unlisted one, and runs the
// scenarios of tests/browser/widget.mjs: Node drives Debian's chromium
// with playwright-core and plays the tenant's people through the API.

// Names with markup: the widget must show them as text (widget.mjs
// expects these exact strings).
const (
	hostileOrg    = `Shop <img src=x onerror="window.__pwned=1">&amp; Co`
	hostilePerson = `Ayşe <script>window.__pwned=1</script><b>bold</b>`
)

// needBrowser finds the tools, failing (never skipping) when one is
// missing: make test installs them (make browser-deps).
func needBrowser(t testing.TB) browser.Tools {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := browser.Find(root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// widgetSite signs up a tenant (its name and its owner's with markup),
// serves its website on two loopback origins and allows the widget on the
// first only.
func widgetSite(t testing.TB, h *home, root string) browser.Env {
	t.Helper()
	c := &apitest.Client{Base: h.url}
	e := browser.Env{Platform: h.url, Screenshots: filepath.Join(root, "build", "screenshots")}
	email := fmt.Sprintf("owner%d@example.com", time.Now().UnixNano())
	r := c.Do(t, "POST", "/v1/signup", map[string]string{"organization": hostileOrg, "name": hostilePerson,
		"email": email, "password": apitest.Password}).Expect(t, 201)
	c.VerifyEmail(t, email)
	m := r.JSON(t)
	e.Tenant, _ = m["tenant"].(map[string]any)["id"].(string)
	e.Owner, _ = m["user"].(map[string]any)["id"].(string)
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == apitest.SessionCookie {
			e.Session = ck.Value
		}
	}
	if e.Tenant == "" || e.Session == "" {
		t.Fatalf("sign-up gave no tenant or session: %s", r.Body)
	}
	person := []string{"Cookie", apitest.SessionCookie + "=" + e.Session, "Sec-Fetch-Site", "same-origin"}
	k := c.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "browser tests", "scopes": apitest.AllScopes}, person...).Expect(t, 201).JSON(t)
	e.Key, _ = k["key"].(string)

	site := browser.Site(h.url, e.Tenant)
	var stop func()
	var err error
	if e.Site, stop, err = browser.ServeSite(site); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if e.Unlisted, stop, err = browser.ServeSite(site); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	c.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{e.Site}}, person...).Expect(t, 200)
	return e
}

// TestWidgetBrowser runs the widget's scenarios in Chromium (one browser,
// a context each); WIDGET_SCENARIOS=a,b runs some of them.
func TestWidgetBrowser(t *testing.T) {
	b := needBrowser(t)
	h := startHome(t, homeOptions{})
	e := widgetSite(t, h, b.Root)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// WIDGET_SCENARIOS, if set, reaches the script with the environment.
	// Each scenario's verdict becomes a subtest, so the failing ones are
	// named in go test's summary.
	var verdicts [][2]string
	err := b.Run(ctx, "widget.mjs", e, nil, func(line string) {
		t.Log(line)
		for _, v := range []string{"PASS", "FAIL"} {
			if rest, ok := strings.CutPrefix(line, "--- "+v+": "); ok {
				name, _, _ := strings.Cut(rest, " ")
				verdicts = append(verdicts, [2]string{name, v})
			}
		}
	})
	for _, v := range verdicts {
		t.Run(v[0], func(t *testing.T) {
			if v[1] == "FAIL" {
				t.Error("failed in Chromium: its output is in the log above")
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(verdicts) == 0 {
		t.Fatal("widget.mjs ran no scenario")
	}
	if log := h.log.String(); strings.Contains(log, e.Session) || strings.Contains(log, e.Key) {
		t.Error("the host log holds a credential")
	}
}
