// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package widget

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/ui"
	"pommy.ai/edge/wasm/host/local/localtest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const shop = "https://shop.example"

type fixture struct {
	p   storage.Platform
	clk *storagetest.Clock
	svc *Service
	a   string // a tenant
	b   string // another
}

func open(t testing.TB) *fixture {
	t.Helper()
	clk := storagetest.NewClock(t0)
	f := &fixture{p: localtest.Open(t, clk), clk: clk}
	f.svc = New(f.p, nil)
	f.a, f.b = f.tenant(t, "A"), f.tenant(t, "B")
	return f
}

func (f *fixture) tenant(t testing.TB, name string) string {
	ctx := context.Background()
	id := web.NewID("t")
	if _, err := f.p.SQL.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, id, name, 0); err != nil {
		t.Fatal(err)
	}
	if err := envelope.New(f.p).Ensure(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// owner is a scope of the tenant's owner (what the middleware makes).
func (f *fixture) owner(tenant string) *web.Scope {
	return &web.Scope{P: f.p, Tenant: tenant, Keys: envelope.New(f.p), UserID: "u_owner", Role: web.RoleOwner}
}

// do runs a handler the way the application does: an error becomes the
// JSON error response.
func do(h func(http.ResponseWriter, *http.Request) error, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	if err := h(w, r); err != nil {
		web.WriteError(w, r, err)
	}
	return w
}

func (f *fixture) scoped(h func(http.ResponseWriter, *http.Request, *web.Scope) error, s *web.Scope) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error { return h(w, r, s) }
}

func jsonReq(method, target, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func errCode(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(w.Body.Bytes(), &e)
	return e.Error.Code
}

func want(t testing.TB, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status || (code != "" && errCode(t, w) != code) {
		t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, status, code)
	}
}

func (f *fixture) patch(t testing.TB, tenant, body string) *httptest.ResponseRecorder {
	t.Helper()
	return do(f.scoped(f.svc.UpdateSettings, f.owner(tenant)), jsonReq("PATCH", "/v1/widget/settings", body))
}

// widgetToken gets a widget token from the token route for origin.
func (f *fixture) widgetToken(t testing.TB, tenant, origin string) string {
	t.Helper()
	r := httptest.NewRequest("GET", "/v1/widget/token?tenant="+tenant, nil)
	r.Header.Set("Origin", origin)
	w := do(f.svc.Token, r)
	want(t, w, 200, "")
	var out struct{ Token string }
	json.Unmarshal(w.Body.Bytes(), &out)
	return out.Token
}

func (f *fixture) anonymous(t testing.TB, wt string) (token, id string) {
	t.Helper()
	r := jsonReq("POST", "/v1/widget/visitors", "{}")
	r.Header.Set(HeaderWidget, wt)
	w := do(f.svc.NewVisitor, r)
	want(t, w, 201, "")
	var out visitorResponse
	json.Unmarshal(w.Body.Bytes(), &out)
	return out.VisitorToken, out.VisitorID
}

