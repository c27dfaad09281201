package widgettest

import (
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/jwtsign"
)

// Identity is the identity verification of the widget end to end, with
// the tenant's side played by jose (tests/jwtsign): a token signed as the
// docs say becomes a verified visitor whose claims reach the people's
// contact; the classic forgeries (alg none, another HMAC, a wrong or
// another tenant's secret, expired, not yet valid, too long-lived,
// missing claims, tampered) each get 401 identity_invalid and no visitor
// token; a rotated secret's tokens stop working; and enforce mode shuts
// anonymous visitors out at once, tokens minted before it included.
func Identity(t *testing.T, c *apitest.Client) {
	const origin = "https://shop.example"
	a := NewSite(t, c, "Identity A", origin)
	b := NewSite(t, c, "Identity B", "https://other.example")
	secretA, secretB := a.IdentitySecret(t), b.IdentitySecret(t)
	if secretA == secretB {
		t.Fatal("two tenants got the same identity secret")
	}
	// A secret alone turns nothing on: identity stays off until the owner
	// chooses optional or enforce.
	early := jwtsign.MustSign(t, jwtsign.Spec{Secret: secretA, Exp: "10m", Claims: map[string]any{"sub": "user-42"}})
	if r := a.Identify(t, early[0]); r.Status != 409 || errorCode(r) != "identity_not_configured" {
		t.Errorf("identify with a secret but identity off: %d %s, want 409 identity_not_configured", r.Status, r.Body)
	}
	for _, s := range []*Site{a, b} {
		s.Settings(t, map[string]any{"identity": "optional"}).Expect(t, 200)
	}

	good := jwtsign.Spec{Secret: secretA, Exp: "10m", Iat: "now",
		Claims: map[string]any{"sub": "user-42", "name": "Ayşe Yılmaz", "email": "ayse@example.com"}}
	with := func(f func(*jwtsign.Spec)) jwtsign.Spec {
		s := good
		s.Claims = map[string]any{}
		for k, v := range good.Claims {
			s.Claims[k] = v
		}
		f(&s)
		return s
	}
	// The accepted: the good token, the same user again, another user, and
	// the edges the rules allow (exp just under 24 h; iat and nbf within
	// the 60 s leeway; no name or email).
	accepted := []struct {
		name string
		spec jwtsign.Spec
	}{
		{"good", good},
		{"same sub again", with(func(s *jwtsign.Spec) { s.Claims["name"] = "Ayşe Y." })},
		{"another sub", with(func(s *jwtsign.Spec) {
			s.Claims["sub"] = "user-43"
			delete(s.Claims, "name")
			delete(s.Claims, "email")
		})},
		{"exp in 23h", with(func(s *jwtsign.Spec) { s.Exp = "23h" })},
		{"iat and nbf 20s ahead (leeway)", with(func(s *jwtsign.Spec) { s.Iat = "20s"; s.Nbf = "20s" })},
		{"sub of 200 characters", with(func(s *jwtsign.Spec) { s.Claims["sub"] = strings.Repeat("s", 200) })},
	}
	refused := []struct {
		name string
		spec jwtsign.Spec
	}{
		{"alg none", with(func(s *jwtsign.Spec) { s.Alg = "none" })},
		{"HS512 with the right secret", with(func(s *jwtsign.Spec) { s.Alg = "HS512" })},
		{"HS384 with the right secret", with(func(s *jwtsign.Spec) { s.Alg = "HS384" })},
		{"a wrong secret", with(func(s *jwtsign.Spec) { s.Secret = "wis_" + strings.Repeat("0", 43) })},
		{"the secret's base64url body alone", with(func(s *jwtsign.Spec) { s.Secret = strings.TrimPrefix(secretA, "wis_") })},
		{"another tenant's secret", with(func(s *jwtsign.Spec) { s.Secret = secretB })},
		{"expired", with(func(s *jwtsign.Spec) { s.Exp = "-5m"; s.Iat = "-20m" })},
		{"nbf in the future", with(func(s *jwtsign.Spec) { s.Nbf = "5m" })},
		{"iat in the future", with(func(s *jwtsign.Spec) { s.Iat = "5m" })},
		{"exp 30 days ahead", with(func(s *jwtsign.Spec) { s.Exp = "30d" })},
		{"exp 25 hours ahead", with(func(s *jwtsign.Spec) { s.Exp = "25h" })},
		{"no exp", with(func(s *jwtsign.Spec) { s.Exp = "" })},
		{"no sub", with(func(s *jwtsign.Spec) { delete(s.Claims, "sub") })},
		{"empty sub", with(func(s *jwtsign.Spec) { s.Claims["sub"] = "" })},
		{"sub of 201 characters", with(func(s *jwtsign.Spec) { s.Claims["sub"] = strings.Repeat("s", 201) })},
		{"sub a number", with(func(s *jwtsign.Spec) { s.Claims["sub"] = 42 })},
		{"tampered payload", with(func(s *jwtsign.Spec) { s.Tamper = "payload" })},
		{"tampered signature", with(func(s *jwtsign.Spec) { s.Tamper = "signature" })},
		// Just over 4 KiB: a body that size is read, and the verifier
		// refuses the token by its length.
		{"over 4 KiB", with(func(s *jwtsign.Spec) { s.Claims["pad"] = strings.Repeat("p", 3000) })},
	}
	var specs []jwtsign.Spec
	for _, x := range accepted {
		specs = append(specs, x.spec)
	}
	for _, x := range refused {
		specs = append(specs, x.spec)
	}
	toks := jwtsign.MustSign(t, specs...)

	var ids []string
	var ayse Visitor
	for i, x := range accepted {
		r := a.Identify(t, toks[i])
		if r.Status != 200 {
			t.Fatalf("%s: identify %d %s, want 200", x.name, r.Status, r.Body)
		}
		v := VisitorFrom(t, r)
		if !v.Verified {
			t.Errorf("%s: the visitor token answer says verified false", x.name)
		}
		ids = append(ids, v.ID)
		if i == 0 {
			ayse = v
			// A verified visitor token lives as long as the JWT, no longer.
			if d := time.Until(v.Expires); d > 11*time.Minute || d < 8*time.Minute {
				t.Errorf("good: visitor token expires in %v, want the JWT's exp (10 min)", d)
			}
		}
	}
	if ids[0] != ids[1] || ids[0] == ids[2] {
		t.Errorf("contact ids by sub: user-42 %s, user-42 again %s, user-43 %s; want the same user on the same contact only", ids[0], ids[1], ids[2])
	}
	if strings.Contains(ids[0], "user-42") {
		t.Errorf("the contact id %s shows the sub in clear", ids[0])
	}

	for i, x := range refused {
		tok := toks[len(accepted)+i]
		r := a.Identify(t, tok)
		if r.Status != 401 || errorCode(r) != "identity_invalid" {
			t.Errorf("%s: identify %d %s, want 401 identity_invalid", x.name, r.Status, r.Body)
			continue
		}
		if strings.Contains(string(r.Body), "vt_") || strings.Contains(string(r.Body), "visitor_token") {
			t.Errorf("%s: a refusal carries a visitor token: %s", x.name, r.Body)
		}
		// The message says which rule failed, never the token.
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 && strings.Contains(string(r.Body), part) {
				t.Errorf("%s: the refusal echoes the token: %s", x.name, r.Body)
			}
		}
	}

	// The same user at another tenant is another contact: the id is keyed
	// by tenant, and B's secret signs for B only.
	tb := jwtsign.MustSign(t, with(func(s *jwtsign.Spec) { s.Secret = secretB }))
	vb := VisitorFrom(t, b.Identify(t, tb[0]).Expect(t, 200))
	if vb.ID == ids[0] {
		t.Errorf("user-42 has the same contact id %s at two tenants", vb.ID)
	}
	// A's visitor token with B's widget token is not B's visitor.
	if r := c.Do(t, "GET", "/v1/widget/conversations", nil, b.As(ayse)...); r.Status != 401 || errorCode(r) != "visitor_token_invalid" {
		t.Errorf("tenant A's visitor token with tenant B's widget token: %d %s, want 401 visitor_token_invalid", r.Status, r.Body)
	}

	// The verified visitor chats, and the team's contact has the claims.
	conv := a.StartID(t, ayse, "Hello, I am logged in")
	ct := c.Do(t, "GET", "/v1/contacts/"+ayse.ID, nil, a.Bearer()...).Expect(t, 200).JSON(t)
	if ct["name"] != "Ayşe Yılmaz" || ct["email"] != "ayse@example.com" {
		t.Errorf("the verified visitor's contact: %v, want the JWT's name and email", ct)
	}
	cv := c.Do(t, "GET", "/v1/conversations/"+conv, nil, a.Bearer()...).Expect(t, 200).JSON(t)
	if cv["contact_id"] != ayse.ID {
		t.Errorf("the conversation's contact %v, want the verified visitor %s", cv["contact_id"], ayse.ID)
	}

	// A tenant without a secret cannot verify anyone.
	plain := NewSite(t, c, "No identity", "https://plain.example")
	tp := jwtsign.MustSign(t, with(func(s *jwtsign.Spec) { s.Secret = "wis_anything" }))
	if r := plain.Identify(t, tp[0]); r.Status != 409 || errorCode(r) != "identity_not_configured" {
		t.Errorf("identify without a secret: %d %s, want 409 identity_not_configured", r.Status, r.Body)
	}
	if r := plain.Settings(t, map[string]any{"identity": "enforce"}); r.Status != 409 || errorCode(r) != "identity_secret_missing" {
		t.Errorf("enforce without a secret: %d %s, want 409 identity_secret_missing", r.Status, r.Body)
	}

	// A rotated secret: tokens signed with the old one are refused at once.
	old := jwtsign.MustSign(t, good)[0]
	secretA2 := a.IdentitySecret(t)
	if r := a.Identify(t, old); r.Status != 401 || errorCode(r) != "identity_invalid" {
		t.Errorf("a JWT signed with the replaced secret: %d %s, want 401 identity_invalid", r.Status, r.Body)
	}
	good.Secret = secretA2
	fresh := jwtsign.MustSign(t, good)[0]
	ayse = VisitorFrom(t, a.Identify(t, fresh).Expect(t, 200))

	enforce(t, a, ayse, conv)
}

