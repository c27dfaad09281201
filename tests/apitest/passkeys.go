package apitest

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"pommy.ai/edge/tests/webauthntest"
)

// Passkeys as a person's browser uses them, played by the software
// authenticator of tests/webauthntest: enrolment after signing in, a
// passwordless sign-in, a second factor after the password, a step-up;
// and the answers a browser never sends (another origin, another RP ID, a
// replayed or another person's challenge, a counter gone back, another
// organization, a bad signature) refused with nothing changed.

func runPasskeys(t *testing.T, c *Client) {
	t.Run("PasskeyEnrolAndPasswordless", func(t *testing.T) { passkeyPasswordless(t, c) })
	t.Run("PasskeySecondFactor", func(t *testing.T) { passkeySecondFactor(t, c) })
	t.Run("PasskeyStepUp", func(t *testing.T) { passkeyStepUp(t, c) })
	t.Run("PasskeyRefused", func(t *testing.T) { passkeyRefused(t, c) })
	t.Run("PasskeyPolicyAndLimits", func(t *testing.T) { passkeyPolicy(t, c) })
	t.Run("PasskeyBadInput", func(t *testing.T) { passkeyBadInput(t, c) })
	t.Run("PasskeyMemberships", func(t *testing.T) { passkeyMemberships(t, c) })
}

// Origin is the origin of the home the client talks to: the page a
// browser would be on.
func (c *Client) Origin(t testing.TB) string {
	u, err := url.Parse(c.Base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Scheme + "://" + u.Host
}

// NewAuthenticator is a software passkey authenticator for pages of this
// home.
func (c *Client) NewAuthenticator(t testing.TB) *webauthntest.Authenticator {
	return webauthntest.New(c.Origin(t))
}

// EnrolPasskey makes a passkey on a for the session's person and returns
// the enrolment's body (id, name, recovery_codes for the first factor).
func (s *Session) EnrolPasskey(t testing.TB, a *webauthntest.Authenticator, name string) map[string]any {
	t.Helper()
	o := s.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 200).JSON(t)
	cred, _, err := a.Create(rawJSON(t, o["options"]))
	if err != nil {
		t.Fatal(err)
	}
	return s.Do(t, "POST", "/v1/me/passkeys", map[string]any{"challenge_token": o["challenge_token"], "credential": cred, "name": name}).Expect(t, 201).JSON(t)
}

// PasskeyOptions starts a passwordless sign-in: the challenge token and
// the options.
func (c *Client) PasskeyOptions(t testing.TB) (string, json.RawMessage) {
	t.Helper()
	o := c.Do(t, "POST", "/v1/login/passkey/options", map[string]any{}).Expect(t, 200).JSON(t)
	tok, _ := o["challenge_token"].(string)
	return tok, rawJSON(t, o["options"])
}

// PasskeyLogin signs in without a password; tenant may be "".
func (c *Client) PasskeyLogin(t testing.TB, token string, cred json.RawMessage, tenant string) *Response {
	t.Helper()
	body := map[string]any{"challenge_token": token, "credential": cred}
	if tenant != "" {
		body["tenant"] = tenant
	}
	return c.Do(t, "POST", "/v1/login/passkey", body)
}

func rawJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil || v == nil {
		t.Fatalf("not JSON: %v", v)
	}
	return b
}

func passkeys(t testing.TB, s *Session) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, p := range asList(s.Do(t, "GET", "/v1/me/passkeys", nil).Expect(t, 200).JSON(t)["passkeys"]) {
		out = append(out, p.(map[string]any))
	}
	return out
}