func (f *fixture) notices(t testing.TB, tenant string) []audit.Notice {
	n, err := web.AuditLog(f.p).Notices(context.Background(), tenant, 100)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSettingsDefaultsAndValidation(t *testing.T) {
	f := open(t)
	w := do(f.scoped(f.svc.GetSettings, f.owner(f.a)), httptest.NewRequest("GET", "/v1/widget/settings", nil))
	want(t, w, 200, "")
	var got map[string]any
	json.Unmarshal(w.Body.Bytes(), &got)
	if o := got["allowed_origins"].([]any); len(o) != 0 || got["identity"] != "off" || got["color"] != "#2f5bea" ||
		got["csat"] != true || got["attachment_max_bytes"] != float64(10<<20) || got["identity_secret_set"] != false || got["business_hours"] != nil {
		t.Fatalf("defaults: %s", w.Body)
	}

	for _, tc := range []struct{ body, code string }{
		{`{"allowed_origins": ["https://shop.example/path"]}`, "invalid_allowed_origins"},
		{`{"allowed_origins": ["null"]}`, "invalid_allowed_origins"},
		{`{"allowed_origins": ["javascript:alert(1)"]}`, "invalid_allowed_origins"},
		{`{"identity": "enforce"}`, "identity_secret_missing"},
		{`{"identity": "sometimes"}`, "invalid_identity"},
		{`{"color": "red"}`, "invalid_color"},
		{`{"color": "#12345g"}`, "invalid_color"},
		{`{"position": "top"}`, "invalid_position"},
		{`{"locale": "de"}`, "invalid_locale"},
		{`{"attachment_max_bytes": 1023}`, "invalid_attachment_max_bytes"},
		{`{"attachment_max_bytes": 10485761}`, "invalid_attachment_max_bytes"},
		{`{"greeting": "` + strings.Repeat("a", 1001) + `"}`, "invalid_greeting"},
		{`{"greeting": "bell\u0007"}`, "invalid_greeting"},
		{`{"business_hours": {"timezone": "Europe/Istanbul", "week": {"mon": [["18:00", "09:00"]]}}}`, "invalid_business_hours"},
		{`{"business_hours": {"timezone": "Europe/Istanbul", "week": {"someday": []}}}`, "invalid_business_hours"},
		{`{"business_hours": {"timezone": "Europe/Istanbul", "week": {"mon": [["09:00", "12:00", "13:00"]]}}}`, "invalid_business_hours"},
		{`{"business_hours": {"timezone": "Europe/Istanbul", "week": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}}`, "invalid_business_hours"},
		{`{"business_hours": {"timezone": "Europe/Istanbul", "week": {"mon": [["09:00", "10:00"], ["11:00", "12:00"], ["13:00", "14:00"], ["15:00", "16:00"], ["17:00", "18:00"]]}}}`, "invalid_business_hours"},
		{`{"business_hours": {"timezone": "../etc/passwd", "week": {}}}`, "invalid_business_hours"},
		{`{"business_hours": {"timezone": "UTC", "week": {}, "extra": 1}}`, "invalid_business_hours"},
		{`{"pre_chat": {"enabled": true, "fields": [{"name": "phone", "required": true}]}}`, "invalid_pre_chat"},
		{`{"pre_chat": {"enabled": true, "fields": [{"name": "email"}, {"name": "email"}]}}`, "invalid_pre_chat"},
		{`{"colour": "#000000"}`, "unknown_field"},
	} {
		w := f.patch(t, f.a, tc.body)
		if w.Code != 400 && w.Code != 409 || errCode(t, w) != tc.code {
			t.Errorf("%.80s: %d %s, want %s", tc.body, w.Code, w.Body, tc.code)
		}
	}
	// Nothing of that was written.
	rows, _ := f.p.SQL.Query(context.Background(), `SELECT COUNT(*) FROM widget_settings WHERE tenant_id = ?`, f.a)
	var n int
	rows.Scan(0, &n)
	if n != 0 {
		t.Fatalf("refused changes wrote %d rows", n)
	}

	// 50 origins pass, 51 do not; origins are normalized and deduplicated.
	var many []string
	for i := range 51 {
		many = append(many, fmt.Sprintf(`"https://s%d.example"`, i))
	}
	want(t, f.patch(t, f.a, `{"allowed_origins": [`+strings.Join(many, ",")+`]}`), 400, "invalid_allowed_origins")
	want(t, f.patch(t, f.a, `{"allowed_origins": [`+strings.Join(many[:50], ",")+`]}`), 200, "")
	w = f.patch(t, f.a, `{"allowed_origins": ["HTTPS://Shop.Example:443", "https://shop.example", "http://localhost:8080"], "color": "#AABBCC",
		"business_hours": {"timezone": "Europe/Istanbul", "week": {"mon": [["09:00", "12:00"], ["13:00", "18:00"]]}},
		"pre_chat": {"enabled": true, "fields": [{"name": "email", "required": true}]}, "attachment_max_bytes": 1024, "greeting": "Merhaba!\nNasıl yardımcı olabiliriz?"}`)
	want(t, w, 200, "")
	json.Unmarshal(w.Body.Bytes(), &got)
	if o := fmt.Sprint(got["allowed_origins"]); o != "[https://shop.example http://localhost:8080]" || got["color"] != "#aabbcc" {
		t.Fatalf("normalized: %s", w.Body)
	}
	bh := got["business_hours"].(map[string]any)["week"].(map[string]any)
	if len(bh) != 7 || fmt.Sprint(bh["mon"]) != "[[09:00 12:00] [13:00 18:00]]" || fmt.Sprint(bh["sun"]) != "[]" {
		t.Fatalf("week: %v", bh)
	}
	// null clears the hours.
	w = f.patch(t, f.a, `{"business_hours": null}`)
	want(t, w, 200, "")
	if strings.Contains(w.Body.String(), "Europe") {
		t.Fatalf("hours not cleared: %s", w.Body)
	}
	// Audited, with the origins that changed.
	ev, err := web.AuditLog(f.p).Query(context.Background(), f.a, audit.Filter{Action: "widget.settings_changed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 3 || !strings.Contains(fmt.Sprint(ev.Events[1].Details["origins_added"]), "http://localhost:8080") {
		t.Fatalf("audit: %+v", ev.Events)
	}
}

// TestSettingsConflict: a change made from a stale read is refused rather
// than undoing the other.
func TestSettingsConflict(t *testing.T) {
	f := open(t)
	want(t, f.patch(t, f.a, `{"color": "#000000"}`), 200, "")
	rec, err := f.svc.load(context.Background(), f.a)
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.patch(t, f.a, `{"color": "#111111"}`), 200, "")
	rec.Color = "#222222"
	var ae *web.Error
	if err := f.svc.save(context.Background(), f.a, rec, 1); !errors.As(err, &ae) || ae.Status != 409 {
		t.Fatalf("stale save: %v", err)
	}
}

func (f *fixture) secret(t testing.TB, tenant string) string {
	t.Helper()
	w := do(f.scoped(f.svc.RotateIdentitySecret, f.owner(tenant)), jsonReq("POST", "/v1/widget/identity-secret", ""))
	want(t, w, 201, "")
	var out struct{ Secret string }
	json.Unmarshal(w.Body.Bytes(), &out)
	if !strings.HasPrefix(out.Secret, "wis_") || len(out.Secret) < 40 {
		t.Fatalf("secret %q", out.Secret)
	}
	return out.Secret
}

func TestIdentitySecretSealedAndShownOnce(t *testing.T) {
	f := open(t)
	s1 := f.secret(t, f.a)
	rows, err := f.p.SQL.Query(context.Background(), `SELECT identity_secret_sealed FROM widget_settings WHERE tenant_id = ?`, f.a)
	if err != nil || rows.Len() != 1 {
		t.Fatal(err)
	}
	var sealed []byte
	rows.Scan(0, &sealed)
	if bytes.Contains(sealed, []byte(s1)) || bytes.Contains(sealed, []byte(s1[4:])) {
		t.Fatal("the secret is stored in clear")
	}
	w := do(f.scoped(f.svc.GetSettings, f.owner(f.a)), httptest.NewRequest("GET", "/v1/widget/settings", nil))
	if strings.Contains(w.Body.String(), s1) || !strings.Contains(w.Body.String(), `"identity_secret_set":true`) {
		t.Fatalf("settings: %s", w.Body)
	}
	s2 := f.secret(t, f.a)
	if s1 == s2 {
		t.Fatal("rotation kept the secret")
	}
	rec, _ := f.svc.load(context.Background(), f.a)
	got, err := f.svc.identitySecret(context.Background(), f.a, rec)
	if err != nil || string(got) != s2 {
		t.Fatalf("opened %q, %v", got, err)
	}
	// Sealed for this tenant only: another tenant's key cannot open it.
	if _, err := envelope.New(f.p).Open(context.Background(), f.b, secretKind, f.b, rec.SecretSealed); err == nil {
		t.Fatal("another tenant opened the secret")
	}
	ev, _ := web.AuditLog(f.p).Query(context.Background(), f.a, audit.Filter{Action: "widget.identity_secret_rotated"})
	if len(ev.Events) != 2 {
		t.Fatalf("audit: %d events", len(ev.Events))
	}
	// Enforce is now possible.
	want(t, f.patch(t, f.a, `{"identity": "enforce"}`), 200, "")
}

func TestTokenRouteCORSAndRefusedOrigins(t *testing.T) {
	f := open(t)
	// No origins yet: nobody gets a token.
	r := httptest.NewRequest("GET", "/v1/widget/token?tenant="+f.a, nil)
	r.Header.Set("Origin", shop)
	w := do(f.svc.Token, r)
	want(t, w, 403, "origin_not_allowed")
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("ACAO on a refusal")
	}
	want(t, f.patch(t, f.a, `{"allowed_origins": ["`+shop+`"], "color": "#0a6cff", "launcher_label": "Sohbet"}`), 200, "")
	r = httptest.NewRequest("GET", "/v1/widget/token?tenant="+f.a, nil)
	r.Host = "chat.pommy.example"
	r.Header.Set("Origin", shop)
	w = do(f.svc.Token, r)
	want(t, w, 200, "")
	h := w.Header()
	if h.Get("Access-Control-Allow-Origin") != shop || !strings.Contains(h.Get("Vary"), "Origin") {
		t.Fatalf("headers %v", h)
	}
	var out tokenResponse
	json.Unmarshal(w.Body.Bytes(), &out)
	if out.Origin != shop || out.Launcher.Color != "#0a6cff" || out.Launcher.Label != "Sohbet" || out.Launcher.Position != "right" ||
		!strings.HasPrefix(out.FrameURL, "http://chat.pommy.example/widget/frame/"+f.a+"?v=") || out.ExpiresAt != t0.Add(WidgetTokenTTL).Format(time.RFC3339) {
		t.Fatalf("token response %+v", out)
	}
	c, err := parseWidget(out.Token, f.svc.mac(context.Background(), macPurposeWidget), t0)
	if err != nil || c.T != f.a || c.O != shop {
		t.Fatalf("claims %+v, %v", c, err)
	}

	// Unknown tenant, malformed id.
	want(t, do(f.svc.Token, httptest.NewRequest("GET", "/v1/widget/token?tenant="+web.NewID("t"), nil)), 404, "tenant_not_found")
	want(t, do(f.svc.Token, httptest.NewRequest("GET", "/v1/widget/token?tenant=../x", nil)), 404, "tenant_not_found")

	// An unlisted origin: 403 and one notice per origin and day.
	refuse := func(origin string) {
		t.Helper()
		r := httptest.NewRequest("GET", "/v1/widget/token?tenant="+f.a, nil)
		r.Header.Set("Origin", origin)
		r.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", len(origin)%250)
		w := do(f.svc.Token, r)
		want(t, w, 403, "origin_not_allowed")
		if w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("ACAO on a refusal")
		}
	}
	refuse("https://evil.example")
	refuse("https://evil.example")
	// (The first notice is the shop's own page, refused before the
	// origin was listed.)
	if n := f.notices(t, f.a); len(n) != 2 || n[0].Kind != audit.NoticeWidgetOriginRefused || !strings.Contains(n[0].Message+n[1].Message, "https://evil.example") {
		t.Fatalf("notices %+v", n)
	}
	// The next day it is raised again.
	f.clk.Advance(24 * time.Hour)
	refuse("https://evil.example")
	if n := f.notices(t, f.a); len(n) != 3 {
		t.Fatalf("%d notices the next day", len(n))
	}
	// Garbage is not repeated in a notice.
	refuse("https://<script>.example")
	n := f.notices(t, f.a)
	if len(n) != 4 {
		t.Fatalf("%d notices", len(n))
	}
	for _, x := range n {
		if strings.Contains(x.Message, "<script>") {
			t.Fatalf("notice repeats the header: %q", x.Message)
		}
	}
	// The other tenant saw nothing.
	if n := f.notices(t, f.b); len(n) != 0 {
		t.Fatalf("tenant B got %d notices", len(n))
	}
}

