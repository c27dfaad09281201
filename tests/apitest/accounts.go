package apitest

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// runAccounts runs the account flows that mail a link: verification,
// invitations by mail, email change and password reset. The links are
// read through the test build's /__test/account-links (each with the
// token its mail carries); the same flows through a real mail server are
// in tests/e2e, and those that need the clock to move in tests/native.
func runAccounts(t *testing.T, c *Client) {
	t.Run("VerifyEmail", func(t *testing.T) { verifyEmail(t, c) })
	t.Run("InvitationMail", func(t *testing.T) { invitationMail(t, c) })
	t.Run("EmailChange", func(t *testing.T) { emailChange(t, c) })
	t.Run("PasswordReset", func(t *testing.T) { passwordReset(t, c) })
	t.Run("ResetClearsThrottle", func(t *testing.T) { resetClearsThrottle(t, c) })
	t.Run("LinkUsedOnceUnderRace", func(t *testing.T) { linkUsedOnceUnderRace(t, c) })
	t.Run("ForgotSameAnswer", func(t *testing.T) { forgotSameAnswer(t, c) })
	t.Run("ForgotLimits", func(t *testing.T) { forgotLimits(t, c) })
	t.Run("LinksDisabledPerson", func(t *testing.T) { linksDisabledPerson(t, c) })
	t.Run("NamesRefuseLineBreaks", func(t *testing.T) { namesRefuseLineBreaks(t, c) })
}

// AccountLink is one of /__test/account-links' rows.
type AccountLink struct {
	ID, Purpose, UserID, Token string
	Used, Revoked              bool
}

// AccountLinks lists the account links made for an address, newest first.
func (c *Client) AccountLinks(t testing.TB, email string) []AccountLink {
	t.Helper()
	m := c.Do(t, "POST", "/__test/account-links", map[string]string{"email": email}).Expect(t, 200).JSON(t)
	var out []AccountLink
	for _, v := range m["links"].([]any) {
		l := v.(map[string]any)
		out = append(out, AccountLink{ID: l["id"].(string), Purpose: l["purpose"].(string), UserID: l["user_id"].(string),
			Token: l["token"].(string), Used: l["used"].(bool), Revoked: l["revoked"].(bool)})
	}
	return out
}

// LatestLink is the newest link of purpose for an address.
func (c *Client) LatestLink(t testing.TB, email, purpose string) AccountLink {
	t.Helper()
	for _, l := range c.AccountLinks(t, email) {
		if l.Purpose == purpose {
			return l
		}
	}
	t.Fatalf("no %s link for %s", purpose, email)
	return AccountLink{}
}

// MailLogEntry is one of /__test/mail-log's rows.
type MailLogEntry struct{ Tenant, ID, Template, Locale, Status string }

// MailLog lists what was queued to an address, newest first.
func (c *Client) MailLog(t testing.TB, to string) []MailLogEntry {
	t.Helper()
	m := c.Do(t, "POST", "/__test/mail-log", map[string]string{"to": to}).Expect(t, 200).JSON(t)
	var out []MailLogEntry
	for _, v := range m["mails"].([]any) {
		e := v.(map[string]any)
		out = append(out, MailLogEntry{Tenant: e["tenant"].(string), ID: e["id"].(string), Template: e["template"].(string),
			Locale: e["locale"].(string), Status: e["status"].(string)})
	}
	return out
}

func countTemplate(log []MailLogEntry, template string) int {
	n := 0
	for _, e := range log {
		if e.Template == template {
			n++
		}
	}
	return n
}

// SignupUnverified signs up without the verification shortcut.
func (c *Client) SignupUnverified(t testing.TB, org string, extra map[string]string) (*Session, map[string]any) {
	t.Helper()
	email := randomEmail()
	body := map[string]string{"organization": org, "email": email, "password": Password}
	for k, v := range extra {
		body[k] = v
	}
	r := c.Do(t, "POST", "/v1/signup", body).Expect(t, 201)
	return c.sessionFrom(t, r, email), r.JSON(t)
}

// RunJobs runs the home's due background jobs once (the reset requests).
func (c *Client) RunJobs(t testing.TB) {
	t.Helper()
	c.Do(t, "POST", "/__test/jobs/run", nil).Expect(t, 200)
}

func userField(t testing.TB, m map[string]any, k string) any {
	t.Helper()
	u, ok := m["user"].(map[string]any)
	if !ok {
		t.Fatalf("no user in %v", m)
	}
	return u[k]
}