// enforce: a tenant that enforces identity lets no anonymous visitor mint
// a token, start, list or read a conversation, and the switch takes effect
// on tokens minted before it; a verified visitor goes on.
func enforce(t *testing.T, a *Site, verified Visitor, verifiedConv string) {
	c := a.C
	anon := a.Anonymous(t)
	anonConv := a.StartID(t, anon, "Hello before enforce")
	// The anonymous visitor is watching the conversation when the switch
	// comes: a held stream is re-authorized at its next wake-up.
	st := a.Watch(t, anon, anonConv, "Hello before enforce")
	a.Settings(t, map[string]any{"identity": "enforce"}).Expect(t, 200)
	const secret = "A reply the anonymous visitor must not see under enforce"
	a.Reply(t, anonConv, secret, false).Expect(t, 201)
	ExpectStreamEnds(t, st, "enforce", secret, "identity_required")

	cfg := c.Do(t, "GET", "/v1/widget/config", nil, a.Frame()...).Expect(t, 200).JSON(t)
	if cfg["identity"] != "enforce" {
		t.Errorf("config identity %v, want enforce (the widget asks the host page to identify)", cfg["identity"])
	}
	if r := c.Do(t, "POST", "/v1/widget/visitors", map[string]any{}, a.Frame()...); r.Status != 403 || errorCode(r) != "identity_required" {
		t.Errorf("minting an anonymous visitor under enforce: %d %s, want 403 identity_required", r.Status, r.Body)
	}
	shut := []struct{ method, path string }{
		{"GET", "/v1/widget/conversations"},
		{"POST", "/v1/widget/conversations"},
		{"GET", "/v1/widget/conversations/" + anonConv},
		{"GET", "/v1/widget/conversations/" + anonConv + "/messages"},
		{"POST", "/v1/widget/conversations/" + anonConv + "/messages"},
		{"GET", "/v1/widget/conversations/" + anonConv + "/events"},
		{"GET", "/v1/widget/conversations/" + anonConv + "/events/stream"},
		{"PATCH", "/v1/widget/visitor"},
	}
	for _, x := range shut {
		var body any
		if x.method != "GET" {
			body = map[string]any{"text": "let me in"}
			if x.method == "PATCH" {
				body = map[string]any{"attributes": map[string]any{"plan": "pro"}}
			}
		}
		r := c.Do(t, x.method, x.path, body, a.As(anon, "Idempotency-Key", newKey())...)
		if r.Status != 403 || errorCode(r) != "identity_required" {
			t.Errorf("anonymous %s %s under enforce: %d %s, want 403 identity_required", x.method, x.path, r.Status, r.Body)
		}
	}
	// The anonymous message sent before enforce is still there for the
	// team; nothing was written by the refused requests.
	msgs := c.Do(t, "GET", "/v1/conversations/"+anonConv+"/messages", nil, a.Bearer()...).Expect(t, 200)
	if strings.Contains(string(msgs.Body), "let me in") {
		t.Errorf("a refused anonymous send under enforce was stored: %s", msgs.Body)
	}

	// The verified visitor goes on.
	list := c.Do(t, "GET", "/v1/widget/conversations", nil, a.As(verified)...).Expect(t, 200)
	if !strings.Contains(string(list.Body), verifiedConv) || strings.Contains(string(list.Body), anonConv) {
		t.Errorf("the verified visitor's conversations under enforce: %s; want %s and not the anonymous %s", list.Body, verifiedConv, anonConv)
	}
	a.Send(t, verified, verifiedConv, "Still here under enforce").Expect(t, 201)

	// Back to optional: the same anonymous token works again (enforce
	// refused it by mode; it was never revoked).
	a.Settings(t, map[string]any{"identity": "optional"}).Expect(t, 200)
	c.Do(t, "GET", "/v1/widget/conversations/"+anonConv, nil, a.As(anon)...).Expect(t, 200)
}
