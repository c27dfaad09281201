package native

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
)

// Passkey scenarios that move time or cross the home's approximate
// limits; the rest are in tests/apitest/passkeys.go.

// TestPasskeyLoginShedding crosses the passwordless sign-in's two
// approximate limits (storage.LimitLogin): per address and per passkey.
func TestPasskeyLoginShedding(t *testing.T) {
	c, clock := startWith(t, testLimits(3))
	o := c.Signup(t, "Shed Passkeys Co")
	a := c.NewAuthenticator(t)
	o.EnrolPasskey(t, a, "Key")
	signIn := func(ip string) *apitest.Response {
		t.Helper()
		tok, ro := c.PasskeyOptions(t)
		got, err := a.Get(ro)
		if err != nil {
			t.Fatal(err)
		}
		return c.Do(t, "POST", "/v1/login/passkey", map[string]any{"challenge_token": tok, "credential": got}, apitest.TestClientIP, ip)
	}
	for range 3 {
		signIn("203.0.113.60").Expect(t, 200)
	}
	r := signIn("203.0.113.60").Expect(t, 429)
	if r.ErrorCode(t) != "rate_limited" || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "address") {
		t.Errorf("per address: %s %v", r.Body, r.Header)
	}
	// Another address, the same passkey: its own limit is used up too.
	r = signIn("203.0.113.61").Expect(t, 429)
	if !strings.Contains(string(r.Body), "passkey") {
		t.Errorf("per passkey: %s", r.Body)
	}
	// Another person's passkey from that address is not held back.
	other := c.Signup(t, "Other Shed Co")
	b := c.NewAuthenticator(t)
	other.EnrolPasskey(t, b, "Theirs")
	tok, ro := c.PasskeyOptions(t)
	got, _ := b.Get(ro)
	c.Do(t, "POST", "/v1/login/passkey", map[string]any{"challenge_token": tok, "credential": got}, apitest.TestClientIP, "203.0.113.61").Expect(t, 200)
	// Asking for options stores a ceremony: an address asks as often as it
	// may sign in.
	for range 3 {
		c.Do(t, "POST", "/v1/login/passkey/options", map[string]any{}, apitest.TestClientIP, "203.0.113.62").Expect(t, 200)
	}
	c.Do(t, "POST", "/v1/login/passkey/options", map[string]any{}, apitest.TestClientIP, "203.0.113.62").Expect(t, 429)
	// The windows slide away.
	clock.Advance(2*time.Minute + time.Second)
	signIn("203.0.113.60").Expect(t, 200)
	c.Do(t, "POST", "/v1/login/passkey/options", map[string]any{}, apitest.TestClientIP, "203.0.113.62").Expect(t, 200)
}

// TestPasskeyTimes: ceremonies expire after 5 minutes, and a session's
// step-up window closes for removing a passkey and enrolling one until a
// passkey (or the password) proves the person again.
func TestPasskeyTimes(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Passkey Clock Co")
	a := c.NewAuthenticator(t)
	id := o.EnrolPasskey(t, a, "Key")["id"].(string)

	tok, ro := c.PasskeyOptions(t)
	reg := o.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}).Expect(t, 200).JSON(t)
	clock.Advance(5*time.Minute + time.Second)
	got, _ := a.Get(ro)
	if code := c.PasskeyLogin(t, tok, got, "").Expect(t, 401).ErrorCode(t); code != "challenge_expired" {
		t.Errorf("a late passwordless answer: %s", code)
	}
	cred, _, _ := c.NewAuthenticator(t).Create(mustRaw(t, reg["options"]))
	if code := o.Do(t, "POST", "/v1/me/passkeys", map[string]any{"challenge_token": reg["challenge_token"], "credential": cred}).Expect(t, 401).ErrorCode(t); code != "challenge_expired" {
		t.Errorf("a late enrolment: %s", code)
	}
	// The session is over 5 minutes old: dangerous passkey changes need a step-up.
	for _, r := range []*apitest.Response{
		o.Do(t, "DELETE", "/v1/me/passkeys/"+id, nil),
		o.Do(t, "POST", "/v1/me/passkeys/options", map[string]any{}),
	} {
		if code := r.Expect(t, 403).ErrorCode(t); code != "step_up_required" {
			t.Errorf("without step-up: %s", code)
		}
	}
	opts := o.Do(t, "POST", "/v1/me/reauth/webauthn", map[string]any{}).Expect(t, 200).JSON(t)["options"]
	ans, _ := a.Get(mustRaw(t, opts))
	o.Do(t, "POST", "/v1/me/reauth", map[string]any{"webauthn": ans}).Expect(t, 204)
	o.Do(t, "DELETE", "/v1/me/passkeys/"+id, nil).Expect(t, 204)
}

func mustRaw(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
