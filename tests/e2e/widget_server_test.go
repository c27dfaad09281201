package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"pommy.ai/edge/tests/apitest"
)

// TestWidgetServer runs the widget capability's promises on the compiled
// guest: a token only for an allowed origin, with CORS for it alone; a
// notice for a refused one; the frame's frame-ancestors are the allowed
// origins; visitor routes refuse missing, foreign and people's
// credentials; enforce mode refuses an anonymous visitor.
func TestWidgetServer(t *testing.T) {
	h := startHome(t, homeOptions{})
	c := &apitest.Client{Base: h.url}
	o := c.Signup(t, "Widget server")
	tenant := o.Tenant
	shop := "http://localhost:8080"

	// No origin listed: no token, no frame.
	r := c.Do(t, "GET", "/v1/widget/token?tenant="+tenant, nil, "Origin", shop).Expect(t, 403)
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("ACAO on a refusal")
	}
	r = c.Do(t, "GET", "/widget/frame/"+tenant, nil).Expect(t, 404)
	if !strings.HasSuffix(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("404 frame CSP %q", r.Header.Get("Content-Security-Policy"))
	}

	o.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{shop, "https://shop.example"}}).Expect(t, 200)
	r = c.Do(t, "GET", "/v1/widget/token?tenant="+tenant, nil, "Origin", shop).Expect(t, 200)
	if r.Header.Get("Access-Control-Allow-Origin") != shop || !strings.Contains(r.Header.Get("Vary"), "Origin") || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token headers %v", r.Header)
	}
	tok := r.JSON(t)
	wt := tok["token"].(string)
	if !strings.HasPrefix(wt, "wt_") || !strings.HasPrefix(tok["frame_url"].(string), h.url+"/widget/frame/"+tenant+"?v=") {
		t.Fatalf("token %v", tok)
	}

	// An unlisted origin: 403 without ACAO, and the tenant sees a notice.
	r = c.Do(t, "GET", "/v1/widget/token?tenant="+tenant, nil, "Origin", "https://evil.example").Expect(t, 403)
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("ACAO for an unlisted origin")
	}
	notices := o.Do(t, "GET", "/v1/audit/notices", nil).Expect(t, 200)
	if !strings.Contains(string(notices.Body), "widget_origin_refused") || !strings.Contains(string(notices.Body), "https://evil.example") {
		t.Fatalf("notices %s", notices.Body)
	}

	// The frame: framable by exactly the allowed origins.
	r = c.Do(t, "GET", "/widget/frame/"+tenant+"?locale=tr", nil).Expect(t, 200)
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.HasSuffix(csp, "frame-ancestors "+shop+" https://shop.example") || !strings.Contains(csp, "script-src 'self'") || r.Header.Get("X-Frame-Options") != "" {
		t.Fatalf("frame headers %v", r.Header)
	}

	// The loader, gzipped.
	r = c.Do(t, "GET", "/widget.js", nil, "Accept-Encoding", "gzip").Expect(t, 200)
	if r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || r.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("loader headers %v", r.Header)
	}

	// Visitors.
	c.Do(t, "GET", "/v1/widget/config", nil, "Pommy-Widget", wt).Expect(t, 200)
	vt := c.Do(t, "POST", "/v1/widget/visitors", map[string]any{}, "Pommy-Widget", wt).Expect(t, 201).JSON(t)["visitor_token"].(string)
	both := []string{"Pommy-Widget", wt, "Pommy-Visitor", vt}
	c.Do(t, "GET", "/v1/widget/conversations", nil, both...).Expect(t, 200)
	code := func(r *apitest.Response) string {
		var m struct{ Error struct{ Code string } }
		_ = r
		if e, ok := r.JSON(t)["error"].(map[string]any); ok {
			m.Error.Code, _ = e["code"].(string)
		}
		return m.Error.Code
	}
	for _, tc := range []struct {
		name string
		hdr  []string
		want string
	}{
		{"no tokens", nil, "widget_token_invalid"},
		{"no visitor token", []string{"Pommy-Widget", wt}, "visitor_token_invalid"},
		{"tampered widget token", []string{"Pommy-Widget", wt[:len(wt)-2] + "AA", "Pommy-Visitor", vt}, "widget_token_invalid"},
		{"a person's session", []string{"Cookie", apitest.SessionCookie + "=" + o.Token}, "widget_token_invalid"},
		{"an API key", []string{"Authorization", "Bearer " + o.NewKey(t, apitest.AllScopes...)}, "widget_token_invalid"},
	} {
		r := c.Do(t, "GET", "/v1/widget/conversations", nil, tc.hdr...)
		if r.Status != 401 || code(r) != tc.want {
			t.Errorf("%s: %d %s, want 401 %s", tc.name, r.Status, r.Body, tc.want)
		}
	}
	// Another tenant's widget token with this visitor: refused.
	o2 := c.Signup(t, "Widget server B")
	o2.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{shop}}).Expect(t, 200)
	wt2 := c.Do(t, "GET", "/v1/widget/token?tenant="+o2.Tenant, nil, "Origin", shop).Expect(t, 200).JSON(t)["token"].(string)
	if r := c.Do(t, "GET", "/v1/widget/conversations", nil, "Pommy-Widget", wt2, "Pommy-Visitor", vt); r.Status != 401 || code(r) != "visitor_token_invalid" {
		t.Errorf("foreign widget token: %d %s", r.Status, r.Body)
	}

	// The origin removed: the unexpired token stops working at once.
	o.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{"https://shop.example"}}).Expect(t, 200)
	if r := c.Do(t, "GET", "/v1/widget/conversations", nil, both...); r.Status != 403 || code(r) != "origin_not_allowed" {
		t.Errorf("removed origin: %d %s", r.Status, r.Body)
	}
	o.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{shop}}).Expect(t, 200)

	// Enforce: the anonymous visitor is refused, and no new one is minted.
	o.Do(t, "POST", "/v1/widget/identity-secret", nil).Expect(t, 201)
	o.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"identity": "enforce"}).Expect(t, 200)
	if r := c.Do(t, "GET", "/v1/widget/conversations", nil, both...); r.Status != 403 || code(r) != "identity_required" {
		t.Errorf("enforce: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "POST", "/v1/widget/visitors", map[string]any{}, "Pommy-Widget", wt); r.Status != 403 || code(r) != "identity_required" {
		t.Errorf("enforce, new visitor: %d %s", r.Status, r.Body)
	}
}

