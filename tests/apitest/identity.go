package apitest

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runIdentity runs the identity and access scenarios: sessions, RBAC,
// CSRF, throttling and API keys. Timeouts, which need a clock the test
// controls, are in tests/native.
func runIdentity(t *testing.T, c *Client) {
	t.Run("SessionCookie", func(t *testing.T) { sessionCookie(t, c) })
	t.Run("SessionRevocation", func(t *testing.T) { sessionRevocation(t, c) })
	t.Run("DisableEndsSessions", func(t *testing.T) { disableEndsSessions(t, c) })
	t.Run("PasswordChangeEndsSessions", func(t *testing.T) { passwordChange(t, c) })
	t.Run("RBAC", func(t *testing.T) { rbac(t, c) })
	t.Run("LastOwner", func(t *testing.T) { lastOwner(t, c) })
	t.Run("CSRF", func(t *testing.T) { csrf(t, c) })
	t.Run("LoginThrottle", func(t *testing.T) { loginThrottle(t, c) })
	t.Run("SignupIsThrottled", func(t *testing.T) { signupThrottle(t, c) })
	t.Run("SharedAddress", func(t *testing.T) { sharedAddress(t, c) })
	t.Run("APIKeys", func(t *testing.T) { apiKeys(t, c) })
	t.Run("KeyRateLimit", func(t *testing.T) { keyRateLimit(t, c) })
	t.Run("Settings", func(t *testing.T) { settingsBounds(t, c) })
	t.Run("MailLog", func(t *testing.T) { mailLog(t, c) })
}

func sessionCookie(t *testing.T, c *Client) {
	email := randomEmail()
	r := c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "Cookie Co", "email": email, "password": Password}).Expect(t, 201)
	tok, ck := cookieToken(r)
	if ck == nil {
		t.Fatalf("no %s cookie: %v", SessionCookie, r.Header.Values("Set-Cookie"))
	}
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("cookie attributes: %+v (want HttpOnly, Secure, SameSite=Strict, Path=/, no Domain)", ck)
	}
	if len(tok) < 22 { // 128 bits in base64
		t.Errorf("token %d chars: too short for 128 random bits", len(tok))
	}
	// A new token at every login; the cookie sent to login is ended.
	r2 := c.Login(t, email, Password, "Cookie", SessionCookie+"="+tok).Expect(t, 200)
	tok2, _ := cookieToken(r2)
	if tok2 == "" || tok2 == tok {
		t.Fatalf("login did not issue a new token")
	}
	old := &Session{c: c, Token: tok}
	if code := old.Do(t, "GET", "/v1/me", nil).Expect(t, 401).ErrorCode(t); code != "invalid_session" {
		t.Errorf("replaced session: code %s", code)
	}
	cur := &Session{c: c, Token: tok2}
	me := cur.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)
	if u := me["user"].(map[string]any); u["role"] != "owner" || u["email"] != email {
		t.Errorf("me: %v", me)
	}
	// Garbage and unknown tokens.
	for _, bad := range []string{"x", strings.Repeat("A", 43), tok + "A"} {
		(&Session{c: c, Token: bad}).Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	}
	// Logout ends it at once.
	cur.Do(t, "POST", "/v1/logout", nil).Expect(t, 204)
	cur.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
}

func sessionRevocation(t *testing.T, c *Client) {
	o := c.Signup(t, "Sessions Co")
	s2 := c.LoginSession(t, o.Email, "User-Agent", "second-device/1.0")
	s3 := c.LoginSession(t, o.Email)
	list := o.Do(t, "GET", "/v1/sessions", nil).Expect(t, 200).JSON(t)["sessions"].([]any)
	if len(list) != 3 {
		t.Fatalf("sessions: %v", list)
	}
	var s2id string
	current := 0
	for _, x := range list {
		m := x.(map[string]any)
		if m["current"] == true {
			current++
		}
		if m["user_agent"] == "second-device/1.0" {
			s2id = m["id"].(string)
		}
		for _, f := range []string{"id", "created_at", "last_seen_at", "ip", "user_agent"} {
			if _, ok := m[f]; !ok {
				t.Errorf("session lacks %s: %v", f, m)
			}
		}
	}
	if current != 1 || s2id == "" {
		t.Fatalf("current=%d s2=%q in %v", current, s2id, list)
	}
	// End one: refused on its very next request.
	o.Do(t, "DELETE", "/v1/sessions/"+s2id, nil).Expect(t, 204)
	s2.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	s3.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	// End all others.
	if n := o.Do(t, "POST", "/v1/sessions/end-others", nil).Expect(t, 200).JSON(t)["ended"]; n != float64(1) {
		t.Errorf("ended %v, want 1", n)
	}
	s3.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	// Another person's session id is not found.
	other := c.Signup(t, "Other Co")
	otherID := other.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)["session"].(map[string]any)["id"].(string)
	o.Do(t, "DELETE", "/v1/sessions/"+otherID, nil).Expect(t, 404)
	other.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
}

