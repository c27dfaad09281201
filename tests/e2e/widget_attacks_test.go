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
