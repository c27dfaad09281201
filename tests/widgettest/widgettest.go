// Package widgettest is the embedded widget's side of the HTTP acceptance
// tests: a tenant's site (allowed origin, widget token) and its visitors,
// speaking to any home as the widget's loader and iframe do, and the
// identity scenario (forgeries signed by jose, enforce mode) that the local
// home and workerd both run.
package widgettest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
)

// Site is a tenant with the widget on one allowed origin: its owner's
// session, an API key with every scope, and a widget token for the origin.
type Site struct {
	C      *apitest.Client
	Owner  *apitest.Session
	Tenant string
	Key    string
	Origin string
	Widget string
}

// NewSite signs up a tenant, allows origin for its widget and fetches a
// widget token as the loader does.
func NewSite(t testing.TB, c *apitest.Client, name, origin string) *Site {
	t.Helper()
	o := c.Signup(t, name)
	s := &Site{C: c, Owner: o, Tenant: o.Tenant, Key: o.NewKey(t, apitest.AllScopes...), Origin: origin}
	s.Settings(t, map[string]any{"allowed_origins": []string{origin}}).Expect(t, 200)
	s.Widget = s.WidgetToken(t)
	return s
}

// Settings patches the widget's settings as the owner.
func (s *Site) Settings(t testing.TB, patch map[string]any) *apitest.Response {
	t.Helper()
	return s.Owner.Do(t, "PATCH", "/v1/widget/settings", patch)
}

// IdentitySecret makes (or replaces) the tenant's identity secret.
func (s *Site) IdentitySecret(t testing.TB) string {
	t.Helper()
	m := s.Owner.Do(t, "POST", "/v1/widget/identity-secret", nil).Expect(t, 201).JSON(t)
	sec, _ := m["secret"].(string)
	if !strings.HasPrefix(sec, "wis_") {
		t.Fatalf("identity secret response: %v", m)
	}
	return sec
}

// TokenFrom is the loader's token request from a page of origin ("" sends
// no Origin).
func (s *Site) TokenFrom(t testing.TB, origin string) *apitest.Response {
	t.Helper()
	var h []string
	if origin != "" {
		h = []string{"Origin", origin, "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors"}
	}
	return s.C.Do(t, "GET", "/v1/widget/token?tenant="+url.QueryEscape(s.Tenant), nil, h...)
}

// WidgetToken fetches a widget token for the site's origin.
func (s *Site) WidgetToken(t testing.TB) string {
	t.Helper()
	r := s.TokenFrom(t, s.Origin).Expect(t, 200)
	m := r.JSON(t)
	tok, _ := m["token"].(string)
	if !strings.HasPrefix(tok, "wt_") || m["origin"] != s.Origin {
		t.Fatalf("widget token response: %v", m)
	}
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != s.Origin {
		t.Fatalf("widget token: Access-Control-Allow-Origin %q, want %q", got, s.Origin)
	}
	return tok
}

// Frame returns the headers the iframe (served from the platform's own
// origin) sends with a widget token: the browser's fetch metadata of a
// same-origin request, and extra pairs.
func (s *Site) Frame(extra ...string) []string {
	return append([]string{"Pommy-Widget", s.Widget, "Origin", s.C.Base, "Sec-Fetch-Site", "same-origin"}, extra...)
}

// Visitor is a visitor token as the widget keeps it.
type Visitor struct {
	Token, ID string
	Verified  bool
	Expires   time.Time
}

// As returns the iframe's headers for visitor v, and extra pairs.
func (s *Site) As(v Visitor, extra ...string) []string {
	return s.Frame(append([]string{"Pommy-Visitor", v.Token}, extra...)...)
}

// VisitorFrom reads a visitor token answer (201 from /visitors, 200 from
// /identify).
func VisitorFrom(t testing.TB, r *apitest.Response) Visitor {
	t.Helper()
	m := r.JSON(t)
	v := Visitor{}
	v.Token, _ = m["visitor_token"].(string)
	v.ID, _ = m["visitor_id"].(string)
	v.Verified, _ = m["verified"].(bool)
	exp, _ := m["expires_at"].(string)
	var err error
	if v.Expires, err = time.Parse(time.RFC3339, exp); err != nil || !strings.HasPrefix(v.Token, "vt_") || !strings.HasPrefix(v.ID, "ct_") {
		t.Fatalf("visitor token answer %d: %v", r.Status, m)
	}
	return v
}

// Anonymous mints an anonymous visitor.
func (s *Site) Anonymous(t testing.TB) Visitor {
	t.Helper()
	v := VisitorFrom(t, s.C.Do(t, "POST", "/v1/widget/visitors", map[string]any{}, s.Frame()...).Expect(t, 201))
	if v.Verified {
		t.Fatalf("an anonymous visitor token says verified: %+v", v)
	}
	return v
}

// Identify presents the tenant's identity JWT.
func (s *Site) Identify(t testing.TB, jwt string) *apitest.Response {
	t.Helper()
	return s.C.Do(t, "POST", "/v1/widget/identify", map[string]any{"jwt": jwt}, s.Frame()...)
}

// Start starts a conversation as v with a first message; it returns the
// response (201 expected by callers that want one).
func (s *Site) Start(t testing.TB, v Visitor, text string) *apitest.Response {
	t.Helper()
	return s.C.Do(t, "POST", "/v1/widget/conversations", map[string]any{"text": text}, s.As(v, "Idempotency-Key", newKey())...)
}

// StartID starts a conversation and returns its id.
func (s *Site) StartID(t testing.TB, v Visitor, text string) string {
	t.Helper()
	m := s.Start(t, v, text).Expect(t, 201).JSON(t)
	cv, _ := m["conversation"].(map[string]any)
	id, _ := cv["id"].(string)
	if !strings.HasPrefix(id, "c_") {
		t.Fatalf("start conversation: %v", m)
	}
	return id
}

// Send sends a message as v.
func (s *Site) Send(t testing.TB, v Visitor, conv, text string) *apitest.Response {
	t.Helper()
	return s.C.Do(t, "POST", "/v1/widget/conversations/"+conv+"/messages", map[string]any{"text": text}, s.As(v, "Idempotency-Key", newKey())...)
}

// Bearer is the site's API key header.
func (s *Site) Bearer(extra ...string) []string {
	return append([]string{"Authorization", "Bearer " + s.Key}, extra...)
}

// Reply sends a person's (the API key's, as author "person" is a
// person's) or a private note through the people's API.
func (s *Site) Reply(t testing.TB, conv, text string, private bool) *apitest.Response {
	t.Helper()
	body := map[string]any{"text": text}
	if private {
		body["private"] = true
	}
	return s.Owner.Do(t, "POST", "/v1/conversations/"+conv+"/messages", body, "Idempotency-Key", newKey())
}

// newKey is a fresh Idempotency-Key.
func newKey() string {
	var b [8]byte
	rand.Read(b[:])
	return "widgettest-" + hex.EncodeToString(b[:])
}

// errorCode is the response's error code, "" when it has none.
func errorCode(r *apitest.Response) string {
	var e struct {
		Error struct{ Code string }
	}
	if json.Unmarshal(r.Body, &e) != nil {
		return ""
	}
	return e.Error.Code
}
