package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/mailpit"
	"pommy.ai/edge/tests/openapi"
	"pommy.ai/edge/wasm/host/local"
)

// The account flows as a person goes through them: the wasip1 guest in
// the wazero host, its mail jobs run by the host's job workers and sent by
// the SMTP adapter to a real SMTP server (mailpit), the links read from
// the mail that arrived. The clock is the test's, to let links expire.

var linkToken = regexp.MustCompile(`(https?://[^\s#"<>]+)#token=([A-Za-z0-9_-]{43})(&tenant=(t_[a-z2-7]{26}))?`)

// mailLink is the link a mail carries: the page's URL, its token and, for
// an invitation, the tenant.
type mailLink struct{ url, token, tenant string }

func linkIn(t testing.TB, m mailpit.Message) mailLink {
	t.Helper()
	g := linkToken.FindStringSubmatch(m.Text)
	if g == nil {
		t.Fatalf("no link in the text part of %q:\n%s", m.Subject, m.Text)
	}
	if !strings.Contains(m.HTML, "#token="+g[2]) {
		t.Errorf("the HTML part of %q lacks the link's token", m.Subject)
	}
	return mailLink{url: g[1], token: g[2], tenant: g[4]}
}

func hasLink(path string) func(mailpit.Message) bool {
	return func(m mailpit.Message) bool { return strings.Contains(m.Text, path+"#token=") }
}

func mailHome(t *testing.T) (*home, *apitest.Client, *mailpit.Server, *storagetest.Clock) {
	mp := mailpit.Start(t, mailpit.Options{})
	clk := storagetest.NewClock(time.Now().UTC())
	h := startHome(t, homeOptions{mailpit: mp, runJobs: true, local: func(c *local.Config) { c.Clock = clk }})
	c := &apitest.Client{Base: h.url}
	openapi.Attach(t, c)
	return h, c, mp, clk
}

func randomAddress(prefix string) string {
	return prefix + "-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")) + "@example.com"
}

func TestAccountMailVerifyAndInvite(t *testing.T) {
	h, c, mp, _ := mailHome(t)
	sess, signed := c.SignupUnverified(t, "Mail Co", map[string]string{"name": "Olive Owner"})
	owner, tenant := sess.Email, sess.Tenant
	if signed["user"].(map[string]any)["email_verified"] != false {
		t.Fatalf("a new account is verified: %v", signed)
	}
	// Unverified: no invitations yet.
	if code := sess.Do(t, "POST", "/v1/invitations", map[string]string{"email": randomAddress("early"), "role": "agent"}).Expect(t, 403).ErrorCode(t); code != "email_unverified" {
		t.Fatalf("code %s", code)
	}
	m := mp.WaitFor(t, owner, hasLink("/account/verify"))
	l := linkIn(t, m)
	if l.url != h.url+"/account/verify" {
		t.Errorf("the link points to %s, want %s/account/verify", l.url, h.url)
	}
	if got := m.Header("Auto-Submitted"); got == "" {
		t.Error("no Auto-Submitted header")
	}
	c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": l.token}).Expect(t, 200)
	if code := c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": l.token}).Expect(t, 410).ErrorCode(t); code != "link_used" {
		t.Errorf("reused: %s", code)
	}

	// Verified: invite someone; their mail carries the link, with the tenant.
	invitee := randomAddress("invitee")
	inv := sess.Do(t, "POST", "/v1/invitations", map[string]string{"email": invitee, "role": "agent"}).Expect(t, 201).JSON(t)
	im := mp.WaitFor(t, invitee, hasLink("/account/invitation"))
	il := linkIn(t, im)
	if il.token != inv["token"] || il.tenant != tenant || !strings.Contains(im.Text, "Mail Co") {
		t.Fatalf("invitation mail: link %+v, token shown %v, tenant %s:\n%s", il, inv["token"], tenant, im.Text)
	}
	// The invitation's mail is sent, as the inviter sees it.
	waitFor(t, "the invitation's mail to be sent", func() bool {
		list := sess.Do(t, "GET", "/v1/invitations", nil).Expect(t, 200).JSON(t)["invitations"].([]any)
		return len(list) == 1 && list[0].(map[string]any)["mail"].(map[string]any)["status"] == "sent"
	})
	// A verification token is no invitation.
	c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": l.token, "password": apitest.Password}).Expect(t, 400)
	a := c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": il.token, "password": apitest.Password}).Expect(t, 201).JSON(t)
	if a["tenant"].(map[string]any)["id"] != tenant {
		t.Fatalf("accepted into %v, want %s", a["tenant"], tenant)
	}
	c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": il.token, "password": apitest.Password}).Expect(t, 400)

	// Turkish: a person who chose it gets their mail in it.
	tr := randomAddress("turkish")
	c.Do(t, "POST", "/v1/signup", map[string]string{"organization": "Posta AŞ", "email": tr, "password": apitest.Password, "locale": "tr"}).Expect(t, 201)
	trm := mp.WaitFor(t, tr, hasLink("/account/verify"))
	if trm.Subject == m.Subject {
		t.Errorf("the Turkish verification mail has the English subject %q", m.Subject)
	}
	c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": linkIn(t, trm).token}).Expect(t, 200)
}