func expectCode(t testing.TB, r *Response, status int, code string) {
	t.Helper()
	r.Expect(t, status)
	if got := r.ErrorCode(t); got != code {
		t.Fatalf("error %q, want %q", got, code)
	}
}

func verifyEmail(t *testing.T, c *Client) {
	o, m := c.SignupUnverified(t, "Verify Co", map[string]string{"locale": "tr"})
	if userField(t, m, "email_verified") != false || userField(t, m, "locale") != "tr" {
		t.Fatalf("sign-up user: %v", m["user"])
	}
	me := o.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)
	if userField(t, me, "email_verified") != false || userField(t, me, "locale") != "tr" {
		t.Fatalf("me: %v", me["user"])
	}
	log := c.MailLog(t, o.Email)
	if len(log) != 1 || log[0].Template != "verify_email" || log[0].Locale != "tr" || log[0].Tenant != "_accounts" {
		t.Fatalf("mail log after sign-up: %+v", log)
	}
	// Unverified: no invitations, no API keys.
	expectCode(t, o.Do(t, "POST", "/v1/invitations", map[string]string{"email": randomEmail(), "role": "agent"}), 403, "email_unverified")
	expectCode(t, o.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "k", "scopes": []string{"conversations:read"}}), 403, "email_unverified")
	// A resend within the minute of the sign-up's link is refused.
	r := o.Do(t, "POST", "/v1/email/verify/resend", nil)
	expectCode(t, r, 429, "too_many_requests")
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// A minute later (the link made older): a new link; the first stops working.
	first := c.LatestLink(t, o.Email, "verify_email")
	c.Do(t, "POST", "/__test/account-links/age", map[string]any{"email": o.Email, "seconds": 61}).Expect(t, 200)
	rs := o.Do(t, "POST", "/v1/email/verify/resend", nil).Expect(t, 202).JSON(t)
	if m, _ := rs["mail"].(map[string]any); m["status"] != "queued" {
		t.Fatalf("resend: %v", rs)
	}
	expectCode(t, o.Do(t, "POST", "/v1/email/verify/resend", nil), 429, "too_many_requests")
	if n := countTemplate(c.MailLog(t, o.Email), "verify_email"); n != 2 {
		t.Fatalf("%d verification mails, want 2", n)
	}
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": first.Token}), 410, "link_expired")
	l := c.LatestLink(t, o.Email, "verify_email")
	// The wrong kind of token, or a malformed one, changes nothing.
	expectCode(t, c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.Token, "new_password": "a whole new passphrase"}), 400, "invalid_link")
	expectCode(t, c.Do(t, "POST", "/v1/email/change/confirm", map[string]string{"token": l.Token}), 400, "invalid_link")
	expectCode(t, c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": l.Token, "password": Password}), 400, "invalid_invitation")
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": "short"}), 400, "invalid_link")
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": alterLast(l.Token)}), 400, "invalid_link")
	if me := o.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t); userField(t, me, "email_verified") != false {
		t.Fatal("a refused token verified the address")
	}
	v := c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": l.Token}).Expect(t, 200).JSON(t)
	if v["email"] != o.Email || v["verified"] != true {
		t.Fatalf("verify: %v", v)
	}
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": l.Token}), 410, "link_used")
	if me := o.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t); userField(t, me, "email_verified") != true {
		t.Fatalf("me after verifying: %v", me["user"])
	}
	// Verified: the gate opens (same session).
	o.Do(t, "POST", "/v1/invitations", map[string]string{"email": randomEmail(), "role": "agent"}).Expect(t, 201)
	o.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "k", "scopes": []string{"conversations:read"}}).Expect(t, 201)
	expectCode(t, o.Do(t, "POST", "/v1/email/verify/resend", nil), 409, "already_verified")
	// Audited in the person's organization.
	ev := o.Do(t, "GET", "/v1/audit/events?action=user.email.verified", nil).Expect(t, 200)
	if !bytes.Contains(ev.Body, []byte("user.email.verified")) {
		t.Errorf("no user.email.verified event: %s", trunc(ev.Body))
	}
	// An existing person adding an organization keeps their state.
	r2 := c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "Verify Two", "email": o.Email, "password": Password}).Expect(t, 201).JSON(t)
	if userField(t, r2, "email_verified") != true || userField(t, r2, "locale") != "tr" {
		t.Errorf("second organization's sign-up: %v", r2["user"])
	}
	if n := countTemplate(c.MailLog(t, o.Email), "verify_email"); n != 2 {
		t.Errorf("%d verification mails, want 2 (a second organization sends none)", n)
	}
	// Locale: only en and tr.
	expectCode(t, c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "X", "email": randomEmail(), "password": Password, "locale": "de"}), 400, "invalid_locale")
	expectCode(t, o.Do(t, "PATCH", "/v1/me", map[string]string{"locale": "fr"}), 400, "invalid_locale")
	expectCode(t, o.Do(t, "PATCH", "/v1/me", map[string]string{}), 400, "empty_update")
	p := o.Do(t, "PATCH", "/v1/me", map[string]string{"locale": "en", "name": "Vera Verify"}).Expect(t, 200).JSON(t)
	if userField(t, p, "locale") != "en" || userField(t, p, "name") != "Vera Verify" {
		t.Errorf("PATCH /v1/me: %v", p)
	}
}