func disableEndsSessions(t *testing.T, c *Client) {
	o := c.Signup(t, "Disable Co")
	ag := o.Invite(t, "agent")
	ag2 := c.LoginSession(t, ag.Email)
	ag.Do(t, "GET", "/v1/conversations", nil).Expect(t, 200)
	o.Do(t, "PATCH", "/v1/members/"+ag.UserID, map[string]string{"status": "disabled"}).Expect(t, 200)
	ag.Do(t, "GET", "/v1/conversations", nil).Expect(t, 401)
	ag2.Do(t, "GET", "/v1/conversations", nil).Expect(t, 401)
	c.Login(t, ag.Email, Password).Expect(t, 403)
	o.Do(t, "PATCH", "/v1/members/"+ag.UserID, map[string]string{"status": "active"}).Expect(t, 200)
	ag3 := c.LoginSession(t, ag.Email)
	ag3.Do(t, "GET", "/v1/conversations", nil).Expect(t, 200)
	ag.Do(t, "GET", "/v1/conversations", nil).Expect(t, 401) // ended sessions stay ended
	// Removal ends them too.
	o.Do(t, "DELETE", "/v1/members/"+ag.UserID, nil).Expect(t, 204)
	ag3.Do(t, "GET", "/v1/conversations", nil).Expect(t, 401)
	// A role change is a privilege change: the member signs in again.
	ad := o.Invite(t, "agent")
	o.Do(t, "PATCH", "/v1/members/"+ad.UserID, map[string]string{"role": "admin"}).Expect(t, 200)
	ad.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	ad = c.LoginSession(t, ad.Email)
	if role := ad.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)["user"].(map[string]any)["role"]; role != "admin" {
		t.Errorf("role %v", role)
	}
}

func passwordChange(t *testing.T, c *Client) {
	o := c.Signup(t, "Password Co")
	other := c.LoginSession(t, o.Email)
	o.Do(t, "POST", "/v1/me/password", map[string]string{"current_password": "wrong wrong wrong", "new_password": "a new long passphrase"}).Expect(t, 403)
	o.Do(t, "POST", "/v1/me/password", map[string]string{"current_password": Password, "new_password": "password1"}).Expect(t, 400)
	r := o.Do(t, "POST", "/v1/me/password", map[string]string{"current_password": Password, "new_password": "a new long passphrase"}).Expect(t, 204)
	other.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	// This session got a new token; the old one is dead.
	tok, _ := cookieToken(r)
	if tok == "" || tok == o.Token {
		t.Fatal("password change did not rotate the session token")
	}
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	o.Token = tok
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	c.Login(t, o.Email, Password).Expect(t, 401)
	c.Login(t, o.Email, "a new long passphrase").Expect(t, 200)
}

