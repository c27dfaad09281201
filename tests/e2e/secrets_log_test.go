package e2e

import (
	"strings"
	"testing"

	"pommy.ai/edge/tests/apitest"
)

// TestSecretsAreNeverLogged drives the flows that carry secrets (sign-up and
// login passwords, session tokens, API keys, failed credentials, a crash
// mid-request) through the shipped guest and checks that none of the
// secrets appears in anything the host or the guest logged.
func TestSecretsAreNeverLogged(t *testing.T) {
	h := startHome(t, homeOptions{})
	c := &apitest.Client{Base: h.url}
	owner := c.Signup(t, "Quiet Co")
	key := owner.NewKey(t, "contacts:read", "contacts:write")
	c.Login(t, owner.Email, "not the password at all").Expect(t, 401)
	login := c.Login(t, owner.Email, apitest.Password).Expect(t, 200)
	c.Do(t, "POST", "/v1/contacts", map[string]string{"name": "t"}, "Authorization", "Bearer "+key).Expect(t, 201)
	bad := key[:len(key)-6] + "zzzzzz"
	c.Do(t, "GET", "/v1/contacts", nil, "Authorization", "Bearer "+bad).Expect(t, 401)
	// A crash logs a stack; it must not carry the request's credentials.
	c.Do(t, "POST", "/__test/trap", nil, "Authorization", "Bearer "+key, "Cookie", apitest.SessionCookie+"="+owner.Token)

	logs := h.log.String()
	if !strings.Contains(logs, "trap") && !strings.Contains(logs, "panic") {
		t.Fatalf("the crash left no log line, so this test cannot see what is logged:\n%s", logs)
	}
	secrets := map[string]string{
		"password":        apitest.Password,
		"wrong password":  "not the password at all",
		"API key":         key,
		"API key's body":  key[len("pk_live_"):],
		"altered API key": bad,
		"session token":   owner.Token,
	}
	for _, line := range login.Header.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(strings.SplitN(line, ";", 2)[0], apitest.SessionCookie+"="); ok && v != "" {
			secrets["login's session token"] = v
		}
	}
	if secrets["login's session token"] == "" {
		t.Fatal("login set no session cookie")
	}
	for what, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the %s appears in the logs", what)
		}
	}
}