func invitationMail(t *testing.T, c *Client) {
	o := c.Signup(t, "Invite Mail Co")
	email := randomEmail()
	inv := o.Do(t, "POST", "/v1/invitations", map[string]string{"email": email, "role": "agent"}).Expect(t, 201).JSON(t)
	tok, _ := inv["token"].(string)
	id, _ := inv["id"].(string)
	ml, _ := inv["mail"].(map[string]any)
	if len(tok) != 43 || ml["status"] != "queued" || !strings.HasPrefix(ml["id"].(string), "ml_") {
		t.Fatalf("invitation response: %v", inv)
	}
	log := c.MailLog(t, email)
	if len(log) != 1 || log[0].Template != "invitation" || log[0].Tenant != o.Tenant || log[0].ID != ml["id"] {
		t.Fatalf("mail log: %+v", log)
	}
	list := o.Do(t, "GET", "/v1/invitations", nil).Expect(t, 200).JSON(t)["invitations"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["mail"].(map[string]any)["id"] != ml["id"] {
		t.Fatalf("list: %v", list)
	}
	// Resends: a new mail each, the same link, five mails at most.
	seen := map[any]bool{ml["id"]: true}
	for i := 2; i <= 5; i++ {
		r := o.Do(t, "POST", "/v1/invitations/"+id+"/resend", nil).Expect(t, 202).JSON(t)
		mid := r["mail"].(map[string]any)["id"]
		if seen[mid] {
			t.Fatalf("resend %d reused mail %v", i, mid)
		}
		seen[mid] = true
	}
	expectCode(t, o.Do(t, "POST", "/v1/invitations/"+id+"/resend", nil), 409, "resend_limit")
	if n := countTemplate(c.MailLog(t, email), "invitation"); n != 5 {
		t.Errorf("%d invitation mails, want 5", n)
	}
	// An agent may not resend; an unknown id is 404.
	ag := o.Invite(t, "agent")
	expectCode(t, ag.Do(t, "POST", "/v1/invitations/"+id+"/resend", nil), 403, "forbidden")
	expectCode(t, o.Do(t, "POST", "/v1/invitations/inv_aaaaaaaaaaaaaaaaaaaaaaaaaa/resend", nil), 404, "not_found")
	// The token still accepts; the invitee's address is verified by it.
	r := c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": tok, "password": Password}).Expect(t, 201)
	in := c.sessionFrom(t, r, email)
	if me := in.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t); userField(t, me, "email_verified") != true {
		t.Errorf("invitee not verified: %v", me["user"])
	}
	expectCode(t, c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": tok, "password": Password}), 400, "invalid_invitation")
	// Accepted: no more resends.
	expectCode(t, o.Do(t, "POST", "/v1/invitations/"+id+"/resend", nil), 404, "not_found")
	// An invitation token is not an account link.
	expectCode(t, c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": tok, "new_password": "a whole new passphrase"}), 400, "invalid_link")
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": tok}), 400, "invalid_link")
}

func emailChange(t *testing.T, c *Client) {
	o := c.Signup(t, "Change Co")
	other := c.Signup(t, "Other Co")
	newEmail := randomEmail()
	expectCode(t, o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": newEmail, "password": "not my password"}), 403, "invalid_credentials")
	expectCode(t, o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": other.Email, "password": Password}), 409, "email_in_use")
	expectCode(t, o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": o.Email, "password": Password}), 400, "same_email")
	expectCode(t, o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": "two@x.example, three@x.example", "password": Password}), 400, "invalid_new_email")
	// Two requests: the first link is replaced by the second.
	o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": randomEmail(), "password": Password}).Expect(t, 202)
	r := o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": newEmail, "password": Password}).Expect(t, 202).JSON(t)
	if r["new_email"] != newEmail {
		t.Fatalf("change: %v", r)
	}
	if log := c.MailLog(t, newEmail); len(log) != 1 || log[0].Template != "email_change_confirm" {
		t.Fatalf("the new address's mail: %+v", log)
	}
	l := c.LatestLink(t, newEmail, "email_change")
	// Nothing changed yet.
	c.LoginSession(t, o.Email)
	v := c.Do(t, "POST", "/v1/email/change/confirm", map[string]string{"token": l.Token}).Expect(t, 200).JSON(t)
	if v["email"] != newEmail || v["verified"] != true {
		t.Fatalf("confirm: %v", v)
	}
	expectCode(t, c.Do(t, "POST", "/v1/email/change/confirm", map[string]string{"token": l.Token}), 410, "link_used")
	// The session stays; the address is the new one, verified.
	me := o.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)
	if userField(t, me, "email") != newEmail || userField(t, me, "email_verified") != true {
		t.Fatalf("me: %v", me["user"])
	}
	c.Login(t, o.Email, Password).Expect(t, 401)
	c.LoginSession(t, newEmail)
	// The old address is told.
	if n := countTemplate(c.MailLog(t, o.Email), "email_changed"); n != 1 {
		t.Errorf("%d email_changed notices to the old address, want 1", n)
	}
	ev := o.Do(t, "GET", "/v1/audit/events?action=user.email.changed", nil).Expect(t, 200)
	if !bytes.Contains(ev.Body, []byte(newEmail)) {
		t.Errorf("no user.email.changed event: %s", trunc(ev.Body))
	}
	// A change to an address taken after the request: 409, nothing changed.
	o.Email = newEmail
	taken := randomEmail()
	o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": taken, "password": Password}).Expect(t, 202)
	l2 := c.LatestLink(t, taken, "email_change")
	c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "Taker", "email": taken, "password": Password}).Expect(t, 201)
	expectCode(t, c.Do(t, "POST", "/v1/email/change/confirm", map[string]string{"token": l2.Token}), 409, "email_in_use")
	c.LoginSession(t, newEmail)
}

func passwordReset(t *testing.T, c *Client) {
	o := c.Signup(t, "Reset Co")
	second := c.Signup(t, "Reset Two")
	// The person belongs to two organizations: a session in each.
	c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "Reset Three", "email": o.Email, "password": Password}).Expect(t, 201)
	other := c.sessionFrom(t, c.Do(t, "POST", "/v1/login", map[string]string{"email": o.Email, "password": Password, "tenant": o.Tenant}).Expect(t, 200), o.Email)
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	c.RunJobs(t)
	l := c.LatestLink(t, o.Email, "password_reset")
	if n := countTemplate(c.MailLog(t, o.Email), "password_reset"); n != 1 {
		t.Fatalf("%d reset mails, want 1", n)
	}
	// The policy applies; a refused password leaves the link usable.
	expectCode(t, c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.Token, "new_password": "password"}), 400, "weak_password")
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	// A reset token verifies no address and accepts no invitation.
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": l.Token}), 400, "invalid_link")
	expectCode(t, c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": l.Token, "password": Password}), 400, "invalid_invitation")
	newPw := "a brand new passphrase 42"
	c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.Token, "new_password": newPw}).Expect(t, 204)
	// Every session of the person ended, in every organization; others' did not.
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	other.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	second.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	expectCode(t, c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.Token, "new_password": "yet another passphrase"}), 410, "link_used")
	r := c.Do(t, "POST", "/v1/login", map[string]string{"email": o.Email, "password": Password, "tenant": o.Tenant})
	expectCode(t, r, 401, "invalid_credentials")
	n := c.sessionFrom(t, c.Do(t, "POST", "/v1/login", map[string]string{"email": o.Email, "password": newPw, "tenant": o.Tenant}).Expect(t, 200), o.Email)
	if n := countTemplate(c.MailLog(t, o.Email), "password_changed"); n != 1 {
		t.Errorf("%d password_changed notices, want 1", n)
	}
	ev := n.Do(t, "GET", "/v1/audit/events?action=user.password.reset", nil).Expect(t, 200)
	if !bytes.Contains(ev.Body, []byte("user.password.reset")) {
		t.Errorf("no user.password.reset event: %s", trunc(ev.Body))
	}
	// A newer link revokes nothing until used; using one revokes the rest.
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	c.RunJobs(t)
	var open []AccountLink
	for _, l := range c.AccountLinks(t, o.Email) {
		if l.Purpose == "password_reset" && !l.Used && !l.Revoked {
			open = append(open, l)
		}
	}
	if len(open) != 2 {
		t.Fatalf("%d open reset links, want 2", len(open))
	}
	c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": open[0].Token, "new_password": "the third passphrase"}).Expect(t, 204)
	expectCode(t, c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": open[1].Token, "new_password": "the fourth passphrase"}), 410, "link_expired")
}