func rbac(t *testing.T, c *Client) {
	o := c.Signup(t, "RBAC Co")
	ad := o.Invite(t, "admin")
	ag := o.Invite(t, "agent")
	// An agent works conversations but cannot change settings, people or keys.
	ag.Do(t, "POST", "/v1/contacts", map[string]string{"name": "agent's contact"}).Expect(t, 201)
	ag.Do(t, "POST", "/v1/canned-responses", map[string]string{"code": "agent", "text": "agent's reply"}).Expect(t, 201)
	ag.Do(t, "GET", "/v1/members", nil).Expect(t, 200)
	for _, p := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/invitations", map[string]string{"email": randomEmail(), "role": "agent"}},
		{"GET", "/v1/invitations", nil},
		{"PATCH", "/v1/members/" + ad.UserID, map[string]string{"role": "agent"}},
		{"DELETE", "/v1/members/" + ad.UserID, nil},
		{"PATCH", "/v1/settings", map[string]string{"name": "Taken Over"}},
		{"GET", "/v1/api-keys", nil},
		{"POST", "/v1/api-keys", map[string]any{"name": "x", "scopes": []string{"conversations:read"}}},
		{"DELETE", "/v1/tenant", nil},
		{"POST", "/v1/ownership/transfer", map[string]string{"user_id": ag.UserID}},
		{"GET", "/v1/audit/events", nil},
	} {
		if code := ag.Do(t, p.method, p.path, p.body).Expect(t, 403).ErrorCode(t); code != "forbidden" {
			t.Errorf("agent %s %s: code %s", p.method, p.path, code)
		}
	}
	// An admin manages people, settings and keys, but cannot delete the
	// tenant, transfer ownership, or grant or touch the owner role.
	ad.Do(t, "PATCH", "/v1/settings", map[string]string{"name": "RBAC Co 2"}).Expect(t, 200)
	ad.NewKey(t, "conversations:read")
	ad.Do(t, "POST", "/v1/invitations", map[string]string{"email": randomEmail(), "role": "agent"}).Expect(t, 201)
	ad.Do(t, "DELETE", "/v1/tenant", nil).Expect(t, 403)
	ad.Do(t, "POST", "/v1/ownership/transfer", map[string]string{"user_id": ad.UserID}).Expect(t, 403)
	ad.Do(t, "POST", "/v1/invitations", map[string]string{"email": randomEmail(), "role": "owner"}).Expect(t, 403)
	ad.Do(t, "PATCH", "/v1/members/"+ag.UserID, map[string]string{"role": "owner"}).Expect(t, 403)
	ad.Do(t, "PATCH", "/v1/members/"+o.UserID, map[string]string{"status": "disabled"}).Expect(t, 403)
	ad.Do(t, "DELETE", "/v1/members/"+o.UserID, nil).Expect(t, 403)
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	// Validation.
	o.Do(t, "PATCH", "/v1/members/"+ag.UserID, map[string]string{"role": "god"}).Expect(t, 400)
	o.Do(t, "PATCH", "/v1/members/u_nope", map[string]string{"role": "admin"}).Expect(t, 404)
	// Another tenant's member ids are not found.
	x := c.Signup(t, "Elsewhere Co")
	x.Do(t, "PATCH", "/v1/members/"+ag.UserID, map[string]string{"role": "admin"}).Expect(t, 404)
	x.Do(t, "DELETE", "/v1/members/"+ag.UserID, nil).Expect(t, 404)
	ag.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
}

func lastOwner(t *testing.T, c *Client) {
	o := c.Signup(t, "Owner Co")
	if code := o.Do(t, "PATCH", "/v1/members/"+o.UserID, map[string]string{"role": "admin"}).Expect(t, 409).ErrorCode(t); code != "last_owner" {
		t.Errorf("demote: %s", code)
	}
	o.Do(t, "PATCH", "/v1/members/"+o.UserID, map[string]string{"status": "disabled"}).Expect(t, 409)
	o.Do(t, "DELETE", "/v1/members/"+o.UserID, nil).Expect(t, 409)
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	// Transfer: the other becomes owner, the caller admin with a new token.
	ad := o.Invite(t, "admin")
	r := o.Do(t, "POST", "/v1/ownership/transfer", map[string]string{"user_id": ad.UserID}).Expect(t, 200)
	tok, _ := cookieToken(r)
	if tok == "" || tok == o.Token {
		t.Fatal("transfer did not rotate the caller's session")
	}
	o.Token = tok
	if role := o.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)["user"].(map[string]any)["role"]; role != "admin" {
		t.Errorf("old owner's role %v", role)
	}
	ad.Do(t, "GET", "/v1/me", nil).Expect(t, 401) // privilege change: sign in again
	nw := c.LoginSession(t, ad.Email)
	nw.Do(t, "PATCH", "/v1/members/"+nw.UserID, map[string]string{"role": "agent"}).Expect(t, 409)
	// With two owners, one may step down.
	nw.Do(t, "PATCH", "/v1/members/"+o.UserID, map[string]string{"role": "owner"}).Expect(t, 200)
	nw.Do(t, "PATCH", "/v1/members/"+nw.UserID, map[string]string{"role": "admin"}).Expect(t, 200)
}

