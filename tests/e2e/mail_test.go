package e2e

import (
	"encoding/json"
	"testing"

	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/mailpit"
)

// TestMailContract runs the mail contract suite inside the guest: its
// mail port crosses the ABI (mail.send) to the host's SMTP adapter, which
// submits to mailpit over STARTTLS with AUTH, and the suite reads what
// arrived through mailpit's API with the guest's own outbound HTTP.
func TestMailContract(t *testing.T) {
	mp := mailpit.Start(t, mailpit.Options{TLS: mailpit.TLSStartTLS, User: "pommy", Password: "e2e-mail-pass", AllowedRecipients: `@example\.com$`})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest, mailpit: mp})
			r := h.get(t, "/__contract/mail")
			if r.status != 200 {
				t.Fatalf("GET /__contract/mail: %v", r)
			}
			var results []storagetest.Result
			if err := json.Unmarshal(r.body, &results); err != nil {
				t.Fatalf("decoding results: %v: %s", err, r.body)
			}
			if len(results) < 7 {
				t.Fatalf("the suite ran %d cases, want 7 or more", len(results))
			}
			for _, res := range results {
				t.Run(res.Name, func(t *testing.T) {
					for _, l := range res.Logs {
						t.Log(l)
					}
					for _, f := range res.Failures {
						t.Error(f)
					}
					if !res.Passed && len(res.Failures) == 0 {
						t.Error("failed without a message")
					}
				})
			}
		})
	}
}
