package apitest

import (
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// Second factors as a person uses them: an authenticator app set up with
// the secret the server shows, codes computed here as the app would
// (pquerna/otp's totp.GenerateCode at the server's present), recovery
// codes, step-up and the organization's MFA policy.

func runMFA(t *testing.T, c *Client) {
	t.Run("TOTPSignIn", func(t *testing.T) { totpSignIn(t, c) })
	t.Run("TOTPWrongCodesEndChallenge", func(t *testing.T) { totpWrongCodes(t, c) })
	t.Run("RecoveryCodes", func(t *testing.T) { recoveryCodes(t, c) })
	t.Run("MFATokenBoundToItsPerson", func(t *testing.T) { mfaTokenBound(t, c) })
	t.Run("DisableTOTP", func(t *testing.T) { disableTOTP(t, c) })
	t.Run("Reauth", func(t *testing.T) { reauth(t, c) })
	t.Run("MFAPolicy", func(t *testing.T) { mfaPolicy(t, c) })
	t.Run("MFABadInput", func(t *testing.T) { mfaBadInput(t, c) })
	t.Run("MFAConcurrentReplay", func(t *testing.T) { mfaConcurrentReplay(t, c) })
	t.Run("PasswordAloneOpensNoSession", func(t *testing.T) { passwordAloneOpensNoSession(t, c) })
}

// ServerTime is the home's present (its clock, which a test may move).
func (c *Client) ServerTime(t testing.TB) time.Time {
	t.Helper()
	ms, _ := c.Do(t, "GET", "/__test/clock", nil).Expect(t, 200).JSON(t)["now_ms"].(float64)
	return time.UnixMilli(int64(ms))
}

// TOTPCode is the code an authenticator app with secret shows steps time
// steps (30 s) from the server's present.
func (c *Client) TOTPCode(t testing.TB, secret string, steps int) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, c.ServerTime(t).Add(time.Duration(steps)*30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// EnrolTOTP sets up an authenticator app for the session's person and
// returns its secret and the recovery codes of the first factor. The
// confirming code is the previous step's (which the server's skew accepts),
// leaving the present and the next step for the test's own sign-ins.
func (s *Session) EnrolTOTP(t testing.TB) (secret string, recovery []string) {
	t.Helper()
	m := s.Do(t, "POST", "/v1/me/mfa/totp", nil).Expect(t, 201).JSON(t)
	secret, _ = m["secret"].(string)
	u, err := url.Parse(m["otpauth_url"].(string))
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != secret || len(secret) != 32 {
		t.Fatalf("enrolment: secret %q, otpauth_url %v", secret, m["otpauth_url"])
	}
	if png, _ := m["qr_png"].(string); !strings.HasPrefix(png, "data:image/png;base64,iVBORw0KGgo") {
		t.Fatalf("qr_png is not a PNG data URL: %.40s", png)
	}
	r := s.Do(t, "POST", "/v1/me/mfa/totp/confirm", map[string]string{"code": s.c.TOTPCode(t, secret, -1)}).Expect(t, 200).JSON(t)
	for _, v := range asList(r["recovery_codes"]) {
		recovery = append(recovery, v.(string))
	}
	return secret, recovery
}

func asList(v any) []any { l, _ := v.([]any); return l }

// PasswordStep signs in with the password of a person who has a second
// factor: 401 mfa_required, no session, and the challenge's token.
func (c *Client) PasswordStep(t testing.TB, email string, hdr ...string) string {
	t.Helper()
	r := c.Login(t, email, Password, hdr...).Expect(t, 401)
	if code := r.ErrorCode(t); code != "mfa_required" {
		t.Fatalf("password step: %s, want mfa_required", code)
	}
	if tok, _ := cookieToken(r); tok != "" {
		t.Fatal("the password step set a session cookie")
	}
	m := r.JSON(t)
	tok, _ := m["mfa_token"].(string)
	if len(tok) != 43 || !slices.Contains(asList(m["methods"]), any("recovery_code")) {
		t.Fatalf("mfa_required body: %v", m)
	}
	return tok
}

// SecondStep answers the challenge; answer is {"code": …} or
// {"recovery_code": …}.
func (c *Client) SecondStep(t testing.TB, token string, answer map[string]string, hdr ...string) *Response {
	t.Helper()
	body := map[string]string{"mfa_token": token}
	for k, v := range answer {
		body[k] = v
	}
	return c.Do(t, "POST", "/v1/login/mfa", body, hdr...)
}

// me is GET /v1/me's body.
func (s *Session) me(t testing.TB) map[string]any {
	t.Helper()
	return s.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)
}

func authMethods(m map[string]any) []string {
	var out []string
	for _, v := range asList(m["session"].(map[string]any)["auth_methods"]) {
		out = append(out, v.(string))
	}
	return out
}

func totpSignIn(t *testing.T, c *Client) {
	o := c.Signup(t, "TOTP Co")
	if mfa := o.me(t)["mfa"].(map[string]any); mfa["totp"] != false || mfa["recovery_codes_left"] != 0.0 {
		t.Fatalf("before enrolment: %v", mfa)
	}
	// A wrong first code confirms nothing.
	if code := o.Do(t, "POST", "/v1/me/mfa/totp/confirm", map[string]string{"code": "123456"}).Expect(t, 404).ErrorCode(t); code != "no_pending_totp" {
		t.Errorf("confirm before enrolment: %s", code)
	}
	m := o.Do(t, "POST", "/v1/me/mfa/totp", nil).Expect(t, 201).JSON(t)
	wrong := []byte(c.TOTPCode(t, m["secret"].(string), 0))
	wrong[0] = '0' + (wrong[0]-'0'+5)%10
	if code := o.Do(t, "POST", "/v1/me/mfa/totp/confirm", map[string]string{"code": string(wrong)}).Expect(t, 400).ErrorCode(t); code != "wrong_code" {
		t.Errorf("wrong first code: %s", code)
	}
	secret, recovery := o.EnrolTOTP(t) // a second start replaces the pending secret
	if len(recovery) != 10 {
		t.Fatalf("recovery codes %v", recovery)
	}
	me := o.me(t)
	if mfa := me["mfa"].(map[string]any); mfa["totp"] != true || mfa["recovery_codes_left"] != 10.0 {
		t.Errorf("after enrolment: %v", mfa)
	}
	if got := authMethods(me); !slices.Equal(got, []string{"password", "totp"}) {
		t.Errorf("the confirming session's methods: %v", got)
	}
	// Another enrolment is refused while one is set up.
	if code := o.Do(t, "POST", "/v1/me/mfa/totp", nil).Expect(t, 409).ErrorCode(t); code != "totp_exists" {
		t.Errorf("second enrolment: %s", code)
	}

	// Sign-in: the password, then the code.
	tok := c.PasswordStep(t, o.Email)
	code := c.TOTPCode(t, secret, 0)
	r := c.SecondStep(t, tok, map[string]string{"code": code}).Expect(t, 200)
	s := c.sessionFrom(t, r, o.Email)
	if got := authMethods(s.me(t)); !slices.Equal(got, []string{"password", "totp"}) {
		t.Errorf("session methods %v", got)
	}
	var listed bool
	for _, v := range asList(s.Do(t, "GET", "/v1/sessions", nil).Expect(t, 200).JSON(t)["sessions"]) {
		sess := v.(map[string]any)
		if sess["current"] == true {
			listed = slices.Equal(asList(sess["auth_methods"]), []any{"password", "totp"})
		}
	}
	if !listed {
		t.Error("GET /v1/sessions does not show how the session was authenticated")
	}
	// The challenge is used: the same token again is refused.
	if code := c.SecondStep(t, tok, map[string]string{"code": c.TOTPCode(t, secret, 1)}).Expect(t, 401).ErrorCode(t); code != "invalid_challenge" {
		t.Errorf("used challenge: %s", code)
	}
	// The same code on a new challenge is a replay: refused.
	tok = c.PasswordStep(t, o.Email)
	if code := c.SecondStep(t, tok, map[string]string{"code": code}).Expect(t, 401).ErrorCode(t); code != "wrong_second_factor" {
		t.Errorf("replayed code: %s", code)
	}
	// The next code works (with spaces, as apps show it).
	next := c.TOTPCode(t, secret, 1)
	c.SecondStep(t, tok, map[string]string{"code": next[:3] + " " + next[3:]}).Expect(t, 200)
}

func totpWrongCodes(t *testing.T, c *Client) {
	o := c.Signup(t, "Guess Co")
	secret, _ := o.EnrolTOTP(t)
	right := c.TOTPCode(t, secret, 0)
	wrong := func(i int) string {
		w := []byte(right)
		w[i%6] = '0' + (w[i%6]-'0'+1)%10
		return string(w)
	}
	tok := c.PasswordStep(t, o.Email)
	for i := range 4 {
		if code := c.SecondStep(t, tok, map[string]string{"code": wrong(i)}).Expect(t, 401).ErrorCode(t); code != "wrong_second_factor" {
			t.Fatalf("wrong code %d: %s", i+1, code)
		}
	}
	// The fifth wrong answer ends the challenge ...
	if code := c.SecondStep(t, tok, map[string]string{"code": wrong(4)}).Expect(t, 401).ErrorCode(t); code != "invalid_challenge" {
		t.Fatalf("fifth wrong code: %s", code)
	}
	// ... so even the right code no longer finishes it.
	if code := c.SecondStep(t, tok, map[string]string{"code": right}).Expect(t, 401).ErrorCode(t); code != "invalid_challenge" {
		t.Errorf("right code on an ended challenge: %s", code)
	}
	// The wrong answers count against the account, across challenges: a
	// fresh password does not give a fresh five guesses.
	tok = c.PasswordStep(t, o.Email)
	r := c.SecondStep(t, tok, map[string]string{"code": right}).Expect(t, 429)
	if r.ErrorCode(t) != "too_many_attempts" || r.Header.Get("Retry-After") == "" {
		t.Errorf("sixth guess on a new challenge: %s, Retry-After %q", r.ErrorCode(t), r.Header.Get("Retry-After"))
	}
	// Failures are audited, never with the code.
	ev := o.Do(t, "GET", "/v1/audit/events?action=auth.mfa.failed", nil).Expect(t, 200)
	if !strings.Contains(string(ev.Body), "auth.mfa.failed") || strings.Contains(string(ev.Body), wrong(0)) {
		t.Errorf("audit of failed second factors: %s", trunc(ev.Body))
	}
}

func recoveryCodes(t *testing.T, c *Client) {
	o := c.Signup(t, "Recovery Co")
	_, codes := o.EnrolTOTP(t)
	tok := c.PasswordStep(t, o.Email)
	s := c.sessionFrom(t, c.SecondStep(t, tok, map[string]string{"recovery_code": codes[0]}).Expect(t, 200), o.Email)
	me := s.me(t)
	if got := authMethods(me); !slices.Equal(got, []string{"password", "recovery_code"}) {
		t.Errorf("methods %v", got)
	}
	if left := me["mfa"].(map[string]any)["recovery_codes_left"]; left != 9.0 {
		t.Errorf("codes left %v", left)
	}
	// A code works once.
	tok = c.PasswordStep(t, o.Email)
	if code := c.SecondStep(t, tok, map[string]string{"recovery_code": codes[0]}).Expect(t, 401).ErrorCode(t); code != "wrong_second_factor" {
		t.Errorf("used recovery code: %s", code)
	}
	// New codes (step-up: the fresh sign-in counts): the old ones stop working.
	fresh := asList(s.Do(t, "POST", "/v1/me/mfa/recovery-codes", nil).Expect(t, 200).JSON(t)["recovery_codes"])
	if len(fresh) != 10 {
		t.Fatalf("regenerated %v", fresh)
	}
	if code := c.SecondStep(t, tok, map[string]string{"recovery_code": codes[1]}).Expect(t, 401).ErrorCode(t); code != "wrong_second_factor" {
		t.Errorf("replaced recovery code: %s", code)
	}
	// Typed carelessly (capitals, no hyphen), a new one works.
	typed := strings.ToUpper(strings.ReplaceAll(fresh[0].(string), "-", ""))
	c.SecondStep(t, tok, map[string]string{"recovery_code": typed}).Expect(t, 200)
	ev := o.Do(t, "GET", "/v1/audit/events?action=auth.recovery_code.used", nil).Expect(t, 200)
	if !strings.Contains(string(ev.Body), "auth.recovery_code.used") || strings.Contains(string(ev.Body), codes[0]) {
		t.Errorf("audit of recovery codes: %s", trunc(ev.Body))
	}
}

func mfaTokenBound(t *testing.T, c *Client) {
	a := c.Signup(t, "Bound A")
	b := c.Signup(t, "Bound B")
	_, aCodes := a.EnrolTOTP(t)
	bSecret, bCodes := b.EnrolTOTP(t)
	tok := c.PasswordStep(t, a.Email)
	// B's code or recovery code cannot finish A's sign-in ...
	c.SecondStep(t, tok, map[string]string{"code": c.TOTPCode(t, bSecret, 0)}).Expect(t, 401)
	c.SecondStep(t, tok, map[string]string{"recovery_code": bCodes[0]}).Expect(t, 401)
	// ... and A's finishes it into A's own tenant, whatever the request says.
	r := c.SecondStep(t, tok, map[string]string{"recovery_code": aCodes[0]}, "X-Tenant-Id", b.Tenant).Expect(t, 200)
	if s := c.sessionFrom(t, r, a.Email); s.Tenant != a.Tenant || s.UserID != a.UserID {
		t.Errorf("signed in as %s in %s, want %s in %s", s.UserID, s.Tenant, a.UserID, a.Tenant)
	}
	// B's recovery code was not spent by the attempt on A's challenge.
	tok = c.PasswordStep(t, b.Email)
	c.SecondStep(t, tok, map[string]string{"recovery_code": bCodes[0]}).Expect(t, 200)
	// Unknown and malformed tokens.
	for _, bad := range []string{strings.Repeat("A", 43), "short", tok} {
		if code := c.SecondStep(t, bad, map[string]string{"recovery_code": bCodes[1]}).Expect(t, 401).ErrorCode(t); code != "invalid_challenge" {
			t.Errorf("token %.10s: %s", bad, code)
		}
	}
}

func disableTOTP(t *testing.T, c *Client) {
	o := c.Signup(t, "Disable Co")
	o.EnrolTOTP(t)
	o.Do(t, "DELETE", "/v1/me/mfa/totp", nil).Expect(t, 204)
	if mfa := o.me(t)["mfa"].(map[string]any); mfa["totp"] != false || mfa["recovery_codes_left"] != 0.0 {
		t.Errorf("after removal: %v", mfa)
	}
	// The password alone signs in again.
	c.LoginSession(t, o.Email)
	o.Do(t, "DELETE", "/v1/me/mfa/totp", nil).Expect(t, 404)
	if code := o.Do(t, "POST", "/v1/me/mfa/recovery-codes", nil).Expect(t, 409).ErrorCode(t); code != "no_second_factor" {
		t.Errorf("recovery codes without a factor: %s", code)
	}
	ev := o.Do(t, "GET", "/v1/audit/events?action=user.mfa.totp.disabled", nil).Expect(t, 200)
	if !strings.Contains(string(ev.Body), "user.mfa.totp.disabled") {
		t.Errorf("removal not audited: %s", trunc(ev.Body))
	}
}

func reauth(t *testing.T, c *Client) {
	o := c.Signup(t, "Reauth Co")
	if code := o.Do(t, "POST", "/v1/me/reauth", map[string]string{"password": "not it"}).Expect(t, 403).ErrorCode(t); code != "invalid_credentials" {
		t.Errorf("wrong password: %s", code)
	}
	o.Do(t, "POST", "/v1/me/reauth", map[string]string{"password": Password}).Expect(t, 204)
	secret, codes := o.EnrolTOTP(t)
	o.Do(t, "POST", "/v1/me/reauth", map[string]string{"code": c.TOTPCode(t, secret, 0)}).Expect(t, 204)
	// A code is spent by a step-up as by a sign-in.
	o.Do(t, "POST", "/v1/me/reauth", map[string]string{"code": c.TOTPCode(t, secret, 0)}).Expect(t, 403)
	o.Do(t, "POST", "/v1/me/reauth", map[string]string{"recovery_code": codes[0]}).Expect(t, 204)
	o.Do(t, "POST", "/v1/me/reauth", map[string]string{"recovery_code": codes[0]}).Expect(t, 403)
	for _, body := range []map[string]string{{}, {"password": Password, "code": "123456"}, {"code": "12345x"}} {
		o.Do(t, "POST", "/v1/me/reauth", body).Expect(t, 400)
	}
}

func mfaPolicy(t *testing.T, c *Client) {
	o := c.Signup(t, "Policy Co")
	admin := o.Invite(t, "admin")
	agent := o.Invite(t, "agent")
	if code := o.Do(t, "PATCH", "/v1/settings", map[string]string{"mfa_required": "sometimes"}).Expect(t, 400).ErrorCode(t); code != "invalid_mfa_required" {
		t.Errorf("bad policy: %s", code)
	}
	if got := o.Do(t, "PATCH", "/v1/settings", map[string]string{"mfa_required": "admins"}).Expect(t, 200).JSON(t)["mfa_required"]; got != "admins" {
		t.Errorf("policy %v", got)
	}
	// Owners and admins without a second factor are held back ...
	for _, s := range []*Session{o, admin} {
		if code := s.Do(t, "GET", "/v1/members", nil).Expect(t, 403).ErrorCode(t); code != "mfa_enrolment_required" {
			t.Errorf("held-back session: %s", code)
		}
		if s.me(t)["mfa_enrolment_required"] != true {
			t.Error("GET /v1/me does not say enrolment is required")
		}
	}
	// ... agents are not.
	agent.Do(t, "GET", "/v1/members", nil).Expect(t, 200)
	// A new sign-in of an admin still makes a session (to enrol), and says so.
	r := c.Login(t, admin.Email, Password).Expect(t, 200)
	if r.JSON(t)["mfa_enrolment_required"] != true {
		t.Errorf("sign-in body: %s", trunc(r.Body))
	}
	// Enrolling unlocks the session that enrolled.
	o.EnrolTOTP(t)
	o.Do(t, "GET", "/v1/members", nil).Expect(t, 200)
	// The last factor cannot be removed while the policy requires one.
	if code := o.Do(t, "DELETE", "/v1/me/mfa/totp", nil).Expect(t, 409).ErrorCode(t); code != "mfa_required_by_policy" {
		t.Errorf("removing the last factor: %s", code)
	}
	// Everyone: now the agent is held back too, until they enrol.
	o.Do(t, "PATCH", "/v1/settings", map[string]string{"mfa_required": "everyone"}).Expect(t, 200)
	if code := agent.Do(t, "GET", "/v1/conversations", nil).Expect(t, 403).ErrorCode(t); code != "mfa_enrolment_required" {
		t.Errorf("agent under everyone: %s", code)
	}
	agent.Do(t, "POST", "/v1/logout", nil).Expect(t, 204)
	agent = c.LoginSession(t, agent.Email)
	agent.EnrolTOTP(t)
	agent.Do(t, "GET", "/v1/conversations", nil).Expect(t, 200)
	if got := o.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t)["mfa_required"]; got != "everyone" {
		t.Errorf("GET settings: %v", got)
	}
	ev := o.Do(t, "GET", "/v1/audit/events?action=settings.changed", nil).Expect(t, 200)
	if !strings.Contains(string(ev.Body), "mfa_required") {
		t.Errorf("policy change not audited: %s", trunc(ev.Body))
	}
}