func csrf(t *testing.T, c *Client) {
	o := c.Signup(t, "CSRF Co")
	ck := []string{"Cookie", SessionCookie + "=" + o.Token}
	contact := map[string]string{"name": "csrf"}
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
		nil, // neither header: refused
	} {
		r := c.Do(t, "POST", "/v1/contacts", contact, append(append([]string{}, ck...), h...)...)
		if r.Status != 403 {
			t.Errorf("cookie POST with %v: status %d, want 403", h, r.Status)
		}
	}
	// Same-origin by Origin alone.
	c.Do(t, "POST", "/v1/contacts", contact, append(append([]string{}, ck...), "Origin", c.Base)...).Expect(t, 201)
	// GET needs no origin check and changes nothing.
	if l := c.Do(t, "GET", "/v1/contacts", nil, ck...).Expect(t, 200).JSON(t)["contacts"].([]any); len(l) != 1 {
		t.Errorf("refused cookie POSTs made contacts: %v", l)
	}
	// An API key carries no ambient credential: no origin check.
	key := o.NewKey(t, "contacts:write")
	c.Do(t, "POST", "/v1/contacts", contact, append(bearer(key), "Origin", "https://evil.example")...).Expect(t, 201)
	// Login CSRF: a cross-site browser login is refused.
	c.Do(t, "POST", "/v1/login", map[string]string{"email": o.Email, "password": Password}, "Sec-Fetch-Site", "cross-site").Expect(t, 403)
}

func loginThrottle(t *testing.T, c *Client) {
	o := c.Signup(t, "Throttle Co")
	userIP := []string{"X-Pommy-Test-Client-IP", "198.51.100.7"}
	attacker := []string{"X-Pommy-Test-Client-IP", "203.0.113.66"}
	c.LoginSession(t, o.Email, userIP...) // the real user's usual address
	var last *Response
	for i := 0; i < 8; i++ {
		last = c.Login(t, o.Email, "not the password "+strconv.Itoa(i), attacker...)
		if last.Status == 429 {
			break
		}
		last.Expect(t, 401)
	}
	if last.Status != 429 {
		t.Fatalf("no 429 after repeated failures: %d", last.Status)
	}
	if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	if code := last.ErrorCode(t); code != "too_many_attempts" {
		t.Errorf("code %s", code)
	}
	// Even the right password is refused from the attacker's address ...
	c.Login(t, o.Email, Password, attacker...).Expect(t, 429)
	// ... but the real user, from their address, is not locked out.
	c.Login(t, o.Email, Password, userIP...).Expect(t, 200)
	// Unknown accounts fail the same way as wrong passwords.
	if code := c.Login(t, randomEmail(), Password).Expect(t, 401).ErrorCode(t); code != "invalid_credentials" {
		t.Errorf("unknown account: %s", code)
	}
}