// resetClearsThrottle: a person locked out by failed sign-ins from their
// address resets the password from there and signs in at once.
func resetClearsThrottle(t *testing.T, c *Client) {
	o := c.Signup(t, "Throttled Reset Co")
	ip := []string{TestClientIP, "192.0.2.77"}
	for range 5 {
		c.Login(t, o.Email, "a wrong guess here", ip...).Expect(t, 401)
	}
	c.Login(t, o.Email, Password, ip...).Expect(t, 429)
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}, ip...).Expect(t, 202)
	c.RunJobs(t)
	newPw := "unlocked by the reset link"
	c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": c.LatestLink(t, o.Email, "password_reset").Token, "new_password": newPw}, ip...).Expect(t, 204)
	c.Login(t, o.Email, newPw, ip...).Expect(t, 200)
}

// linkUsedOnceUnderRace: the same reset link sent eight times at once
// sets one password: one 204, seven 410 link_used, and the password that
// works is the winner's.
func linkUsedOnceUnderRace(t *testing.T, c *Client) {
	o := c.Signup(t, "Race Co")
	tok := c.Do(t, "POST", "/__test/account-links/make", map[string]string{"email": o.Email, "purpose": "password_reset"}).Expect(t, 200).JSON(t)["token"]
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = c.Do(t, "POST", "/v1/password/reset", map[string]any{"token": tok, "new_password": fmt.Sprintf("racing passphrase %d", i)}).Status
		}()
	}
	wg.Wait()
	winner := -1
	for i, st := range statuses {
		switch st {
		case 204:
			if winner >= 0 {
				t.Fatalf("two resets with one link: %v", statuses)
			}
			winner = i
		case 410:
		default:
			t.Fatalf("statuses %v", statuses)
		}
	}
	if winner < 0 {
		t.Fatalf("no reset succeeded: %v", statuses)
	}
	for i := range n {
		want := 401
		if i == winner {
			want = 200
		}
		c.Login(t, o.Email, fmt.Sprintf("racing passphrase %d", i)).Expect(t, want)
	}
}

