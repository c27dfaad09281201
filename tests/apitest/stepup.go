package apitest

import (
	"regexp"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
)

var placeholderPath = regexp.MustCompile(`\{[a-z]+\}`)

// Scenarios that move the home's clock (advance): a home whose clock the
// test holds runs them (tests/native, tests/e2e).

// stepUpWindow is identity.StepUpWindow, as a person meets it.
const stepUpWindow = 5 * time.Minute

// StepUpWindow: every step-up route is refused once the session's last
// proof is older than the window, whatever the role allows; a wrong
// password does not reopen them; POST /v1/me/reauth with the password or a
// TOTP code does, for the window.
func StepUpWindow(t *testing.T, c *Client, advance func(time.Duration)) {
	o := c.Signup(t, "Step-up Co")
	secret, _ := o.EnrolTOTP(t)
	advance(stepUpWindow + time.Minute)
	// Every step-up route of the table (the gate runs before the route,
	// so a placeholder id is enough), as the owner, whose role allows
	// them all.
	type call struct{ method, path string }
	var stepUp []call
	for _, rt := range handlers.Routes() {
		if rt.StepUp {
			stepUp = append(stepUp, call{rt.Method, placeholderPath.ReplaceAllString(rt.Pattern, "x_aaaaaaaaaaaaaaaaaaaaaaaaaa")})
		}
	}
	if len(stepUp) < 6 {
		t.Fatalf("only %d step-up routes in the table: %v", len(stepUp), stepUp)
	}
	refused := func(when string) {
		t.Helper()
		for _, rt := range stepUp {
			var body any
			if rt.path == "/v1/api-keys" {
				body = map[string]any{"name": "late", "scopes": []string{"conversations:read"}}
			}
			if code := o.Do(t, rt.method, rt.path, body).Expect(t, 403).ErrorCode(t); code != "step_up_required" {
				t.Errorf("%s: %s %s: %s, want step_up_required", when, rt.method, rt.path, code)
			}
		}
	}
	refused("after the window")
	// Routes without step-up still answer.
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	if code := o.Do(t, "POST", "/v1/me/reauth", map[string]string{"password": "not the password"}).Expect(t, 403).ErrorCode(t); code != "invalid_credentials" {
		t.Errorf("reauth with a wrong password: %s", code)
	}
	refused("after a wrong password")
	// A TOTP code proves it is the person: the window opens again.
	o.Do(t, "POST", "/v1/me/reauth", map[string]string{"code": c.TOTPCode(t, secret, 0)}).Expect(t, 204)
	o.Do(t, "POST", "/v1/me/mfa/recovery-codes", nil).Expect(t, 200)
	advance(stepUpWindow + time.Second)
	refused("after the window again")
	o.Do(t, "POST", "/v1/me/reauth", map[string]string{"password": Password}).Expect(t, 204)
	o.Do(t, "DELETE", "/v1/me/mfa/totp", nil).Expect(t, 204)
	// Within the window, and just before its end.
	advance(stepUpWindow - time.Second)
	o.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "in time", "scopes": []string{"conversations:read"}}).Expect(t, 201)
}

// ChallengeExpiry: the second step of a sign-in must come within five
// minutes of the password; a late answer is refused (challenge_expired)
// and spends nothing, and a new sign-in works.
func ChallengeExpiry(t *testing.T, c *Client, advance func(time.Duration)) {
	o := c.Signup(t, "Expiry Co")
	_, codes := o.EnrolTOTP(t)
	tok := c.PasswordStep(t, o.Email)
	advance(5*time.Minute + time.Second)
	if code := c.SecondStep(t, tok, map[string]string{"recovery_code": codes[0]}).Expect(t, 401).ErrorCode(t); code != "challenge_expired" {
		t.Errorf("late answer: %s", code)
	}
	tok = c.PasswordStep(t, o.Email)
	advance(5*time.Minute - time.Second)
	c.SecondStep(t, tok, map[string]string{"recovery_code": codes[0]}).Expect(t, 200)
}