// TestRefusedOriginNoticesAreBounded: a flood of made-up origins writes at
// most MaxWidgetOriginNotices notices a day, plus one saying there were more.
func TestRefusedOriginNoticesAreBounded(t *testing.T) {
	f := open(t)
	log := web.AuditLog(f.p)
	for i := range audit.MaxWidgetOriginNotices + 15 {
		if _, err := log.RaiseWidgetOriginRefused(context.Background(), f.a, fmt.Sprintf("https://o%d.example", i), audit.Event{}); err != nil {
			t.Fatal(err)
		}
	}
	n := f.notices(t, f.a)
	more := 0
	for _, x := range n {
		if strings.Contains(x.Message, "more than") {
			more++
		}
	}
	if len(n) != audit.MaxWidgetOriginNotices+1 || more != 1 {
		t.Fatalf("%d notices, %d saying there were more", len(n), more)
	}
}

// hs signs claims with HS256 under secret, as the tenant's server does.
func hs(t testing.TB, method jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forge builds a JWT with any header, signed with HMAC-SHA256 of secret
// (the classic confusion of an RS256 header with an HMAC key).
func forge(header, claims map[string]any, secret string) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	in := enc(header) + "." + enc(claims)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestIdentifyAndForgeries(t *testing.T) {
	f := open(t)
	want(t, f.patch(t, f.a, `{"allowed_origins": ["`+shop+`"], "identity": "optional"}`), 200, "")
	want(t, f.patch(t, f.b, `{"allowed_origins": ["`+shop+`"]}`), 200, "")
	wt := f.widgetToken(t, f.a, shop)
	identify := func(tok string) *httptest.ResponseRecorder {
		b, _ := json.Marshal(map[string]string{"jwt": tok})
		r := jsonReq("POST", "/v1/widget/identify", string(b))
		r.Header.Set(HeaderWidget, wt)
		return do(f.svc.Identify, r)
	}
	// Optional without a secret: not configured.
	want(t, identify("x.y.z"), 409, "identity_not_configured")
	secret := f.secret(t, f.a)
	otherSecret := f.secret(t, f.b)
	now := t0.Unix()
	good := jwt.MapClaims{"sub": "user-42", "exp": now + 600, "iat": now, "name": "Ayşe", "email": "ayse@example.com"}
	w := identify(hs(t, jwt.SigningMethodHS256, secret, good))
	want(t, w, 200, "")
	var out visitorResponse
	json.Unmarshal(w.Body.Bytes(), &out)
	if !out.Verified || !web.ValidID("ct", out.VisitorID) || out.ExpiresAt != time.Unix(now+600, 0).UTC().Format(time.RFC3339) {
		t.Fatalf("identify: %+v", out)
	}
	if strings.Contains(out.VisitorID, "user-42") {
		t.Fatal("sub in clear")
	}
	// The same user is the same contact; another tenant's same user is not.
	w = identify(hs(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "user-42", "exp": now + 60}))
	var again visitorResponse
	json.Unmarshal(w.Body.Bytes(), &again)
	if again.VisitorID != out.VisitorID {
		t.Fatalf("same sub, contacts %s and %s", out.VisitorID, again.VisitorID)
	}
	if other, _ := f.svc.subjectContact(context.Background(), f.b, "user-42"); other == out.VisitorID {
		t.Fatal("two tenants' users share a contact id")
	}
	vc, err := parseVisitor(out.VisitorToken, f.svc.mac(context.Background(), macPurposeVisitor), t0)
	if err != nil || !vc.V || vc.N != "Ayşe" || vc.M != "ayse@example.com" || vc.T != f.a {
		t.Fatalf("visitor claims %+v %v", vc, err)
	}

	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, tc := range []struct {
		name, tok, says string
	}{
		{"alg none", none, "HS256"},
		{"alg none, empty signature after a dot", strings.TrimSuffix(none, ".") + ".", "HS256"},
		{"HS512", hs(t, jwt.SigningMethodHS512, secret, good), "HS256"},
		{"RS256 header with an HMAC signature", forge(map[string]any{"alg": "RS256", "typ": "JWT"}, good, secret), "HS256"},
		{"wrong secret", hs(t, jwt.SigningMethodHS256, secret+"x", good), "signature"},
		{"another tenant's secret", hs(t, jwt.SigningMethodHS256, otherSecret, good), "signature"},
		{"expired", hs(t, jwt.SigningMethodHS256, secret, with("exp", now-61)), "expired"},
		{"no exp", hs(t, jwt.SigningMethodHS256, secret, with("exp", nil)), "exp"},
		{"exp a week ahead", hs(t, jwt.SigningMethodHS256, secret, with("exp", now+7*86400)), "24h"},
		{"nbf in the future", hs(t, jwt.SigningMethodHS256, secret, with("nbf", now+120)), "nbf"},
		{"iat in the future", hs(t, jwt.SigningMethodHS256, secret, with("iat", now+120)), "iat"},
		{"no sub", hs(t, jwt.SigningMethodHS256, secret, with("sub", nil)), "sub"},
		{"empty sub", hs(t, jwt.SigningMethodHS256, secret, with("sub", "")), "sub"},
		{"sub of 201 characters", hs(t, jwt.SigningMethodHS256, secret, with("sub", strings.Repeat("ş", 201))), "sub"},
		{"name not a string", hs(t, jwt.SigningMethodHS256, secret, with("name", 7)), "string"},
		{"bad email", hs(t, jwt.SigningMethodHS256, secret, with("email", "not-an-email")), "email"},
		{"over 4 KiB", hs(t, jwt.SigningMethodHS256, secret, with("pad", strings.Repeat("a", 4096))), "4096"},
		{"garbage", "not a jwt", "well-formed"},
	} {
		w := identify(tc.tok)
		if w.Code != 401 || errCode(t, w) != "identity_invalid" || !strings.Contains(w.Body.String(), tc.says) {
			t.Errorf("%s: %d %s (want 401 identity_invalid saying %q)", tc.name, w.Code, w.Body, tc.says)
		}
		if len(tc.tok) > 20 && strings.Contains(w.Body.String(), tc.tok[len(tc.tok)-20:]) {
			t.Errorf("%s: the response echoes the token", tc.name)
		}
	}
	// Within the 60 s leeway.
	want(t, identify(hs(t, jwt.SigningMethodHS256, secret, with("iat", now+30))), 200, "")
	// Identity off: not configured, even with a secret.
	want(t, f.patch(t, f.a, `{"identity": "off"}`), 200, "")
	want(t, identify(hs(t, jwt.SigningMethodHS256, secret, good)), 409, "identity_not_configured")
}