func passkeyPasswordless(t *testing.T, c *Client) {
	o := c.Signup(t, "Passkey Co")
	a := c.NewAuthenticator(t)
	opts := o.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 200).JSON(t)
	co := opts["options"].(map[string]any)
	host, _ := url.Parse(c.Base)
	if rp := co["rp"].(map[string]any); rp["id"] != host.Hostname() || rp["name"] != "Pommy Edge" {
		t.Errorf("rp %v, want id %s", rp, host.Hostname())
	}
	sel := co["authenticatorSelection"].(map[string]any)
	if sel["residentKey"] != "required" || sel["userVerification"] != "preferred" || co["attestation"] != "none" || len(asList(co["excludeCredentials"])) != 0 {
		t.Errorf("creation options: %v", co)
	}
	cred, _, err := a.Create(rawJSON(t, co))
	if err != nil {
		t.Fatal(err)
	}
	added := o.Do(t, "POST", "/v1/me/passkeys", map[string]any{"challenge_token": opts["challenge_token"], "credential": cred, "name": "Laptop"}).Expect(t, 201).JSON(t)
	if added["name"] != "Laptop" || len(asList(added["recovery_codes"])) != 10 {
		t.Errorf("enrolment: %v", added)
	}
	// The ceremony is spent.
	if code := o.Do(t, "POST", "/v1/me/passkeys", map[string]any{"challenge_token": opts["challenge_token"], "credential": cred, "name": "Again"}).Expect(t, 401).ErrorCode(t); code != "invalid_challenge" {
		t.Errorf("a spent enrolment: %s", code)
	}
	list := passkeys(t, o)
	if len(list) != 1 || list[0]["id"] != added["id"] || list[0]["last_used_at"] != nil || list[0]["backup_eligible"] != false {
		t.Fatalf("passkeys: %v", list)
	}
	if mfa := o.me(t)["mfa"].(map[string]any); mfa["passkeys"] != 1.0 || mfa["recovery_codes_left"] != 10.0 {
		t.Errorf("me.mfa: %v", mfa)
	}
	// The browser is told not to make a second one on the same device.
	opts2 := o.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 200).JSON(t)
	if len(asList(opts2["options"].(map[string]any)["excludeCredentials"])) != 1 {
		t.Errorf("excludeCredentials: %v", opts2["options"])
	}
	if _, _, err := a.Create(rawJSON(t, opts2["options"])); err != webauthntest.ErrExcluded {
		t.Errorf("second enrolment on one device: %v", err)
	}
	// A second passkey (another device) is not the first factor: no codes.
	if second := o.EnrolPasskey(t, c.NewAuthenticator(t), "Phone"); second["recovery_codes"] != nil {
		t.Errorf("second passkey returned recovery codes: %v", second)
	}

	// Passwordless sign-in: discoverable, user verification required.
	tok, ro := c.PasskeyOptions(t)
	var req struct {
		AllowCredentials []any `json:"allowCredentials"`
		UserVerification string
		RPID             string `json:"rpId"`
	}
	json.Unmarshal(ro, &req)
	if len(req.AllowCredentials) != 0 || req.UserVerification != "required" || req.RPID != host.Hostname() {
		t.Errorf("request options: %s", ro)
	}
	got, err := a.Get(ro)
	if err != nil {
		t.Fatal(err)
	}
	r := c.PasskeyLogin(t, tok, got, "").Expect(t, 200)
	s := c.sessionFrom(t, r, o.Email)
	if m := authMethods(s.me(t)); !slices.Equal(m, []string{"passkey"}) {
		t.Errorf("auth_methods %v", m)
	}
	// The same answer again: the challenge is spent.
	if code := c.PasskeyLogin(t, tok, got, "").Expect(t, 401).ErrorCode(t); code != "invalid_challenge" {
		t.Errorf("replayed sign-in: %s", code)
	}
	id := added["id"].(string)
	for _, p := range passkeys(t, s) {
		if (p["last_used_at"] == nil) == (p["id"] == id) {
			t.Errorf("last use: %v", p)
		}
	}
	// Rename; list shows it.
	if got := s.Do(t, "PATCH", "/v1/me/passkeys/"+id, map[string]string{"name": "Work laptop"}).Expect(t, 200).JSON(t)["name"]; got != "Work laptop" {
		t.Errorf("renamed to %v", got)
	}
	ev := s.Do(t, "GET", "/v1/audit/events?action=user.passkey.added", nil).Expect(t, 200)
	if !strings.Contains(string(ev.Body), id) {
		t.Errorf("enrolment not audited: %s", trunc(ev.Body))
	}
	// Delete (the session is fresh: step-up holds); the passkey signs in no more.
	s.Do(t, "DELETE", "/v1/me/passkeys/"+id, nil).Expect(t, 204)
	s.Do(t, "DELETE", "/v1/me/passkeys/"+id, nil).Expect(t, 404)
	tok, ro = c.PasskeyOptions(t)
	got, _ = a.Get(ro)
	if code := c.PasskeyLogin(t, tok, got, "").Expect(t, 401).ErrorCode(t); code != "invalid_credentials" {
		t.Errorf("a removed passkey: %s", code)
	}
}

