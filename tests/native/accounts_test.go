package native

import (
	"context"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/handlers/identity"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/wasm/host/local"
)

// The account links' lifetimes and the resend limits, on a clock the test
// moves (the flows themselves are in tests/apitest, and through a real
// mail server in tests/e2e).

func expectCode(t *testing.T, r *apitest.Response, status int, code string) {
	t.Helper()
	r.Expect(t, status)
	if got := r.ErrorCode(t); got != code {
		t.Fatalf("error %q, want %q", got, code)
	}
}

func TestVerifyLinkLives48Hours(t *testing.T) {
	c, clock := start(t)
	a, _ := c.SignupUnverified(t, "Late Verify", nil)
	b, _ := c.SignupUnverified(t, "On Time Verify", nil)
	la, lb := c.LatestLink(t, a.Email, "verify_email"), c.LatestLink(t, b.Email, "verify_email")
	clock.Advance(48*time.Hour - time.Minute)
	c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": lb.Token}).Expect(t, 200)
	clock.Advance(2 * time.Minute)
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": la.Token}), 410, "link_expired")
	// Nothing changed: still unverified (a fresh session sees it).
	s := c.LoginSession(t, a.Email)
	if v := s.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)["user"].(map[string]any)["email_verified"]; v != false {
		t.Fatalf("email_verified %v after a late link", v)
	}
}

func TestResetLinkLives30Minutes(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Late Reset")
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	c.RunJobs(t)
	l := c.LatestLink(t, o.Email, "password_reset")
	clock.Advance(30*time.Minute + time.Second)
	expectCode(t, c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.Token, "new_password": "a late passphrase"}), 410, "link_expired")
	c.Login(t, o.Email, apitest.Password).Expect(t, 200)
	// Within its 30 minutes a fresh one works.
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	c.RunJobs(t)
	l = c.LatestLink(t, o.Email, "password_reset")
	clock.Advance(29 * time.Minute)
	c.Do(t, "POST", "/v1/password/reset", map[string]string{"token": l.Token, "new_password": "an on-time passphrase"}).Expect(t, 204)
}

func TestEmailChangeLinkLives24Hours(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Late Change")
	to := "late-change-" + strconv.FormatInt(clock.Now().UnixNano(), 36) + "@example.com"
	o.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": to, "password": apitest.Password}).Expect(t, 202)
	l := c.LatestLink(t, to, "email_change")
	clock.Advance(24*time.Hour + time.Second)
	expectCode(t, c.Do(t, "POST", "/v1/email/change/confirm", map[string]string{"token": l.Token}), 410, "link_expired")
	c.Login(t, o.Email, apitest.Password).Expect(t, 200)
}

// TestResendLimits: one link a minute, five a day (the sign-up's
// included), each refusal a 429 with the wait until the limit passes.
func TestResendLimits(t *testing.T) {
	c, clock := start(t)
	s, _ := c.SignupUnverified(t, "Resend Co", nil)
	r := s.Do(t, "POST", "/v1/email/verify/resend", nil)
	expectCode(t, r, 429, "too_many_requests")
	if r.Header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After %q right after sign-up, want 60", r.Header.Get("Retry-After"))
	}
	for i := 2; i <= 5; i++ {
		clock.Advance(61 * time.Second)
		s.Do(t, "POST", "/v1/email/verify/resend", nil).Expect(t, 202)
	}
	clock.Advance(61 * time.Second)
	r = s.Do(t, "POST", "/v1/email/verify/resend", nil)
	expectCode(t, r, 429, "too_many_requests")
	// The sign-up's link leaves the day's window 24 h after it was made.
	wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if want := int((24*time.Hour - 5*61*time.Second) / time.Second); wait != want {
		t.Errorf("Retry-After %d, want %d", wait, want)
	}
	clock.Advance(time.Duration(wait) * time.Second)
	s = c.LoginSession(t, s.Email) // the day outlived the session
	s.Do(t, "POST", "/v1/email/verify/resend", nil).Expect(t, 202)
	// Only the newest link works.
	links := c.AccountLinks(t, s.Email)
	if len(links) != 6 || links[0].Revoked || !links[1].Revoked {
		t.Fatalf("links: %+v", links)
	}
	c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": links[0].Token}).Expect(t, 200)
	expectCode(t, s.Do(t, "POST", "/v1/email/verify/resend", nil), 409, "already_verified")
}

// TestSweepForgetsOldLinks: a link is kept for a month after it expires
// (a late click still gets "expired", not "invalid"), then swept.
func TestSweepForgetsOldLinks(t *testing.T) {
	clock := storagetest.NewClock(time.Now().UTC())
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	srv := httptest.NewServer(handlers.New(p.Platform, handlers.Config{Version: "test", TestRoutes: true}))
	t.Cleanup(srv.Close)
	c := &apitest.Client{Base: srv.URL}
	s, _ := c.SignupUnverified(t, "Sweep Co", nil)
	l := c.LatestLink(t, s.Email, "verify_email")
	clock.Advance(48*time.Hour + 30*24*time.Hour - time.Minute)
	if err := identity.Sweep(context.Background(), p.Platform); err != nil {
		t.Fatal(err)
	}
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": l.Token}), 410, "link_expired")
	clock.Advance(2 * time.Minute)
	if err := identity.Sweep(context.Background(), p.Platform); err != nil {
		t.Fatal(err)
	}
	if links := c.AccountLinks(t, s.Email); len(links) != 0 {
		t.Fatalf("links after the sweep: %+v", links)
	}
	expectCode(t, c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": l.Token}), 400, "invalid_link")
}