func TestAuthenticate(t *testing.T) {
	f := open(t)
	want(t, f.patch(t, f.a, `{"allowed_origins": ["`+shop+`", "https://b.example"], "agent_name": "Pommy", "attachment_max_bytes": 2048, "csat": false}`), 200, "")
	want(t, f.patch(t, f.b, `{"allowed_origins": ["`+shop+`"]}`), 200, "")
	wt := f.widgetToken(t, f.a, shop)
	vt, vid := f.anonymous(t, wt)
	auth := func(wt, vt string) (*web.Scope, string) {
		r := httptest.NewRequest("GET", "/v1/widget/conversations", nil)
		if wt != "" {
			r.Header.Set(HeaderWidget, wt)
		}
		if vt != "" {
			r.Header.Set(HeaderVisitor, vt)
		}
		s, err := f.svc.Authenticate(r)
		var ae *web.Error
		if errors.As(err, &ae) {
			return nil, fmt.Sprint(ae.Status, " ", ae.Code)
		}
		if err != nil {
			t.Fatal(err)
		}
		return s, ""
	}
	s, code := auth(wt, vt)
	if code != "" || !web.ValidID("ct", vid) || s.Tenant != f.a || s.VisitorID != vid || s.VisitorVerified || s.WidgetOrigin != shop ||
		s.Visitor != (web.VisitorPolicy{AgentName: "Pommy", AttachmentMaxBytes: 2048, CSAT: false}) || s.Keys == nil || s.UserID != "" || s.Role != "" {
		t.Fatalf("scope %+v %s", s, code)
	}
	if typ, id := s.Actor(); typ != "contact" || id != vid {
		t.Fatalf("actor %s %s", typ, id)
	}
	// A person's credential is not a visitor's.
	if _, code := auth("", ""); code != "401 widget_token_invalid" {
		t.Fatal(code)
	}
	if _, code := auth(wt, ""); code != "401 visitor_token_invalid" {
		t.Fatal(code)
	}
	if _, code := auth(vt, wt); code != "401 widget_token_invalid" {
		t.Fatal("tokens swapped:", code)
	}
	// Tenant B's widget token with tenant A's visitor token, and the reverse.
	wtB := f.widgetToken(t, f.b, shop)
	vtB, _ := f.anonymous(t, wtB)
	if _, code := auth(wtB, vt); code != "401 visitor_token_invalid" {
		t.Fatal("foreign visitor token:", code)
	}
	if _, code := auth(wt, vtB); code != "401 visitor_token_invalid" {
		t.Fatal("foreign visitor token:", code)
	}
	// The origin removed: refused at once, with the token still unexpired.
	wtOther := f.widgetToken(t, f.a, "https://b.example")
	want(t, f.patch(t, f.a, `{"allowed_origins": ["`+shop+`"]}`), 200, "")
	if _, code := auth(wtOther, vt); code != "403 origin_not_allowed" {
		t.Fatal("removed origin:", code)
	}
	// Expired widget token: 401, the visitor token still good with a fresh one.
	f.clk.Advance(WidgetTokenTTL + time.Second)
	if _, code := auth(wt, vt); code != "401 widget_token_invalid" {
		t.Fatal("expired:", code)
	}
	wt = f.widgetToken(t, f.a, shop)
	if _, code := auth(wt, vt); code != "" {
		t.Fatal(code)
	}
	// Enforce: an anonymous visitor is refused, a verified one passes.
	secret := f.secret(t, f.a)
	want(t, f.patch(t, f.a, `{"identity": "enforce"}`), 200, "")
	if _, code := auth(wt, vt); code != "403 identity_required" {
		t.Fatal("enforce:", code)
	}
	r := jsonReq("POST", "/v1/widget/visitors", "{}")
	r.Header.Set(HeaderWidget, wt)
	want(t, do(f.svc.NewVisitor, r), 403, "identity_required")
	b, _ := json.Marshal(map[string]string{"jwt": hs(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u1", "exp": f.clk.Now().Unix() + 300, "name": "Ali"})})
	r = jsonReq("POST", "/v1/widget/identify", string(b))
	r.Header.Set(HeaderWidget, wt)
	w := do(f.svc.Identify, r)
	want(t, w, 200, "")
	var out visitorResponse
	json.Unmarshal(w.Body.Bytes(), &out)
	s, code = auth(wt, out.VisitorToken)
	if code != "" || !s.VisitorVerified || s.VisitorName != "Ali" || s.VisitorID != out.VisitorID {
		t.Fatalf("verified scope %+v %s", s, code)
	}
	// The verified token ends with the JWT.
	f.clk.Advance(301 * time.Second)
	wt = f.widgetToken(t, f.a, shop)
	if _, code := auth(wt, out.VisitorToken); code != "401 visitor_token_invalid" {
		t.Fatal("verified token past the JWT's exp:", code)
	}
}

// TestVisitorRateLimit crosses LimitWidget per visitor: the local
// limiter's limit passes, the next is 429 with Retry-After, and another
// visitor of the same tenant is not affected.
func TestVisitorRateLimit(t *testing.T) {
	f := open(t)
	s := &web.Scope{Tenant: f.a, VisitorID: web.NewID("ct")}
	limit := storage.Limits[storage.LimitWidget].Limit
	r := httptest.NewRequest("GET", "/v1/widget/conversations", nil)
	for i := range limit {
		if err := f.svc.ShedVisitor(r, s); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	err := f.svc.ShedVisitor(r, s)
	var ae *web.Error
	if !errors.As(err, &ae) || ae.Status != 429 || ae.Code != "rate_limited" || ae.RetryAfter < 1 {
		t.Fatalf("over the limit: %v", err)
	}
	w := httptest.NewRecorder()
	web.WriteError(w, r, err)
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	if err := f.svc.ShedVisitor(r, &web.Scope{Tenant: f.a, VisitorID: web.NewID("ct")}); err != nil {
		t.Fatalf("another visitor: %v", err)
	}
}

// TestTokenRouteRateLimit crosses LimitWidget per tenant and address.
func TestTokenRouteRateLimit(t *testing.T) {
	f := open(t)
	want(t, f.patch(t, f.a, `{"allowed_origins": ["`+shop+`"]}`), 200, "")
	limit := storage.Limits[storage.LimitWidget].Limit
	get := func(ip string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/widget/token?tenant="+f.a, nil)
		r.Header.Set("Origin", shop)
		r.RemoteAddr = ip + ":5555"
		return do(f.svc.Token, r)
	}
	for i := range limit {
		if w := get("198.51.100.7"); w.Code != 200 {
			t.Fatalf("request %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	w := get("198.51.100.7")
	want(t, w, 429, "rate_limited")
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	want(t, get("198.51.100.8"), 200, "")
}

func TestTokenParsers(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	wmac, vmac := f.svc.mac(ctx, macPurposeWidget), f.svc.mac(ctx, macPurposeVisitor)
	wt, _, err := f.svc.mintWidget(ctx, f.a, shop, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseWidget(wt, wmac, t0); err != nil {
		t.Fatal(err)
	}
	vt, err := f.svc.mintVisitor(ctx, visitorClaims{T: f.a, C: web.NewID("ct"), E: t0.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	body, sig, _ := strings.Cut(wt[3:], ".")
	payload, _ := base64.RawURLEncoding.DecodeString(body)
	other := bytes.Replace(payload, []byte(f.a), []byte(f.b), 1)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for name, tok := range map[string]string{
		"expired":                       "", // below
		"tenant changed in the payload": "wt_" + base64.RawURLEncoding.EncodeToString(other) + "." + sig,
		"tampered payload":              "wt_" + flip(body, 5) + "." + sig,
		"tampered MAC":                  "wt_" + body + "." + flip(sig, 3),
		"truncated":                     wt[:len(wt)-1],
		"no MAC":                        "wt_" + body,
		"padded base64":                 "wt_" + body + "=." + sig,
		"huge":                          "wt_" + strings.Repeat("A", 4000) + "." + sig,
		"a visitor token":               vt,
		"no prefix":                     wt[3:],
		"MAC of another purpose":        "wt_" + body + "." + strings.SplitN(vt, ".", 2)[1],
		"two dots":                      wt + ".x",
		"empty":                         "",
	} {
		if name == "expired" {
			if _, err := parseWidget(wt, wmac, t0.Add(WidgetTokenTTL)); !errors.Is(err, errToken) {
				t.Errorf("expired: %v", err)
			}
			continue
		}
		if _, err := parseWidget(tok, wmac, t0); !errors.Is(err, errToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := parseVisitor(vt, vmac, t0.Add(time.Hour)); !errors.Is(err, errToken) {
		t.Errorf("expired visitor token: %v", err)
	}
	if _, err := parseVisitor(wt, vmac, t0); !errors.Is(err, errToken) {
		t.Errorf("a widget token as a visitor token: %v", err)
	}
	// An anonymous token cannot carry a verified visitor's name.
	forged, _ := f.svc.mintVisitor(ctx, visitorClaims{T: f.a, C: "ct_x", N: "Boss", E: t0.Add(time.Hour).Unix()})
	if _, err := parseVisitor(forged, vmac, t0); !errors.Is(err, errToken) {
		t.Errorf("anonymous with a name: %v", err)
	}
}

func TestAssets(t *testing.T) {
	f := open(t)
	get := func(h func(http.ResponseWriter, *http.Request) error, target string, gz bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", target, nil)
		if gz {
			r.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /widget/assets/{name}", func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				web.WriteError(w, r, err)
			}
		})
		mux.HandleFunc("GET /widget/frame/{tenant}", func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				web.WriteError(w, r, err)
			}
		})
		mux.HandleFunc("GET /widget.js", func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				web.WriteError(w, r, err)
			}
		})
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	w := get(f.svc.Loader, "/widget.js", true)
	want(t, w, 200, "")
	if w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || w.Header().Get("Cache-Control") != "public, max-age=300" ||
		w.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(w.Header().Get("Vary"), "Accept-Encoding") {
		t.Fatalf("loader headers %v", w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	if !bytes.Equal(raw, getAsset(loaderFile).raw) {
		t.Fatal("gzip body differs")
	}
	if w := get(f.svc.Loader, "/widget.js", false); w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), raw) {
		t.Fatal("plain loader")
	}
	r := httptest.NewRequest("GET", "/widget.js", nil)
	r.Header.Set("Accept-Encoding", "gzip;q=0")
	if acceptsGzip(r) {
		t.Fatal("gzip;q=0 accepted")
	}

	a := getAsset("app.js")
	w = get(f.svc.Asset, "/widget/assets/app.js?v="+a.hash, false)
	want(t, w, 200, "")
	if w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("app.js headers %v", w.Header())
	}
	if w := get(f.svc.Asset, "/widget/assets/app.css?v=stale", false); w.Header().Get("Cache-Control") != "public, max-age=300" || w.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Fatalf("stale version: %v", w.Header())
	}
	for _, bad := range []string{"/widget/assets/loader.js", "/widget/assets/frame.html", "/widget/assets/..%2fui.go", "/widget/assets/nope.js", "/widget/assets/.hidden"} {
		if w := get(f.svc.Asset, bad, false); w.Code != 404 {
			t.Errorf("%s: %d", bad, w.Code)
		}
	}

	// The frame: 404 page nobody may frame until the tenant lists origins.
	w = get(f.svc.Frame, "/widget/frame/"+f.a, false)
	if w.Code != 404 || !strings.HasSuffix(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") || errCode(t, w) != "not_found" {
		t.Fatalf("frame without origins: %d %v", w.Code, w.Header())
	}
	want(t, f.patch(t, f.a, `{"allowed_origins": ["`+shop+`", "http://localhost:8080"], "locale": "tr"}`), 200, "")
	w = httptest.NewRecorder()
	w.Header().Set("X-Frame-Options", "DENY") // as the application's secure() sets it
	rq := httptest.NewRequest("GET", "/widget/frame/"+f.a, nil)
	rq.SetPathValue("tenant", f.a)
	if err := f.svc.Frame(w, rq); err != nil {
		t.Fatal(err)
	}
	csp := w.Header().Get("Content-Security-Policy")
	if w.Code != 200 || w.Header().Get("X-Frame-Options") != "" ||
		csp != "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob: data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors https://shop.example http://localhost:8080" {
		t.Fatalf("frame: %d %v", w.Code, w.Header())
	}
	page := w.Body.String()
	if strings.Contains(page, "{{") {
		t.Fatalf("unrendered template: %s", page)
	}
	if strings.Contains(string(getAssetRawFrame()), "{{.AppJS}}") && !strings.Contains(page, assetURL("app.js")) {
		t.Fatalf("frame does not link the versioned app.js: %s", page)
	}
	if strings.Contains(string(getAssetRawFrame()), "{{.Lang}}") && !strings.Contains(page, `lang="tr"`) {
		t.Fatalf("frame's lang is not the tenant's: %s", page)
	}
	if w := get(f.svc.Frame, "/widget/frame/"+f.a+"?locale=en", false); strings.Contains(string(getAssetRawFrame()), "{{.Lang}}") && !strings.Contains(w.Body.String(), `lang="en"`) {
		t.Fatalf("?locale=en: %s", w.Body)
	}
	if w := get(f.svc.Frame, "/widget/frame/t_nope", false); w.Code != 404 {
		t.Fatalf("bad tenant id: %d", w.Code)
	}
}

func getAssetRawFrame() []byte {
	b, _ := fs.ReadFile(ui.Widget, "widget/frame.html")
	return b
}

func TestShapes(t *testing.T) {
	for s, want := range map[string]bool{"#a0B1c2": true, "#a0b1c": false, "a0b1c2f": false, "#a0b1cg": false} {
		if validColor(s) != want {
			t.Errorf("validColor(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"UTC": true, "Europe/Istanbul": true, "America/Argentina/Buenos_Aires": true, "Etc/GMT+3": true,
		"europe/Istanbul": false, "Europe": false, "Europe/../x": false, "Europe//x": false, "A/b/c/d": false, "Europe/Ista nbul": false, "<b>/x": false} {
		if validZone(s) != want {
			t.Errorf("validZone(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"00:00": true, "23:59": true, "24:00": true, "24:01": false, "9:00": false, "12:60": false, "ab:cd": false} {
		if validTime(s) != want {
			t.Errorf("validTime(%q) != %v", s, want)
		}
	}
}

func TestRenderFrame(t *testing.T) {
	got, err := renderFrame(`<html lang="{{.Lang}}"><script src="{{ .AppJS }}"></script><link href="{{.Asset "app.css"}}">{{.Tenant}}`,
		map[string]string{".Lang": `"><script>`, ".AppJS": "/a.js?v=1", ".Tenant": "t_x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `<html lang="&#34;&gt;&lt;script&gt;"><script src="/a.js?v=1"></script><link href="` + assetURL("app.css") + `">t_x`; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	for _, bad := range []string{"{{.Nope}}", "{{.Lang", `{{.Asset "missing.js"}}`} {
		if _, err := renderFrame(bad, map[string]string{".Lang": "en"}); err == nil {
			t.Errorf("%s rendered", bad)
		}
	}
}

// TestVisitorTokenHoldsLongestClaims: identify accepts a name of
// maxNameChars characters and an email of maxEmailBytes bytes, so the
// visitor token minted for the worst of them (characters JSON writes as
// six bytes each) must be one parseVisitor accepts.
func TestVisitorTokenHoldsLongestClaims(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	name := strings.Repeat("\u2028", maxNameChars)
	email := strings.Repeat("\u2028", (maxEmailBytes-len("a@example.com"))/3) + "a@example.com"
	vt, err := f.svc.mintVisitor(ctx, visitorClaims{T: f.a, C: web.NewID("ct"), V: true, N: name, M: email, E: t0.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseVisitor(vt, f.svc.mac(ctx, macPurposeVisitor), t0); err != nil {
		t.Fatalf("a visitor token of %d bytes for the longest claims identify accepts is refused: %v", len(vt), err)
	}
}
