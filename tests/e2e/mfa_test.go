package e2e

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/mailpit"
)

// Second factors through the wasip1 guest, on a clock the test moves, with
// the notices they send delivered to a real SMTP server (mailpit).

// TestStepUpWindowGuest: the step-up window and the sign-in challenge's
// expiry, as the guest enforces them (apitest.StepUpWindow,
// apitest.ChallengeExpiry).
func TestStepUpWindowGuest(t *testing.T) {
	_, c, _, clk := mailHome(t)
	t.Run("StepUp", func(t *testing.T) { apitest.StepUpWindow(t, c, clk.Advance) })
	t.Run("ChallengeExpiry", func(t *testing.T) { apitest.ChallengeExpiry(t, c, clk.Advance) })
}

// TestMFANoticesMailed: setting up, replacing the recovery codes of and
// removing an authenticator app each mail the person, in their language,
// and no mail carries a secret, a code or a recovery code.
func TestMFANoticesMailed(t *testing.T) {
	_, c, mp, _ := mailHome(t)
	o := c.Signup(t, "Notice Co")
	secret, codes := o.EnrolTOTP(t)
	added := mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return strings.Contains(m.Text, "authenticator app was added") })
	fresh := o.Do(t, "POST", "/v1/me/mfa/recovery-codes", nil).Expect(t, 200).JSON(t)["recovery_codes"].([]any)
	mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return strings.Contains(m.Text, "new recovery codes") })
	// The person now reads Turkish.
	o.Do(t, "PATCH", "/v1/me", map[string]string{"locale": "tr"}).Expect(t, 200)
	o.Do(t, "DELETE", "/v1/me/mfa/totp", nil).Expect(t, 204)
	mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return strings.Contains(m.Text, "doğrulama uygulaması kaldırıldı") })
	if !strings.Contains(added.HTML, "authenticator app was added") {
		t.Errorf("the HTML part lacks the notice: %s", added.HTML)
	}
	secrets := append([]string{secret}, codes...)
	for _, f := range fresh {
		secrets = append(secrets, f.(string))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs, err := mp.Messages(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) >= 3 || time.Now().After(deadline) {
			for _, m := range msgs {
				for _, s := range secrets {
					if strings.Contains(m.Raw, s) || strings.Contains(m.Text, s) || strings.Contains(m.HTML, s) {
						t.Errorf("mail %q carries a secret or code", m.Subject)
					}
				}
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPasskeyNoticesMailed: enrolling and removing a passkey each mail the
// person (through the guest, to mailpit); the mail carries no credential.
func TestPasskeyNoticesMailed(t *testing.T) {
	_, c, mp, _ := mailHome(t)
	o := c.Signup(t, "Passkey Notice Co")
	a := c.NewAuthenticator(t)
	added := o.EnrolPasskey(t, a, "Laptop")
	mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return strings.Contains(m.Text, "a passkey was added") })
	o.Do(t, "DELETE", "/v1/me/passkeys/"+added["id"].(string), nil).Expect(t, 204)
	removed := mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return strings.Contains(m.Text, "a passkey was removed") })
	id := base64.RawURLEncoding.EncodeToString(a.Creds[0].ID)
	for _, s := range append([]string{id}, asStrings(added["recovery_codes"])...) {
		if strings.Contains(removed.Raw, s) {
			t.Errorf("the notice carries %q", s)
		}
	}
}

func asStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}
