package smtpmail

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for raw, want := range map[string]Server{
		"smtps://mail.example.com":                   {"mail.example.com", "465", ImplicitTLS},
		"smtps://mail.example.com:2465":              {"mail.example.com", "2465", ImplicitTLS},
		"smtp://mail.example.com":                    {"mail.example.com", "587", StartTLS},
		"smtp://mail.example.com:25?tls=starttls":    {"mail.example.com", "25", StartTLS},
		"smtp://127.0.0.1:1025?tls=none":             {"127.0.0.1", "1025", NoTLS},
		"smtp://localhost:1025?tls=none":             {"localhost", "1025", NoTLS},
		"smtp://[::1]:1025?tls=none":                 {"::1", "1025", NoTLS},
		"smtp://[2001:db8::1]:587":                   {"2001:db8::1", "587", StartTLS},
		"smtp://mail.example.com/":                   {"mail.example.com", "587", StartTLS},
		"smtps://email-smtp.eu-west-1.amazonaws.com": {"email-smtp.eu-west-1.amazonaws.com", "465", ImplicitTLS},
	} {
		got, err := ParseURL(raw)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", raw, got, err, want)
		}
		// The URL form parses back to the same server.
		if again, err := ParseURL(got.String()); err != nil || again != got {
			t.Errorf("%s: %s parses as %+v %v", raw, got, again, err)
		}
	}
	for _, bad := range []string{
		"", "mail.example.com", "http://mail.example.com", "smtp://", "smtp://:25",
		"smtp://user:pass@mail.example.com", "smtp://user@mail.example.com",
		"smtp://mail.example.com?tls=none", "smtp://10.0.0.5:25?tls=none", "smtps://127.0.0.1?tls=none",
		"smtps://mail.example.com?tls=starttls", "smtp://mail.example.com?tls=maybe", "smtp://mail.example.com?tls=none&tls=none",
		"smtp://mail.example.com?starttls=1", "smtp://mail.example.com/path", "smtp://mail.example.com#frag",
		"smtp://mail.example.com:0", "smtp://mail.example.com:65536", "smtp://mail.example.com:025", "smtp://mail.example.com:",
		"smtp://mail example.com", "smtp://mail.example.com\r\n", "smtp://-bad.example.com", "smtp://a..b",
		"smtp://[::1", "smtp://[zz::1]:25", "smtp://" + strings.Repeat("a", 3000),
	} {
		if s, err := ParseURL(bad); err == nil {
			t.Errorf("%q accepted as %+v", bad, s)
		}
	}
}

// FuzzParseURL: the URL is outside data (a flag or a variable). Whatever it
// is, ParseURL returns a server whose URL form parses back to itself, or an
// error; clear text only ever to loopback; never a credential.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"smtps://mail.example.com", "smtp://127.0.0.1:1025?tls=none", "smtp://[::1]:25?tls=starttls", "smtp://u:p@h", "smtp://h:99999", "smtp://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := ParseURL(raw)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error with a line break: %q", err)
			}
			return
		}
		if s.Security == NoTLS && !loopback(s.Host) {
			t.Fatalf("clear text to %q", s.Host)
		}
		if s.Host == "" || s.Port == "" || strings.ContainsAny(s.Host+s.Port, "@/?# \r\n") {
			t.Fatalf("%q parsed as %+v", raw, s)
		}
		again, err := ParseURL(s.String())
		if err != nil || again != s {
			t.Fatalf("%q -> %+v -> %q -> %+v %v", raw, s, s.String(), again, err)
		}
	})
}