// TestWidgetSecretsAreNeverLogged: the identity secret, identity JWTs
// (good and forged) and the widget and visitor tokens never appear in what
// the host or the guest logged, a crash mid-request included.
func TestWidgetSecretsAreNeverLogged(t *testing.T) {
	h := startHome(t, homeOptions{})
	c := &apitest.Client{Base: h.url}
	o := c.Signup(t, "Quiet widget")
	shop := "https://quiet.example"
	secret := o.Do(t, "POST", "/v1/widget/identity-secret", nil).Expect(t, 201).JSON(t)["secret"].(string)
	o.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{shop}, "identity": "optional"}).Expect(t, 200)
	wt := c.Do(t, "GET", "/v1/widget/token?tenant="+o.Tenant, nil, "Origin", shop).Expect(t, 200).JSON(t)["token"].(string)
	good, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "quiet-user", "exp": time.Now().Add(time.Minute).Unix(), "email": "quiet@example.com"}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	forged := good[:len(good)-4] + "AAAA"
	vt := c.Do(t, "POST", "/v1/widget/identify", map[string]string{"jwt": good}, "Pommy-Widget", wt).Expect(t, 200).JSON(t)["visitor_token"].(string)
	c.Do(t, "POST", "/v1/widget/identify", map[string]string{"jwt": forged}, "Pommy-Widget", wt).Expect(t, 401)
	c.Do(t, "GET", "/v1/widget/conversations", nil, "Pommy-Widget", wt+"x", "Pommy-Visitor", vt).Expect(t, 401)
	c.Do(t, "POST", "/__test/trap", nil, "Pommy-Widget", wt, "Pommy-Visitor", vt)

	logs := h.log.String()
	if !strings.Contains(logs, "trap") && !strings.Contains(logs, "panic") {
		t.Fatalf("the crash left no log line, so this test cannot see what is logged:\n%s", logs)
	}
	for what, s := range map[string]string{
		"identity secret": secret, "identity secret's body": secret[len("wis_"):], "identity JWT": good,
		"forged JWT": forged, "widget token": wt, "visitor token": vt, "JWT's email": "quiet@example.com",
	} {
		if strings.Contains(logs, s) {
			t.Errorf("the %s appears in the logs", what)
		}
	}
}