func TestAccountMailReset(t *testing.T) {
	h, c, mp, clk := mailHome(t)
	o := c.Signup(t, "Reset Mail Co")
	other := c.LoginSession(t, o.Email)
	nobody := randomAddress("nobody")
	// The unknown address first: when the known one's mail has arrived,
	// the unknown one's job has run too (jobs run in order).
	a := c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": nobody}).Expect(t, 202)
	b := c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	if string(a.Body) != string(b.Body) {
		t.Errorf("different answers: %s / %s", a.Body, b.Body)
	}
	rm := mp.WaitFor(t, o.Email, hasLink("/account/reset"))
	l := linkIn(t, rm)
	if n, err := mp.Count(context.Background(), nobody); err != nil || n != 0 {
		t.Errorf("%d mails to an address without an account (%v)", n, err)
	}
	// A reset link is not a verification link.
	c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": l.token}).Expect(t, 400)
	newPw := "a passphrase from the mail"
	c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.token, "new_password": newPw}).Expect(t, 204)
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	other.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	c.Login(t, o.Email, apitest.Password).Expect(t, 401)
	c.Login(t, o.Email, newPw).Expect(t, 200)
	if code := c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.token, "new_password": "once more, please"}).Expect(t, 410).ErrorCode(t); code != "link_used" {
		t.Errorf("reused: %s", code)
	}
	mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return m.ID != rm.ID && !strings.Contains(m.Text, "#token=") }) // the notice

	// Late: a link followed after its 30 minutes changes nothing.
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	late := mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return hasLink("/account/reset")(m) && m.ID != rm.ID })
	clk.Advance(31 * time.Minute)
	if code := c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": linkIn(t, late).token, "new_password": "too late a passphrase"}).Expect(t, 410).ErrorCode(t); code != "link_expired" {
		t.Errorf("late: %s", code)
	}
	c.Login(t, o.Email, newPw).Expect(t, 200)
	// No token reached the host's log (the mail went to the SMTP server).
	for _, tok := range []string{l.token, linkIn(t, late).token} {
		if strings.Contains(h.log.String(), tok) {
			t.Error("the host log holds a reset token")
		}
	}
}

func TestAccountMailEmailChange(t *testing.T) {
	_, c, mp, clk := mailHome(t)
	o := c.Signup(t, "Change Mail Co")
	to := randomAddress("new")
	o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": to, "password": apitest.Password}).Expect(t, 202)
	m := mp.WaitFor(t, to, hasLink("/account/email"))
	// The link lives 24 hours.
	clk.Advance(25 * time.Hour)
	if code := c.Do(t, "POST", "/v1/email/change/confirm", map[string]string{"token": linkIn(t, m).token}).Expect(t, 410).ErrorCode(t); code != "link_expired" {
		t.Errorf("late: %s", code)
	}
	o = c.LoginSession(t, o.Email)
	o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": to, "password": apitest.Password}).Expect(t, 202)
	m2 := mp.WaitFor(t, to, func(x mailpit.Message) bool { return hasLink("/account/email")(x) && x.ID != m.ID })
	c.Do(t, "POST", "/v1/email/change/confirm", map[string]string{"token": linkIn(t, m2).token}).Expect(t, 200)
	// The old address is told, with the new one half hidden.
	n := mp.WaitFor(t, o.Email, func(x mailpit.Message) bool {
		return !strings.Contains(x.Text, "#token=") && strings.Contains(x.Text, "***@example.com")
	})
	if strings.Contains(n.Text, to) {
		t.Errorf("the notice to the old address shows the new one in full:\n%s", n.Text)
	}
	c.Login(t, to, apitest.Password).Expect(t, 200)
	c.Login(t, o.Email, apitest.Password).Expect(t, 401)
}