func passkeySecondFactor(t *testing.T, c *Client) {
	o := c.Signup(t, "Passkey 2FA Co")
	a := c.NewAuthenticator(t)
	o.EnrolPasskey(t, a, "Key")
	tok := c.PasswordStep(t, o.Email)
	// The options before asking: none yet.
	if code := c.SecondStep(t, tok, nil).Expect(t, 400).ErrorCode(t); code != "invalid_answer" {
		t.Errorf("no answer: %s", code)
	}
	opts := c.Do(t, "POST", "/v1/login/mfa/webauthn", map[string]string{"mfa_token": tok}).Expect(t, 200).JSON(t)["options"]
	if n := len(asList(opts.(map[string]any)["allowCredentials"])); n != 1 {
		t.Errorf("allowCredentials: %d", n)
	}
	got, err := a.Get(rawJSON(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Do(t, "POST", "/v1/login/mfa", map[string]any{"mfa_token": tok, "webauthn": got}).Expect(t, 200)
	seen := a.Creds[0].SignCount // the counter the server now holds
	s := c.sessionFrom(t, r, o.Email)
	if m := authMethods(s.me(t)); !slices.Equal(m, []string{"password", "webauthn"}) {
		t.Errorf("auth_methods %v", m)
	}
	// Spent.
	c.Do(t, "POST", "/v1/login/mfa", map[string]any{"mfa_token": tok, "webauthn": got}).Expect(t, 401)

	// A challenge of another person cannot be answered with this passkey.
	other := c.Signup(t, "Other 2FA Co")
	b := c.NewAuthenticator(t)
	other.EnrolPasskey(t, b, "Theirs")
	otok := c.PasswordStep(t, other.Email)
	oopts := c.Do(t, "POST", "/v1/login/mfa/webauthn", map[string]string{"mfa_token": otok}).Expect(t, 200).JSON(t)["options"]
	mine, err := a.GetWith(rawJSON(t, oopts), a.Creds[0])
	if err != nil {
		t.Fatal(err)
	}
	if code := c.Do(t, "POST", "/v1/login/mfa", map[string]any{"mfa_token": otok, "webauthn": mine}).Expect(t, 401).ErrorCode(t); code != "wrong_second_factor" {
		t.Errorf("another person's passkey: %s", code)
	}
	// Their own still works on that challenge (one wrong answer of five).
	theirs, _ := b.Get(rawJSON(t, oopts))
	c.Do(t, "POST", "/v1/login/mfa", map[string]any{"mfa_token": otok, "webauthn": theirs}).Expect(t, 200)

	// A counter that did not move up (a cloned authenticator) is a wrong
	// second factor, and audited.
	tok = c.PasswordStep(t, o.Email)
	opts = c.Do(t, "POST", "/v1/login/mfa/webauthn", map[string]string{"mfa_token": tok}).Expect(t, 200).JSON(t)["options"]
	cloned, _ := a.Get(rawJSON(t, opts), webauthntest.Tweak{SignCount: &seen})
	if code := c.Do(t, "POST", "/v1/login/mfa", map[string]any{"mfa_token": tok, "webauthn": cloned}).Expect(t, 401).ErrorCode(t); code != "wrong_second_factor" {
		t.Errorf("a cloned authenticator as the second factor: %s", code)
	}
	ev := s.Do(t, "GET", "/v1/audit/events?action=user.passkey.clone_suspected", nil).Expect(t, 200)
	if !strings.Contains(string(ev.Body), "clone_suspected") {
		t.Errorf("clone not audited: %s", trunc(ev.Body))
	}
}

func passkeyStepUp(t *testing.T, c *Client) {
	o := c.Signup(t, "Passkey Step-up Co")
	a := c.NewAuthenticator(t)
	o.EnrolPasskey(t, a, "Key")
	opts := o.Do(t, "POST", "/v1/me/reauth/webauthn", map[string]any{}).Expect(t, 200).JSON(t)["options"]
	got, err := a.Get(rawJSON(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	o.Do(t, "POST", "/v1/me/reauth", map[string]any{"webauthn": got}).Expect(t, 204)
	if m := authMethods(o.me(t)); !slices.Contains(m, "webauthn") {
		t.Errorf("auth_methods after a passkey step-up: %v", m)
	}
	// The same answer again is refused: its challenge is spent.
	if code := o.Do(t, "POST", "/v1/me/reauth", map[string]any{"webauthn": got}).Expect(t, 400).ErrorCode(t); code != "webauthn_not_started" {
		t.Errorf("a replayed step-up: %s", code)
	}
	ev := o.Do(t, "GET", "/v1/audit/events?action=auth.reauth", nil).Expect(t, 200)
	if !strings.Contains(string(ev.Body), "webauthn") {
		t.Errorf("step-up not audited: %s", trunc(ev.Body))
	}
	// Someone without a passkey gets no options.
	if code := c.Signup(t, "No Key Co").Do(t, "POST", "/v1/me/reauth/webauthn", map[string]any{}).Expect(t, 409).ErrorCode(t); code != "no_passkeys" {
		t.Errorf("no passkey: %s", code)
	}
}

func passkeyRefused(t *testing.T, c *Client) {
	o := c.Signup(t, "Refusals Co")
	a := c.NewAuthenticator(t)
	id := o.EnrolPasskey(t, a, "Key")["id"].(string)
	host, _ := url.Parse(c.Base)
	before := passkeys(t, o)[0]
	refuse := func(name string, tw webauthntest.Tweak, wantCode string) {
		t.Helper()
		tok, ro := c.PasskeyOptions(t)
		saved := a.Creds[0].SignCount
		got, err := a.Get(ro, tw)
		if err != nil {
			t.Fatal(err)
		}
		a.Creds[0].SignCount = saved // the server never saw it
		r := c.PasskeyLogin(t, tok, got, "").Expect(t, 401)
		if code := r.ErrorCode(t); code != wantCode {
			t.Errorf("%s: %s, want %s", name, code, wantCode)
		}
		if tk, _ := cookieToken(r); tk != "" {
			t.Errorf("%s: a session cookie was set", name)
		}
	}
	refuse("another origin", webauthntest.Tweak{Origin: "http://evil.example"}, "invalid_credentials")
	refuse("another RP ID", webauthntest.Tweak{RPID: "evil.example"}, "invalid_credentials")
	refuse("a create answer", webauthntest.Tweak{Type: "webauthn.create"}, "invalid_credentials")
	refuse("another challenge", webauthntest.Tweak{Challenge: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "invalid_credentials")
	refuse("no user verification", webauthntest.Tweak{NoUV: true}, "invalid_credentials")
	refuse("no user presence", webauthntest.Tweak{NoUP: true}, "invalid_credentials")
	refuse("a bad signature", webauthntest.Tweak{BadSignature: true}, "invalid_credentials")
	refuse("another user handle", webauthntest.Tweak{UserHandle: []byte("u_someoneelse")}, "invalid_credentials")
	// Nothing above moved the counter or the last use.
	if after := passkeys(t, o)[0]; after["last_used_at"] != before["last_used_at"] {
		t.Errorf("a refused answer changed the passkey: %v", after)
	}
	// A counter that did not move up: a cloned authenticator. Refused and audited.
	tok, ro := c.PasskeyOptions(t)
	good, _ := a.Get(ro)
	s := c.sessionFrom(t, c.PasskeyLogin(t, tok, good, "").Expect(t, 200), o.Email)
	same := a.Creds[0].SignCount
	tok, ro = c.PasskeyOptions(t)
	cloned, _ := a.Get(ro, webauthntest.Tweak{SignCount: &same})
	c.PasskeyLogin(t, tok, cloned, "").Expect(t, 401)
	ev := s.Do(t, "GET", "/v1/audit/events?action=user.passkey.clone_suspected", nil).Expect(t, 200)
	if !strings.Contains(string(ev.Body), id) {
		t.Errorf("clone not audited: %s", trunc(ev.Body))
	}
	// The real authenticator goes on.
	tok, ro = c.PasskeyOptions(t)
	good, _ = a.Get(ro)
	c.PasskeyLogin(t, tok, good, "").Expect(t, 200)

	// Another organization, where the person is not a member: no session.
	other := c.Signup(t, "Not Theirs Co")
	tok, ro = c.PasskeyOptions(t)
	got, _ := a.Get(ro)
	if code := c.PasskeyLogin(t, tok, got, other.Tenant).Expect(t, 403).ErrorCode(t); code != "no_membership" {
		t.Errorf("another tenant: %s", code)
	}
	// An unknown passkey: the same answer as any refusal.
	stranger := webauthntest.New(c.Origin(t))
	stranger.Creds = append(stranger.Creds, &webauthntest.Credential{ID: []byte("not-a-known-credential-id"), Key: a.Creds[0].Key, RPID: host.Hostname(), UserHandle: []byte(o.UserID)})
	tok, ro = c.PasskeyOptions(t)
	got, _ = stranger.Get(ro)
	if code := c.PasskeyLogin(t, tok, got, "").Expect(t, 401).ErrorCode(t); code != "invalid_credentials" {
		t.Errorf("unknown passkey: %s", code)
	}
	// An enrolment ceremony belongs to the person who began it.
	opts := o.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 200).JSON(t)
	cred, _, _ := c.NewAuthenticator(t).Create(rawJSON(t, opts["options"]))
	if code := other.Do(t, "POST", "/v1/me/passkeys", map[string]any{"challenge_token": opts["challenge_token"], "credential": cred}).Expect(t, 401).ErrorCode(t); code != "invalid_challenge" {
		t.Errorf("another person's enrolment: %s", code)
	}
	// Attestation other than "none", and another origin, at enrolment.
	for _, tw := range []webauthntest.Tweak{{Fmt: "packed"}, {Origin: "http://evil.example"}, {RPID: "evil.example"}} {
		opts := o.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 200).JSON(t)
		cred, _, _ := c.NewAuthenticator(t).Create(rawJSON(t, opts["options"]), tw)
		if code := o.Do(t, "POST", "/v1/me/passkeys", map[string]any{"challenge_token": opts["challenge_token"], "credential": cred}).Expect(t, 401).ErrorCode(t); code != "webauthn_failed" {
			t.Errorf("enrolment %+v: %s", tw, code)
		}
	}
	if n := len(passkeys(t, o)); n != 1 {
		t.Errorf("%d passkeys after refused enrolments", n)
	}
}

func passkeyPolicy(t *testing.T, c *Client) {
	o := c.Signup(t, "Passkey Policy Co")
	a := c.NewAuthenticator(t)
	id := o.EnrolPasskey(t, a, "Only")["id"].(string)
	o.Do(t, "PATCH", "/v1/settings", map[string]string{"mfa_required": "admins"}).Expect(t, 200)
	// A passkey is the owner's only factor: it stays.
	if code := o.Do(t, "DELETE", "/v1/me/passkeys/"+id, nil).Expect(t, 409).ErrorCode(t); code != "mfa_required_by_policy" {
		t.Errorf("removing the last factor: %s", code)
	}
	// A passwordless sign-in satisfies the policy.
	tok, ro := c.PasskeyOptions(t)
	got, _ := a.Get(ro)
	r := c.PasskeyLogin(t, tok, got, "").Expect(t, 200)
	if r.JSON(t)["mfa_enrolment_required"] != false {
		t.Errorf("passkey sign-in under the policy: %s", trunc(r.Body))
	}
	c.sessionFrom(t, r, o.Email).Do(t, "GET", "/v1/members", nil).Expect(t, 200)
	// An admin held back by the policy can enrol a passkey, which lets them in.
	admin := o.Invite(t, "admin")
	admin.Do(t, "GET", "/v1/members", nil).Expect(t, 403)
	admin.EnrolPasskey(t, c.NewAuthenticator(t), "Admin key")
	admin.Do(t, "GET", "/v1/members", nil).Expect(t, 200)

	// At most 20 passkeys.
	x := c.Signup(t, "Many Keys Co")
	for i := range 20 {
		x.EnrolPasskey(t, c.NewAuthenticator(t), "Key "+string(rune('A'+i)))
	}
	if code := x.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 409).ErrorCode(t); code != "too_many_passkeys" {
		t.Errorf("the 21st passkey: %s", code)
	}
}

func passkeyBadInput(t *testing.T, c *Client) {
	o := c.Signup(t, "Passkey Input Co")
	a := c.NewAuthenticator(t)
	id := o.EnrolPasskey(t, a, "Key")["id"].(string)
	opts := o.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 200).JSON(t)
	tok := opts["challenge_token"]
	cred, _, _ := c.NewAuthenticator(t).Create(rawJSON(t, opts["options"]))
	var m map[string]any
	json.Unmarshal(cred, &m)
	m["extra"] = true
	for _, body := range []any{
		map[string]any{"challenge_token": tok, "credential": "not an object"},
		map[string]any{"challenge_token": tok, "credential": map[string]any{"type": "public-key"}},
		map[string]any{"challenge_token": tok, "credential": m},
		map[string]any{"challenge_token": tok, "credential": cred, "name": strings.Repeat("n", 65)},
		map[string]any{"challenge_token": tok, "credential": cred, "unknown": 1},
	} {
		o.Do(t, "POST", "/v1/me/passkeys", body).Expect(t, 400)
	}
	// None of that spent the ceremony.
	o.Do(t, "POST", "/v1/me/passkeys", map[string]any{"challenge_token": tok, "credential": cred, "name": strings.Repeat("n", 64)}).Expect(t, 201)
	o.Do(t, "PATCH", "/v1/me/passkeys/"+id, map[string]string{"name": ""}).Expect(t, 400)
	o.Do(t, "PATCH", "/v1/me/passkeys/"+id, map[string]string{"name": strings.Repeat("n", 65)}).Expect(t, 400)
	o.Do(t, "PATCH", "/v1/me/passkeys/pk_nope", map[string]string{"name": "x"}).Expect(t, 404)
	ptok, _ := c.PasskeyOptions(t)
	for _, body := range []any{
		map[string]any{"challenge_token": ptok},
		map[string]any{"challenge_token": ptok, "credential": map[string]any{}},
		map[string]any{"challenge_token": ptok, "credential": cred}, // a registration where an assertion belongs
		map[string]any{"challenge_token": ptok, "credential": json.RawMessage(`{"id":"` + strings.Repeat("A", 60000) + `"}`)},
		map[string]any{"challenge_token": ptok, "credential": cred, "tenant": "acme"},
	} {
		r := c.Do(t, "POST", "/v1/login/passkey", body)
		if r.Status != 400 && r.Status != 413 {
			t.Errorf("bad passkey sign-in: %d %s", r.Status, trunc(r.Body))
		}
	}
	c.Do(t, "POST", "/v1/login/passkey/options", map[string]any{"x": 1}).Expect(t, 400)
	c.Do(t, "POST", "/v1/login/passkey", map[string]any{"challenge_token": "nope", "credential": cred}).Expect(t, 401)
}

// passkeyHolder is a new member of tn with role and a passkey on a.
func passkeyHolder(t testing.TB, m *matrix, tn *mxTenant, role string) (*Session, *webauthntest.Authenticator, string) {
	s := tn.owner.Invite(t, role)
	a := m.c.NewAuthenticator(t)
	return s, a, s.EnrolPasskey(t, a, "matrix")["id"].(string)
}

// The cross-tenant matrix's recipes for the passkey routes. Enrolling
// happens on new members (a fixture principal with a passkey could no
// longer sign in with its password alone); a person's own passkey routes
// name no tenant's objects but the person's, so another tenant's passkey id
// is 404.
func init() {
	self := []string{"key"}
	mxRecipes["POST /v1/login/passkey/options"] = mxRecipe{ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/login/passkey/options", body: map[string]any{}}
	}}
	mxRecipes["POST /v1/login/passkey"] = mxRecipe{ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		_, a, _ := passkeyHolder(t, m, x.own, "agent")
		tok, ro := m.c.PasskeyOptions(t)
		got, err := a.Get(ro)
		if err != nil {
			t.Fatal(err)
		}
		return mxCall{path: "/v1/login/passkey", as: m.fresh(t, x.p), body: map[string]any{"challenge_token": tok, "credential": got},
			after: func(t testing.TB, r *Response) {
				if got := r.JSON(t)["tenant"].(map[string]any)["id"]; got != x.own.id {
					t.Errorf("signed in to tenant %v, want %s", got, x.own.id)
				}
			}}
	}}
	mxRecipes["POST /v1/login/mfa/webauthn"] = mxRecipe{ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		s, _, _ := passkeyHolder(t, m, x.own, "agent")
		return mxCall{path: "/v1/login/mfa/webauthn", body: map[string]string{"mfa_token": m.c.PasswordStep(t, s.Email)}}
	}}
	mxRecipes["POST /v1/me/reauth/webauthn"] = mxRecipe{never: self, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/me/reauth/webauthn", body: map[string]any{}}
		if x.allowed && x.p.sess != nil {
			c.as, _, _ = passkeyHolder(t, m, x.own, x.p.role)
		}
		return c
	}}
	mxRecipes["POST /v1/me/passkeys/options"] = mxRecipe{never: self, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/me/passkeys/options", body: map[string]any{}, as: m.fresh(t, x.p)}
	}}
	mxRecipes["POST /v1/me/passkeys"] = mxRecipe{never: self, ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/me/passkeys", body: map[string]any{"challenge_token": "none", "credential": map[string]any{}}}
		if x.allowed && x.p.sess != nil {
			s := x.own.owner.Invite(t, x.p.role)
			o := s.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 200).JSON(t)
			cred, _, err := m.c.NewAuthenticator(t).Create(rawJSON(t, o["options"]))
			if err != nil {
				t.Fatal(err)
			}
			c.as, c.body = s, map[string]any{"challenge_token": o["challenge_token"], "credential": cred, "name": "matrix"}
		}
		return c
	}}
	mxRecipes["GET /v1/me/passkeys"] = mxRecipe{never: self, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/me/passkeys"}
	}}
	mxRecipes["PATCH /v1/me/passkeys/{id}"] = mxRecipe{never: self, ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{body: map[string]string{"name": "renamed by the matrix"}}
		c.path = "/v1/me/passkeys/" + idOr(x, func() string {
			var id string
			c.as, _, id = passkeyHolder(t, m, x.own, x.p.role)
			return id
		}, x.target.passkey)
		return c
	}}
	mxRecipes["DELETE /v1/me/passkeys/{id}"] = mxRecipe{never: self, ids: true, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		var c mxCall
		c.path = "/v1/me/passkeys/" + idOr(x, func() string {
			var id string
			c.as, _, id = passkeyHolder(t, m, x.own, x.p.role)
			return id
		}, x.target.passkey)
		return c
	}}
}

