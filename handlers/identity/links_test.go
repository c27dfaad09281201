package identity

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/web"
)

func TestForgotLinkIDFromJobID(t *testing.T) {
	for range 100 {
		j := jobs.NewID()
		id, err := forgotLinkID(j)
		if err != nil || !web.ValidID("atk", id) {
			t.Fatalf("job %s: link id %q, %v", j, id, err)
		}
		if again, _ := forgotLinkID(j); again != id {
			t.Fatal("the link id is not a function of the job id")
		}
	}
	for _, bad := range []string{"", "job_", "atk_abc", "job_" + strings.Repeat("A", 26), "xjob_" + strings.Repeat("a", 26), "job_" + strings.Repeat("a", 27)} {
		if _, err := forgotLinkID(bad); err == nil {
			t.Errorf("job id %q accepted", bad)
		}
	}
}

func TestCheckLocale(t *testing.T) {
	for in, want := range map[string]string{"": "en", "en": "en", "tr": "tr"} {
		if got, err := checkLocale(in); err != nil || got != want {
			t.Errorf("checkLocale(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"EN", "de", "tr-TR", " en", "en\n"} {
		if _, err := checkLocale(bad); err == nil {
			t.Errorf("checkLocale(%q) accepted", bad)
		}
	}
}

func TestInvitationEvents(t *testing.T) {
	id := web.NewID("inv")
	seen := map[string]bool{}
	for n := int64(1); n <= maxInvitationMails; n++ {
		e := invitationEvent(id, n)
		if seen[e] {
			t.Fatalf("mail %d reuses event %s", n, e)
		}
		seen[e] = true
	}
	if invitationEvent(id, 1) != "invite:"+id {
		t.Errorf("the first mail's event is %s", invitationEvent(id, 1))
	}
}

// FuzzMaskEmail: the notice to an old address shows the new one's first
// character and domain, never the rest of its local part.
func FuzzMaskEmail(f *testing.F) {
	for _, s := range []string{"jane@example.com", "j@x.io", "@x", "no-at", "", "ğüş@örnek.com.tr", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, e string) {
		m := maskEmail(e)
		local, domain, ok := strings.Cut(e, "@")
		if !ok || local == "" {
			if m != "***" {
				t.Fatalf("maskEmail(%q) = %q", e, m)
			}
			return
		}
		if !utf8.ValidString(local) {
			return // addresses reach it normalized (valid UTF-8); it must only not panic
		}
		if want := string([]rune(local)[0]) + "***@" + domain; m != want {
			t.Fatalf("maskEmail(%q) = %q, want %q", e, m, want)
		}
	})
}

// FuzzDecodeForgot: a stored reset request is read trusting nothing; what
// it accepts is a normalized address and origin.
func FuzzDecodeForgot(f *testing.F) {
	good, _ := json.Marshal(forgotJob{Email: "jane@example.com", Origin: "https://support.example.com"})
	f.Add(good)
	f.Add([]byte(`{"email":"JANE@example.com","origin":"https://x.example"}`))
	f.Add([]byte(`{"email":"jane@example.com","origin":"https://x.example/path"}`))
	f.Add([]byte(`{"email":"jane@example.com","origin":"javascript:alert(1)"}`))
	f.Add([]byte(`{"email":"a@b.c\r\nBcc: x@y.z","origin":"http://127.0.0.1:8787"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeForgot(b)
		if err != nil {
			return
		}
		if e, err := normalizeEmail(p.Email); err != nil || e != p.Email || strings.ContainsAny(p.Email, "\r\n") {
			t.Fatalf("accepted address %q", p.Email)
		}
		if o, err := web.ParseOrigin(p.Origin); err != nil || o != p.Origin {
			t.Fatalf("accepted origin %q", p.Origin)
		}
	})
}