func apiKeys(t *testing.T, c *Client) {
	o := c.Signup(t, "Keys Co")
	ro := o.NewKey(t, "conversations:read")
	rw := o.NewKey(t, "conversations:write", "conversations:read")
	canned := map[string]string{"code": "k", "text": "a reply"}
	id := c.Do(t, "POST", "/v1/canned-responses", canned, bearer(rw)...).Expect(t, 201).JSON(t)["id"].(string)
	c.Do(t, "GET", "/v1/canned-responses/"+id, nil, bearer(ro)...).Expect(t, 200)
	if code := c.Do(t, "POST", "/v1/canned-responses", canned, bearer(ro)...).Expect(t, 403).ErrorCode(t); code != "insufficient_scope" {
		t.Errorf("code %s", code)
	}
	if code := c.Do(t, "GET", "/v1/members", nil, bearer(ro)...).Expect(t, 403).ErrorCode(t); code != "insufficient_scope" {
		t.Errorf("code %s", code)
	}
	// Keys never manage keys, sessions or people's roles.
	for _, p := range [][2]string{{"GET", "/v1/api-keys"}, {"GET", "/v1/sessions"}, {"GET", "/v1/me"}} {
		if code := c.Do(t, p[0], p[1], nil, bearer(rw)...).Expect(t, 403).ErrorCode(t); code != "session_required" {
			t.Errorf("%v: code %s", p, code)
		}
	}
	// The list shows prefix, scopes and use, never the key.
	r := o.Do(t, "GET", "/v1/api-keys", nil).Expect(t, 200)
	if strings.Contains(string(r.Body), ro) {
		t.Fatal("key listed in clear")
	}
	var roID string
	for _, x := range r.JSON(t)["api_keys"].([]any) {
		m := x.(map[string]any)
		if strings.HasPrefix(ro, m["prefix"].(string)) && m["scopes"].([]any)[0] == "conversations:read" && len(m["scopes"].([]any)) == 1 {
			roID = m["id"].(string)
			if m["last_used_at"] == nil {
				t.Errorf("last_used_at not set after use: %v", m)
			}
		}
	}
	if roID == "" {
		t.Fatalf("key not listed: %s", r.Body)
	}
	// Revoked: refused at once.
	o.Do(t, "DELETE", "/v1/api-keys/"+roID, nil).Expect(t, 204)
	c.Do(t, "GET", "/v1/canned-responses/"+id, nil, bearer(ro)...).Expect(t, 401)
	o.Do(t, "DELETE", "/v1/api-keys/"+roID, nil).Expect(t, 404)
	// Validation.
	for _, body := range []map[string]any{
		{"name": "x", "scopes": []string{"conversations:admin"}},
		{"name": "x", "scopes": []string{}},
		{"name": "", "scopes": []string{"conversations:read"}},
		{"name": "x", "scopes": []string{"conversations:read"}, "expires_at": "2001-01-01T00:00:00Z"},
		{"name": "x", "scopes": []string{"conversations:read"}, "expires_at": "tomorrow"},
		{"name": "x", "scopes": []string{"conversations:read"}, "rate_limit_per_minute": 0},
		// The retired notes resource (docs/decisions.md, "Notes retired").
		{"name": "x", "scopes": []string{"notes:read"}},
		{"name": "x", "scopes": []string{"conversations:read", "notes:write"}},
	} {
		o.Do(t, "POST", "/v1/api-keys", body).Expect(t, 400)
	}
	exp := o.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "x", "scopes": []string{"conversations:read"},
		"expires_at": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)}).Expect(t, 201).JSON(t)
	if exp["expires_at"] == nil {
		t.Errorf("expiry not echoed: %v", exp)
	}
	// Another tenant cannot revoke this tenant's key.
	x := c.Signup(t, "Other Keys Co")
	var rwID string
	for _, k := range o.Do(t, "GET", "/v1/api-keys", nil).Expect(t, 200).JSON(t)["api_keys"].([]any) {
		if m := k.(map[string]any); strings.HasPrefix(rw, m["prefix"].(string)) {
			rwID = m["id"].(string)
		}
	}
	x.Do(t, "DELETE", "/v1/api-keys/"+rwID, nil).Expect(t, 404)
	c.Do(t, "GET", "/v1/canned-responses", nil, bearer(rw)...).Expect(t, 200)
}

func keyRateLimit(t *testing.T, c *Client) {
	o := c.Signup(t, "Limits Co")
	m := o.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "slow", "scopes": []string{"conversations:read"}, "rate_limit_per_minute": 3}).Expect(t, 201).JSON(t)
	key := m["key"].(string)
	other := o.NewKey(t, "conversations:read")
	var r *Response
	for i := 0; i < 6; i++ {
		if r = c.Do(t, "GET", "/v1/canned-responses", nil, bearer(key)...); r.Status == 429 {
			break
		}
		r.Expect(t, 200)
	}
	if r.Status != 429 {
		t.Fatalf("no 429 past the key's limit")
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Each key has its own limit.
	c.Do(t, "GET", "/v1/canned-responses", nil, bearer(other)...).Expect(t, 200)
}

