package e2e

import (
	"net/url"
	"strings"
	"testing"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/jwtsign"
	"pommy.ai/edge/tests/widgettest"
)

// TestWidgetEmailSquat: an anonymous visitor types someone else's email in
// the pre-chat form before that person ever chats. When the real person
// later arrives verified by the tenant's JWT with that email, the team's
// look-up by email must find the verified contact, not the one an
// anonymous visitor claimed by typing: otherwise the team answers (and
// shares order details with) whoever typed the address first.
func TestWidgetEmailSquat(t *testing.T) {
	c := &apitest.Client{Base: startHome(t, homeOptions{}).url}
	site := widgettest.NewSite(t, c, "Squat Co", "https://shop.example")
	secret := site.IdentitySecret(t)
	site.Settings(t, map[string]any{"identity": "optional", "pre_chat": map[string]any{
		"enabled": true, "fields": []map[string]any{{"name": "name", "required": true}, {"name": "email", "required": true}}}}).Expect(t, 200)

	const email = "ceo@shop.example"
	mallory := site.Anonymous(t)
	c.Do(t, "POST", "/v1/widget/conversations", map[string]any{"text": "Hi, it's me, please send my invoices here",
		"pre_chat": map[string]any{"name": "The CEO", "email": email}}, site.As(mallory, "Idempotency-Key", "squat-1")...).Expect(t, 201)

	tok := jwtsign.MustSign(t, jwtsign.Spec{Secret: secret, Exp: "10m", Iat: "now",
		Claims: map[string]any{"sub": "ceo-1", "name": "Real CEO", "email": email}})
	ceo := widgettest.VisitorFrom(t, site.Identify(t, tok[0]).Expect(t, 200))
	site.StartID(t, ceo, "Hello, I am signed in")

	found := c.Do(t, "GET", "/v1/contacts?email="+url.QueryEscape(email), nil, site.Bearer()...).Expect(t, 200)
	if !strings.Contains(string(found.Body), ceo.ID) {
		t.Errorf("GET /v1/contacts?email=%s finds %s; want the verified contact %s, not the anonymous visitor %s who typed the address",
			email, found.Body, ceo.ID, mallory.ID)
	}
}