func mfaBadInput(t *testing.T, c *Client) {
	o := c.Signup(t, "Bad MFA Co")
	_, codes := o.EnrolTOTP(t)
	tok := c.PasswordStep(t, o.Email)
	for _, body := range []map[string]any{
		{"mfa_token": tok},
		{"mfa_token": tok, "code": "123456", "recovery_code": codes[0]},
		{"mfa_token": tok, "code": "12345"},
		{"mfa_token": tok, "code": "１２３４５６"},
		{"mfa_token": tok, "recovery_code": "abc"},
		{"mfa_token": tok, "recovery_code": "abcde-fghi1"},
		{"mfa_token": tok, "code": "123456", "extra": true},
	} {
		c.Do(t, "POST", "/v1/login/mfa", body).Expect(t, 400)
	}
	// None of that counted as a wrong answer: the challenge still takes five.
	c.SecondStep(t, tok, map[string]string{"recovery_code": codes[0]}).Expect(t, 200)
}

// mfaConcurrentReplay: one code, or one recovery code, sent at once to
// finish two sign-ins signs in once: the conditional UPDATE of the step
// (or of the code) decides, not the order of the checks.
func mfaConcurrentReplay(t *testing.T, c *Client) {
	o := c.Signup(t, "Race Co")
	secret, codes := o.EnrolTOTP(t)
	for _, answer := range []map[string]string{{"code": c.TOTPCode(t, secret, 0)}, {"recovery_code": codes[0]}} {
		const n = 4
		toks := make([]string, n)
		for i := range toks {
			toks[i] = c.PasswordStep(t, o.Email)
		}
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range toks {
			wg.Go(func() {
				body := map[string]string{"mfa_token": toks[i]}
				for k, v := range answer {
					body[k] = v
				}
				statuses[i] = c.Do(t, "POST", "/v1/login/mfa", body).Status
			})
		}
		wg.Wait()
		ok := 0
		for _, st := range statuses {
			switch st {
			case 200:
				ok++
			case 401, 429: // refused as a replay, or by the second-factor throttle the replays fed
			default:
				t.Errorf("%v: status %d", answer, st)
			}
		}
		if ok != 1 {
			t.Errorf("%v sent %d times at once signed in %d times (statuses %v), want once", answer, n, ok, statuses)
		}
	}
}

