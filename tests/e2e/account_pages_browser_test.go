package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/browser"
)

// TestAccountPagesBrowser follows a mailed reset link in Chromium, as a
// person would: the link from the mail that arrived at the SMTP server,
// the page's form, then a sign-in with the new password
// (tests/browser/account.mjs).
func TestAccountPagesBrowser(t *testing.T) {
	b := needBrowser(t)
	h, c, mp, _ := mailHome(t)
	o := c.Signup(t, "Pages Co")
	c.Do(t, "POST", "/v1/password/forgot", map[string]string{"email": o.Email}).Expect(t, 202)
	l := linkIn(t, mp.WaitFor(t, o.Email, hasLink("/account/reset")))
	newPw := "chosen in the browser 9"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out []string
	err := b.Run(ctx, "account.mjs", browser.Env{Platform: h.url},
		[]string{"POMMY_LINK=" + l.url + "#token=" + l.token, "POMMY_NEW_PASSWORD=" + newPw}, func(line string) {
			t.Log(line)
			out = append(out, line)
		})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(out, "\n"), "--- PASS: reset-page") {
		t.Fatal("account.mjs did not pass")
	}
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
	c.Login(t, o.Email, apitest.Password).Expect(t, 401)
	c.Login(t, o.Email, newPw).Expect(t, 200)
}
