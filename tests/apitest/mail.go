package apitest

import (
	"encoding/json"
	"testing"
)

// mailLog: the organization's mail log and the notice policy, as any home
// serves them. The log lists the organization's mail only: the mail about
// a person's own account (the sign-up's verification, a new device's
// sign-in) is never in it. Owners choose whether notices about members
// reach them too.
func mailLog(t *testing.T, c *Client) {
	o := c.Signup(t, "Mail Log Co")
	st := o.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t)
	if st["security_notices_to_owners"] != true {
		t.Errorf("default security_notices_to_owners %v, want true", st["security_notices_to_owners"])
	}
	if got := o.Do(t, "PATCH", "/v1/settings", map[string]any{"security_notices_to_owners": false}).Expect(t, 200).JSON(t)["security_notices_to_owners"]; got != false {
		t.Errorf("security_notices_to_owners %v after turning it off", got)
	}
	for _, bad := range []any{"false", 0, map[string]any{}} {
		o.Do(t, "PATCH", "/v1/settings", map[string]any{"security_notices_to_owners": bad}).Expect(t, 400)
	}
	if got := o.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t)["security_notices_to_owners"]; got != false {
		t.Errorf("security_notices_to_owners %v after refused changes", got)
	}
	// A sign-in from a new browser (no device cookie): mail about the
	// person's account.
	c.Login(t, o.Email, Password).Expect(t, 200)
	var l struct {
		Mail []struct {
			Template string `json:"template"`
		} `json:"mail"`
	}
	if err := json.Unmarshal(o.Do(t, "GET", "/v1/mail", nil).Expect(t, 200).Body, &l); err != nil {
		t.Fatal(err)
	}
	for _, m := range l.Mail {
		switch m.Template {
		case "verify_email", "password_reset", "email_change_confirm", "new_device":
			t.Errorf("the organization's mail log lists a person's account mail (%s)", m.Template)
		}
	}
	for _, q := range []string{"status=lost", "template=newsletter", "limit=0", "limit=101", "cursor=bm90IG91cnM", "to=x"} {
		o.Do(t, "GET", "/v1/mail?"+q, nil).Expect(t, 400)
	}
	o.Invite(t, "agent").Do(t, "GET", "/v1/mail", nil).Expect(t, 403)
}