// passwordAloneOpensNoSession: an account with a second factor gets no
// session from its password anywhere: not by signing up another
// organization with it, not by accepting an invitation with it (an
// attacker holding only the password could otherwise invite the person to
// an organization of their own, accept, and remove the factor, the fresh
// sign-in satisfying step-up). The membership is made; the second factor
// opens the session.
func passwordAloneOpensNoSession(t *testing.T, c *Client) {
	o := c.Signup(t, "Guarded Co")
	_, codes := o.EnrolTOTP(t)
	check := func(what string, r *Response) (token, tenant string) {
		t.Helper()
		if tok, _ := cookieToken(r); tok != "" {
			t.Fatalf("%s with the password alone set a session cookie", what)
		}
		m := r.JSON(t)
		token, _ = m["mfa_token"].(string)
		tenant, _ = m["tenant"].(map[string]any)["id"].(string)
		if m["mfa_required"] != true || len(token) != 43 || tenant == "" {
			t.Fatalf("%s: %v", what, m)
		}
		return token, tenant
	}
	tok, tenant := check("sign-up", c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "Second Org", "email": o.Email, "password": Password}).Expect(t, 201))
	s := c.sessionFrom(t, c.SecondStep(t, tok, map[string]string{"recovery_code": codes[0]}).Expect(t, 200), o.Email)
	if s.Tenant != tenant || s.Tenant == o.Tenant {
		t.Errorf("signed in to %s, want the new organization %s", s.Tenant, tenant)
	}
	inviter := c.Signup(t, "Inviting Co")
	inv := inviter.Do(t, "POST", "/v1/invitations", map[string]string{"email": o.Email, "role": "agent"}).Expect(t, 201).JSON(t)
	tok, tenant = check("accepting an invitation", c.Do(t, "POST", "/v1/invitations/accept", map[string]any{"token": inv["token"], "password": Password}).Expect(t, 201))
	if tenant != inviter.Tenant {
		t.Errorf("joined %s, want %s", tenant, inviter.Tenant)
	}
	s = c.sessionFrom(t, c.SecondStep(t, tok, map[string]string{"recovery_code": codes[1]}).Expect(t, 200), o.Email)
	if s.Tenant != inviter.Tenant {
		t.Errorf("signed in to %s, want %s", s.Tenant, inviter.Tenant)
	}
}