// forgotSameAnswer: an address with an account and one without get the
// same status and the same bytes; only the first gets mail.
func forgotSameAnswer(t *testing.T, c *Client) {
	o := c.Signup(t, "Forgot Co")
	nobody := randomEmail()
	a := c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	b := c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": nobody}).Expect(t, 202)
	if !bytes.Equal(a.Body, b.Body) {
		t.Errorf("answers differ:\n%s\n%s", a.Body, b.Body)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "Set-Cookie"} {
		if a.Header.Get(h) != b.Header.Get(h) {
			t.Errorf("%s differs: %q vs %q", h, a.Header.Get(h), b.Header.Get(h))
		}
	}
	c.RunJobs(t)
	if n := countTemplate(c.MailLog(t, o.Email), "password_reset"); n != 1 {
		t.Errorf("%d reset mails to the account, want 1", n)
	}
	if log := c.MailLog(t, nobody); len(log) != 0 {
		t.Errorf("mail to an address without an account: %+v", log)
	}
	if links := c.AccountLinks(t, nobody); len(links) != 0 {
		t.Errorf("links for an address without an account: %+v", links)
	}
	expectCode(t, c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": "not an address"}), 400, "invalid_email")
}

// forgotLimits: ten requests an hour from one client address, then 429
// with Retry-After; three mails an hour to one address, then silence.
func forgotLimits(t *testing.T, c *Client) {
	ip := []string{TestClientIP, "198.51.100.77"}
	for range 10 {
		c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": randomEmail()}, ip...).Expect(t, 202)
	}
	r := c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": randomEmail()}, ip...)
	expectCode(t, r, 429, "too_many_requests")
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// At most three open reset links per person: a new one revokes the oldest.
	p := c.Signup(t, "Live Links Co")
	for range 3 {
		c.Do(t, "POST", "/__test/account-links/make", map[string]string{"email": p.Email, "purpose": "password_reset"}).Expect(t, 200)
	}
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": p.Email}).Expect(t, 202)
	c.RunJobs(t)
	var open, revoked int
	for _, l := range c.AccountLinks(t, p.Email) {
		switch {
		case l.Purpose != "password_reset":
		case l.Revoked:
			revoked++
		case !l.Used:
			open++
		}
	}
	if open != 3 || revoked != 1 {
		t.Errorf("%d open and %d revoked reset links after a fourth, want 3 and 1", open, revoked)
	}
	o := c.Signup(t, "Limit Co")
	for range 4 {
		c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	}
	c.RunJobs(t)
	if n := countTemplate(c.MailLog(t, o.Email), "password_reset"); n != 3 {
		t.Errorf("%d reset mails in an hour, want 3", n)
	}
}

// linksDisabledPerson: a person with no active membership gets no reset
// link, and a link made before they were disabled changes nothing.
func linksDisabledPerson(t *testing.T, c *Client) {
	o := c.Signup(t, "Disabled Links Co")
	ag := o.Invite(t, "agent")
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": ag.Email}).Expect(t, 202)
	c.RunJobs(t)
	l := c.LatestLink(t, ag.Email, "password_reset")
	o.Do(t, "PATCH", "/v1/members/"+ag.UserID, map[string]string{"status": "disabled"}).Expect(t, 200)
	expectCode(t, c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.Token, "new_password": "a disabled passphrase"}), 403, "account_disabled")
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": ag.Email}).Expect(t, 202)
	c.RunJobs(t)
	if links := c.AccountLinks(t, ag.Email); len(links) != 1 || links[0].Used {
		t.Errorf("links of a disabled person: %+v", links)
	}
	// Enabled again, the old password still works: nothing changed.
	o.Do(t, "PATCH", "/v1/members/"+ag.UserID, map[string]string{"status": "active"}).Expect(t, 200)
	c.LoginSession(t, ag.Email)
}