// A passwordless sign-in picks the organization as a password sign-in
// does: one of several is named (409 tenant_required lists them, and the
// same answer may be sent again with tenant), and a disabled membership
// signs no one in.
func passkeyMemberships(t *testing.T, c *Client) {
	o := c.Signup(t, "First Org")
	a := c.NewAuthenticator(t)
	o.EnrolPasskey(t, a, "Key")
	other := c.Signup(t, "Second Org")
	inv := other.Do(t, "POST", "/v1/invitations", map[string]string{"email": o.Email, "role": "agent"}).Expect(t, 201).JSON(t)
	c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": inv["token"].(string), "password": Password}).Expect(t, 201)

	tok, ro := c.PasskeyOptions(t)
	got, _ := a.Get(ro)
	r := c.PasskeyLogin(t, tok, got, "").Expect(t, 409)
	if r.ErrorCode(t) != "tenant_required" || len(asList(r.JSON(t)["tenants"])) != 2 {
		t.Fatalf("two organizations: %s", trunc(r.Body))
	}
	if tk, _ := cookieToken(r); tk != "" {
		t.Error("tenant_required set a session cookie")
	}
	r = c.PasskeyLogin(t, tok, got, other.Tenant).Expect(t, 200)
	if r.JSON(t)["tenant"].(map[string]any)["id"] != other.Tenant {
		t.Errorf("signed in to %s", trunc(r.Body))
	}
	// Spent now.
	c.PasskeyLogin(t, tok, got, o.Tenant).Expect(t, 401)

	// Disabled in the second organization: no sign-in there.
	other.Do(t, "PATCH", "/v1/members/"+o.UserID, map[string]string{"status": "disabled"}).Expect(t, 200)
	tok, ro = c.PasskeyOptions(t)
	got, _ = a.Get(ro)
	if code := c.PasskeyLogin(t, tok, got, other.Tenant).Expect(t, 403).ErrorCode(t); code != "no_membership" {
		t.Errorf("a disabled membership: %s", code)
	}
	// The first organization still lets them in, with the same answer.
	c.PasskeyLogin(t, tok, got, o.Tenant).Expect(t, 200)
}