func settingsBounds(t *testing.T, c *Client) {
	o := c.Signup(t, "Settings Co")
	st := o.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t)
	if st["session_idle_minutes"] != float64(30) || st["session_absolute_minutes"] != float64(720) {
		t.Errorf("defaults: %v", st)
	}
	for _, bad := range []map[string]any{
		{"session_idle_minutes": 4}, {"session_idle_minutes": 121},
		{"session_absolute_minutes": 59}, {"session_absolute_minutes": 1441},
		{"name": ""}, {"colour": "red"},
		{"rate_limit_per_minute": 0}, {"rate_limit_per_minute": 599}, {"rate_limit_per_minute": 1000},
		{"rate_limit_per_minute": 60600}, {"rate_limit_per_minute": -600},
	} {
		o.Do(t, "PATCH", "/v1/settings", bad).Expect(t, 400)
	}
	if st["rate_limit_per_minute"] != float64(6000) {
		t.Errorf("default rate_limit_per_minute %v", st["rate_limit_per_minute"])
	}
	o.Do(t, "PATCH", "/v1/settings", map[string]any{"rate_limit_per_minute": 60000}).Expect(t, 200)
	o.Invite(t, "agent").Do(t, "PATCH", "/v1/settings", map[string]any{"rate_limit_per_minute": 600}).Expect(t, 403)
	if got := o.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t)["rate_limit_per_minute"]; got != float64(60000) {
		t.Errorf("rate_limit_per_minute %v after the agent's attempt, want 60000", got)
	}
	o.Do(t, "PATCH", "/v1/settings", map[string]any{"session_idle_minutes": 10, "session_absolute_minutes": 60}).Expect(t, 200)
}

// signupThrottle: sign-up with the email of an existing account checks its
// password under the same throttles as a sign-in, so it is no way round
// them.
func signupThrottle(t *testing.T, c *Client) {
	o := c.Signup(t, "Oracle Co")
	attacker := []string{TestClientIP, "203.0.113.90"}
	var last *Response
	for i := 0; i < 8; i++ {
		last = c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "Guess " + strconv.Itoa(i), "email": o.Email,
			"password": "guess number " + strconv.Itoa(i)}, attacker...)
		if last.Status == 429 {
			break
		}
		if code := last.Expect(t, 409).ErrorCode(t); code != "email_in_use" {
			t.Fatalf("wrong password at sign-up: %s", code)
		}
	}
	if last.Status != 429 || last.ErrorCode(t) != "too_many_attempts" || last.Header.Get("Retry-After") == "" {
		t.Fatalf("sign-up guessing was never throttled: %d %s", last.Status, last.Body)
	}
	// The count is the sign-in's own: the right password from there waits too.
	c.Login(t, o.Email, Password, attacker...).Expect(t, 429)
	// The owner, from their own browser, is not locked out.
	c.Login(t, o.Email, Password, o.Device...).Expect(t, 200)
}

// sharedAddress: people behind one address (an office, a carrier's NAT)
// keep signing in while someone there guesses passwords.
func sharedAddress(t *testing.T, c *Client) {
	office := []string{TestClientIP, "192.0.2.77"}
	victim := c.Signup(t, "Office Co")
	// The victim has signed in from the office before, in this browser.
	v := c.Login(t, victim.Email, Password, append(office, victim.Device...)...).Expect(t, 200)
	device := DeviceCookieHeader(t, v)
	// Many colleagues sign in from the same address within the minute:
	// the address alone sheds none of them.
	var colleagues []*Session
	for i := 0; i < 35; i++ {
		colleagues = append(colleagues, c.Signup(t, "Colleague "+strconv.Itoa(i)))
	}
	for _, col := range colleagues {
		c.Login(t, col.Email, Password, office...).Expect(t, 200)
	}
	// Someone at the office guesses the victim's password until throttled.
	var last *Response
	for i := 0; i < 10 && (last == nil || last.Status != 429); i++ {
		last = c.Login(t, victim.Email, "wrong guess "+strconv.Itoa(i), office...)
	}
	if last.Status != 429 {
		t.Fatalf("guessing from the office was never throttled: %d", last.Status)
	}
	// The guesser stays throttled, even with a device cookie of an account
	// of their own ...
	mine := DeviceCookieHeader(t, c.Login(t, colleagues[0].Email, Password, office...).Expect(t, 200))
	c.Login(t, victim.Email, Password, append(office, mine...)...).Expect(t, 429)
	// ... but the victim, in the browser they used before, signs in.
	c.Login(t, victim.Email, Password, append(office, device...)...).Expect(t, 200)
	// A colleague is not held back by the guessing either.
	c.Login(t, colleagues[1].Email, Password, office...).Expect(t, 200)
}