// namesRefuseLineBreaks: names end up in mail (an invitation's inviter
// and organization); a CR or LF in one is refused at input, so no header
// can be smuggled through them.
func namesRefuseLineBreaks(t *testing.T, c *Client) {
	for _, bad := range []string{"Eve\r\nBcc: victim@example.com", "Eve\nX-Injected: 1", "Eve\rSubject: hi"} {
		expectCode(t, c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "Org", "name": bad, "email": randomEmail(), "password": Password}), 400, "invalid_name")
		expectCode(t, c.Do(t, "POST", "/v1/signup", map[string]string{"organization": bad, "email": randomEmail(), "password": Password}), 400, "invalid_organization")
	}
	o := c.Signup(t, "Names Co")
	expectCode(t, o.Do(t, "PATCH", "/v1/me", map[string]string{"name": "Eve\r\nBcc: victim@example.com"}), 400, "invalid_name")
	expectCode(t, o.Do(t, "PATCH", "/v1/settings", map[string]string{"name": "Org\r\nBcc: victim@example.com"}), 400, "invalid_name")
	expectCode(t, o.Do(t, "POST", "/v1/invitations", map[string]string{"email": "a@example.com\r\nBcc: victim@example.com", "role": "agent"}), 400, "invalid_email")
}

var mailedLinkToken = regexp.MustCompile(`#token=([A-Za-z0-9_-]{43})`)

// MailedToken waits up to a minute for the mail to address to that a home
// with no mail service prints to its log (read with log), and returns the
// token of the link it carries. The shipped guest has no test shortcut,
// so suites that run it verify addresses this way, as a person would.
func MailedToken(t testing.TB, log func() string, to string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out := log()
		if i := strings.Index(out, "To: "+to+"\n"); i >= 0 {
			msg := out[i:]
			if end := strings.Index(msg, "===== end of mail ====="); end >= 0 {
				if m := mailedLinkToken.FindStringSubmatch(msg[:end]); m != nil {
					return m[1]
				}
				t.Fatalf("the mail to %s has no link:\n%s", to, msg[:end])
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s printed; the log holds:\n%s", to, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