// TestWidgetVisitorIsolation: a visitor reaches only their own
// conversations. Another visitor of the same tenant, holding a valid widget
// token and visitor token, gets the same 404 as for an unknown id on every
// route of someone else's conversation, and reusing their Idempotency-Key
// replays nothing of theirs. Then the owner removes the site's origin: the
// token route refuses it, the frame page may no longer be framed, and a
// visitor stream held open is ended at its next wake-up instead of
// delivering the team's next reply.
func TestWidgetVisitorIsolation(t *testing.T) {
	c := &apitest.Client{Base: startHome(t, homeOptions{}).url}
	site := widgettest.NewSite(t, c, "Isolation Co", "https://shop.example")
	alice, bob := site.Anonymous(t), site.Anonymous(t)

	const secret = "order 1234, card ending 4242"
	body := map[string]any{"text": "Hi, about my " + secret}
	ra := c.Do(t, "POST", "/v1/widget/conversations", body, site.As(alice, "Idempotency-Key", "shared-key-1")...).Expect(t, 201).JSON(t)
	convA := ra["conversation"].(map[string]any)["id"].(string)
	msgA := ra["message"].(map[string]any)["id"].(string)
	// The same key and body from another visitor is that visitor's own
	// first request, not a replay of Alice's.
	rb := c.Do(t, "POST", "/v1/widget/conversations", body, site.As(bob, "Idempotency-Key", "shared-key-1")...)
	if rb.Status != 201 || strings.Contains(string(rb.Body), convA) || rb.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("Bob reusing Alice's Idempotency-Key: %d %s (replayed %q), want his own new conversation", rb.Status, rb.Body, rb.Header.Get("Idempotent-Replayed"))
	}
	convB := rb.JSON(t)["conversation"].(map[string]any)["id"].(string)

	for _, x := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/widget/conversations/" + convA, nil},
		{"GET", "/v1/widget/conversations/" + convA + "/messages", nil},
		{"POST", "/v1/widget/conversations/" + convA + "/messages", map[string]any{"text": "Bob was here"}},
		{"GET", "/v1/widget/conversations/" + convA + "/events", nil},
		{"GET", "/v1/widget/conversations/" + convA + "/events/stream", nil},
		{"POST", "/v1/widget/conversations/" + convA + "/typing", map[string]any{"typing": true}},
		{"POST", "/v1/widget/conversations/" + convA + "/read", map[string]any{}},
		{"POST", "/v1/widget/conversations/" + convA + "/csat", map[string]any{"rating": 1}},
		{"GET", "/v1/widget/conversations/" + convA + "/messages/" + msgA + "/attachment", nil},
		{"PUT", "/v1/widget/conversations/" + convA + "/messages/" + msgA + "/attachment", []byte("GIF89a")},
	} {
		r := c.Do(t, x.method, x.path, x.body, site.As(bob, "Idempotency-Key", "bob-"+x.method+x.path)...)
		if r.Status != 404 || strings.Contains(string(r.Body), "1234") {
			t.Errorf("Bob: %s %s = %d %s, want 404 and nothing of Alice's", x.method, x.path, r.Status, r.Body)
		}
	}
	list := c.Do(t, "GET", "/v1/widget/conversations", nil, site.As(bob)...).Expect(t, 200)
	if strings.Contains(string(list.Body), convA) || !strings.Contains(string(list.Body), convB) {
		t.Errorf("Bob's list: %s", list.Body)
	}
	team := c.Do(t, "GET", "/v1/conversations/"+convA+"/messages", nil, site.Bearer()...).Expect(t, 200)
	if strings.Contains(string(team.Body), "Bob was here") {
		t.Errorf("Bob's refused send reached Alice's conversation: %s", team.Body)
	}

	// The site's origin is removed while Bob watches his conversation.
	st := site.Watch(t, bob, convB, "")
	site.Settings(t, map[string]any{"allowed_origins": []string{}}).Expect(t, 200)
	const after = "a reply after the origin was removed"
	site.Reply(t, convB, after, false).Expect(t, 201)
	widgettest.ExpectStreamEnds(t, st, "the origin was removed", after, "origin_not_allowed")
	if r := c.Do(t, "GET", "/v1/widget/conversations", nil, site.As(bob)...); r.Status != 403 || !strings.Contains(string(r.Body), "origin_not_allowed") {
		t.Errorf("a visitor route with the removed origin's widget token: %d %s, want 403 origin_not_allowed", r.Status, r.Body)
	}
	if r := site.TokenFrom(t, site.Origin); r.Status != 403 {
		t.Errorf("token for the removed origin: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "GET", "/widget/frame/"+site.Tenant, nil); r.Status != 404 || !strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("frame page with no allowed origin: %d, CSP %q", r.Status, r.Header.Get("Content-Security-Policy"))
	}
}

// TestWidgetLongClaims: the verifier accepts a name of 200 characters and
// an email of 254 bytes, so the visitor token it mints for them must be one
// the platform then accepts. A name the tenant's user chose (a display name
// of line separators, which JSON writes as six bytes each) must not buy a
// token that every later request refuses.
func TestWidgetLongClaims(t *testing.T) {
	c := &apitest.Client{Base: startHome(t, homeOptions{}).url}
	site := widgettest.NewSite(t, c, "Long Claims Co", "https://shop.example")
	secret := site.IdentitySecret(t)
	site.Settings(t, map[string]any{"identity": "optional"}).Expect(t, 200)
	// Line separators inside (trimming would take them off the ends).
	name := "a" + strings.Repeat("\u2028", 198) + "a"
	email := "a" + strings.Repeat("\u2028", 80) + "a@example.com" // 254 bytes
	for _, claims := range []map[string]any{
		{"sub": strings.Repeat("s", 200), "name": name, "email": email},
		{"sub": strings.Repeat("\u2029", 200), "name": strings.Repeat(`"`, 200)},
	} {
		tok := jwtsign.MustSign(t, jwtsign.Spec{Secret: secret, Exp: "10m", Iat: "now", Claims: claims})
		r := site.Identify(t, tok[0])
		if r.Status != 200 {
			t.Logf("identify refused the long claims (%d %s): fine, as long as it does not mint a token it then refuses", r.Status, r.Body)
			continue
		}
		v := widgettest.VisitorFrom(t, r)
		if l := c.Do(t, "GET", "/v1/widget/conversations", nil, site.As(v)...); l.Status != 200 {
			t.Errorf("a verified visitor token of %d bytes, minted for the longest claims identify accepts, is refused: %d %s", len(v.Token), l.Status, l.Body)
		}
	}
}
